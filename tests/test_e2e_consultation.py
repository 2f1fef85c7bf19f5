"""A whole consultation with real Synapse, the hub's bot and three end-to-end-encrypted nio
participants on two sides plus one web participant: statements from the room and the web page,
moderation, voting, the hub killed with SIGKILL and restarted mid-voting, exact final tallies,
and no statement or vote in clear in Synapse's database."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sqlite3
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nio import AsyncClient, JoinResponse, RoomMessageNotice

from crossline.matrix.cross_signing import device_is_cross_signed
from crossline.services.room_events import ANSWERED_KEY
from tests.conftest import ALICE, BELLA, issue_invitation
from tests.support import WebSession, matrix, register_like_element, wait_for
from tests.test_e2e_cross_line_room import database_bytes, encrypted_client, settle

pytestmark = pytest.mark.synapse

DORA = ("dora", "dora password for tests")


@dataclass
class Voice:
    """A participant's Matrix client and what the bot has said to the room, as she decrypted it."""

    client: AsyncClient
    room_id: str
    notices: list = field(default_factory=list)

    async def pump(self) -> None:
        # nio's default timeline limit (10) would skip notices when the bot answers a burst.
        response = await self.client.sync(timeout=500, sync_filter={"room": {"timeline": {"limit": 200}}})
        room = response.rooms.join.get(self.room_id) if hasattr(response, "rooms") else None
        for event in room.timeline.events if room else []:
            if isinstance(event, RoomMessageNotice):
                self.notices.append(event)
        if self.client.should_query_keys:
            await self.client.keys_query()
        await self.client.send_to_device_messages()

    async def wait_notice(self, pattern: str, reply_to: str | None = None, timeout_s: float = 60) -> RoomMessageNotice:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            for notice in self.notices:
                if re.search(pattern, notice.body) and (reply_to is None or reply_to in answered(notice)):
                    return notice
            await self.pump()
        raise AssertionError(f"{self.client.user_id} never saw a bot notice matching {pattern!r}")

    async def send(self, body: str, reply_to: str | None = None) -> str:
        content = {"msgtype": "m.text", "body": body}
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        response = await self.client.room_send(self.room_id, "m.room.message", content, ignore_unverified_devices=True)
        assert getattr(response, "event_id", None), response
        return response.event_id

    async def command(self, body: str, expect: str, reply_to: str | None = None) -> str:
        """One message in a quiet room: its answer is a Matrix reply to it."""
        event_id = await self.send(body, reply_to)
        notice = await self.wait_notice(expect, reply_to=event_id)
        assert notice.source["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
        return notice.body


def answered(notice: RoomMessageNotice) -> list[str]:
    """The events a bot notice answers: one for a reply, several for a busy room's combined notice."""
    return notice.source["content"].get(ANSWERED_KEY, [])


def form_token(session: WebSession, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', session.get(path)[1]).group(1)


def post_form(session: WebSession, page: str, action: str, fields: dict) -> tuple[int, str, str]:
    return session.request("POST", action, {"csrf_token": form_token(session, page), **fields})


def tallies(data_dir: Path, consultation_id: int) -> dict[tuple[int, str], dict[int, int]]:
    """{(statement number, side name): {vote value: count}} straight from the hub's database."""
    with sqlite3.connect(f"file:{data_dir / 'hub.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT s.number, sd.name, v.value, COUNT(*) FROM votes v JOIN statements s ON s.id = v.statement_id "
            "JOIN members m ON m.id = v.member_id JOIN sides sd ON sd.id = m.side_id WHERE v.consultation_id = ? "
            "GROUP BY s.number, sd.name, v.value", (consultation_id,)).fetchall()
    result: dict = {}
    for number, side, value, count in rows:
        result.setdefault((number, side), {})[value] = count
    return result


async def test_a_whole_consultation_survives_a_killed_hub(world, tmp_path):
    stack, admin = world.stack, world.admin
    tag = secrets.token_hex(4)

    # A third Matrix participant (right bank) and a web-only one (left bank).
    dora_code = issue_invitation(admin, world.line_id, world.side_ids["Right bank"]).rsplit("/", 1)[1]
    assert register_like_element(stack.homeserver_url, DORA[0], DORA[1], dora_code)[0] == 200
    web_code = issue_invitation(admin, world.line_id, world.side_ids["Left bank"]).rsplit("/", 1)[1]
    web = WebSession(stack.hub_url)
    status, page, _ = post_form(web, f"/join/{web_code}", f"/join/{web_code}/web", {})
    assert status == 200 and "personal link" in page
    wait_for(lambda: stack.user_id("dora") in admin.get(f"/lines/{world.line_id}")[1], what="Dora's membership")

    # The facilitator designs the consultation and creates its room on the web.
    status, page, url = post_form(admin, f"/lines/{world.line_id}/consultations/new",
                                  f"/lines/{world.line_id}/consultations",
                                  {"title": f"Crossings {tag}", "questions": "What should reopen first?\nru: Что открыть первым?",
                                   "side_ids": [str(v) for v in world.side_ids.values()], "premoderation": "on"})
    assert status == 200, page
    consultation_id = int(url.rsplit("/", 1)[1])
    page_path = f"/consultations/{consultation_id}"
    status, page, _ = post_form(admin, page_path, f"{page_path}/room", {})
    room_id = re.search(r"Encrypted room <code>([^<]+)</code>", page).group(1)

    voices = {}
    for name, password in (("alice", ALICE[1]), ("bella", BELLA[1]), ("dora", DORA[1])):
        client = await encrypted_client(stack.homeserver_url, stack.user_id(name), password, tmp_path / name)
        await client.sync(timeout=1000)
        assert isinstance(await client.join(room_id), JoinResponse)
        voices[name] = Voice(client, room_id)
    try:
        for _ in range(2):
            for voice in voices.values():
                await settle(voice.client)
        alice, bella, dora = voices["alice"], voices["bella"], voices["dora"]

        # Collecting: the bot posts the question; statements from a reply, a command and the web.
        post_form(admin, page_path, f"{page_path}/phase", {"target": "collecting"})
        question = await alice.wait_notice(r"^Question 1: What should reopen first\?")
        texts = {name: f"{name} says reopen {what} {tag}" for name, what in
                 (("alice", "the bridge"), ("bella", "the schools"), ("dora", "the market"), ("web", "the clinic"))}
        assert "number 1" in await alice.command(f"> <@crossline-bot> Question 1\n\n{texts['alice']}",
                                                 "Your statement is number", reply_to=question.event_id)
        assert "number 2" in await bella.command(f"!say 1 {texts['bella']}", "Your statement is number")
        assert "number 3" in await dora.command(f"!say {texts['dora']}", "Your statement is number")
        assert "already there" in await dora.command(f"!say {texts['alice'].upper()}", "already there")
        assert "not a vote" in await dora.command("!vote 1 maybe", "is not a vote")
        assert "not started" in await dora.command("!agree 1", "Voting has not started")
        status, page, _ = post_form(web, f"/participate/{consultation_id}", f"/participate/{consultation_id}/statements",
                                    {"question_id": re.search(r'name="question_id" value="(\d+)"',
                                                              web.get(f"/participate/{consultation_id}")[1]).group(1),
                                     "text": texts["web"], "submission_id": f"web-statement-{tag}"})
        assert status == 200 and "your statement was received" in page

        # Moderation on the web: three approved, one rejected with a reason its author sees.
        for number in (1, 2, 4):
            post_form(admin, page_path, f"{page_path}/moderate", {"number": str(number), "decision": "approve"})
        post_form(admin, page_path, f"{page_path}/moderate",
                  {"number": "3", "decision": "reject", "reason": "Names a private business"})
        assert "Only a facilitator" in await bella.command("!approve 3", "Only a facilitator")

        # Voting opens: the bot posts the ballot.
        post_form(admin, page_path, f"{page_path}/phase", {"target": "voting"})
        await dora.wait_notice(rf"^Statement 4: “{re.escape(texts['web'])}”")
        assert "Vote recorded on statements 1, 2, 4" in await alice.command("!agree 1 2 4", "Vote recorded")
        assert "Vote recorded" in await bella.command("!disagree 1", "Vote recorded")
        assert "not open for voting" in await bella.command("!agree 3", "not open for voting")
        status, page, _ = post_form(web, f"/participate/{consultation_id}", f"/participate/{consultation_id}/votes",
                                    {"number": "2", "value": "disagree", "submission_id": f"web-vote-{tag}"})
        assert status == 200 and "your vote: disagree" in page

        # Votes are sent and the hub is killed before it can answer: after the restart each of
        # them is applied, and answered, exactly once.
        in_flight = [(bella, await bella.send("!agree 1")), (dora, await dora.send("!pass 1 2")),
                     (dora, await dora.send("!agree 4"))]
        os.kill(stack.process.pid, signal.SIGKILL)
        stack.process.wait(timeout=30)
        wait_for(lambda: not _answers(stack.homeserver_url), what="Synapse to stop with the killed hub")
        stack.restart()
        for voice, event_id in in_flight:
            await voice.wait_notice("Vote recorded", reply_to=event_id, timeout_s=90)
        for _ in range(3):
            await dora.pump()
        # The bot restored its login: still one device, cross-signed by its own account.
        bot = stack.user_id("crossline-bot")
        status, query = matrix(stack.homeserver_url, "POST", "/_matrix/client/v3/keys/query", dora.client.access_token,
                               {"device_keys": {bot: []}})
        assert status == 200 and len(query["device_keys"][bot]) == 1, query
        (bot_device,) = query["device_keys"][bot]
        assert device_is_cross_signed(bot, query, bot_device)
        for voice, event_id in in_flight:
            answers = [n for n in voice.notices if event_id in answered(n)]
            assert len(answers) == 1, f"{len(answers)} answers to one vote"
        status, page, _ = post_form(web, f"/participate/{consultation_id}", f"/participate/{consultation_id}/votes",
                                    {"number": "1", "value": "agree", "submission_id": f"web-vote-2-{tag}"})
        assert status == 200

        post_form(admin, page_path, f"{page_path}/phase", {"target": "closed"})
        await alice.wait_notice("has closed")
        assert "Voting has closed" in await alice.command("!disagree 1", "Voting has closed")
    finally:
        for voice in voices.values():
            await voice.client.close()

    # Exact final tallies: the latest vote of each participant on each statement.
    assert tallies(stack.data_dir, consultation_id) == {
        (1, "Left bank"): {1: 2},            # alice agree, web agree
        (1, "Right bank"): {1: 1, 0: 1},     # bella agree (changed from disagree), dora pass
        (2, "Left bank"): {1: 1, -1: 1},     # alice agree, web disagree
        (2, "Right bank"): {0: 1},           # dora pass
        (4, "Left bank"): {1: 1},            # alice agree
        (4, "Right bank"): {1: 1},           # dora agree
    }
    assert "Names a private business" in admin.get(page_path)[1]

    # Synapse's database holds no statement or vote in clear.
    stored = database_bytes(stack.data_dir / "synapse" / "homeserver.db")
    for text in [*texts.values(), "!agree 1 2 4", "!disagree 1", "!pass 1 2", "Vote recorded"]:
        assert text.encode() not in stored, text


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
