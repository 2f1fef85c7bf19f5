"""Which network interfaces Janus offers media on, and their addresses.

Janus never gathers candidates on a loopback interface, and when none of the interfaces it is
told to use exists it falls back to every interface (IPv6 link-local included). So the hub names
real interfaces only, checks that each exists before Janus starts, and with none configured
uses the interface of the default route.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

from crossline.config import Config, ConfigError

SIOCGIFADDR = 0x8915


def default_route_interface(route_table: Path = Path("/proc/net/route")) -> str | None:
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            return fields[0]
    return None


def interface_address(name: str) -> str | None:
    """The interface's IPv4 address, or None if it has none (or does not exist)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def media_interfaces(config: Config) -> list[str]:
    """The interfaces Janus is told to use; each exists, is not loopback and has an address. Empty
    only on a machine with no interface but loopback (then Janus has nowhere to offer media)."""
    names = list(config.live.ice_interfaces)
    known = {name for _, name in socket.if_nameindex()}
    if not names:
        found = default_route_interface()
        if found is None:
            usable = sorted(name for name in known if (address := interface_address(name))
                            and not ipaddress.ip_address(address).is_loopback)
            if len(usable) > 1:
                raise ConfigError(f"This machine has no default route, so live sessions do not know which network "
                                  f"interface to offer media on ({', '.join(usable)}). Name one in [live] "
                                  f"ice_interfaces in {config.paths.config_file}.")
            return usable
        names = [found]
    for name in names:
        address = interface_address(name) if name in known else None
        if address is None:
            raise ConfigError(f"[live] ice_interfaces names {name!r}, which is not a network interface with an IPv4 "
                              f"address on this machine (it has {', '.join(sorted(known))}). Janus would then offer "
                              f"media on every interface. Correct it in {config.paths.config_file}.")
        if ipaddress.ip_address(address).is_loopback:
            raise ConfigError(f"[live] ice_interfaces names the loopback interface {name!r}: Janus never offers "
                              f"media there. Name a network interface (such as \"eth0\") in {config.paths.config_file}.")
    return names


def media_addresses(names: list[str]) -> list[str]:
    return [address for name in names if (address := interface_address(name))]
