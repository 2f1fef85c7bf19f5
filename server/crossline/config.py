"""The one typed configuration object, loaded once from `DATA_DIR/crossline.toml`.

Secrets never live in the TOML file: they are files of their own (mode 0600) under
`DATA_DIR/secrets/`, named by `Paths`. Nothing else in Crossline reads `os.environ`
except `default_data_dir` here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_FILE_NAME = "crossline.toml"
DATA_DIR_ENV = "CROSSLINE_DATA_DIR"


class ConfigError(Exception):
    """A configuration problem, worded so that the reader knows what to change."""


def default_data_dir() -> Path:
    """`$CROSSLINE_DATA_DIR`, else `$XDG_DATA_HOME/crossline`, else `~/.local/share/crossline`."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "crossline"


@dataclass(frozen=True)
class HubConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    # Where people reach the hub; links in invitations use it. Empty: http://host:port.
    public_url: str = ""
    # Where the quick-exit control leads: a neutral page that looks like ordinary browsing.
    quick_exit_url: str = "https://www.bbc.com/weather"
    # Reverse proxies (addresses or networks) whose X-Forwarded-For is believed for rate limits.
    # Empty: the header is ignored and the connecting address is the client.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class SynapseConfig:
    server_name: str = "crossline.local"
    # Where Matrix clients connect: the hub's client-API gateway listens here and passes
    # requests on to Synapse, which itself listens only on a UNIX socket in DATA_DIR/synapse/.
    host: str = "127.0.0.1"
    port: int = 8008
    # Where Matrix clients reach the homeserver. Empty: http://host:port.
    public_url: str = ""


@dataclass(frozen=True)
class InvitationConfig:
    lifetime_hours: int = 72
    # After she declines someone's Matrix invitation, that person cannot invite her again for this long.
    pause_after_decline_days: int = 7


@dataclass(frozen=True)
class ModerationConfig:
    # Banning from every hub room or deactivating an account needs a second moderator; true:
    # she must be from another side of the line than the first.
    second_moderator_from_other_side: bool = True
    # Closed cases (and their sealed evidence) are deleted this many days after their last change.
    report_retention_days: int = 180
    # When a quorum of moderators unmasks a pseudonym, the person behind it gets a notice.
    tell_member_when_unmasked: bool = True


@dataclass(frozen=True)
class PseudonymConfig:
    # A pseudonym is named and invited into its room at least this long after it is taken, and
    # accounts are made at least this long before (services/pseudonym_pool.py).
    decoupling_seconds: int = 900


@dataclass(frozen=True)
class DatabaseConfig:
    # Empty: SQLite at DATA_DIR/hub.sqlite3. PostgreSQL: postgresql+psycopg://...
    url: str = ""


@dataclass(frozen=True)
class LiveConfig:
    """Live sessions: Janus (the VideoRoom SFU) and coturn, supervised by `crossline up`."""

    enabled: bool = True
    janus_binary: str = "/usr/bin/janus"
    # Where Janus's plugins/ and transports/ are. Empty: Debian's /usr/lib/<arch>/janus.
    janus_modules_dir: str = ""
    turnserver_binary: str = "/usr/bin/turnserver"
    # UDP ports Janus takes media on ("min-max").
    rtp_port_range: str = "20000-20999"
    # The only network interfaces Janus offers media on. Empty: the default route's.
    ice_interfaces: tuple[str, ...] = ()
    # Behind a 1:1 NAT (a cloud machine): the public address written into Janus's candidates.
    public_address: str = ""
    # coturn listens on this address and port (UDP and TCP), and people's browsers reach it at
    # turn_public_host (empty: turn_host).
    turn_host: str = "127.0.0.1"
    turn_port: int = 3478
    turn_public_host: str = ""
    turn_relay_port_range: str = "49152-49999"
    # Private addresses the relay may still send to besides Janus's own media addresses (added at
    # each start); every other private, loopback and link-local range is refused so the relay is
    # no way into the hub's network.
    turn_allowed_peer_ips: tuple[str, ...] = ()
    turn_credential_lifetime_seconds: int = 600  # ten minutes: a leaked credential soon stops working
    audio_bitrate: int = 16000
    max_publishers: int = 12


