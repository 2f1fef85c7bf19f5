"""One rate limiter for every flood-prone action, after Synapse's `synapse/api/ratelimiting.py`
(`Ratelimiter.can_do_action(requester, key=...)`): a leaky bucket per explicit key, with the
clock injected. The caller chooses the key, so an account is limited together with the address
it is tried from, and nobody's mistakes (or attacks) fill anyone else's bucket.

In memory only. Keys are kept as keyed hashes (the key is random per process), so a memory dump
does not hold a list of client addresses.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Hashable
from dataclasses import dataclass, field

from crossline.clock import Clock


@dataclass
class Ratelimiter:
    clock: Clock
    burst: int  # how many actions may come at once
    per_ms: int  # the time over which `burst` actions drain away
    max_keys: int = 100_000  # past it, the emptiest buckets are forgotten first
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    _buckets: dict[bytes, tuple[float, int]] = field(default_factory=dict, repr=False)  # actions, at

    def can_do_action(self, key: Hashable, *, update: bool = True, n_actions: int = 1) -> tuple[bool, int]:
        """(allowed, when): `when` is the clock time from which the action would be allowed. With
        `update`, an allowed action is counted."""
        now = self.clock.now_ms()
        digest = self._digest(key)
        performed = self._performed(digest, now)
        allowed = performed + n_actions <= self.burst
        if allowed and update:
            self._store(digest, performed + n_actions, now)
        over = performed + n_actions - self.burst
        return allowed, now + (math.ceil(over * self.per_ms / self.burst) if over > 0 else 0)

    def record_action(self, key: Hashable, n_actions: int = 1) -> None:
        """Counts an action that has happened whether or not it was allowed (a failed login)."""
        now = self.clock.now_ms()
        digest = self._digest(key)
        self._store(digest, self._performed(digest, now) + n_actions, now)

    def _performed(self, digest: bytes, now: int) -> float:
        actions, at = self._buckets.get(digest, (0.0, now))
        return max(0.0, actions - (now - at) * self.burst / self.per_ms)

    def _store(self, digest: bytes, actions: float, now: int) -> None:
        self._buckets.pop(digest, None)
        if len(self._buckets) >= self.max_keys:
            self._forget_drained(now)
        self._buckets[digest] = (actions, now)

    def _forget_drained(self, now: int) -> None:
        drained = [d for d in self._buckets if self._performed(d, now) == 0.0]
        for digest in drained or list(self._buckets)[: self.max_keys // 10 + 1]:
            del self._buckets[digest]

    def _digest(self, key: Hashable) -> bytes:
        return hashlib.blake2b(repr(key).encode(), key=self.salt, digest_size=16).digest()
