"""What Synapse is told about a client's address: a keyed pseudonym, never the address.

Synapse rate-limits by address and keeps addresses in `user_ips`. The gateway gives it, in
X-Forwarded-For, an address in the private IPv6 range fd00::/8 derived from the real one with a
key that lives only in memory and changes every day: the same client keeps one pseudonym for the
day (so per-address limits on logins and registration still work), and nothing on disk can be
turned back into an address.

A signed-in request's pseudonym also depends on its access token, so two accounts (a member and
her pseudonym, say) used from one address never share an address in Synapse's `user_ips` or
`devices`: Synapse records addresses only for signed-in requests, and limits those per account.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Callable

from crossline.clock import Clock

DAY_MS = 24 * 3600 * 1000
PRIVATE_PREFIX = b"\xfd"


class AddressPseudonyms:
    def __init__(self, clock: Clock, random_bytes: Callable[[int], bytes] = os.urandom):
        self._clock = clock
        self._secret = random_bytes(32)

    def pseudonym(self, address: str, access_token: str | None = None) -> str:
        day = self._clock.now_ms() // DAY_MS
        day_key = hmac.new(self._secret, str(day).encode(), hashlib.sha256).digest()
        seen = address if access_token is None else f"{address}\0{access_token}"
        digest = hmac.new(day_key, seen.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        return str(ipaddress.IPv6Address(PRIVATE_PREFIX + digest[:15]))
