"""Time and randomness, injected so tests can move time and reproduce results."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)


TokenFactory = Callable[[], str]


def random_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    """Tokens are stored only as SHA-256: they are random, so no salt or slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()
