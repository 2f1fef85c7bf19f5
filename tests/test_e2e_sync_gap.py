"""A sync that returns only the latest events of a burst (`limited`) is completed from /messages:
the bot would otherwise skip votes. Real Synapse, real encrypted nio clients."""

from __future__ import annotations

import pytest
from nio import JoinResponse, RoomMessageText

from crossline.matrix.bot import whole_timeline
from tests.conftest import ALICE, BELLA, create_room
from tests.test_e2e_cross_line_room import encrypted_client, settle

pytestmark = pytest.mark.synapse


async def test_a_limited_sync_is_completed_in_order_and_decrypted(world, tmp_path):
    stack = world.stack
    status, page, room_id = create_room(world, "cross-line-dialogue", "Burst room",
                                        [stack.user_id("alice"), stack.user_id("bella")])
    assert status == 200 and room_id, page
    alice = await encrypted_client(stack.homeserver_url, stack.user_id("alice"), ALICE[1], tmp_path / "alice")
    bella = await encrypted_client(stack.homeserver_url, stack.user_id("bella"), BELLA[1], tmp_path / "bella")
    try:
        for client in (alice, bella):
            await client.sync(timeout=1000)
            assert isinstance(await client.join(room_id), JoinResponse)
        for _ in range(2):
            for client in (alice, bella):
                await settle(client)
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
