"""A host that was never paired knocks on a publisher: `python tests/stranger.py
ADDRESS SERVER_KEY` subscribes to ADDRESS with a keypair of its own, made now, and
prints the name of the first handshake event it sees (or "none" after 60 s)."""

import sys

import zmq
import zmq.auth
import zmq.utils.monitor

EVENTS = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol error",
}


def knock(address: str, server_key: bytes) -> str:
    context = zmq.Context()
    public, secret = zmq.curve_keypair()
    socket = context.socket(zmq.SUB)
    socket.curve_publickey, socket.curve_secretkey, socket.curve_serverkey = public, secret, server_key
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    monitor = socket.get_monitor_socket(sum(EVENTS))
    socket.connect(address)
    try:
        if not monitor.poll(60_000):
            return "none"
        return EVENTS[zmq.utils.monitor.recv_monitor_message(monitor)["event"]]
    finally:
        socket.disable_monitor()
        monitor.close(linger=0)
        socket.close(linger=0)
        context.term()


if __name__ == "__main__":
    print(knock(sys.argv[1], sys.argv[2].encode()))
