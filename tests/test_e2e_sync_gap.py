"""A sync that returns only the latest events of a burst (`limited`) is completed from /messages:
the bot would otherwise skip votes. Real Synapse, real encrypted nio clients."""

from __future__ import annotations

import pytest
from nio import RoomMessageText

from crossline.matrix.bot import whole_timeline
from tests.test_e2e_cross_line_room import alice_and_bella_in_a_room

pytestmark = pytest.mark.synapse


async def test_a_limited_sync_is_completed_in_order_and_decrypted(world, tmp_path):
    room_id, alice, bella = await alice_and_bella_in_a_room(world, tmp_path, "Burst room")
    try:
        since = bella.next_batch
        burst = [f"!agree {n}" for n in range(1, 13)]
        for body in burst:
            sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                                         ignore_unverified_devices=True)
            assert getattr(sent, "event_id", None), sent

        response = await bella.sync(timeout=1000, since=since, sync_filter={"room": {"timeline": {"limit": 3}}})
        timeline = response.rooms.join[room_id].timeline
        assert timeline.limited and len(timeline.events) == 3  # the gap is real

        events = await whole_timeline(bella, room_id, timeline, since)
        texts = [e.body for e in events if isinstance(e, RoomMessageText)]
        assert texts == burst
        assert len({e.event_id for e in events}) == len(events)
    finally:
        await alice.close()
        await bella.close()
