"""The bot's bookkeeping: events applied, sync position, messages waiting to be sent."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from crossline.storage import room_event_origins
from crossline.storage.schema import bot_messages, bot_state, outbox, pending_events, processed_events


def mark_processed(conn: Connection, event_id: str, now_ms: int) -> bool:
    """True if the event is new (and is now recorded), False if it was applied before."""
    if conn.execute(select(processed_events.c.event_id).where(processed_events.c.event_id == event_id)).first():
        return False
    try:
        with conn.begin_nested():
            conn.execute(insert(processed_events).values(event_id=event_id, processed_at=now_ms))
    except IntegrityError:
        return False
    return True


def get_state(conn: Connection, key: str) -> str | None:
    return conn.execute(select(bot_state.c.value).where(bot_state.c.key == key)).scalar()


def get_states(conn: Connection, keys: list[str]) -> dict[str, str]:
    """The values of these keys that are set, in one query per 500 keys."""
    found = {}
    for start in range(0, len(keys), 500):
        found.update(conn.execute(select(bot_state.c.key, bot_state.c.value)
                                  .where(bot_state.c.key.in_(keys[start:start + 500]))).all())
    return found


def set_state(conn: Connection, key: str, value: str) -> None:
    if conn.execute(update(bot_state).where(bot_state.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(bot_state).values(key=key, value=value))


@dataclass(frozen=True)
class OutgoingMessage:
    id: int
    room_id: str
    txn_id: str
    content: dict
    purpose: str
    consultation_id: int | None
    question_id: int | None


def queue_message(
    conn: Connection, room_id: str, txn_id: str, content: dict, purpose: str, now_ms: int,
    consultation_id: int | None = None, question_id: int | None = None,
) -> None:
    """Queue a bot message inside the caller's transaction: it goes out only if that commits.
    The transaction id makes a resend after a crash land once on the homeserver."""
    if conn.execute(select(outbox.c.id).where(outbox.c.txn_id == txn_id)).first():
        return
    conn.execute(insert(outbox).values(
        room_id=room_id, txn_id=txn_id, content=json.dumps(content, ensure_ascii=False), purpose=purpose,
        consultation_id=consultation_id, question_id=question_id, created_at=now_ms,
    ))


def waiting_messages(conn: Connection, limit: int = 50, rooms: list[str] | None = None,
                     skip_ids: list[int] = ()) -> list[OutgoingMessage]:
    """The oldest waiting messages, of `rooms` only if given, leaving out `skip_ids` (under way or
    waiting for a retry), so that messages that cannot go now never hide those that can."""
    return _outgoing(conn, _waiting(rooms, skip_ids).order_by(outbox.c.id).limit(limit))


def next_per_room(conn: Connection, replies_per_room: int, limit: int, rooms: list[str],
                  skip_ids: list[int] = ()) -> list[OutgoingMessage]:
    """What may go next, read per room so that no room's backlog hides another room's messages:
    the oldest waiting announcement of each room (they keep their order in their room) and its
    `replies_per_room` oldest answers (they go in any order); round by round across rooms, oldest
    first, at most `limit`."""
    is_reply = outbox.c.purpose == "reply"
    ranked = _waiting(rooms, skip_ids).add_columns(
        func.row_number().over(partition_by=[outbox.c.room_id, is_reply], order_by=outbox.c.id).label("rank"),
        is_reply.label("is_reply"),
    ).subquery()
    query = select(ranked).where(or_(ranked.c.rank == 1, and_(ranked.c.is_reply, ranked.c.rank <= replies_per_room)))
    return _outgoing(conn, query.order_by(ranked.c.rank, ranked.c.id).limit(limit))


def _waiting(rooms: list[str] | None, skip_ids: list[int]):
    query = select(outbox)
    if rooms is not None:
        query = query.where(outbox.c.room_id.in_(rooms))
    if skip_ids:
        query = query.where(outbox.c.id.not_in(list(skip_ids)))
    return query


def _outgoing(conn: Connection, query) -> list[OutgoingMessage]:
    return [OutgoingMessage(r.id, r.room_id, r.txn_id, json.loads(r.content), r.purpose, r.consultation_id,
                            r.question_id) for r in conn.execute(query).all()]


def message_sent(conn: Connection, message: OutgoingMessage, event_id: str) -> None:
    # Sent messages are deleted: the hub keeps no copy of what the bot said.
    conn.execute(delete(outbox).where(outbox.c.id == message.id))
    if message.purpose == "question":
        conn.execute(insert(bot_messages).values(
            event_id=event_id, consultation_id=message.consultation_id, question_id=message.question_id))


def drop_message(conn: Connection, message_id: int) -> None:
    """A message the homeserver refuses for good (too large, forbidden): never tried again."""
    conn.execute(delete(outbox).where(outbox.c.id == message_id))


def question_for_event(conn: Connection, event_id: str) -> tuple[int, int | None] | None:
    row = conn.execute(select(bot_messages.c.consultation_id, bot_messages.c.question_id)
                       .where(bot_messages.c.event_id == event_id)).first()
    return (row[0], row[1]) if row else None


def keep_pending(conn: Connection, event_id: str, room_id: str, event: dict, now_ms: int) -> None:
    if not conn.execute(select(pending_events.c.event_id).where(pending_events.c.event_id == event_id)).first():
        conn.execute(insert(pending_events).values(event_id=event_id, room_id=room_id, event=json.dumps(event),
                                                   first_seen=now_ms))


def cap_pending(conn: Connection, rooms: set[str], per_room: int, per_sender: int) -> int:
    """Keeps, in each of `rooms`, only its `per_room` newest kept events and each sender's
    `per_sender` newest: nobody can make the bot keep (and retry) events without end, nor push
    out other people's events with her own. Returns how many were dropped."""
    if not rooms:
        return 0
    rows = conn.execute(select(pending_events.c.event_id, pending_events.c.room_id, pending_events.c.event)
                        .where(pending_events.c.room_id.in_(list(rooms)))
                        .order_by(pending_events.c.first_seen.desc(), pending_events.c.event_id.desc())).all()
    in_room: dict[str, int] = {}
    by_sender: dict[tuple[str, str], int] = {}
    dropped = []
    for event_id, room_id, event in rows:
        sender = (room_id, str(json.loads(event).get("sender", "")))
        in_room[room_id] = in_room.get(room_id, 0) + 1
        by_sender[sender] = by_sender.get(sender, 0) + 1
        if in_room[room_id] > per_room or by_sender[sender] > per_sender:
            in_room[room_id] -= 1
            by_sender[sender] -= 1
            dropped.append(event_id)
    for start in range(0, len(dropped), 500):
        conn.execute(delete(pending_events).where(pending_events.c.event_id.in_(dropped[start:start + 500])))
    return len(dropped)


def pending(conn: Connection) -> list[tuple[str, str, dict]]:
    return [(r.event_id, r.room_id, json.loads(r.event)) for r in conn.execute(select(pending_events)).all()]


def drop_pending(conn: Connection, event_id: str) -> None:
    conn.execute(delete(pending_events).where(pending_events.c.event_id == event_id))


def forget_pending_before(conn: Connection, before_ms: int) -> int:
    """Kept events whose keys never came: they are not answered and no longer retried."""
    return conn.execute(delete(pending_events).where(pending_events.c.first_seen < before_ms)).rowcount


def forget_processed_before(conn: Connection, before_ms: int) -> int:
    """Processed marks, and the origins of room commands kept as long (edits of older messages
    are then ignored)."""
    room_event_origins.forget_before(conn, before_ms)
    return conn.execute(delete(processed_events).where(processed_events.c.processed_at < before_ms)).rowcount
