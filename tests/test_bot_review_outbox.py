"""What a hostile review of the bot found: events nobody can decrypt are kept only briefly and in
bounded numbers, and retried only once their Megolm session has arrived."""

from __future__ import annotations

import json
import random

from nio import AsyncClientConfig
from nio.crypto import InboundGroupSession, OutboundGroupSession

from crossline.matrix.bot import PENDING_PER_ROOM, PENDING_PER_SENDER, GuardedClient, HubBot
from crossline.services.housekeeping import DAY_MS, forget_what_is_no_longer_needed
from crossline.storage import bot as bot_store
from tests.fakes import make_unit_hub

ROOM = "!r:h"


def encrypted(event_id: str, sender: str, session_id: str, ciphertext: str = "AwgAEn" * 10,
              sender_key: str = "k" * 43) -> dict:
    return {"type": "m.room.encrypted", "event_id": event_id, "sender": sender, "origin_server_ts": 1,
            "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": ciphertext, "sender_key": sender_key,
                        "session_id": session_id, "device_id": "DEV"}}


def kept(hub) -> list[str]:
    with hub.engine.connect() as conn:
        return [event_id for event_id, _, _ in bot_store.pending(conn)]


def keep(hub, event: dict) -> None:
    with hub.engine.begin() as conn:
        bot_store.keep_pending(conn, event["event_id"], ROOM, event, hub.clock.now_ms())


def test_kept_events_are_bounded_per_sender_and_per_room_oldest_dropped(tmp_path):
    hub = make_unit_hub(tmp_path)
    keep(hub, encrypted("$ana", "@ana:h", "s-ana"))
    for i in range(PENDING_PER_ROOM * 2):  # one sender floods the room with made-up sessions
        hub.clock.now += 1
        keep(hub, encrypted(f"$junk{i}", "@mallory:h", f"s{i}"))
    with hub.engine.begin() as conn:
        bot_store.cap_pending(conn, {ROOM}, PENDING_PER_ROOM, PENDING_PER_SENDER)
    left = kept(hub)
    assert "$ana" in left  # another member's event is not pushed out
    assert sorted(left) == sorted(["$ana"] + [f"$junk{i}" for i in range(PENDING_PER_ROOM * 2 - PENDING_PER_SENDER,
                                                                         PENDING_PER_ROOM * 2)])
    # Many senders: the room keeps its newest PENDING_PER_ROOM.
    for i in range(PENDING_PER_ROOM + 10):
        hub.clock.now += 1
        keep(hub, encrypted(f"$many{i}", f"@m{i}:h", f"m{i}"))
    with hub.engine.begin() as conn:
        bot_store.cap_pending(conn, {ROOM}, PENDING_PER_ROOM, PENDING_PER_SENDER)
    assert sorted(kept(hub)) == sorted(f"$many{i}" for i in range(10, PENDING_PER_ROOM + 10))


def test_kept_events_are_forgotten_after_a_day(tmp_path):
    hub = make_unit_hub(tmp_path)
    keep(hub, encrypted("$old", "@ana:h", "s1"))
    hub.clock.now += DAY_MS
    keep(hub, encrypted("$new", "@ana:h", "s2"))
    hub.clock.now += 1
    assert forget_what_is_no_longer_needed(hub).pending_events == 1
    assert kept(hub) == ["$new"]


async def test_a_kept_event_is_tried_only_once_its_session_has_arrived(tmp_path):
    hub = make_unit_hub(tmp_path)
    bot = HubBot(hub, session=None, rng=random.Random(1))
    client = GuardedClient("http://x", "@bot:h", device_id="BOTDEV", store_path=str(tmp_path),
                           config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False))
    client.restore_login("@bot:h", "BOTDEV", "tok")
    bot.client = client
    tries = []
    decrypt = client.decrypt_event
    client.decrypt_event = lambda event: tries.append(event.event_id) or decrypt(event)
    outbound = OutboundGroupSession()
    outbound.mark_as_shared()
    session_key = outbound.session_key  # as shared with the room's devices: before its first message
    ciphertext = outbound.encrypt(json.dumps({"type": "m.room.message", "room_id": ROOM,
                                              "content": {"msgtype": "m.text", "body": "!agree 1"}}))
    sender_key = "a" * 43
    keep(hub, encrypted("$real", "@ana:h", outbound.id, ciphertext, sender_key))
    for i in range(200):
        keep(hub, encrypted(f"$junk{i}", "@mallory:h", f"made-up-{i}"))
    with hub.engine.begin() as conn:
        assert bot._decrypted_from_earlier(conn) == []
    assert tries == [] and len(kept(hub)) == 201  # no session has arrived: nothing tried, all kept
    client.olm.inbound_group_store.add(InboundGroupSession(session_key, "b" * 43, sender_key, ROOM))
    with hub.engine.begin() as conn:
        messages = bot._decrypted_from_earlier(conn)
    assert tries == ["$real"] and [m.event_id for m in messages] == ["$real"]
    assert len(kept(hub)) == 200 and "$real" not in kept(hub)
    await client.close()