@dataclass(frozen=True)
class Paths:
    """Every file Crossline keeps, derived from the data directory."""

    data_dir: Path

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE_NAME

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    def secret(self, name: str) -> Path:
        return self.secrets_dir / name

    @property
    def synapse_dir(self) -> Path:
        return self.data_dir / "synapse"

    @property
    def synapse_config(self) -> Path:
        return self.synapse_dir / "homeserver.yaml"

    @property
    def synapse_socket(self) -> Path:
        """Synapse's only listener. Inside the 0700 synapse directory: no other local user can
        reach Synapse around the gateway."""
        return self.synapse_dir / "client.sock"

    @property
    def synapse_log(self) -> Path:
        return self.synapse_dir / "homeserver.log"

    @property
    def synapse_database(self) -> Path:
        return self.synapse_dir / "homeserver.db"

    @property
    def appservice_registration(self) -> Path:
        return self.synapse_dir / "crossline-appservice.yaml"

    @property
    def known_members(self) -> Path:
        """Written by the hub, read by our Synapse module: who may invite and be invited."""
        return self.synapse_dir / "known-members.json"

    @property
    def registration_claims_dir(self) -> Path:
        """Written by our Synapse module: which account registered with which token."""
        return self.synapse_dir / "registration-claims"

    @property
    def janus_dir(self) -> Path:
        """Janus's generated configuration, its API socket and log (0700)."""
        return self.data_dir / "janus"

    @property
    def janus_socket(self) -> Path:
        """Janus's only API: a UNIX socket that only this user can reach."""
        return self.janus_dir / "api.sock"

    @property
    def janus_log(self) -> Path:
        return self.janus_dir / "janus.log"

    @property
    def coturn_dir(self) -> Path:
        return self.data_dir / "coturn"

    @property
    def coturn_config(self) -> Path:
        return self.coturn_dir / "turnserver.conf"

    @property
    def coturn_log(self) -> Path:
        return self.coturn_dir / "turnserver.log"

    @property
    def audit_head(self) -> Path:
        """The audit log's latest signed head, kept outside the database (services/audit_heads.py)."""
        return self.data_dir / "audit-head.txt"

    @property
    def audit_state(self) -> Path:
        """Beside it: heads posted, the alert told, old entries keyed (services/audit_state.py)."""
        return self.data_dir / "audit-state.json"

    @property
    def hub_database(self) -> Path:
        return self.data_dir / "hub.sqlite3"

    @property
    def run_state(self) -> Path:
        return self.data_dir / "run" / "state.json"


@dataclass(frozen=True)
class Config:
    data_dir: Path
    hub: HubConfig = field(default_factory=HubConfig)
    synapse: SynapseConfig = field(default_factory=SynapseConfig)
    invitations: InvitationConfig = field(default_factory=InvitationConfig)
    moderation: ModerationConfig = field(default_factory=ModerationConfig)
    pseudonyms: PseudonymConfig = field(default_factory=PseudonymConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    live: LiveConfig = field(default_factory=LiveConfig)

    @property
    def paths(self) -> Paths:
        return Paths(self.data_dir)

    @property
    def hub_url(self) -> str:
        return (self.hub.public_url or f"http://{_url_host(self.hub.host)}:{self.hub.port}").rstrip("/")

    @property
    def homeserver_url(self) -> str:
        """Where the hub itself talks to Synapse: only through `matrix.homeserver.synapse_session`,
        whose connector goes to Synapse's socket (the host name here is never resolved)."""
        return "http://synapse.socket"

    @property
    def gateway_url(self) -> str:
        """The client-API gateway on this machine: what Matrix clients reach."""
        return f"http://{_url_host(self.synapse.host)}:{self.synapse.port}"

    @property
    def homeserver_public_url(self) -> str:
        return (self.synapse.public_url or self.gateway_url).rstrip("/")

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.paths.hub_database}"

    @property
    def bot_user_id(self) -> str:
        return f"@{BOT_LOCALPART}:{self.synapse.server_name}"

    @property
    def hub_admin_user_id(self) -> str:
        return f"@{HUB_ADMIN_LOCALPART}:{self.synapse.server_name}"


# The appservice's own sender: exists implicitly, never syncs (Synapse refuses /sync for it).
APPSERVICE_SENDER_LOCALPART = "crossline"
# The hub's bot: an ordinary account in the appservice's exclusive namespace, with its own device.
BOT_LOCALPART = "crossline-bot"
HUB_ADMIN_LOCALPART = "crossline-admin"

