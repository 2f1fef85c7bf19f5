"""The bot under attack, with real Synapse and end-to-end-encrypted nio clients: each hostile
message is sent as the attacker sends it (raw content through room_send, which nio encrypts as
given), and each is followed by another member's vote that must be recorded and confirmed."""

from __future__ import annotations

import re
import secrets
import sqlite3
from pathlib import Path

from uuid import uuid4

import pytest
from nio import Api, JoinResponse, RoomRedactResponse, RoomSendResponse

from crossline.domain.room_messages import WORD_JOINER
from tests.conftest import ALICE, BELLA, issue_invitation
from tests.support import register_like_element, wait_for
from tests.test_e2e_consultation import Voice, answered, post_form
from tests.test_e2e_cross_line_room import encrypted_client, settle

pytestmark = pytest.mark.synapse


def hub_rows(data_dir: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(f"file:{data_dir / 'hub.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


def votes_of(data_dir: Path, consultation_id: int) -> dict[tuple[str, int], int]:
    rows = hub_rows(data_dir, "SELECT m.matrix_user_id, s.number, v.value FROM votes v JOIN members m ON m.id = v.member_id "
                              "JOIN statements s ON s.id = v.statement_id WHERE v.consultation_id = ?", consultation_id)
    return {(user.split(":")[0][1:], number): value for user, number, value in rows}


def statement_of(data_dir: Path, consultation_id: int, number: int) -> tuple[str, str]:
    (row,) = hub_rows(data_dir, "SELECT text, status FROM statements WHERE consultation_id = ? AND number = ?",
                      consultation_id, number)
    return row


class Member(Voice):
    async def raw(self, content: dict) -> str:
        """Any content, as a hostile client sends it: nio encrypts exactly what it is given."""
        response = await self.client.room_send(self.room_id, "m.room.message", content, ignore_unverified_devices=True)
        assert getattr(response, "event_id", None), response
        return response.event_id

    async def sealed(self, content: dict) -> str:
        """Content whose `m.relates_to` only the ciphertext carries, as a client that does not copy it
        out in clear sends it: the homeserver (and the hub's Synapse module) cannot see it."""
        client = self.client
        if client.olm.should_share_group_session(self.room_id):
            await client.share_group_session(self.room_id, ignore_unverified_devices=True)
        _, encrypted = client.encrypt(self.room_id, "m.room.message", content)
        encrypted.pop("m.relates_to", None)
        method, path, data = Api.room_send(client.access_token, self.room_id, "m.room.encrypted", encrypted, uuid4())
        response = await client._send(RoomSendResponse, method, path, data, (self.room_id,))
        assert getattr(response, "event_id", None), response
        return response.event_id

    async def edit(self, original: str, new_body: str) -> str:
        return await self.raw({"msgtype": "m.text", "body": f"* {new_body}",
                               "m.new_content": {"msgtype": "m.text", "body": new_body},
                               "m.relates_to": {"rel_type": "m.replace", "event_id": original}})

    async def answer_to(self, event_id: str, expect: str = "") -> str:
        notice = await self.wait_notice(expect, reply_to=event_id)
        content = notice.source["content"]
        # Every bot message mentions nobody and renders nothing of anyone's.
        assert content.get("m.mentions") == {} and "formatted_body" not in content, content
        return notice.body


async def test_no_message_stops_the_bot_fools_the_room_or_counts_twice(world, tmp_path):
    stack, admin = world.stack, world.admin
    tag = secrets.token_hex(3)
    erin = f"erin{tag}"
    code = issue_invitation(admin, world.line_id, world.side_ids["Right bank"]).rsplit("/", 1)[1]
    assert register_like_element(stack.homeserver_url, erin, "erin password for tests", code)[0] == 200
    wait_for(lambda: stack.user_id(erin) in admin.get(f"/lines/{world.line_id}")[1], what="Erin's membership")

    status, page, url = post_form(admin, f"/lines/{world.line_id}/consultations/new",
                                  f"/lines/{world.line_id}/consultations",
                                  {"title": f"Attack {tag}", "questions": "What should reopen first?",
                                   "side_ids": [str(v) for v in world.side_ids.values()], "premoderation": "on"})
    assert status == 200, page
    consultation_id = int(url.rsplit("/", 1)[1])
    page_path = f"/consultations/{consultation_id}"
    status, page, _ = post_form(admin, page_path, f"{page_path}/room", {})
    room_id = re.search(r"Encrypted room <code>([^<]+)</code>", page).group(1)
    data_dir = stack.data_dir

    members = {}
    for name, password in (("alice", ALICE[1]), ("bella", BELLA[1]), (erin, "erin password for tests")):
        client = await encrypted_client(stack.homeserver_url, stack.user_id(name), password, tmp_path / name)
        await client.sync(timeout=1000)
        assert isinstance(await client.join(room_id), JoinResponse)
        members[name] = Member(client, room_id)
    alice, bella, erin_ = members["alice"], members["bella"], members[erin]
    try:
        for _ in range(2):
            for member in members.values():
                await settle(member.client)

        # -- Statements: edited before approval, deleted, and one written to pass for the bot. --
        post_form(admin, page_path, f"{page_path}/phase", {"target": "collecting"})
        await alice.wait_notice(r"^Question 1: What should reopen first\?")
        first = await alice.send(f"!say Reopen the brigde {tag}")
        assert "number 1" in await alice.answer_to(first, "Your statement is number")
        assert "is updated" in await alice.answer_to(await alice.edit(first, f"Reopen the bridge {tag}"), "is updated")
        intruding = await bella.edit(first, "Close every bridge")  # not hers: ignored
        assert statement_of(data_dir, consultation_id, 1)[0] == f"Reopen the bridge {tag}"
        # An edit that is a command does not become a second statement.
        assert "not make it a command" in await alice.answer_to(await alice.edit(first, "!agree 1"), "a command")

        deleted = await erin_.send(f"!say Reopen the market {tag}")
        assert "number 2" in await erin_.answer_to(deleted, "Your statement is number")
        assert isinstance(await erin_.client.room_redact(room_id, deleted), RoomRedactResponse)
        await erin_.wait_notice(r"^Statement 2 is withdrawn")
        assert statement_of(data_dir, consultation_id, 2)[1] == "withdrawn"

        fake = f"@room Voting on “Attack {tag}” has closed. Results: https://evil.example/r @alice:{stack.server_name}"
        posed = await bella.send(f"!say {fake} <b>bold</b>")
        assert "number 3" in await bella.answer_to(posed, "Your statement is number")
        # A statement sent in the question's thread, as Element sends it.
        question = await erin_.wait_notice(r"^Question 1: ")
        threaded = await erin_.raw({"msgtype": "m.text", "body": f"Reopen the clinic {tag}",
                                    "m.relates_to": {"rel_type": "m.thread", "event_id": question.event_id,
                                                     "is_falling_back": True,
                                                     "m.in_reply_to": {"event_id": question.event_id}}})
        assert "number 4" in await erin_.answer_to(threaded, "Your statement is number")
        # The facilitator approves what she read on the page (statement 1 was edited: its form
        # carries the revision she saw).
        page = admin.get(page_path)[1]
        for number in (1, 3):
            seen = re.search(rf'name="number" value="{number}">\s*<input type="hidden" name="seen" value="([0-9a-f]+)"',
                             page).group(1)
            post_form(admin, page_path, f"{page_path}/moderate", {"number": str(number), "decision": "approve",
                                                                  "seen": seen})
        refused = await alice.answer_to(await alice.edit(first, "Reopen every bridge"), "does not change it")
        assert "approved" in refused and statement_of(data_dir, consultation_id, 1)[0] == f"Reopen the bridge {tag}"

        # -- Voting: the ballot quotes her words, which neither mention, link nor render. --
        post_form(admin, page_path, f"{page_path}/phase", {"target": "voting"})
        ballot = await erin_.wait_notice(r"(?s)^Statement 1: “.*\nStatement 3: “")
        assert ballot.source["content"].get("m.mentions") == {} and "formatted_body" not in ballot.source["content"]
        (line,) = [text for text in ballot.body.split("\n") if text.startswith("Statement 3:")]
        assert line.startswith("Statement 3: “@" + WORD_JOINER + "room Voting on") and line.endswith("”")
        assert "@room" not in line and "https://" not in line and "evil.example" not in line
        assert f"@alice:{stack.server_name}" not in line and "<b>bold</b>" in line
        assert "@room" not in ballot.body

        async def confirmed_vote(member: Member, body: str, number: int) -> None:
            event_id = await member.send(body)
            assert f"statement {number}" in await member.answer_to(event_id, "Vote recorded")

        # 1. m.relates_to as a string: the vote itself counts (it is no reply), and the bot goes on.
        # (In clear the hub's Synapse module refuses it; inside the ciphertext only the bot sees it.)
        for relates in ("$not-an-object", ["$a"], None, {"m.in_reply_to": "$a"}):
            odd = await alice.sealed({"msgtype": "m.text", "body": "!agree 1", "m.relates_to": relates})
            assert "Vote recorded" in await alice.answer_to(odd, "Vote recorded")
        await confirmed_vote(bella, "!disagree 1", 1)

        # 2. Numbers it does not expect, in the same burst as someone else's vote.
        strange = [await erin_.send(body) for body in
                   ("!agree " + "9" * 31, f"!agree {2 ** 63}", "!agree ²", "!agree ③", "!agree 1\u00b3")]
        burst_vote = await bella.send("!pass 3")
        for event_id in strange:
            assert "Vote recorded" not in await erin_.answer_to(event_id)
        assert "statement 3" in await bella.answer_to(burst_vote, "Vote recorded")
        await confirmed_vote(erin_, "!agree ١", 1)  # Arabic-Indic one: a decimal digit, counted

        # 3. A 48,000-character unknown command: a short neutral answer, nothing retried.
        huge = await alice.send("!" + "@room x " * 6000)
        short = await alice.answer_to(huge, "do not know that command")
        assert len(short) < 100 and "@room" not in short
        await confirmed_vote(erin_, "!disagree 3", 3)

        # 4. @room in an unknown command is not echoed.
        echo = await bella.send(f"!@room Voting on “Attack {tag}” has closed")
        assert "@room" not in await bella.answer_to(echo, "do not know that command")
        await confirmed_vote(alice, "!pass 3", 3)

        # 5. An edited vote is a changed vote; someone else's edit of it is ignored.
        vote = await alice.send("!agree 3")
        await alice.answer_to(vote, "Vote recorded")
        assert "Vote changed on statement 3: disagree" in await alice.answer_to(await alice.edit(vote, "!disagree 3"),
                                                                                "Vote changed")
        await bella.edit(vote, "!agree 3")  # Bella's edit of Alice's vote: nothing
        await confirmed_vote(erin_, "!pass 1", 1)

        # 6. Votes as replies, with Element's quoted fallback and without it.
        quoted = await bella.raw({"msgtype": "m.text",
                                  "body": f"> <@crossline-bot:{stack.server_name}> Statement 1: “Reopen”\n\n!agree 1",
                                  "m.relates_to": {"m.in_reply_to": {"event_id": ballot.event_id}}})
        assert "statement 1" in await bella.answer_to(quoted, "Vote recorded")
        bare = await erin_.raw({"msgtype": "m.text", "body": "!disagree 3",
                                "m.relates_to": {"m.in_reply_to": {"event_id": ballot.event_id}}})
        assert "statement 3" in await erin_.answer_to(bare, "Vote recorded")

        # 7. Contents of the wrong shape (no msgtype, a number for a body, an edit with no new
        # content, a long body of bidi controls): ignored, and the bot goes on.
        await bella.raw({"body": "!agree 3"})
        await bella.raw({"msgtype": "m.text", "body": 3})
        await bella.sealed({"msgtype": "m.text", "body": "* !agree 3", "m.new_content": "!agree 3",
                            "m.relates_to": {"rel_type": "m.replace", "event_id": vote}})
        bidi = await bella.raw({"msgtype": "m.text", "body": "!agree \u202e3" + "\u2066" * 5_000})
        assert "Vote recorded" not in await bella.answer_to(bidi)
        await confirmed_vote(alice, "!agree 1", 1)

        # Exact votes: the latest of each person; nothing counted twice, nothing from the attacks.
        assert votes_of(data_dir, consultation_id) == {
            ("alice", 1): 1, ("alice", 3): -1,
            ("bella", 1): 1, ("bella", 3): 0,
            (erin, 1): 0, (erin, 3): -1,
        }
        wait_for(lambda: hub_rows(data_dir, "SELECT COUNT(*) FROM outbox")[0][0] == 0, what="an empty outbox")
        assert intruding not in {e for n in alice.notices + bella.notices for e in answered(n)}
        log = "".join(stack.output)
        assert "evil.example" not in log and "brigde" not in log
    finally:
        for member in members.values():
            await member.client.close()
