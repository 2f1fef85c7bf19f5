"""Direct rooms with the bot, against real Synapse, the hub's bot and end-to-end-encrypted nio
clients: a participant's private vote and status in her direct room, a member of no line declined
with a reason, a group room refused, and a direct room the bot leaves once someone else is invited."""

from __future__ import annotations

import re
import secrets
import sqlite3
from urllib.parse import quote

import pytest
from nio import RoomCreateResponse, RoomInviteResponse, RoomPreset

from tests.conftest import ADMIN, ALICE, BELLA
from tests.contact_support import choose_who_may_invite
from tests.support import matrix, wait_for
from tests.test_e2e_consultation import Voice, post_form
from tests.test_e2e_cross_line_room import encrypted_client, settle
from tests.test_e2e_gateway import _new_member

pytestmark = pytest.mark.synapse

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


async def new_room(client, invite: list[str], is_direct: bool) -> str:
    response = await client.room_create(invite=invite, is_direct=is_direct, initial_state=[ENCRYPTION],
                                        preset=RoomPreset.trusted_private_chat)
    assert isinstance(response, RoomCreateResponse), response
    return response.room_id


def bot_membership(stack, client, room_id: str) -> dict:
    bot = quote(stack.user_id("crossline-bot"), safe="")
    status, content = matrix(stack.homeserver_url, "GET",
                             f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state/m.room.member/{bot}",
                             client.access_token)
    return content if status == 200 else {}


def votes_of(data_dir, user_id: str, cid: int) -> dict[int, int]:
    with sqlite3.connect(f"file:{data_dir / 'hub.sqlite3'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT s.number, v.value FROM votes v JOIN statements s ON s.id = v.statement_id "
                               "JOIN members m ON m.id = v.member_id WHERE m.matrix_user_id = ? "
                               "AND s.consultation_id = ?", (user_id, cid)).fetchall())


def voting_consultation(world, title: str) -> int:
    """A consultation open to both banks, voting on two seeded statements (no room needed)."""
    admin, path = world.admin, f"/lines/{world.line_id}/consultations"
    status, page, url = post_form(admin, f"{path}/new", path, {
        "title": title, "questions": "What first?", "side_ids": [str(v) for v in world.side_ids.values()]})
    assert status == 200, page
    cid = int(url.rsplit("/", 1)[1])
    page_path = f"/consultations/{cid}"
    post_form(admin, page_path, f"{page_path}/phase", {"target": "collecting"})
    question_id = re.search(r'<select name="question_id"><option value="(\d+)"', admin.get(page_path)[1]).group(1)
    for text in ("Reopen the bridge", "Reopen the schools"):
        post_form(admin, page_path, f"{page_path}/statements", {"question_id": question_id, "text": text})
    post_form(admin, page_path, f"{page_path}/phase", {"target": "voting"})
    return cid


