"""Live sessions, decided from plain data: statuses and their transitions, who may do what, the
raise-hand queue that alternates sides, and speaking time counted per side. No I/O, no clock
(times are passed in, in milliseconds), no randomness.

What is counted is kept per side only: the accounting forgets who spoke as soon as a turn ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from crossline.domain.records import Member
from crossline.errors import CrosslineError, NotAllowed

NO_SIDE = "no side"  # facilitators and interpreters who belong to no side


class LiveRefusal(CrosslineError):
    status = 409


class LiveStatus(str, Enum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    LOCKED = "locked"
    ENDED = "ended"


TRANSITIONS = {
    LiveStatus.SCHEDULED: {LiveStatus.OPEN, LiveStatus.ENDED},
    LiveStatus.OPEN: {LiveStatus.LOCKED, LiveStatus.ENDED},
    LiveStatus.LOCKED: {LiveStatus.OPEN, LiveStatus.ENDED},
    LiveStatus.ENDED: set(),
}

_WORDS = {LiveStatus.OPEN: "open", LiveStatus.LOCKED: "locked", LiveStatus.ENDED: "ended",
          LiveStatus.SCHEDULED: "scheduled"}


def transition(current: LiveStatus, target: LiveStatus) -> LiveStatus:
    if target not in TRANSITIONS[current]:
        raise LiveRefusal(f"This live session is {_WORDS[current]}: it cannot be {_WORDS[target]} now.")
    return target


# -- Who may do what ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """What a live session belongs to, as the rules need it: a consultation (its sides) or a room
    (its joined members)."""

    line_id: int
    consultation_id: int | None = None
    eligible_side_ids: frozenset[int] = frozenset()
    room_member: bool = False  # for a room's session: the person is joined to the room


def is_facilitator(member: Member | None, owner: Owner) -> bool:
    """A facilitator of the owner's line; staff with no line facilitate every line."""
    return member is not None and member.has("facilitator") and member.line_id in (None, owner.line_id)


def may_join(member: Member | None, owner: Owner, interpreter: bool, under_pseudonym_elsewhere: bool) -> bool:
    """Facilitators, interpreters named for this session, and the participants of its consultation
    (sides it includes; someone who took a pseudonym there joins under the pseudonym, not her own
    name) or of its room (joined members)."""
    if member is None:
        return False
    if is_facilitator(member, owner) or interpreter:
        return True
    if owner.consultation_id is not None:
        return (member.has("participant") and member.side_id in owner.eligible_side_ids
                and not under_pseudonym_elsewhere)
    return owner.room_member


def check_join(status: LiveStatus, facilitator: bool, removed: bool) -> None:
    if removed:
        raise NotAllowed("You were removed from this live session and cannot join it again.")
    if status is LiveStatus.ENDED:
        raise NotAllowed("This live session has ended.")
    if status is LiveStatus.SCHEDULED:
        raise NotAllowed("This live session has not started yet. Come back at its time.")
    if status is LiveStatus.LOCKED and not facilitator:
        raise NotAllowed("The facilitator has locked this live session: nobody new can join now.")


# -- The raise-hand queue -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hand:
    participant_id: str
    side: str
    raised_at: int


@dataclass
class HandQueue:
    """Raised hands, served alternately: the next speaker is the longest-waiting person of a side
    other than the last speaker's, when such a person waits; otherwise the longest-waiting."""

    hands: list[Hand] = field(default_factory=list)
    last_side: str | None = None

    def raise_hand(self, participant_id: str, side: str, now: int) -> None:
        if not any(h.participant_id == participant_id for h in self.hands):
            self.hands.append(Hand(participant_id, side, now))

    def lower(self, participant_id: str) -> None:
        self.hands = [h for h in self.hands if h.participant_id != participant_id]

    def is_raised(self, participant_id: str) -> bool:
        return any(h.participant_id == participant_id for h in self.hands)

    def order(self) -> list[Hand]:
        """Everyone waiting, in the order they will be called if nobody else raises a hand."""
        waiting, last, ordered = sorted(self.hands, key=lambda h: h.raised_at), self.last_side, []
        while waiting:
            chosen = next((h for h in waiting if h.side != last), waiting[0])
            waiting.remove(chosen)
            ordered.append(chosen)
            last = chosen.side
        return ordered

    def next_speaker(self) -> Hand | None:
        ordered = self.order()
        if not ordered:
            return None
        chosen = ordered[0]
        self.lower(chosen.participant_id)
        self.last_side = chosen.side
        return chosen


# -- Speaking time --------------------------------------------------------------------------------


@dataclass
class SpeakingTime:
    """Seconds spoken per side, from talking / stopped-talking events. A turn without its stop
    counts until the person leaves or the session ends. Only open turns name a person (by feed),
    and only until they close."""

    by_side_ms: dict[str, int] = field(default_factory=dict)
    open_turns: dict[int, tuple[str, int]] = field(default_factory=dict)  # feed -> (side, started)

    def talking(self, feed_id: int, side: str, now: int) -> None:
        self.open_turns.setdefault(feed_id, (side, now))

    def stopped(self, feed_id: int, now: int) -> None:
        turn = self.open_turns.pop(feed_id, None)
        if turn is not None:
            side, started = turn
            self.by_side_ms[side] = self.by_side_ms.get(side, 0) + max(0, now - started)

    def close_all(self, now: int) -> None:
        for feed_id in list(self.open_turns):
            self.stopped(feed_id, now)

    def seconds(self, now: int) -> dict[str, int]:
        """Whole seconds per side so far, open turns counted up to `now`."""
        totals = dict(self.by_side_ms)
        for side, started in self.open_turns.values():
            totals[side] = totals.get(side, 0) + max(0, now - started)
        return {side: round(ms / 1000) for side, ms in sorted(totals.items())}


def shown_by_side(seconds: dict[str, int], participants: dict[str, int], min_group: int) -> dict[str, int | None]:
    """What a report may say: a side's seconds only when at least `min_group` of its people took
    part (None otherwise), as the report's participation figures do."""
    return {side: (seconds.get(side, 0) if participants.get(side, 0) >= min_group else None)
            for side in sorted(set(seconds) | set(participants))}
