"""A report through the hub's bot, in a room where the bot is: the case carries the message as the
bot decrypted it, marked verified; the command disappears from the room; the evidence is sealed
in the hub database (its plaintext is not there); the reporter is told privately."""

from __future__ import annotations

import re
import secrets

import pytest

from tests.conftest import ALICE, BELLA
from tests.support import matrix, wait_for
from tests.test_e2e_cross_line_room import clients_in_a_new_room, database_bytes, receive_text
from tests.test_e2e_moderation import notices_for

pytestmark = pytest.mark.synapse


async def test_a_report_through_the_bot_carries_the_decrypted_message_sealed(world, tmp_path):
    stack = world.stack
    bella_id = stack.user_id("bella")
    room_id, (alice, bella) = await clients_in_a_new_room(
        world, tmp_path, "consultation", f"Consultation {secrets.token_hex(3)}", [ALICE, BELLA], rounds=3)
    try:
        insult = f"Nobody wants your kind here {secrets.token_hex(4)}"
        sent = await bella.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": insult},
                                     ignore_unverified_devices=True)
        await receive_text(alice, room_id, insult)
        command = await alice.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "!report she insults me",
            "m.relates_to": {"m.in_reply_to": {"event_id": sent.event_id}}}, ignore_unverified_devices=True)

        def case_with_evidence():
            queue = world.admin.get("/moderation")[1]
            for case_path in re.findall(r'href="(/moderation/cases/\d+)"', queue):
                page = world.admin.get(case_path)[1]
                if insult in page:
                    return page
            return None

        case_page = wait_for(case_with_evidence, timeout_s=60, what="the bot's report to reach the queue")
        assert "decrypted by the hub" in case_page and "(verified)" in case_page
        assert "she insults me" in case_page and bella_id in case_page

        # The command is gone from the room, so nobody else learns who reported.
        def redacted():
            status, event = matrix(stack.homeserver_url, "GET",
                                   f"/_matrix/client/v3/rooms/{room_id}/event/{command.event_id}", bella.access_token)
            return status == 200 and event.get("content") == {}
        wait_for(redacted, what="the bot to remove the report command")
        texts = await notices_for(alice, timeout_s=20, expect="was received")
        assert any("was received" in t for t in texts), texts
    finally:
        await alice.close()
        await bella.close()
    stored = database_bytes(stack.data_dir / "hub.sqlite3", stack.data_dir / "synapse" / "homeserver.db")
    assert insult.encode() not in stored and b"she insults me" not in stored
