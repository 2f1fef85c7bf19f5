"""Pseudonymous participation end to end, with real Synapse and end-to-end-encrypted nio clients.

Bella takes a pseudonym for a consultation and contributes with it from its own client; Alice
sees only the pseudonym and its side; no table of the hub or of Synapse links Bella to it; two
moderators together unmask it for a case (one alone learns nothing); every step verifies in the
audit log, and an edited entry is caught.
"""

from __future__ import annotations

import re
import secrets
import sqlite3

import pytest

from crossline.cli import main
from tests.conftest import ALICE, BELLA, issue_invitation
from tests.support import WebSession
from tests.test_e2e_consultation import Voice
from tests.test_e2e_cross_line_room import encrypted_client, receive_text, settle
from tests.test_web_consultation import new_consultation, phase, post

pytestmark = pytest.mark.synapse

MIRA = ("mira", "moderator mira's password 77")
PASSPHRASES = {"admin": "the admin's escrow passphrase", "mira": "mira's own escrow passphrase"}


def logged_in(stack, username: str, password: str) -> WebSession:
    session = WebSession(stack.hub_url)
    status, page = session.submit("/login", "/login", {"username": username, "password": password})
    assert status == 200, page
    return session


def rows_of(database, query_tables: str) -> list[tuple[str, list[str], tuple]]:
    connection = sqlite3.connect(database)
    try:
        tables = [r[0] for r in connection.execute(query_tables)]
        found = []
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            found += [(table, columns, row) for row in cursor]
        return found
    finally:
        connection.close()


async def test_a_pseudonym_takes_part_unlinkably_and_a_quorum_can_unmask_it(world, tmp_path):
    stack = world.stack
    tag = secrets.token_hex(4)
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

    # A consultation with its encrypted room; Bella takes a pseudonym for it on the web.
    cid = new_consultation(world, f"Crossings {tag}", ["Left bank", "Right bank"])
    status, page = post(world.admin, f"/consultations/{cid}", f"/consultations/{cid}/room", {})
    assert status == 200, page
    room_id = re.search(r"Encrypted room <code>([^<]+)</code>", page).group(1)
    phase(world, cid, "collecting")
    bella = logged_in(stack, BELLA[0], BELLA[1])
    status, page = post(bella, f"/participate/{cid}", f"/participate/{cid}/pseudonym", {"display_name": "River Voice"})
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

    # The pseudonym contributes from its own client; Alice sees only the pseudonym and its side.
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
    finally:
        await river.close()
        await alice.close()
    consultation_page = world.admin.get(f"/consultations/{cid}")[1]
    assert statement in consultation_page and "bella" not in consultation_page.split(statement)[1][:300]

    # No table anywhere links Bella to the pseudonym.
    hub_db, synapse_db = stack.data_dir / "hub.sqlite3", stack.data_dir / "synapse" / "homeserver.db"
    hub_rows = rows_of(hub_db, "SELECT name FROM sqlite_master WHERE type='table'")
    member_ids = {r[2][r[1].index("matrix_user_id")]: r[2][r[1].index("id")] for r in hub_rows if r[0] == "members"}
    bella_member, pseudonym_member = member_ids[stack.user_id("bella")], member_ids[pseudonym_id]
    # Synapse's to-device queue is exempt: the pseudonym's client shares its room keys with every
    # member's devices (Bella's real one is in the room too), and a queued key share between two
    # members of one room says they share a room, not who is behind whom.
    synapse_rows = rows_of(synapse_db, "SELECT name FROM sqlite_master WHERE type='table' AND name != 'device_inbox'")
    for table, columns, row in hub_rows + synapse_rows:
        text = " ".join(str(v) for v in row)
        assert not (stack.user_id("bella") in text and pseudonym_id in text), (table, row)
        ids = {v for c, v in zip(columns, row, strict=True) if "member" in c}
        assert not {bella_member, pseudonym_member} <= ids, (table, row)

    # A quorum of two moderators unmasks it for a case; one alone learns nothing.
    status, page = post(WebSession(stack.hub_url), "/report", "/report",
                        {"category": "harassment", "text": f"{pseudonym_id} sent me threats", "country": ""})
    assert status == 200, page
    case_id = re.search(r'id="case-number">(\d+)<', page).group(1)
    case_path = f"/moderation/cases/{case_id}"
    status, page = post(world.admin, case_path, f"{case_path}/unmask", {"pseudonym": pseudonym_id, "reason": "Threats"})
    assert status == 200, page
    request_id = re.search(r'action="/moderation/unmask/(\d+)/approve"', page).group(1)
    status, page = post(world.admin, case_path, f"/moderation/unmask/{request_id}/approve",
                        {"passphrase": PASSPHRASES["admin"]})
    assert status == 200 and "1 of 2" in page and "bella" not in page
    status, page = post(mira, case_path, f"/moderation/unmask/{request_id}/approve", {"passphrase": PASSPHRASES["mira"]})
    assert status == 200 and f"Unmasked by the quorum: {stack.user_id('bella')}" in page, page
    assert f"{pseudonym_id} is {stack.user_id('bella')}" in world.admin.get(case_path)[1]  # sealed in the case

    data_dir = ["--data-dir", str(stack.data_dir)]
    assert main(["audit", "verify", *data_dir]) == 0
    with sqlite3.connect(hub_db) as connection:
        seq = connection.execute("SELECT seq FROM audit_log WHERE kind = 'unmasked'").fetchone()[0]
        connection.execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = ?", (seq,))
    assert main(["audit", "verify", *data_dir]) == 1
    with sqlite3.connect(hub_db) as connection:
        connection.execute("UPDATE audit_log SET actor = 'quorum' WHERE seq = ?", (seq,))
    assert main(["audit", "verify", *data_dir]) == 0  # restored: it verifies again