_SECTIONS: dict[str, type] = {
    "hub": HubConfig,
    "synapse": SynapseConfig,
    "invitations": InvitationConfig,
    "moderation": ModerationConfig,
    "pseudonyms": PseudonymConfig,
    "database": DatabaseConfig,
    "live": LiveConfig,
}

# sockaddr_un holds 108 bytes; Twisted also makes "<path>.lock" next to the socket.
MAX_SOCKET_PATH_BYTES = 100

_SERVER_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def load_config(data_dir: Path) -> Config:
    path = Paths(data_dir).config_file
    if not path.exists():
        raise ConfigError(
            f"No Crossline configuration at {path}. Run `crossline init --data-dir {data_dir}` first."
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}).") from error
    return parse_config(raw, data_dir, source=str(path))


def parse_config(raw: dict[str, Any], data_dir: Path, source: str = "config") -> Config:
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _SECTIONS:
            known = ", ".join(f"[{s}]" for s in _SECTIONS)
            raise ConfigError(f"{source}: unknown section [{name}]. Known sections: {known}.")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{name}' must be a table ([{name}]).")
        sections[name] = _parse_section(name, _SECTIONS[name], value, source)
    config = Config(data_dir=data_dir.resolve(), **sections)
    _validate(config, source)
    return config


def _parse_section(section: str, cls: type, values: dict[str, Any], source: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key '{key}' in [{section}]. Known keys: {', '.join(known)}."
            )
        expected = type(getattr(cls(), key))
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{source}: [{section}] {key} must be a whole number, not {value!r}.")
        if expected is str and not isinstance(value, str):
            raise ConfigError(f"{source}: [{section}] {key} must be a string, not {value!r}.")
        if expected is bool and not isinstance(value, bool):
            raise ConfigError(f"{source}: [{section}] {key} must be true or false, not {value!r}.")
        if expected is tuple and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{source}: [{section}] {key} must be a list of strings, not {value!r}.")
    return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def _validate(config: Config, source: str) -> None:
    for section, section_config in (("hub", config.hub), ("synapse", config.synapse)):
        if not 1 <= section_config.port <= 65535:
            raise ConfigError(
                f"{source}: [{section}] port must be between 1 and 65535, not {section_config.port}."
            )
        try:
            ipaddress.ip_address(section_config.host)
        except ValueError as error:
            raise ConfigError(
                f"{source}: [{section}] host must be an IP address to listen on "
                f"(127.0.0.1 keeps it on this machine), not {section_config.host!r}."
            ) from error
    for proxy in config.hub.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as error:
            raise ConfigError(f"{source}: [hub] trusted_proxies: {proxy!r} is not an IP address or network "
                              "(such as \"127.0.0.1\" or \"10.0.0.0/8\").") from error
    if config.hub.port == config.synapse.port and config.hub.host == config.synapse.host:
        raise ConfigError(f"{source}: [hub] port and [synapse] port must differ ({config.hub.port}).")
    if not _SERVER_NAME.match(config.synapse.server_name):
        raise ConfigError(
            f"{source}: [synapse] server_name {config.synapse.server_name!r} is not a valid Matrix "
            "server name (lower-case host name such as 'crossline.example.org')."
        )
    for section, key, url in (
        ("hub", "public_url", config.hub.public_url),
        ("hub", "quick_exit_url", config.hub.quick_exit_url),
        ("synapse", "public_url", config.synapse.public_url),
    ):
        if url and not re.match(r"^https?://[^\s/]+", url):
            raise ConfigError(f"{source}: [{section}] {key} must start with http:// or https://, not {url!r}.")
    if not 1 <= config.invitations.lifetime_hours <= 24 * 30:
        raise ConfigError(
            f"{source}: [invitations] lifetime_hours must be between 1 and 720, "
            f"not {config.invitations.lifetime_hours}."
        )
    if not 1 <= config.invitations.pause_after_decline_days <= 365:
        raise ConfigError(
            f"{source}: [invitations] pause_after_decline_days must be between 1 and 365, "
            f"not {config.invitations.pause_after_decline_days}."
        )
    if not 1 <= config.moderation.report_retention_days <= 3650:
        raise ConfigError(
            f"{source}: [moderation] report_retention_days must be between 1 and 3650, "
            f"not {config.moderation.report_retention_days}."
        )
    if not 1 <= config.pseudonyms.decoupling_seconds <= 86_400:
        raise ConfigError(
            f"{source}: [pseudonyms] decoupling_seconds must be between 1 and 86400, "
            f"not {config.pseudonyms.decoupling_seconds}."
        )
    socket_path = str(config.paths.synapse_socket).encode()
    if len(socket_path) > MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"{source}: the data directory's path is too long for Synapse's socket {config.paths.synapse_socket} "
            f"({len(socket_path)} bytes; Linux allows {MAX_SOCKET_PATH_BYTES}). Use a shorter --data-dir."
        )
    if config.database.url and not config.database.url.startswith(("sqlite", "postgresql")):
        raise ConfigError(f"{source}: [database] url must be a sqlite:// or postgresql:// URL.")
    _validate_live(config, source)


