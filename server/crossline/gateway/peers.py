"""Who may see whose devices: accounts JOINED to a room the requester is joined to.

An invitation alone makes nobody a peer, either way: any member can create a room and invite anyone,
so counting the invitee would let a stranger see (and spend the one-time keys of) any member's
devices by inviting her, and counting the inviter's room would show an invitee everyone in a room
she has not agreed to join. Crossline's rooms show history to joined members only, so nobody needs
devices across an invitation before it is accepted.

Asked of Synapse's admin API (the requester's rooms, then each room's member events) and kept a
minute per requester. A cached answer is used only when it already contains every account asked
for: anyone new (just invited, just joined) makes it ask again, so E2EE to a new member never
waits for the cache, while a stranger's repeated questions cost only her own rooms' lookups.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from crossline.clock import Clock

JOINED = "join"  # the only membership that counts, for her rooms and for who is in them
CACHE_MS = 60_000
MAX_CACHED = 10_000


class MembershipSource(Protocol):
    async def memberships(self, user_id: str) -> dict[str, str]: ...
    async def room_memberships(self, room_id: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class _Cached:
    value: frozenset[str] | str
    at_ms: int


class RoomPeers:
    def __init__(self, source: MembershipSource, clock: Clock):
        self._source = source
        self._clock = clock
        self._peers: dict[str, _Cached] = {}
        self._owners: dict[str, _Cached] = {}  # sha256 of an access token -> its account

    async def visible(self, user_id: str, wanted: set[str]) -> set[str]:
        """The accounts in `wanted` whose keys `user_id` may see: herself and those she shares a room with."""
        now = self._clock.now_ms()
        cached = self._peers.get(user_id)
        if cached is None or now - cached.at_ms > CACHE_MS or not wanted <= cached.value | {user_id}:
            cached = _Cached(await self._shared_with(user_id), now)
            _remember(self._peers, user_id, cached)
        return {user for user in wanted if user == user_id or user in cached.value}

    async def _shared_with(self, user_id: str) -> frozenset[str]:
        memberships = await self._source.memberships(user_id)
        rooms = [room for room, membership in memberships.items() if membership == JOINED]
        members = await asyncio.gather(*(self._source.room_memberships(room) for room in rooms))
        return frozenset(user for room in members for user, membership in room.items() if membership == JOINED)

    async def owner(self, token: str, whoami: Callable[[], Awaitable[str | None]]) -> str | None:
        """The account an access token belongs to (None if Synapse does not know the token), asked
        with `whoami` when not known. The token itself is not kept, only its hash."""
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        now = self._clock.now_ms()
        cached = self._owners.get(key)
        if cached is not None and now - cached.at_ms <= CACHE_MS:
            return str(cached.value)
        user_id = await whoami()
        if user_id:
            _remember(self._owners, key, _Cached(user_id, now))
        return user_id


def _remember(cache: dict[str, _Cached], key: str, entry: _Cached) -> None:
    if len(cache) >= MAX_CACHED:
        cache.pop(next(iter(cache)))
    cache.pop(key, None)
    cache[key] = entry