async def test_a_participant_votes_privately_in_her_direct_room(world, tmp_path):
    stack = world.stack
    bot = stack.user_id("crossline-bot")
    title = f"Crossings {secrets.token_hex(3)}"
    # Other tests leave consultations voting too: she names this one ("in N"), as she would then.
    cid = voting_consultation(world, title)
    alice = await encrypted_client(stack.homeserver_url, stack.user_id("alice"), ALICE[1], tmp_path / "alice")
    bella = await encrypted_client(stack.homeserver_url, stack.user_id("bella"), BELLA[1], tmp_path / "bella")
    try:
        await settle(alice)
        room_id = await new_room(alice, [bot], is_direct=True)
        dm = Voice(alice, room_id)
        wait_for(lambda: bot_membership(stack, alice, room_id).get("membership") == "join", timeout_s=60,
                 what="the bot to accept her invitation")
        welcome = await dm.wait_notice(r"^Hello\. In this private room you can vote")
        assert welcome.decrypted and welcome.source["content"]["m.mentions"] == {}
        assert alice.rooms[room_id].encrypted and set(alice.rooms[room_id].users) == {alice.user_id, bot}

        answer = await dm.command(f"!agree 1 in {cid}", "Vote recorded")
        assert answer == f"✓ Vote recorded on statement 1 in “{title}”."
        assert votes_of(stack.data_dir, alice.user_id, cid).get(1) == 1
        assert "Vote recorded on statements 1, 2" in await dm.command(f"!disagree 1 2 in {cid}", "Vote recorded")
        status = await dm.command("!status", "Your votes there")
        assert f"“{title}” is voting." in status and "statement 1 disagree, statement 2 disagree" in status
        assert "!status" in await dm.command("!help", "your consultations")
        assert votes_of(stack.data_dir, alice.user_id, cid) == {1: -1, 2: -1}

        # Another member's vote, in her own direct room, is recorded and confirmed too.
        await settle(bella)
        bella_room = await new_room(bella, [bot], is_direct=True)
        wait_for(lambda: bot_membership(stack, bella, bella_room).get("membership") == "join", timeout_s=60,
                 what="the bot to accept Bella's invitation")
        bella_dm = Voice(bella, bella_room)
        await bella_dm.wait_notice(r"^Hello\.")
        assert "Vote recorded on statement 2" in await bella_dm.command(f"!pass 2 in {cid}", "Vote recorded")
        assert votes_of(stack.data_dir, bella.user_id, cid) == {2: 0}

        # Someone else invited into her direct room: it is no longer private, and the bot leaves it.
        # (Bella takes invitations from her whole line: they may share no room yet.)
        choose_who_may_invite(world, "bella", BELLA[1], "line")
        assert isinstance(await alice.room_invite(room_id, bella.user_id), RoomInviteResponse)
        await dm.wait_notice(r"^This room is no longer a private, encrypted room")
        wait_for(lambda: bot_membership(stack, alice, room_id).get("membership") == "leave", timeout_s=60,
                 what="the bot to leave a direct room that gained a member")
    finally:
        await alice.close()
        await bella.close()


async def test_a_member_of_no_line_and_a_group_room_are_declined_with_a_reason(world, tmp_path):
    """A room marked direct but holding three people is declined with the reason; a room not marked
    direct at all (as the hub's own rooms invite the bot) is never joined by the direct-room code."""
    stack = world.stack
    bot = stack.user_id("crossline-bot")
    voting_consultation(world, f"Water {secrets.token_hex(3)}")
    staff = await encrypted_client(stack.homeserver_url, stack.user_id(ADMIN[0]), ADMIN[1], tmp_path / "staff")
    # A new participant makes this test's rooms: Synapse limits how many rooms one account creates
    # (a burst of 10), and other tests have Alice and Bella create rooms.
    dora_name, dora_password = f"dora{secrets.token_hex(3)}", "dora's own password 1"
    _new_member(world, dora_name, dora_password)
    dora = await encrypted_client(stack.homeserver_url, stack.user_id(dora_name), dora_password, tmp_path / "dora")
    try:
        await settle(staff)
        await settle(dora)
        staff_room = await new_room(staff, [bot], is_direct=True)  # the hub's admin: staff, on no line
        choose_who_may_invite(world, "alice", ALICE[1], "line")  # Dora shares no room with her
        group = await new_room(dora, [bot, stack.user_id("alice")], is_direct=True)
        not_direct = await new_room(staff, [bot], is_direct=False)
        # The reason is said in the room, encrypted (a reason on the membership would be in clear).
        said = await Voice(staff, staff_room).wait_notice(r"^I serve members of a line of this hub only")
        assert said.decrypted and said.source["content"]["m.mentions"] == {}
        await Voice(dora, group).wait_notice(r"direct, encrypted room with just you and me")
        for client, room_id in ((staff, staff_room), (dora, group)):
            wait_for(lambda: bot_membership(stack, client, room_id).get("membership") == "leave", timeout_s=60,
                     what="the bot to leave a room it declined")

        # The bot still serves everyone else: her own direct room is accepted and answers.
        room_id = await new_room(dora, [bot], is_direct=True)
        wait_for(lambda: bot_membership(stack, dora, room_id).get("membership") == "join", timeout_s=60,
                 what="the bot to accept her invitation")
        served = Voice(dora, room_id)
        await served.wait_notice(r"^Hello\.")
        status = await served.command("!status", "is voting")
        assert "“Water " in status and "You have not voted there." in status
        # By now the bot has seen the invitation not marked direct in several syncs: still only invited.
        assert bot_membership(stack, staff, not_direct).get("membership") == "invite"
    finally:
        await staff.close()
        await dora.close()