def port_range(text: str) -> tuple[int, int] | None:
    """"20000-20999" as (20000, 20999); None if it is not such a range."""
    match = re.fullmatch(r"(\d{1,5})-(\d{1,5})", text)
    if not match:
        return None
    low, high = int(match.group(1)), int(match.group(2))
    return (low, high) if 1024 <= low <= high <= 65535 else None


def _validate_live(config: Config, source: str) -> None:
    live = config.live
    for key in ("rtp_port_range", "turn_relay_port_range"):
        if port_range(getattr(live, key)) is None:
            raise ConfigError(f"{source}: [live] {key} must be two ports \"min-max\" between 1024 and 65535, "
                              f"such as \"20000-20999\", not {getattr(live, key)!r}.")
    if not 1 <= live.turn_port <= 65535:
        raise ConfigError(f"{source}: [live] turn_port must be between 1 and 65535, not {live.turn_port}.")
    for key in ("turn_host", *(("public_address",) if live.public_address else ())):
        try:
            ipaddress.ip_address(getattr(live, key))
        except ValueError as error:
            raise ConfigError(f"{source}: [live] {key} must be an IP address, not {getattr(live, key)!r}.") from error
    for address in live.turn_allowed_peer_ips:
        try:
            ipaddress.ip_address(address)
        except ValueError as error:
            raise ConfigError(f"{source}: [live] turn_allowed_peer_ips: {address!r} is not an IP address "
                              "(such as \"127.0.0.1\").") from error
    if ipaddress.ip_address(live.turn_host).is_unspecified and not live.turn_public_host:
        raise ConfigError(f"{source}: [live] turn_host {live.turn_host} listens everywhere, so set turn_public_host "
                          "to the name or address browsers reach coturn at.")
    if live.turn_public_host and not re.fullmatch(r"[A-Za-z0-9.:-]+", live.turn_public_host):
        raise ConfigError(f"{source}: [live] turn_public_host must be a host name or IP address, "
                          f"not {live.turn_public_host!r}.")
    if not all(re.fullmatch(r"[A-Za-z0-9._-]{1,15}", name) for name in live.ice_interfaces):
        raise ConfigError(f"{source}: [live] ice_interfaces must be network interface names (such as [\"eth0\"]; "
                          f"empty: the default route's), not {list(live.ice_interfaces)!r}.")
    if not 60 <= live.turn_credential_lifetime_seconds <= 86_400:
        raise ConfigError(f"{source}: [live] turn_credential_lifetime_seconds must be between 60 and 86400, "
                          f"not {live.turn_credential_lifetime_seconds}.")
    if not 6_000 <= live.audio_bitrate <= 510_000:
        raise ConfigError(f"{source}: [live] audio_bitrate must be between 6000 and 510000 (bits per second), "
                          f"not {live.audio_bitrate}.")
    if not 2 <= live.max_publishers <= 100:
        raise ConfigError(f"{source}: [live] max_publishers must be between 2 and 100, not {live.max_publishers}.")
    for key in ("janus_binary", "turnserver_binary"):
        if not getattr(live, key).startswith("/"):
            raise ConfigError(f"{source}: [live] {key} must be an absolute path, not {getattr(live, key)!r}.")
    if len(str(config.paths.janus_socket).encode()) > MAX_SOCKET_PATH_BYTES:
        raise ConfigError(f"{source}: the data directory's path is too long for Janus's socket "
                          f"{config.paths.janus_socket}. Use a shorter --data-dir.")


