"""Janus's configuration, generated into DATA_DIR/janus/ at each `crossline up`.

Only the VideoRoom plugin and the WebSocket transport (serving only a UNIX socket, no TCP port) are loaded: the plugins/ and transports/
folders Janus reads hold a link to those two modules and nothing else, so a plugin or transport
that a package upgrade adds is never loaded. No event handler or logger either (their folders
are empty), no admin API, no STUN or TURN server of Janus's own, ICE only on the configured
interfaces (never loopback: Janus skips it). Log level 4 (info) does not print SDP or secrets; the hub scrubs addresses from
what Janus prints (supervisor.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from crossline.config import Config, ConfigError
from crossline.secrets import write_private_file

VIDEOROOM = "libjanus_videoroom.so"
# Not the plain UNIX-socket transport (pfunix): it drops any message over 8 KB.
WEBSOCKETS = "libjanus_websockets.so"
MODULE_SEARCH = ("/usr/lib/*/janus", "/usr/lib/janus", "/usr/local/lib/janus", "/opt/janus/lib/janus")
MISSING_PACKAGES = ("Run `sudo apt-get install janus coturn` (Debian's packages), or set enabled = false "
                    "in [live] of {config_file} to run the hub without live sessions.")


def janus_modules_dir(config: Config) -> Path:
    """Where Debian's janus package keeps plugins/ and transports/."""
    if config.live.janus_modules_dir:
        candidates = [Path(config.live.janus_modules_dir)]
    else:
        candidates = [found for pattern in MODULE_SEARCH for found in sorted(Path("/").glob(pattern.lstrip("/")))]
    for candidate in candidates:
        if (candidate / "plugins" / VIDEOROOM).exists() and (candidate / "transports" / WEBSOCKETS).exists():
            return candidate
    raise ConfigError(f"Janus's VideoRoom plugin and WebSocket transport were not found (looked in "
                      f"{', '.join(str(c) for c in candidates) or ', '.join(MODULE_SEARCH)}). "
                      + MISSING_PACKAGES.format(config_file=config.paths.config_file))


def _jcfg(sections: dict[str, dict[str, object]]) -> str:
    """libconfig syntax, which Janus reads; JSON's string quoting is valid there."""
    lines = ["# Written by `crossline up` at each start. Edit Crossline's config instead."]
    for name, values in sections.items():
        lines.append(f"{name}: {{")
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else json.dumps(value)
            lines.append(f"\t{key} = {text}")
        lines.append("}")
    return "\n".join(lines) + "\n"


def janus_settings(config: Config, api_secret: str, admin_secret: str, interfaces: list[str]) -> dict[str, str]:
    """File name -> content of every configuration file Janus reads. `interfaces`: checked to exist
    (live/interfaces.py), since Janus uses every interface when none of those it is given exists."""
    paths, live = config.paths, config.live
    janus_dir = paths.janus_dir
    nat: dict[str, object] = {
        **({"ice_enforce_list": ",".join(interfaces)} if interfaces else {}),
        "ignore_mdns": True,
        "full_trickle": False,
        "ice_tcp": False,
    }
    if live.public_address:
        nat["nat_1_1_mapping"] = live.public_address
    return {
        "janus.jcfg": _jcfg({
            "general": {
                "configs_folder": str(janus_dir),
                "plugins_folder": str(janus_dir / "plugins"),
                "transports_folder": str(janus_dir / "transports"),
                "events_folder": str(janus_dir / "events"),
                "loggers_folder": str(janus_dir / "loggers"),
                "debug_level": 4,
                "debug_timestamps": True,
                "debug_colors": False,
                "api_secret": api_secret,
                "token_auth": False,
                # No transport serves the admin API; the secret is set all the same.
                "admin_secret": admin_secret,
                "server_name": "crossline",
                "hide_dependencies": True,
                "exit_on_dl_error": True,
                "session_timeout": 60,
            },
            "media": {"rtp_port_range": live.rtp_port_range},
            "nat": nat,
            "events": {"broadcast": False},
        }),
        # ws_unix instead of a port: the API is a UNIX socket in the 0700 folder; no TLS server,
        # no admin API, no TCP listener of any kind.
        "janus.transport.websockets.jcfg": _jcfg({
            "general": {"json": "compact", "ws": True, "ws_unix": str(paths.janus_socket), "wss": False},
            "admin": {"admin_ws": False, "admin_wss": False},
        }),
        # admin_key: rooms are created only by the hub; lock_rtp_forward: nobody can have a
        # room's media forwarded elsewhere without it.
        "janus.plugin.videoroom.jcfg": _jcfg({
            "general": {"admin_key": admin_secret, "lock_rtp_forward": True, "events": False, "string_ids": False},
        }),
    }


def write_janus_config(config: Config, api_secret: str, admin_secret: str, interfaces: list[str]) -> None:
    modules = janus_modules_dir(config)
    janus_dir = config.paths.janus_dir
    janus_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    janus_dir.chmod(0o700)  # the API socket is in it
    for name, content in janus_settings(config, api_secret, admin_secret, interfaces).items():
        write_private_file(janus_dir / name, content)
    for folder, wanted in (("plugins", [VIDEOROOM]), ("transports", [WEBSOCKETS]), ("events", []), ("loggers", [])):
        target = janus_dir / folder
        target.mkdir(exist_ok=True, mode=0o700)
        for entry in target.iterdir():
            if entry.name not in wanted:
                entry.unlink()
        for name in wanted:
            link = target / name
            if not link.is_symlink() or link.readlink() != modules / folder / name:
                link.unlink(missing_ok=True)
                link.symlink_to(modules / folder / name)
