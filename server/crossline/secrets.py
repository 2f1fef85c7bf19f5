"""Secret files: created with mode 0600 in a 0700 directory, never logged, never in the TOML."""

from __future__ import annotations

import os
import secrets as _random
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
)


class SecretError(Exception):
    pass


def write_private_file(path: Path, content: str) -> None:
    """Write atomically, readable by this user only, so a crash never leaves half a secret."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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


def ensure_secret(secrets_dir: Path, name: str) -> str:
    """Return the secret, creating a random one the first time. Existing secrets are kept."""
    path = secrets_dir / name
    if path.exists():
        return read_secret(secrets_dir, name)
    value = _random.token_urlsafe(32)
    write_private_file(path, value)
    return value


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
