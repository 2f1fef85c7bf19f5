"""Where the moderation record's signed heads go (services/audit_heads and the bot's outbox): every
moderators' room (template "moderation"), whenever it was made, and no other room; the bot sends
them only where it is and knows the room encrypted; what they say; and a hub with no such room
decides as before. Against a real Synapse: test_e2e_audit_heads.py."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest
from nio import RoomSendResponse
from sqlalchemy import text

from crossline.domain.audit_heads import PREFIX, read
from crossline.matrix.bot import HubBot
from crossline.services import audit_heads
from crossline.services import moderation as service
from crossline.storage import bot as bot_store
from crossline.storage import members, rooms

REPORT = "He waits for me at the checkpoint every morning"
REASON = "Recorded, no action for now"


@pytest.fixture
def mod(hub):
    """A moderator of the Nistru line, and one room of every other template."""
    with hub.engine.begin() as conn:
        line = conn.execute(text("select id from lines")).scalar()
        side = conn.execute(text("select id from sides order by id")).scalar()
        hub.moderator = members.get_member(conn, members.add_member(
            conn, "@mona:crossline.local", line, side, frozenset({"moderator"}), None, 0))
        for template in hub.room_templates:
            if template != audit_heads.MODERATION_TEMPLATE:
                rooms.add_room(conn, f"!{template}:crossline.local", line, template, template, hub.facilitator.id, 0)
    return hub


def add_moderators_room(hub, room_id: str) -> None:
    with hub.engine.begin() as conn:
        line = conn.execute(text("select id from lines")).scalar()
        rooms.add_room(conn, room_id, line, audit_heads.MODERATION_TEMPLATE, "Moderators", hub.facilitator.id,
                       hub.clock.now_ms())


async def decision(hub) -> int:
    case_id = service.report_from_web(hub, "harassment", REPORT, "", []).case_id
    assert "No action" in await service.decide(hub, hub.moderator, case_id, ["dismiss"], REASON)
    return case_id


def heads_queued(hub) -> dict[str, list[str]]:
    """The audit messages waiting in the outbox, by room (and then taken out, as the bot would)."""
    with hub.engine.begin() as conn:
        waiting = bot_store.waiting_messages(conn, limit=1000)
        for message in waiting:
            bot_store.drop_message(conn, message.id)
    found: dict[str, list[str]] = {}
    for message in waiting:
        assert message.purpose == "audit_head", message
        found.setdefault(message.room_id, []).append(message.content["body"])
    return found


async def test_heads_go_to_every_moderators_room_and_no_other_room(mod):
    add_moderators_room(mod, "!mods-left:crossline.local")
    add_moderators_room(mod, "!mods-right:crossline.local")
    case_id = await decision(mod)
    queued = heads_queued(mod)
    assert set(queued) == {"!mods-left:crossline.local", "!mods-right:crossline.local"}
    (body,) = queued["!mods-left:crossline.local"]
    assert queued["!mods-right:crossline.local"] == [body]
    (head,), bad = read(body)
    with mod.engine.connect() as conn:
        decided = conn.execute(text("select seq, hash from audit_log where case_id = :case and kind = 'action_done'"),
                               {"case": case_id}).one()
    assert bad == [] and (head.head.seq, head.head.hash) == tuple(decided)
    # What it says: the entry's number, its time, the head and the hub's key fingerprint, nothing
    # of the case (the report, the reason, the action, who decided).
    assert audit_heads.hub_fingerprint(mod) in body and PREFIX in body and f"entry {head.head.seq}," in body
    for case_content in (REPORT, REASON, "dismiss", "No action", "harassment", "mona", "member:"):
        assert case_content.lower() not in body.lower().replace(f"case {case_id}", "")
    # The daily one too goes to the moderators' rooms only.
    mod.clock.now += audit_heads.DAY_MS
    audit_heads.keep(mod)
    assert set(heads_queued(mod)) == {"!mods-left:crossline.local", "!mods-right:crossline.local"}


async def test_a_hub_without_a_moderators_room_decides_as_before_and_a_room_made_later_gets_the_heads(mod):
    await decision(mod)
    assert audit_heads.keep(mod).problem is None
    assert heads_queued(mod) == {}  # nowhere to go, and nothing broke

    # A moderators' room made after those decisions holds the current head at the next keep (every
    # 30 s), not a day later: its moderators have something to check against from the start.
    add_moderators_room(mod, "!mods:crossline.local")
    mod.clock.now += 60_000
    audit_heads.keep(mod)
    (first,) = heads_queued(mod)["!mods:crossline.local"]
    assert "the daily head" in first
    audit_heads.keep(mod)
    assert heads_queued(mod) == {}  # once, not at every keep

    # Then at the next decision, and daily.
    await decision(mod)
    (at_decision,) = heads_queued(mod)["!mods:crossline.local"]
    assert read(at_decision)[0][0].head.seq > read(first)[0][0].head.seq
    mod.clock.now += audit_heads.DAY_MS
    audit_heads.keep(mod)
    (daily,) = heads_queued(mod)["!mods:crossline.local"]
    (daily_head,), (decided_head,) = read(daily)[0], read(at_decision)[0]
    assert "the daily head" in daily and (daily_head.head.seq, daily_head.head.hash) == \
        (decided_head.head.seq, decided_head.head.hash)  # the log still ends there, signed again


async def test_a_second_moderators_room_gets_the_head_at_once_and_the_first_is_not_posted_to_again(mod):
    add_moderators_room(mod, "!mods-first:crossline.local")
    await decision(mod)
    assert set(heads_queued(mod)) == {"!mods-first:crossline.local"}
    add_moderators_room(mod, "!mods-second:crossline.local")
    mod.clock.now += 60_000
    audit_heads.keep(mod)
    assert set(heads_queued(mod)) == {"!mods-second:crossline.local"}
    audit_heads.keep(mod)
    assert heads_queued(mod) == {}
    # A day after the decision, the first room's daily head is due; the second had one a minute later.
    mod.clock.now += audit_heads.DAY_MS - 60_000
    audit_heads.keep(mod)
    assert set(heads_queued(mod)) == {"!mods-first:crossline.local"}
    mod.clock.now += 60_000
    audit_heads.keep(mod)
    assert set(heads_queued(mod)) == {"!mods-second:crossline.local"}


class BotClient:
    """What the bot's nio client knows of its rooms, recording what it sends."""

    def __init__(self, rooms: dict[str, bool]):
        self.rooms = {room_id: SimpleNamespace(encrypted=encrypted) for room_id, encrypted in rooms.items()}
        self.sent: list[tuple[str, str, dict]] = []

    async def room_send(self, room_id, event_type, content, tx_id, ignore_unverified_devices):
        self.sent.append((room_id, event_type, content))
        return RoomSendResponse(f"$sent{len(self.sent)}", room_id)


