"""Record the TCP payloads that cross a network interface, as anyone on the link could:
`python tests/sniff.py IFACE OUT` (root, run in the interface's namespace) writes every
TCP payload seen on IFACE to OUT, and OUT.ready once listening, until SIGTERM. Used by
tests/test_two_hosts.py to show that the link carries nothing readable."""

import signal
import socket
import struct
import sys
from pathlib import Path

ETH_P_ALL = 0x0003
ETHERNET_HEADER = 14
IPV4, TCP = 0x0800, 6


def tcp_payload(packet: bytes) -> bytes:
    """The TCP payload of an Ethernet frame holding IPv4, else nothing."""
    if len(packet) < ETHERNET_HEADER + 20 or struct.unpack("!H", packet[12:14])[0] != IPV4:
        return b""
    ip = packet[ETHERNET_HEADER:]
    header, total = (ip[0] & 0x0F) * 4, struct.unpack("!H", ip[2:4])[0]
    if ip[9] != TCP:
        return b""
    tcp = ip[header:total]
    return tcp[(tcp[12] >> 4) * 4 :] if len(tcp) >= 20 else b""


def main(interface: str, out: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listening = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    listening.bind((interface, 0))
    with open(out, "wb", buffering=0) as seen:
        Path(f"{out}.ready").touch()
        while True:
            seen.write(tcp_payload(listening.recv(65535)))


if __name__ == "__main__":
    main(*sys.argv[1:])
