"""Invitation codes and the registration tokens Synapse holds for them.

A person holds the code C; Synapse only ever holds T = HMAC(key, C), in its token alphabet. The
gateway turns C into T on its way to Synapse and the hub's join page sends T itself, so a copy of
Synapse's database or log (which hold T) lets nobody register: T sent to the gateway becomes
HMAC(key, T), which Synapse does not know.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from crossline import secrets

_LABEL = b"crossline registration token\x00"


def synapse_token(key: str, code: str) -> str:
    """43 characters of [A-Za-z0-9_-]: inside Synapse's token alphabet and 64-character limit."""
    digest = hmac.new(key.encode("utf-8"), _LABEL + code.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_key(secrets_dir: Path) -> str:
    return secrets.read_secret(secrets_dir, secrets.REGISTRATION_TOKEN_KEY)
