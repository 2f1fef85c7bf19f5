"""The files `crossline init` writes for Synapse: homeserver.yaml, log config, appservice registration."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crossline import secrets
from crossline.config import APPSERVICE_SENDER_LOCALPART, BOT_LOCALPART, Config
from crossline.live.turn import turn_uris
from crossline.secrets import write_private_file
from crossline_policies.names import protected_names_document

SYNAPSE_MODULE = "crossline_policies.synapse_module.CrosslinePolicy"
APPSERVICE_ID = "crossline"


def hardened_template() -> dict[str, Any]:
    text = resources.files("crossline.synapse").joinpath("hardened-homeserver.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def homeserver_config(config: Config) -> dict[str, Any]:
    paths = config.paths
    settings = hardened_template()
    settings.update(
        {
            "server_name": config.synapse.server_name,
            "public_baseurl": config.homeserver_public_url + "/",
            "pid_file": str(paths.synapse_dir / "homeserver.pid"),
            # Only a client listener, no federation resource at all, and only on a UNIX socket
            # in the 0700 synapse directory: clients come through the hub's gateway, which
            # gives Synapse a keyed pseudonym of each client's address in X-Forwarded-For.
            "listeners": [
                {
                    "path": str(paths.synapse_socket),
                    "mode": 0o600,
                    "type": "http",
                    "x_forwarded": True,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(paths.synapse_database)}},
            "log_config": str(paths.synapse_dir / "log.config.yaml"),
            "media_store_path": str(paths.synapse_dir / "media_store"),
            "signing_key_path": str(paths.synapse_dir / "signing.key"),
            "registration_shared_secret_path": str(paths.secret(secrets.REGISTRATION_SHARED_SECRET)),
            "macaroon_secret_key_path": str(paths.secret(secrets.MACAROON_SECRET_KEY)),
            "form_secret_path": str(paths.secret(secrets.FORM_SECRET)),
            "app_service_config_files": [str(paths.appservice_registration)],
            "modules": [
                {
                    "module": SYNAPSE_MODULE,
                    "config": {
                        "known_members_path": str(paths.known_members),
                        "protected_names_path": str(protected_names_path(config)),
                        "registration_claims_dir": str(paths.registration_claims_dir),
                        "exempt_users": [
                            f"@{settings['server_notices']['system_mxid_localpart']}:{config.synapse.server_name}",
                        ],
                        # Only the hub's bot sets a live session's widget, and only to the hub's page.
                        "live_widget_sender": config.bot_user_id,
                        "live_page_prefix": f"{config.hub_url}/live/",
                        "decline_pause_seconds": config.invitations.pause_after_decline_days * 24 * 3600,
                    },
                }
            ],
        }
    )
    if config.live.enabled:
        # Element's own calls get short-lived credentials for the hub's coturn, signed with the
        # secret coturn checks; guests (there are none) would get none.
        settings.update({
            "turn_uris": turn_uris(config),
            "turn_shared_secret_path": str(paths.secret(secrets.TURN_SHARED_SECRET)),
            "turn_user_lifetime": f"{config.live.turn_credential_lifetime_seconds}s",
            "turn_allow_guests": False,
        })
    return settings


# Loggers whose lines name an account at the moment it registers, logs in, fails to log in or
# completes user-interactive auth ("Auth completed with creds" carries the registration token).
# Only their errors are kept.
ACCOUNT_LOGGERS = (
    "synapse.handlers.auth",
    "synapse.handlers.ui_auth",
    "synapse.handlers.register",
    "synapse.handlers.device",
    "synapse.rest.client.login",
    "synapse.rest.client.register",
    # Logs a request body it cannot parse whole, at WARNING: a password or invitation code in it.
    "synapse.http.servlet",
)


def log_config(config: Config) -> dict[str, Any]:
    """Synapse's own log: warnings and errors only, so no line ties an account to the time it
    signed in or registered. Request lines (with addresses and paths) are not kept either."""
    return {
        "version": 1,
        "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.handlers.RotatingFileHandler",
                "formatter": "precise",
                "filename": str(config.paths.synapse_log),
                "maxBytes": 10_000_000,
                "backupCount": 3,
                "encoding": "utf8",
            }
        },
        "loggers": {
            "synapse.access": {"level": "WARNING"},
            **{name: {"level": "ERROR"} for name in ACCOUNT_LOGGERS},
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def appservice_registration(config: Config) -> dict[str, Any]:
    server = config.synapse.server_name.replace(".", r"\.")
    return {
        "id": APPSERVICE_ID,
        # No pushes yet: the hub reads what it needs through the client and admin APIs.
        "url": None,
        "as_token": secrets.read_secret(config.paths.secrets_dir, secrets.APPSERVICE_AS_TOKEN),
        "hs_token": secrets.read_secret(config.paths.secrets_dir, secrets.APPSERVICE_HS_TOKEN),
        "sender_localpart": APPSERVICE_SENDER_LOCALPART,
        "namespaces": {
            # Exclusive: nobody can register a name that looks like the hub's bot, or like a
            # pseudonym (the hub makes those, p-..., through the appservice, with no login). Any
            # "p" then a mark (p_ p. p= p/ p+, the marks Synapse allows) reads like p- at a glance;
            # Synapse folds names to lower case before this check, P- is refused too all the same.
            "users": [{"regex": f"@{BOT_LOCALPART}.*:{server}", "exclusive": True},
                      {"regex": f"@[pP][^a-zA-Z0-9].*:{server}", "exclusive": True}],
            "aliases": [],
            "rooms": [],
        },
        "rate_limited": False,
    }


def write_synapse_files(config: Config) -> None:
    paths = config.paths
    paths.synapse_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.synapse_dir.chmod(0o700)  # Synapse's socket is in it: nobody else may connect around the gateway
    paths.registration_claims_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # These files name secret paths or hold tokens: only this user may read them.
    write_private_file(paths.synapse_config, _yaml(homeserver_config(config)))
    write_private_file(paths.synapse_dir / "log.config.yaml", _yaml(log_config(config)))
    write_private_file(paths.appservice_registration, _yaml(appservice_registration(config)))
    if not paths.known_members.exists():
        write_known_members(paths.known_members, {}, [config.hub_admin_user_id, config.bot_user_id])
    if not protected_names_path(config).exists():
        accounts = [config.hub_admin_user_id, config.bot_user_id]
        write_protected_names(protected_names_path(config), protected_names_document((), accounts, accounts))


def write_known_members(path: Path, members: dict[str, dict[str, Any]], hub_accounts: list[str]) -> None:
    """The Synapse module's directory (crossline_policies.contact.parse_directory reads it): each
    member account's lines, whether she is staff and whom she takes invitations from; and the hub's
    own accounts. One file, replaced whole (0600), its keys sorted so
    that nothing in its order ties one account to another (a pseudonym to the person)."""
    write_private_file(path, json.dumps({
        "user_ids": sorted({*members, *hub_accounts}),
        "members": members,
        "hub_accounts": sorted(set(hub_accounts)),
    }, sort_keys=True))


def protected_names_path(config: Config) -> Path:
    """Written by the hub, read by our Synapse module and the gateway: names nobody else may take."""
    return config.paths.known_members.with_name("protected-names.json")


def write_protected_names(path: Path, document: dict[str, Any]) -> None:
    """`crossline_policies.names.protected_names_document`, replaced whole (0600): pseudonyms' names
    are in it, and who holds each."""
    write_private_file(path, json.dumps(document, sort_keys=True))


def _yaml(data: dict[str, Any]) -> str:
    header = "# Written by `crossline init`. Edit Crossline's config and run init again instead.\n"
    return header + yaml.safe_dump(data, sort_keys=False)

