"""Pseudonymous participation end to end, with real Synapse and end-to-end-encrypted nio clients.

Bella signs in to the web pages with her Matrix password, takes a pseudonym for a consultation,
and, once it has been invited into the room in a batch, contributes and votes with it from its
own client; Alice sees only the pseudonym and its side. Then every file of the data directory is
read: no row or line holds both identities, the hub made no device or address row on either
account, and no time recorded about the pseudonym falls within the decoupling window around her
sign-in and her request. Two moderators together unmask it for a case (one alone learns
nothing); every step verifies in the audit log, and an edited entry is caught. Nobody else can
register a name in the pseudonyms' namespace.

These tests run on a hub of their own whose decoupling window is a few seconds, not 15 minutes.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

import tests.conftest as shared
from crossline.cli import main
from crossline.config import Paths
from tests.conftest import ALICE, BELLA, issue_invitation
from tests.support import HubStack, WebSession, matrix, wait_for
from tests.test_e2e_consultation import Voice
from tests.test_e2e_cross_line_room import encrypted_client, receive_text, settle
from tests.test_web_consultation import new_consultation, phase, post

pytestmark = pytest.mark.synapse

MIRA = ("mira", "moderator mira's password 77")
PASSPHRASES = {"admin": "the admin's escrow passphrase", "mira": "mira's own escrow passphrase"}
DECOUPLING_S = 3
DAY_MS = 86_400_000


def short_decoupling(data_dir: Path) -> None:
    config = Paths(data_dir).config_file
    text = config.read_text()
    assert "decoupling_seconds = 900" in text
    config.write_text(text.replace("decoupling_seconds = 900", f"decoupling_seconds = {DECOUPLING_S}"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> HubStack:
    stack = HubStack.start(tmp_path_factory.mktemp("pseudonym-hub") / "data", before_up=short_decoupling)
    yield stack
    code = stack.stop()
    assert code == 0, "crossline up did not stop cleanly:\n" + "".join(stack.output)


@pytest.fixture(scope="module")
def world(stack: HubStack) -> shared.World:
    return shared.world.__wrapped__(stack)


def logged_in(stack, username: str, password: str) -> WebSession:
    session = WebSession(stack.hub_url)
    status, page = session.submit("/login", "/login", {"username": username, "password": password})
    assert f'class="who" dir="auto">@{username}:' in page, (status, page)  # signed in, whatever her first page
    return session


def query(database: Path, sql: str, *args) -> list[tuple]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def rows_of(database: Path) -> list[tuple[str, list[str], tuple]]:
    """Every row of every table, as SQLite reads them (the WAL's committed pages included)."""
    found = []
    for (table,) in query(database, "SELECT name FROM sqlite_master WHERE type='table'"):
        connection = sqlite3.connect(database)
        try:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            found += [(table, columns, row) for row in cursor]
        finally:
            connection.close()
    return found


def is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def times_in(values) -> list[float]:
    """Every value that reads as a time of these years, in seconds (ms and s, numbers and text)."""
    found = []
    for value in values:
        numbers = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else \
            [int(n) for n in re.findall(rb"(?<!\d)1\d{9}(?:\d{3})?(?!\d)",
                                        value if isinstance(value, bytes) else str(value).encode())]
        for number in numbers:
            if 1_600_000_000_000 <= number < 2_200_000_000_000 and number % DAY_MS:  # ms, not a bare day
                found.append(number / 1000)
            elif 1_600_000_000 <= number < 2_200_000_000:
                found.append(float(number))
    return found


def log_time(line: str) -> float | None:
    match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(match.group(2)) / 1000 \
        if match else None


async def test_a_pseudonym_takes_part_unlinkably_and_a_quorum_can_unmask_it(world, tmp_path):
    stack = world.stack
    tag = secrets.token_hex(4)
    hub_db, synapse_db = stack.data_dir / "hub.sqlite3", stack.data_dir / "synapse" / "homeserver.db"
    # Two escrow holders: the admin and a second moderator, each with her own passphrase.
    link = issue_invitation(world.admin, world.line_id, world.side_ids["Right bank"], roles=("moderator",))
    mira = WebSession(stack.hub_url)
    status, page = mira.submit(link.removeprefix(stack.hub_url), link.removeprefix(stack.hub_url),
                               {"username": MIRA[0], "password": MIRA[1], "password_again": MIRA[1]})
    assert status == 200, page
    mira = logged_in(stack, MIRA[0], MIRA[1])
    for session, name in ((world.admin, "admin"), (mira, "mira")):
        status, page = post(session, "/moderation/escrow", "/moderation/escrow/key", {"passphrase": PASSPHRASES[name]})
        assert status == 200 and "escrow key is set" in page, page
    page = world.admin.get("/moderation/escrow")[1]
    holder_ids = re.findall(r'name="moderator_ids" value="(\d+)">', page)
    assert len(holder_ids) >= 2
    status, page = post(world.admin, "/moderation/escrow", "/moderation/escrow",
                        {"moderator_ids": holder_ids, "threshold": "2"})
    assert status == 200 and "2 of" in page, page

    # A consultation with its encrypted room.
    cid = new_consultation(world, f"Crossings {tag}", ["Left bank", "Right bank"])
    status, page = post(world.admin, f"/consultations/{cid}", f"/consultations/{cid}/room", {})
    assert status == 200, page
    room_id = re.search(r"Encrypted room <code>([^<]+)</code>", page).group(1)
    phase(world, cid, "collecting")

    # The pool was made ahead by the appservice; once it can be taken, its accounts are older than the window.
    wait_for(lambda: query(hub_db, "SELECT count(*) FROM pseudonym_pool WHERE ready")[0][0] > 0,
             what="the pseudonym pool to be ready")
    made = max(t for (t,) in query(synapse_db, "SELECT creation_ts FROM users WHERE name LIKE '@p-%'"))
    wait_for(lambda: time.time() > made + 1 + DECOUPLING_S, timeout_s=DECOUPLING_S + 5, interval_s=0.2,
             what="the pool's accounts to be older than the window")

    # Bella signs in with her Matrix password and takes a pseudonym.
    signed_in = time.time()
    bella = logged_in(stack, BELLA[0], BELLA[1])
    status, page = post(bella, f"/participate/{cid}", f"/participate/{cid}/pseudonym", {"display_name": "River Voice"})
    requested = time.time()
    assert status == 200, page
    pseudonym_id = re.search(r'id="pseudonym-user">([^<]+)<', page).group(1)
    password = re.search(r'id="pseudonym-password">([^<]+)<', page).group(1)
    assert pseudonym_id.startswith("@p-") and "bella" not in pseudonym_id
    status, page = post(bella, f"/participate/{cid}", f"/participate/{cid}/pseudonym", {"display_name": "Second Face"})
    assert status == 409 and "already have a pseudonym" in page
    status, page = post(world.admin, "/lines", f"/lines/{world.line_id}/invitations",  # a fresh participant
                        {"side_id": str(world.side_ids["Left bank"]), "roles": "participant"})
    code = re.search(r'id="invitation-link" readonly value="[^"]*/join/([^"]+)"', page).group(1)
    newcomer = WebSession(stack.hub_url)
    post(newcomer, f"/join/{code}", f"/join/{code}/web", {})
    status, page = post(newcomer, f"/participate/{cid}", f"/participate/{cid}/pseudonym", {"display_name": "R1ver voice"})
    assert status == 400 and "too close to a name" in page

    # The bot invites it later, in a batch, and only then does she use it, from its own client.
    def invited() -> bool:
        return query(synapse_db, "SELECT membership FROM local_current_membership WHERE user_id = ? AND room_id = ?",
                     pseudonym_id, room_id) == [("invite",)]

    wait_for(invited, timeout_s=6 * DECOUPLING_S + 30, what="the batch to invite the pseudonym")
    river = await encrypted_client(stack.homeserver_url, pseudonym_id, password, tmp_path / "river")
    alice = await encrypted_client(stack.homeserver_url, stack.user_id("alice"), ALICE[1], tmp_path / "alice")
    try:
        for client in (river, alice):
            await client.sync(timeout=1000)
            await client.join(room_id)
        for _ in range(3):
            for client in (river, alice):
                await settle(client)
        voice = Voice(river, room_id)
        statement = f"Open the crossing at night {tag}"
        assert "Your statement is number" in await voice.command(f"!say {statement}", "Your statement is number")
        said = await receive_text(alice, room_id, f"!say {statement}", timeout_s=60)
        assert said.sender == pseudonym_id
        room = alice.rooms[room_id]
        assert room.user_name(pseudonym_id) == "River Voice"
        assert stack.user_id("bella") not in (room.user_name(pseudonym_id) or "")
        page_path = f"/consultations/{cid}"
        status, page = post(world.admin, page_path, f"{page_path}/moderate", {"number": "1", "decision": "approve"})
        assert status == 200, page
        phase(world, cid, "voting")
        assert "Vote recorded" in await voice.command("!agree 1", "Vote recorded")
        river_device = river.device_id
    finally:
        await river.close()
        await alice.close()
    consultation_page = world.admin.get(f"/consultations/{cid}")[1]
    assert statement in consultation_page and "bella" not in consultation_page.split(statement)[1][:300]

    # Synapse writes client addresses in batches every few seconds: wait for her own client's.
    wait_for(lambda: query(synapse_db, "SELECT count(*) FROM user_ips WHERE user_id = ?", pseudonym_id)[0][0] > 0,
             what="Synapse to record the pseudonym's own client")
    scan_the_data_directory(stack, pseudonym_id, river_device, signed_in, requested)

    # A quorum of two moderators unmasks it for a case; one alone learns nothing.
    status, page = post(WebSession(stack.hub_url), "/report", "/report",
                        {"category": "harassment", "text": f"{pseudonym_id} sent me threats", "country": ""})
    assert status == 200, page
    case_id = re.search(r'id="case-number">(\d+)<', page).group(1)
    case_path = f"/moderation/cases/{case_id}"
    status, page = post(world.admin, case_path, f"{case_path}/unmask", {"pseudonym": pseudonym_id, "reason": "Threats"})
    assert status == 200, page
    request_id = re.search(r'action="/moderation/unmask/(\d+)/approve"', page).group(1)
    status, page = post(world.admin, case_path, f"{case_path}/unmask", {"pseudonym": pseudonym_id, "reason": "Again"})
    assert status == 409 and "already has an open unmasking request" in page
    status, page = post(world.admin, case_path, f"/moderation/unmask/{request_id}/approve",
                        {"passphrase": PASSPHRASES["admin"]})
    assert status == 200 and "1 of 2" in page and "bella" not in page
    assert query(hub_db, "SELECT count(*) FROM unmask_partials WHERE partial IS NOT NULL") == [(1,)]
    status, page = post(mira, case_path, f"/moderation/unmask/{request_id}/approve", {"passphrase": PASSPHRASES["mira"]})
    assert status == 200 and f"Unmasked by the quorum: {stack.user_id('bella')}" in page, page
    assert f"{pseudonym_id} is {stack.user_id('bella')}" in world.admin.get(case_path)[1]  # sealed in the case
    assert query(hub_db, "SELECT count(*) FROM unmask_partials") == [(0,)]  # the partials are gone

    data_dir = ["--data-dir", str(stack.data_dir)]
    assert main(["audit", "verify", *data_dir]) == 0
    with sqlite3.connect(hub_db) as connection:
        seq = connection.execute("SELECT seq FROM audit_log WHERE kind = 'unmasked'").fetchone()[0]
        connection.execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = ?", (seq,))
    assert main(["audit", "verify", *data_dir]) == 1
    with sqlite3.connect(hub_db) as connection:
        connection.execute("UPDATE audit_log SET actor = 'quorum' WHERE seq = ?", (seq,))
    assert main(["audit", "verify", *data_dir]) == 0  # restored: it verifies again


def scan_the_data_directory(stack, pseudonym_id: str, river_device: str, signed_in: float, requested: float) -> None:
    """Every file under the data directory, after she signed in, took the pseudonym and voted."""
    bella_id = stack.user_id("bella")
    hub_db, synapse_db = stack.data_dir / "hub.sqlite3", stack.data_dir / "synapse" / "homeserver.db"
    ids = dict(query(hub_db, "SELECT matrix_user_id, id FROM members WHERE matrix_user_id IN (?, ?)",
                     bella_id, pseudonym_id))
    handle, name = query(hub_db, "SELECT m.web_handle, p.display_name FROM members m JOIN pseudonyms p "
                                 "ON p.member_id = m.id WHERE m.id = ?", ids[pseudonym_id])[0]
    window = (signed_in - DECOUPLING_S, requested + DECOUPLING_S)

    def about_pseudonym(columns, row) -> bool:
        text = " ".join(str(v) for v in row)
        return pseudonym_id in text or handle in text or name in text or any(
            "member" in c and v == ids[pseudonym_id] for c, v in zip(columns, row, strict=True))

    files = [p for p in stack.data_dir.rglob("*") if p.is_file()]
    databases = [p for p in files if is_sqlite(p)]
    assert hub_db in databases and synapse_db in databases
    seen_about = set()
    for database in databases:
        for table, columns, row in rows_of(database):
            text = " ".join(str(v) for v in row)
            # Synapse's to-device queue is exempt: the pseudonym's client shares its room keys with
            # every member's devices, and a queued key share says two accounts share a room.
            if table != "device_inbox":
                assert not (bella_id in text and pseudonym_id in text), (database.name, table, row)
            member_values = {v for c, v in zip(columns, row, strict=True) if "member" in c}
            assert not {ids[bella_id], ids[pseudonym_id]} <= member_values, (table, row)
            if about_pseudonym(columns, row):
                seen_about.add(table)
                close = [t for t in times_in(row) if window[0] <= t <= window[1]]
                assert not close, (database.name, table, columns, row, window)
    # The scan did see the pseudonym where it must be: the hub's rows, Synapse's account, invitation,
    # profile, her client's device and address, her statement and vote.
    assert {"members", "pseudonyms", "web_access_links", "statements", "votes", "users", "events", "event_json",
            "profiles", "devices", "user_ips", "room_memberships"} <= seen_about, seen_about
    for path in files:
        if path in databases or path.name.endswith(("-wal", "-shm", "-journal")):
            continue  # read through SQLite above; freed pages are a residual risk (threat model)
        text = path.read_bytes().decode("utf-8", "replace")
        if path == Paths(stack.data_dir).known_members:
            listed = json.loads(text)["user_ids"]
            assert listed == sorted(listed)  # a sorted list of every member: its order says nothing
            continue
        for line in text.splitlines():
            assert not (bella_id in line and pseudonym_id in line), (path, line)
            at = log_time(line)
            if pseudonym_id in line and at is not None:
                assert not window[0] <= at <= window[1], (path, line)

    # No device, token or address row of either account was made by the hub: the pseudonym's are
    # all her own client's, and her sign-in left none on her own account.
    for table in ("user_ips", "devices", "access_tokens"):
        assert {d for (d,) in query(synapse_db, f"SELECT device_id FROM {table} WHERE user_id = ?", pseudonym_id)} \
            == {river_device}, table
        assert query(synapse_db, f"SELECT * FROM {table} WHERE user_id = ?", bella_id) == [], table
    (appservice, created), = query(synapse_db, "SELECT appservice_id, creation_ts FROM users WHERE name = ?", pseudonym_id)
    assert appservice == "crossline" and created < window[0]
    (invited_at,), = query(synapse_db, "SELECT origin_server_ts FROM events WHERE type = 'm.room.member' "
                                       "AND state_key = ? ORDER BY stream_ordering LIMIT 1", pseudonym_id)
    assert invited_at / 1000 > window[1]


# p then any mark Synapse allows in a name reads like a pseudonym; Synapse folds P- to p-.
LOOKALIKES = ("p-imposter", "p-river", "p_abcdefghijklmn", "p.anna", "p=river", "p/river", "p+river", "P-upper")


def test_nobody_can_register_a_name_in_the_pseudonym_namespace(world):
    stack = world.stack
    for localpart in LOOKALIKES:
        # As Element does it, with a valid invitation code.
        code = issue_invitation(world.admin, world.line_id, world.side_ids["Left bank"]).rsplit("/", 1)[1]
        body = {"username": localpart, "password": "a good long password 1", "initial_device_display_name": "test"}
        status, data = matrix(stack.homeserver_url, "POST", "/_matrix/client/v3/register", body=body)
        if status == 401:
            body["auth"] = {"type": "m.login.registration_token", "token": code, "session": data["session"]}
            status, data = matrix(stack.homeserver_url, "POST", "/_matrix/client/v3/register", body=body)
        assert status == 400 and data.get("errcode") == "M_EXCLUSIVE", data
        # On the hub's join page: a clear refusal, and the invitation still works with another name.
        session = WebSession(stack.hub_url)
        fields = {"username": localpart, "password": "a good long password 1", "password_again": "a good long password 1"}
        status, page = session.submit(f"/join/{code}", f"/join/{code}", fields)
        assert status == 400 and "reserved for the hub" in page and "kept for pseudonyms" in page, page
        # p then a letter is an ordinary name.
        status, page = session.submit(f"/join/{code}", f"/join/{code}", {**fields, "username": f"pa{secrets.token_hex(4)}"})
        assert status == 200 and "Your account is ready" in page, page
    names = [stack.user_id(localpart.lower()) for localpart in LOOKALIKES]
    assert query(stack.data_dir / "synapse" / "homeserver.db",
                 f"SELECT name FROM users WHERE name IN ({', '.join('?' * len(names))})", *names) == []
