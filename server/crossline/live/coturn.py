"""coturn's configuration, generated into DATA_DIR/coturn/ (0600) at each `crossline up`.

Credentials only from the shared secret (short-lived, signed by the hub or Synapse), UDP relays
only, and never to a private, loopback or link-local address except those [live]
turn_allowed_peer_ips names (where Janus's media is): a relay must not become a way into the
hub's own network. No CLI, no TLS listeners (the media inside is DTLS-SRTP already), no
software version in answers.
"""

from __future__ import annotations

import ipaddress

from crossline.config import Config, port_range
from crossline.secrets import write_private_file

DENIED_PEER_RANGES = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.2.255",
    "192.88.99.0-192.88.99.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "198.51.100.0-198.51.100.255",
    "203.0.113.0-203.0.113.255",
    "224.0.0.0-255.255.255.255",
    "::-::ffff:ffff:ffff",
    "64:ff9b::-64:ff9b::ffff:ffff",
    "100::-100::ffff:ffff:ffff:ffff",
    "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)


def coturn_settings(config: Config, shared_secret: str, media_addresses: list[str]) -> str:
    """`media_addresses`: where Janus's media is (its interfaces' addresses), which the relay may
    reach even when they are private."""
    live, paths = config.live, config.paths
    allowed = list(dict.fromkeys([*media_addresses, *live.turn_allowed_peer_ips]))
    low, high = port_range(live.turn_relay_port_range)  # type: ignore[misc] - validated at load
    lines = [
        "# Written by `crossline up` at each start. Edit Crossline's config instead.",
        f"listening-ip={live.turn_host}",
        f"listening-port={live.turn_port}",
        # Relays are made on Janus's own media addresses, from where Janus is reachable.
        *(f"relay-ip={address}" for address in (media_addresses or [live.turn_host])),
        f"min-port={low}",
        f"max-port={high}",
        "use-auth-secret",
        f"static-auth-secret={shared_secret}",
        f"realm={config.synapse.server_name}",
        "fingerprint",
        "no-cli",
        "no-tls",
        "no-dtls",
        "no-tcp-relay",
        "no-multicast-peers",
        "no-rfc5780",
        "no-software-attribute",
        "stale-nonce=600",
        "user-quota=12",
        "total-quota=1200",
        f"userdb={paths.coturn_dir / 'turndb'}",
        f"pidfile={paths.coturn_dir / 'turnserver.pid'}",
        # Printed to the hub, which removes addresses before writing DATA_DIR/coturn/turnserver.log.
        "log-file=stdout",
        "simple-log",
        *(f"external-ip={live.public_address}/{live.turn_host}" for _ in [1] if live.public_address),
        *(f"denied-peer-ip={denied}" for denied in DENIED_PEER_RANGES),
        *(f"allowed-peer-ip={address}" for address in allowed),
        # coturn refuses every loopback peer unless told otherwise; the denied ranges above then
        # keep all of 127.0.0.0/8 refused except the addresses allowed just above.
        *(["allow-loopback-peers"] if any(ipaddress.ip_address(a).is_loopback for a in allowed) else []),
    ]
    return "\n".join(lines) + "\n"


def write_coturn_config(config: Config, shared_secret: str, media_addresses: list[str]) -> None:
    config.paths.coturn_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config.paths.coturn_dir.chmod(0o700)
    write_private_file(config.paths.coturn_config, coturn_settings(config, shared_secret, media_addresses))
