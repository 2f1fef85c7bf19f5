"""Secret files: created with mode 0600 in a 0700 directory, never logged, never in the TOML."""

from __future__ import annotations

import os
import secrets as _random
import tempfile
from pathlib import Path

# Every secret the hub and Synapse need, by file name.
REGISTRATION_SHARED_SECRET = "registration_shared_secret"
MACAROON_SECRET_KEY = "macaroon_secret_key"
FORM_SECRET = "form_secret"
APPSERVICE_AS_TOKEN = "appservice_as_token"
APPSERVICE_HS_TOKEN = "appservice_hs_token"
HUB_ADMIN_PASSWORD = "hub_admin_password"
HUB_ADMIN_ACCESS_TOKEN = "hub_admin_access_token"
WEB_SECRET = "web_secret"
BOT_PICKLE_KEY = "bot_pickle_key"  # encrypts the bot's Olm/Megolm store
BOT_SESSION = "bot_session"  # the bot device's id and access token (written at first start)
BOT_CROSS_SIGNING_KEYS = "bot_cross_signing_keys"  # the bot account's cross-signing key seeds
REPORT_SIGNING_KEY = "report_signing_key"  # the hub's Ed25519 key for released reports (its seed's source)
EVIDENCE_KEY = "evidence_key"  # seals abuse reports' evidence, reasons and contacts at rest
PSEUDONYM_TAG_KEY = "pseudonym_tag_key"  # keys the "one pseudonym per person per consultation" tag
REGISTRATION_TOKEN_KEY = "registration_token_key"  # turns invitation codes into Synapse's registration tokens
JANUS_API_SECRET = "janus_api_secret"  # every request to Janus's API carries it
JANUS_ADMIN_SECRET = "janus_admin_secret"  # the VideoRoom admin_key: only the hub creates rooms or forwards media
TURN_SHARED_SECRET = "turn_shared_secret"  # coturn's static-auth-secret: the hub and Synapse sign TURN credentials

GENERATED_AT_INIT = (
    REGISTRATION_SHARED_SECRET,
    MACAROON_SECRET_KEY,
    FORM_SECRET,
    APPSERVICE_AS_TOKEN,
    APPSERVICE_HS_TOKEN,
    HUB_ADMIN_PASSWORD,
    WEB_SECRET,
    BOT_PICKLE_KEY,
    REPORT_SIGNING_KEY,
    EVIDENCE_KEY,
    PSEUDONYM_TAG_KEY,
    REGISTRATION_TOKEN_KEY,
    JANUS_API_SECRET,
    JANUS_ADMIN_SECRET,
    TURN_SHARED_SECRET,
)


class SecretError(Exception):
    pass


def write_private_file(path: Path, content: str) -> None:
    """Write atomically, readable by this user only, so a crash never leaves half a secret."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A temporary name of its own (0600 from the start): two writers at once never share one file.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# Secrets that protect data already stored: a new one would silently make that data unreadable
# (sealed evidence, pseudonym tags, the bot's encrypted store) or orphan what was signed.
BINDS_STORED_DATA = (EVIDENCE_KEY, PSEUDONYM_TAG_KEY, BOT_PICKLE_KEY, REPORT_SIGNING_KEY)


def create_missing_secrets(secrets_dir: Path, names: tuple[str, ...], hub_has_data: bool) -> list[str]:
    """Only `crossline init` calls this. Existing secrets are kept. On a hub that already holds
    data, a missing secret that protects that data is an error (restore it from a backup), never
    silently replaced. Returns the names created."""
    missing = [name for name in names if not (secrets_dir / name).exists()]
    lost = [name for name in missing if name in BINDS_STORED_DATA] if hub_has_data else []
    if lost:
        raise SecretError(
            f"The hub already holds data, but {', '.join(str(secrets_dir / n) for n in lost)} "
            f"{'is' if len(lost) == 1 else 'are'} missing. Restore {'it' if len(lost) == 1 else 'them'} "
            "from your backup of the secrets directory: a new key would make what the old one "
            "protected (sealed reports, pseudonym tags, the bot's keys) unreadable for good."
        )
    for name in missing:
        write_private_file(secrets_dir / name, _random.token_urlsafe(32))
    return missing


def check_secrets_present(secrets_dir: Path, names: tuple[str, ...] = GENERATED_AT_INIT) -> None:
    """At start-up: refuse to run without every secret, naming each missing one. The hub never
    creates a secret at run time."""
    missing = [name for name in names if not (secrets_dir / name).exists()]
    if missing:
        raise SecretError(
            f"Secret file{'s' if len(missing) > 1 else ''} {', '.join(str(secrets_dir / n) for n in missing)} "
            f"{'are' if len(missing) > 1 else 'is'} missing, so the hub will not start. Restore "
            f"{'them' if len(missing) > 1 else 'it'} from your backup of {secrets_dir}. On a new hub, or "
            "after an upgrade, run `crossline init`: it creates what is missing, except a key that "
            "protects data the hub already holds."
        )
    for name in names:
        read_secret(secrets_dir, name)  # also refuses files others can read, or empty ones


def read_secret(secrets_dir: Path, name: str) -> str:
    path = secrets_dir / name
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError as error:
        raise SecretError(f"Secret file {path} is missing. Run `crossline init` to create it.") from error
    if mode & 0o077:
        raise SecretError(
            f"Secret file {path} can be read by other users (mode {mode:o}). Run `chmod 600 {path}`."
        )
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise SecretError(f"Secret file {path} is empty. Delete it and run `crossline init` again.")
    return value
