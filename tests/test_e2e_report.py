"""A closed consultation's report, end to end against real Synapse: the facilitator drafts it, adds a
narrative and releases it to the negotiators' room; the bot posts it as an encrypted attachment; a
negotiator's encrypted nio client downloads and decrypts it; `crossline verify` accepts it and
rejects a one-byte change. Synapse's media store holds ciphertext only."""

from __future__ import annotations

import asyncio
import re
import secrets

import pytest
from nio import JoinResponse, RoomEncryptedFile, RoomMessageNotice
from nio.crypto.attachments import decrypt_attachment

from crossline.cli import main
from tests.conftest import create_room, issue_invitation, member_ids_on_page
from tests.support import WebSession, register_like_element, wait_for
from tests.test_e2e_cross_line_room import database_bytes, encrypted_client, settle
from tests.test_web_consultation import new_consultation, phase, post, web_participant

pytestmark = pytest.mark.synapse

NEGOTIATOR = ("nadia", "negotiator password 6482")
PER_SIDE = 5  # the smallest side shown


def seed(world, cid: int, text: str) -> None:
    page = world.admin.get(f"/consultations/{cid}")[1]
    question_id = re.search(r'<option value="(\d+)">', page.split('id="seed-form"')[1]).group(1)
    status, page = post(world.admin, f"/consultations/{cid}", f"/consultations/{cid}/statements",
                        {"question_id": question_id, "text": text})
    assert status == 200, page


async def test_a_released_report_reaches_negotiators_encrypted_and_verifies(world, tmp_path):
    stack = world.stack
    tag = secrets.token_hex(4)
    cid = new_consultation(world, f"Crossing points {tag}", ["Left bank", "Right bank"])
    phase(world, cid, "collecting")
    for text in (f"Reopen the bridge for pedestrians {tag}", f"Only the left wants this {tag}", f"Close all {tag}"):
        seed(world, cid, text)
    phase(world, cid, "voting")
    wishes = {"Left bank": ("agree", "agree", "disagree"), "Right bank": ("agree", "disagree", "disagree")}
    for side, values in wishes.items():
        for n in range(PER_SIDE):
            person = web_participant(world, side)
            for number, value in enumerate(values, start=1):
                status, page = post(person, f"/participate/{cid}", f"/participate/{cid}/votes",
                                    {"number": str(number), "value": value, "submission_id": f"v{tag}{side[0]}{n}{number}"})
                assert status == 200, page
    phase(world, cid, "closed")

    # A negotiator with a Matrix account, and the line's negotiators' room (the bot is a member).
    code = issue_invitation(world.admin, world.line_id, "", roles=("negotiator",)).rsplit("/", 1)[1]
    status, data = register_like_element(stack.homeserver_url, NEGOTIATOR[0], NEGOTIATOR[1], code)
    assert status == 200, data
    nadia_id = stack.user_id(NEGOTIATOR[0])
    wait_for(lambda: nadia_id in member_ids_on_page(world.admin.get(f"/lines/{world.line_id}")[1]),
             what="the negotiator to become a member")
    status, page, room_id = create_room(world, "negotiators", f"Negotiators {secrets.token_hex(3)}", [nadia_id])
    assert status == 200 and room_id, page
    nadia = await encrypted_client(stack.homeserver_url, nadia_id, NEGOTIATOR[1], tmp_path / "nadia")
    try:
        await nadia.sync(timeout=1000)
        assert isinstance(await nadia.join(room_id), JoinResponse)
        for _ in range(2):
            await settle(nadia)

        # The facilitator drafts, writes, releases.
        report_page = f"/consultations/{cid}/report"
        status, page = post(world.admin, report_page, report_page, {})
        assert status == 200 and "Draft, version 1" in page, page
        draft_id = re.search(r'action="/reports/(\d+)/narrative"', page).group(1)
        assert f"Reopen the bridge for pedestrians {tag}" in page.split("Bridging recommendations")[1].split("Consensus")[0]
        post(world.admin, report_page, f"/reports/{draft_id}/narrative", {"narrative": f"Both banks met. {tag}"})
        status, page = post(world.admin, report_page, f"/reports/{draft_id}/release", {"room_id": room_id})
        assert status == 200 and "report version 1" in page, page
        fingerprint = re.search(r'id="fingerprint">([^<]+)<', page).group(1)
        assert fingerprint in world.admin.get("/reports")[1]
        status, text = post(world.admin, report_page, f"/reports/{draft_id}/narrative", {"narrative": "changed"})
        assert status == 409 and "released and can no longer change" in text

        # The negotiator's client receives the summary and the encrypted file, and decrypts it.
        summary, attachment = None, None
        for _ in range(60):
            response = await nadia.sync(timeout=1000, sync_filter={"room": {"timeline": {"limit": 50}}})
            room = response.rooms.join.get(room_id) if hasattr(response, "rooms") else None
            for event in room.timeline.events if room else []:
                if isinstance(event, RoomMessageNotice) and "Report on" in event.body:
                    summary = event
                if isinstance(event, RoomEncryptedFile):
                    attachment = event
            if nadia.should_query_keys:
                await nadia.keys_query()
            if attachment:
                break
            await asyncio.sleep(0.2)
        assert summary is not None and fingerprint in summary.body and "1 bridging recommendation" in summary.body
        assert attachment is not None, "the report file never arrived"
        download = await nadia.download(attachment.url)
        ciphertext = download.body
        data = decrypt_attachment(ciphertext, attachment.key["k"], attachment.hashes["sha256"], attachment.iv)
    finally:
        await nadia.close()

    assert f"Both banks met. {tag}".encode() in data
    report_file = tmp_path / "report.json"
    report_file.write_bytes(data)
    assert main(["verify", str(report_file), "--fingerprint", fingerprint]) == 0
    changed = bytearray(data)
    changed[data.index(b"Both banks") + 5] ^= 0x20
    report_file.write_bytes(bytes(changed))
    assert main(["verify", str(report_file)]) == 1

    # The same bytes are served to negotiators on the web; Synapse has only ciphertext (room names
    # are plaintext state in Matrix, which is why the tag is not in the room's name).
    record_id = draft_id
    status, served, _ = world.admin.request("GET", f"/reports/{record_id}/report.json")
    assert status == 200 and served.encode() == data
    media = b"".join(p.read_bytes() for p in (stack.data_dir / "synapse" / "media_store").rglob("*") if p.is_file())
    assert tag.encode() not in media and tag.encode() not in database_bytes(stack.data_dir / "synapse" / "homeserver.db")

    # A correction is a new version that names the one it replaces.
    status, page = post(world.admin, report_page, report_page, {})
    assert status == 200 and "Draft, version 2" in page
    status, page = post(world.admin, report_page, f"/reports/{int(draft_id) + 1}/release", {"room_id": ""})
    assert status == 200 and "This version corrects version 1" in page
    # Participants and strangers do not read reports.
    stranger = WebSession(stack.hub_url)
    for path in ("/reports", f"/reports/{draft_id}/report.json"):
        _, page, landed = stranger.request("GET", path)
        assert landed.endswith("/login") and fingerprint not in page and tag not in page