def render_config_toml(config: Config) -> str:
    """The file `crossline init` writes: every key, with a comment saying what it is for."""
    return f"""# Crossline configuration. Secrets are not here: they are files in secrets/ (mode 0600).
# Documented in docs/configuration.md.

[hub]
# Address the hub's web pages listen on. 127.0.0.1 keeps them on this machine.
host = "{config.hub.host}"
port = {config.hub.port}
# Address people use to reach the hub (used in invitation links). Empty: http://host:port.
public_url = "{config.hub.public_url}"
# The neutral page the quick-exit control leads to.
quick_exit_url = "{config.hub.quick_exit_url}"
# Reverse proxies whose X-Forwarded-For is believed (for rate limits), e.g. ["127.0.0.1", "::1"]
# when a TLS proxy on this machine forwards to the hub. Empty: the header is ignored.
trusted_proxies = {json.dumps(list(config.hub.trusted_proxies))}

[synapse]
# The Matrix server name: the part after the colon in @name:server. It cannot change later.
server_name = "{config.synapse.server_name}"
# Where Matrix clients connect (the hub's gateway; Synapse itself listens only on a socket
# in the data directory). 127.0.0.1 keeps it on this machine.
host = "{config.synapse.host}"
port = {config.synapse.port}
# Address Matrix clients use to reach the homeserver. Empty: http://host:port.
public_url = "{config.synapse.public_url}"

[invitations]
# How long an invitation (and its Synapse registration token) stays valid.
lifetime_hours = {config.invitations.lifetime_hours}
# After someone declines a member's Matrix invitation, that member cannot invite her again for this long.
pause_after_decline_days = {config.invitations.pause_after_decline_days}

[moderation]
# Banning from every hub room or deactivating an account needs a second moderator; true: from
# another side of the line than the first.
second_moderator_from_other_side = {str(config.moderation.second_moderator_from_other_side).lower()}
# Closed cases and their sealed evidence are deleted this many days after their last change.
report_retention_days = {config.moderation.report_retention_days}
# When a quorum of moderators unmasks a pseudonym, the person behind it gets a notice.
tell_member_when_unmasked = {str(config.moderation.tell_member_when_unmasked).lower()}

[pseudonyms]
# A pseudonym is named and invited into its room at least this long (and at most four times
# this long) after a member takes it, so no record puts the two near each other in time.
decoupling_seconds = {config.pseudonyms.decoupling_seconds}

[database]
# Empty: SQLite in the data directory. For PostgreSQL: "postgresql+psycopg://user@host/db".
url = "{config.database.url}"

[live]
# Live sessions (audio and video): Janus and coturn from Debian's packages, run by `crossline up`.
# false: no live sessions, and neither is started.
enabled = {str(config.live.enabled).lower()}
janus_binary = "{config.live.janus_binary}"
# Where Janus's plugins/ and transports/ folders are. Empty: Debian's /usr/lib/<arch>/janus.
janus_modules_dir = "{config.live.janus_modules_dir}"
turnserver_binary = "{config.live.turnserver_binary}"
# UDP ports Janus takes media on.
rtp_port_range = "{config.live.rtp_port_range}"
# The only network interfaces Janus offers media on, e.g. ["eth0"]. Empty: the default route's.
# (Janus never uses loopback for media; each name must exist, or `crossline up` stops.)
ice_interfaces = {json.dumps(list(config.live.ice_interfaces))}
# Behind a 1:1 NAT (most cloud machines): the public IP address. Empty: none.
public_address = "{config.live.public_address}"
# coturn (NAT traversal) listens here (UDP and TCP); browsers reach it at turn_public_host
# (empty: turn_host).
turn_host = "{config.live.turn_host}"
turn_port = {config.live.turn_port}
turn_public_host = "{config.live.turn_public_host}"
turn_relay_port_range = "{config.live.turn_relay_port_range}"
# Private addresses coturn may relay to besides Janus's own (added at each start); every other
# private range is refused.
turn_allowed_peer_ips = {json.dumps(list(config.live.turn_allowed_peer_ips))}
# How long a TURN credential handed to a browser or Matrix client stays valid.
turn_credential_lifetime_seconds = {config.live.turn_credential_lifetime_seconds}
# Opus bitrate cap (bits per second) for participants' audio: 16000 stays intelligible on poor links.
audio_bitrate = {config.live.audio_bitrate}
# Most people who may speak (publish) in one live session.
max_publishers = {config.live.max_publishers}
"""
