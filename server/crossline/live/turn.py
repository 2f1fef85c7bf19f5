"""Short-lived TURN credentials, as coturn's `use-auth-secret` and Synapse's `turn_shared_secret`
check them ("TURN REST API" draft): the username is `{expiry}:{random}` (nothing about the
person), the password base64(HMAC-SHA1(secret, username))."""

from __future__ import annotations

import base64
import hashlib
import hmac

from crossline.clock import TokenFactory
from crossline.config import Config


def turn_uris(config: Config) -> list[str]:
    live = config.live
    host = live.turn_public_host or live.turn_host
    host = f"[{host}]" if ":" in host else host
    return [f"turn:{host}:{live.turn_port}?transport=udp", f"turn:{host}:{live.turn_port}?transport=tcp"]


def credential(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def ice_servers(config: Config, secret: str, now: int, new_token: TokenFactory) -> list[dict]:
    """RTCIceServer dictionaries for a browser. `now` is the clock's milliseconds since the epoch."""
    expiry = now // 1000 + config.live.turn_credential_lifetime_seconds
    username = f"{expiry}:{new_token()}"
    return [{"urls": turn_uris(config), "username": username, "credential": credential(secret, username)}]
