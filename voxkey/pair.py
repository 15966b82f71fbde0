"""voxkey pair: trust another host, for stages on two machines.

    voxkey pair [--name NAME] [--address ADDRESS]    this host's line, to run on the other
    voxkey pair NAME ADDRESS -- KEY                  trust the host that printed this line

Run `voxkey pair` on each machine and the line it prints on the other one. The first
run makes this host's CURVE keypair in the key directory (`bus.curve_dir`, else
$XDG_CONFIG_HOME/voxkey/keys); only the public key is ever printed. ADDRESS is where
the other host reaches this one (an IP address, or a name it resolves); by default the
address of the interface this host's traffic leaves by.
"""

import socket as net
from pathlib import Path

from bus import curve, placement
from voxkey import settings
from voxkey.running import CliError


def add_cli(commands):
    pair = commands.add_parser("pair", help="trust another host, for stages on two machines")
    pair.add_argument("other", nargs="*", metavar="NAME ADDRESS KEY", help="the line the other host printed")
    pair.add_argument("--name", default="", help="this host's name (default: its hostname)")
    pair.add_argument("--address", default="", help="where the other host reaches this one")
    pair.set_defaults(run=run)
    return pair


def run(args) -> int:
    config = settings.load(args.config, args.set)
    directory = Path(placement.keys_dir(config) or placement.default_keys_dir())
    if args.other:
        if len(args.other) != 3:
            raise CliError("voxkey pair NAME ADDRESS -- KEY: give the whole line the other host printed")
        name, address, key = args.other
        keys = curve.load(directory)
        if name == keys.here:
            raise CliError(f"{name} is this host's own name: run the line on the other host")
        host = curve.pair(directory, name, address, key)
        print(f"voxkey: {host.name} at {host.address} is paired with {keys.here}; its key is in {directory}")
        return 0
    keys = own_keys(directory, args.name, args.address)
    others = [host for name, host in sorted(keys.hosts.items()) if name != keys.here]
    print(f"voxkey: this host is {keys.here}, reached at {keys.host(keys.here).address}; keys in {directory}")
    for host in others:
        print(f"voxkey: paired with {host.name} at {host.address}")
    print("On the other host, run:")
    print(f"    {pair_line(keys)}")
    return 0


def own_keys(directory: Path, name: str, address: str) -> curve.Keys:
    """This host's keys, made on the first run; a name or address given is recorded."""
    if not (directory / curve.HOSTS).exists():
        curve.generate(directory, name or net.gethostname(), address or outward_address())
        return curve.load(directory)
    keys = curve.load(directory)
    if name or address:
        keys = curve.rename(directory, name or keys.here, address or keys.host(keys.here).address)
    return keys


def pair_line(keys: curve.Keys) -> str:
    here = keys.host(keys.here)
    # `--`: one key in about 85 begins with "-", which would be read as an option. Quoted:
    # Z85 has no quote, but & and ().
    return f"voxkey pair {here.name} {here.address} -- '{here.key.decode()}'"


def outward_address() -> str:
    """The address of the interface traffic leaves by: connecting a UDP socket sends
    nothing, it only picks the route. A host with no route out is named by its hostname."""
    with net.socket(net.AF_INET, net.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, and nothing is sent
            return probe.getsockname()[0]
        except OSError:
            return net.gethostname()