async def test_the_bot_sends_heads_only_to_moderators_rooms_it_is_in_and_knows_encrypted(mod):
    for room_id in ("!mods-joined:crossline.local", "!mods-not-yet-encrypted:crossline.local",
                    "!mods-bot-not-in:crossline.local"):
        add_moderators_room(mod, room_id)
    client = BotClient({"!mods-joined:crossline.local": True, "!mods-not-yet-encrypted:crossline.local": False,
                        "!consultation:crossline.local": True, "!negotiators:crossline.local": True})
    bot = HubBot(mod, session=None, rng=random.Random(1))
    bot.client = client
    bot.synced_once.set()
    await decision(mod)
    await bot.flush_outbox()
    await asyncio.gather(*list(bot.sending.values()))

    ((room_id, event_type, content),) = client.sent
    assert (room_id, event_type, content["msgtype"]) == ("!mods-joined:crossline.local", "m.room.message", "m.notice")
    (head,), _ = read(content["body"])
    assert content["org.crossline.audit_head"] == head.token and content["m.mentions"] == {}
    with mod.engine.connect() as conn:  # the others wait for the bot to be in them, encrypted; nothing broke
        assert sorted(m.room_id for m in bot_store.waiting_messages(conn)) == [
            "!mods-bot-not-in:crossline.local", "!mods-not-yet-encrypted:crossline.local"]
