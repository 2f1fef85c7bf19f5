"""The moderation record's signed head, end to end: real Synapse, the hub's bot, and two moderators
with end-to-end-encrypted nio clients in their room (template "moderation").

A moderators' room made after a decision receives the current head within a keep (30 s), with no
new decision. A moderator decides a case on the web pages; the bot posts the audit log's signed
head in the moderators' room, encrypted on the wire; both moderators' clients decrypt it, and the text one of
them saves verifies the live hub's log with `crossline audit verify --head FILE`. Then, on copies of
the hub's data (never the shared hub), an insider deletes the newest entry, or rewrites an entry
with the hub's key and recomputes every hash and MAC after it: without a head nothing shows, and the
head from the room names the entry.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from nio import AsyncClient, MegolmEvent, RoomMessageNotice

from crossline.cli_audit import offline_hub
from crossline.domain.audit import entry_hash, entry_mac
from crossline.domain.audit_heads import PREFIX, read
from crossline.services import audit_heads
from crossline.storage import audit as audit_store
from tests.conftest import ADMIN, issue_invitation, member_ids_on_page
from tests.support import WebSession, matrix, run_cli, wait_for
from tests.test_e2e_cross_line_room import clients_in_a_new_room, encrypted_client, settle

pytestmark = pytest.mark.synapse


def new_moderator(world, side: str) -> tuple[str, str]:
    """A moderator of the line, registered on the hub's page: a Matrix account and the web pages."""
    stack = world.stack
    localpart, password = f"tamar{secrets.token_hex(3)}" if side == "Left bank" else f"lusine{secrets.token_hex(3)}", \
        f"moderator password {secrets.token_hex(4)}"
    link = issue_invitation(world.admin, world.line_id, world.side_ids[side], roles=("moderator",))
    path = link.removeprefix(stack.hub_url)
    status, page = WebSession(stack.hub_url).submit(path, path, {"username": localpart, "password": password,
                                                                 "password_again": password})
    assert status == 200 and "Your account is ready" in page, page
    wait_for(lambda: stack.user_id(localpart) in member_ids_on_page(world.admin.get(f"/lines/{world.line_id}")[1]),
             what=f"{localpart} to be a member of the line")
    return localpart, password


def signed_in(stack, localpart: str, password: str) -> WebSession:
    session = WebSession(stack.hub_url)
    status, page = session.submit("/login", "/login", {"username": localpart, "password": password})
    assert f'class="who" dir="auto">@{localpart}:' in page, (status, page)
    return session


async def head_message(client: AsyncClient, room_id: str, bot_id: str, wanted: Callable[[int], bool],
                       timeout_s: float = 90) -> RoomMessageNotice:
    """The bot's first notice in the room with a signed head of an entry `wanted`, as the
    moderator's client decrypts it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    undecrypted = 0
    while loop.time() < deadline:
        response = await client.sync(timeout=1000)
        room = response.rooms.join.get(room_id) if hasattr(response, "rooms") else None
        for event in room.timeline.events if room else []:
            undecrypted += isinstance(event, MegolmEvent)
            if isinstance(event, RoomMessageNotice) and event.sender == bot_id \
                    and any(wanted(head.head.seq) for head in read(event.body)[0]):
                return event
        if client.should_query_keys:
            await client.keys_query()
    raise AssertionError(f"{client.user_id} never decrypted the head it waited for "
                         f"({undecrypted} events it could not decrypt)")


def hub_rows(data_dir: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(f"file:{data_dir / 'hub.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


def copy_of_the_hub(data_dir: Path, into: Path) -> Path:
    """The hub's config, secrets and a consistent copy of its database (SQLite's backup), and not
    its kept head (audit-head.txt): as an insider who removed that file too would leave it."""
    into.mkdir(mode=0o700)
    shutil.copy2(data_dir / "crossline.toml", into / "crossline.toml")
    shutil.copytree(data_dir / "secrets", into / "secrets")
    source, target = sqlite3.connect(data_dir / "hub.sqlite3"), sqlite3.connect(into / "hub.sqlite3")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return into


def rewrite_with_the_key(data_dir: Path, seq: int, actor: str) -> None:
    """An insider who holds the database AND the secrets: entry `seq` now names another actor, and
    its hash and every hash and MAC after it are recomputed with the hub's own key."""
    hub = offline_hub(data_dir)
    key = audit_heads.key(hub)
    with hub.engine.begin() as conn:
        stored = list(audit_store.entries(conn, after_seq=seq - 1))
        previous = stored[0].previous_hash
        for entry in stored:
            content = {**entry.entry, "actor": actor} if entry.seq == seq else entry.entry
            digest = entry_hash(previous, content)
            conn.exec_driver_sql("UPDATE audit_log SET actor = ?, previous_hash = ?, hash = ?, mac = ? WHERE seq = ?",
                                 (content["actor"], previous, digest, entry_mac(key, entry.seq, digest), entry.seq))
            previous = digest
    hub.engine.dispose()


