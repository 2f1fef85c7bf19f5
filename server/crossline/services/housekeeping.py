"""Keeping little, briefly: what the hub only needed for a while is deleted on a schedule.

- Processed event ids guard against applying a Matrix event twice. The bot's sync position only
  moves forward and a gap is fetched only back to the previous position, so an event older than
  a week cannot come again.
- Room events the bot could not decrypt are kept until their keys arrive, for a day at most.
- Web submission ids guard against a retried form counting twice; a retry comes within minutes.
- Decided and closed moderation cases are emptied after the configured retention, keeping only
  a numbered tombstone (see services/moderation.apply_retention).
"""

from __future__ import annotations

from dataclasses import dataclass

from crossline.services import moderation
from crossline.services.hub import Hub
from crossline.storage import bot as bot_store
from crossline.storage import consultations as consultation_store

DAY_MS = 86_400_000
PROCESSED_EVENTS_DAYS = 7
WEB_SUBMISSIONS_DAYS = 2
PENDING_EVENTS_DAYS = 1


@dataclass(frozen=True)
class Forgotten:
    processed_events: int
    web_submissions: int
    cases: list[int]
    pending_events: int = 0


def forget_what_is_no_longer_needed(hub: Hub) -> Forgotten:
    now = hub.clock.now_ms()
    with hub.engine.begin() as conn:
        events = bot_store.forget_processed_before(conn, now - PROCESSED_EVENTS_DAYS * DAY_MS)
        submissions = consultation_store.forget_submissions_before(conn, now - WEB_SUBMISSIONS_DAYS * DAY_MS)
        pending = bot_store.forget_pending_before(conn, now - PENDING_EVENTS_DAYS * DAY_MS)
    return Forgotten(events, submissions, moderation.apply_retention(hub), pending)
