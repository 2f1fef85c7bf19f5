"""Keeping a pseudonym's making apart in time from the member behind it.

- Accounts are made ahead, in a pool, at batch moments unrelated to any request, by the
  appservice with no login: Synapse keeps no device, token or address for them. An account can
  be taken from the batch after the one that made it, so it was made at least
  `decoupling_seconds` before anyone takes it.
- Taking a pseudonym only takes an account from the pool and sets its password (admin API).
- Batches run at random moments, `decoupling_seconds` to twice that apart. Each batch first
  names and invites the pseudonyms that the previous batch found waiting, then marks those
  waiting now, then refills the pool. So a pseudonym is named, made known to Synapse and invited
  at least `decoupling_seconds` after it was taken, and no row keeps when it was taken (only the
  day). The bot invites, through the appservice.
"""

from __future__ import annotations

import asyncio
import logging
import random as system_random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from crossline.errors import CrosslineError
from crossline.services import pseudonyms
from crossline.services.hub import Hub
from crossline.services import audit_heads
from crossline.storage import consultations as consultation_store
from crossline.storage import pseudonyms as store

logger = logging.getLogger(__name__)

POOL_SIZE = 30
LOCALPART_LENGTH = 14


@dataclass(frozen=True)
class Batch:
    invited: int
    now_waiting: int
    made: int


async def refill(hub: Hub, size: int = POOL_SIZE) -> int:
    with hub.engine.connect() as conn:
        missing = size - store.pool_size(conn)
    for _ in range(missing):
        localpart = f"p-{pseudonyms.random_text(LOCALPART_LENGTH)}"
        await hub.homeserver.register_appservice_user(localpart)
        with hub.engine.begin() as conn:
            store.add_to_pool(conn, f"@{localpart}:{hub.config.synapse.server_name}")
    return max(missing, 0)


async def run_batch(hub: Hub) -> Batch:
    with hub.engine.connect() as conn:
        ready = store.ready_invitations(conn)
        rooms = {c: consultation_store.get_consultation(conn, c).room_id for c in {r.consultation_id for r in ready}}
    if ready:
        hub.publish_known_members()  # Synapse's module lets only known members be invited
        hub.publish_protected_names()  # before the pseudonym takes her name: nobody else may
    invited = 0
    for row in ready:
        try:
            await hub.homeserver.set_displayname(row.matrix_user_id, row.display_name)
            if rooms[row.consultation_id]:
                await hub.homeserver.invite_as(hub.config.bot_user_id, rooms[row.consultation_id], row.matrix_user_id)
        except CrosslineError as error:  # tried again by the next batch
            logger.warning("A pseudonym's invitation failed: %s", error.message)
            continue
        with hub.engine.begin() as conn:
            store.mark_invited(conn, row.member_id)
        invited += 1
    with hub.engine.begin() as conn:
        waiting = store.mark_waiting_ready(conn)
        store.mark_pool_ready(conn)  # made by an earlier batch: at least one interval old
        if invited:
            audit_heads.record(conn, hub, "hub", "pseudonyms_invited", None, {"count": invited})
    pseudonyms.expire_unmasking_requests(hub)
    return Batch(invited, waiting, await refill(hub))


async def run_batches_forever(hub: Hub, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                              uniform: Callable[[float, float], float] = system_random.SystemRandom().uniform) -> None:
    """One batch now (it fills the pool), then one at a random moment every D to 2D seconds."""
    window = hub.config.pseudonyms.decoupling_seconds
    while True:
        try:
            await run_batch(hub)
        except CrosslineError as error:
            logger.warning("The pseudonym batch failed: %s", error.message)
        except Exception:  # noqa: BLE001 - tried again at the next batch; only the type is logged
            logger.exception("The pseudonym batch failed")
        await sleep(uniform(window, 2 * window))