def decided_report(stack, moderator: tuple[str, str]) -> tuple[int, int, list[str]]:
    """An anonymous report, decided (no action) by `moderator` on the web pages: the case, the
    decision's entry, and what the case holds (the report's words, the reason)."""
    report = f"He threatens my sister at the crossing {secrets.token_hex(4)}"
    status, page = WebSession(stack.hub_url).submit("/report", "/report",
                                                    {"category": "harassment", "text": report, "country": ""})
    assert status == 200, page
    case_id = int(re.search(r'id="case-number">(\d+)<', page).group(1))
    reason = f"Recorded; nothing to act on yet {secrets.token_hex(4)}"
    case_path = f"/moderation/cases/{case_id}"
    status, page = signed_in(stack, *moderator).submit(case_path, f"{case_path}/decide",
                                                       {"action": "dismiss", "reason": reason})
    assert status == 200 and "No action" in page, page
    (seq,) = hub_rows(stack.data_dir, "SELECT seq FROM audit_log WHERE case_id = ? AND kind = ?", case_id,
                      "action_done")[0]
    return case_id, seq, [report, reason]


def verify(data_dir: Path, *heads: Path):
    return run_cli("audit", "verify", "--data-dir", str(data_dir), *[arg for h in heads for arg in ("--head", str(h))],
                   check=False)


async def test_the_signed_head_reaches_the_moderators_encrypted_and_shows_what_an_insider_changed(world, tmp_path):
    stack = world.stack
    bot_id = stack.user_id("crossline-bot")
    first, second = new_moderator(world, "Left bank"), new_moderator(world, "Right bank")
    _, earlier_seq, _ = decided_report(stack, first)  # before the moderators' room exists
    # The facilitator who makes the room is in it from the start, with an encrypted device of her
    # own: a head the bot posts before the moderators have joined is hers to read (theirs, with
    # history visible from joining, start after it).
    facilitator = await encrypted_client(stack.homeserver_url, stack.user_id(ADMIN[0]), ADMIN[1],
                                         tmp_path / "facilitator")
    clients: list[AsyncClient] = []
    try:
        await settle(facilitator)
        room_id, clients = await clients_in_a_new_room(
            world, tmp_path, "moderation", f"Moderators {secrets.token_hex(3)}", [first, second])
        assert clients[0].rooms[room_id].encrypted and bot_id in clients[0].rooms[room_id].users
        # The room made after that decision holds the current head within a keep (30 s), with no new decision.
        await head_message(facilitator, room_id, bot_id, lambda seq: seq >= earlier_seq)

        # A decision now: both moderators' clients decrypt its head, which says nothing of the case.
        case_id, decision_seq, case_words = decided_report(stack, first)
        notices = [await head_message(client, room_id, bot_id, decision_seq.__eq__) for client in clients]
        assert notices[0].event_id == notices[1].event_id
        (head,), bad = read(notices[0].body)
        assert bad == [] and head.head.seq == decision_seq and head.head.hub == stack.server_name
        assert head.head.hash == hub_rows(stack.data_dir, "SELECT hash FROM audit_log WHERE seq = ?", decision_seq)[0][0]
        assert audit_heads.hub_fingerprint(offline_hub(stack.data_dir)) in notices[0].body
        for case_content in (*case_words, "dismiss", "No action", "harassment", first[0], second[0]):
            assert case_content.lower() not in notices[0].body.lower()
        # On the wire (and in Synapse's database) the message is ciphertext.
        status, event = matrix(stack.homeserver_url, "GET", f"/_matrix/client/v3/rooms/{room_id}/event/"
                                                            f"{notices[0].event_id}", clients[0].access_token)
        assert status == 200 and event["type"] == "m.room.encrypted", event
        assert event["content"]["algorithm"] == "m.megolm.v1.aes-sha2" and "ciphertext" in event["content"]
        assert PREFIX not in str(event)

        # The moderator saves the message's text; it verifies the live hub's log.
        head_file = tmp_path / "head-from-the-room.txt"
        head_file.write_text(notices[0].body, encoding="utf-8")
        result = verify(stack.data_dir, head_file)
        assert result.returncode == 0 and "Audit log verifies" in result.stdout, (result.stdout, result.stderr)
        assert "Not used" not in result.stderr
    finally:
        for client in (facilitator, *clients):
            await client.close()

    # The newest entry deleted in a copy (and the kept head with it): only the room's head shows it.
    deleted = copy_of_the_hub(stack.data_dir, tmp_path / "deleted")
    with sqlite3.connect(deleted / "hub.sqlite3") as db:
        # Anything written after the head went too, so the decision's entry is the newest removed.
        db.execute("DELETE FROM audit_log WHERE seq >= ?", (decision_seq,))
    assert verify(deleted).returncode == 0  # the chain and MACs alone cannot see a missing end
    result = verify(deleted, head_file)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"entry {decision_seq} is missing at the end" in result.stderr, result.stderr
    assert f"the log ends at entry {decision_seq - 1}" in result.stderr

    # Rewritten and rehashed with the hub's own key, the decision's entry or one before it: the
    # log verifies on its own, and the room's head names the entry it no longer matches.
    (reported_seq,) = hub_rows(stack.data_dir, "SELECT min(seq) FROM audit_log WHERE case_id = ?", case_id)[0]
    assert reported_seq < decision_seq
    for target in (decision_seq, reported_seq):
        rewritten = copy_of_the_hub(stack.data_dir, tmp_path / f"rewritten-{target}")
        rewrite_with_the_key(rewritten, target, "member:0")
        assert verify(rewritten).returncode == 0
        result = verify(rewritten, head_file)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert f"entry {decision_seq} is not the one in the head signed" in result.stderr, result.stderr
