"""Consultations through the web pages against the real stack: every refusal reaches the
participant as a sentence on her page, and a form sent twice counts once."""

from __future__ import annotations

import re

import pytest

from tests.conftest import issue_invitation
from tests.support import WebSession

pytestmark = pytest.mark.synapse


def token(session: WebSession, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', session.get(path)[1]).group(1)


def post(session: WebSession, page: str, action: str, fields: dict) -> tuple[int, str]:
    status, text, _ = session.request("POST", action, {"csrf_token": token(session, page), **fields})
    return status, text


def new_consultation(world, title: str, sides: list[str]) -> int:
    path = f"/lines/{world.line_id}/consultations/new"
    status, page, url = world.admin.request("POST", f"/lines/{world.line_id}/consultations", {
        "csrf_token": token(world.admin, path), "title": title, "questions": "What first?",
        "side_ids": [str(world.side_ids[side]) for side in sides], "premoderation": "on"})
    assert status == 200, page
    return int(url.rsplit("/", 1)[1])


def web_participant(world, side: str) -> WebSession:
    code = issue_invitation(world.admin, world.line_id, world.side_ids[side]).rsplit("/", 1)[1]
    session = WebSession(world.stack.hub_url)
    status, page = post(session, f"/join/{code}", f"/join/{code}/web", {})
    assert status == 200 and "personal link" in page
    return session


def phase(world, consultation_id: int, target: str) -> None:
    status, page = post(world.admin, f"/consultations/{consultation_id}", f"/consultations/{consultation_id}/phase",
                        {"target": target})
    assert status == 200, page


def test_web_refusals_say_why_and_retries_count_once(world):
    cid = new_consultation(world, "Web refusals", ["Left bank", "Right bank"])
    left = web_participant(world, "Left bank")
    page = f"/participate/{cid}"

    status, text = left.get(page)
    assert status == 403 and "not open to you" in text  # still a draft

    phase(world, cid, "collecting")
    question_id = re.search(r'name="question_id" value="(\d+)"', left.get(page)[1]).group(1)

    def statement(text: str, submission: str) -> tuple[int, str]:
        return post(left, page, f"{page}/statements", {"question_id": question_id, "text": text, "submission_id": submission})

    assert statement("   ", "sub-empty-1")[1].count("The statement is empty") == 1
    status, text = statement("x" * 501, "sub-long-1")
    assert status == 409 and "too long (501 characters; at most 500)" in text
    assert statement("Open the crossing at night", "sub-ok-00001")[0] == 200
    # The same form again (a retry after a lost answer): applied once, no error.
    status, text = statement("Open the crossing at night", "sub-ok-00001")
    assert status == 200 and text.count("Open the crossing at night") == 1
    status, text = statement("open the crossing at night!", "sub-dup-0001")
    assert status == 409 and "already there (statement 1)" in text
    status, text = post(left, page, f"{page}/votes", {"number": "1", "value": "agree", "submission_id": "vote-early-1"})
    assert status == 409 and "Voting has not started" in text
    status, text = post(left, page, f"{page}/statements", {"question_id": question_id, "text": "no id"})
    assert status == 400 and "out of date" in text

    # The approval names the words the facilitator read: words changed since (a stale revision)
    # are refused with the reason, and nothing is approved.
    status, text = post(world.admin, f"/consultations/{cid}", f"/consultations/{cid}/moderate",
                        {"number": "1", "decision": "approve", "seen": "0123456789abcdef"})
    assert status == 409 and "changed by its author after you read it" in text
    assert "pending" in world.admin.get(f"/consultations/{cid}")[1]
    seen = re.search(r'name="seen" value="([0-9a-f]{16})"', world.admin.get(f"/consultations/{cid}")[1]).group(1)
    status, text = post(world.admin, f"/consultations/{cid}", f"/consultations/{cid}/moderate",
                        {"number": "1", "decision": "approve", "seen": seen})
    assert status == 200 and "approved" in text
    phase(world, cid, "voting")
    status, text = post(left, page, f"{page}/votes", {"number": "7", "value": "agree", "submission_id": "vote-none-1"})
    assert status == 409 and "no statement 7" in text
    status, text = post(left, page, f"{page}/votes", {"number": "1", "value": "maybe", "submission_id": "vote-bad-1"})
    assert status == 409 and "is not a vote" in text
    status, text = post(left, page, f"{page}/votes", {"number": "1", "value": "agree", "submission_id": "vote-ok-001"})
    assert status == 200 and "your vote: agree" in text
    phase(world, cid, "closed")
    status, text = post(left, page, f"{page}/votes", {"number": "1", "value": "disagree", "submission_id": "vote-late-1"})
    assert status == 409 and "Voting has closed" in text
    assert "your vote: agree" in left.get(page)[1]


def test_a_side_not_invited_cannot_take_part(world):
    cid = new_consultation(world, "Right bank only", ["Right bank"])
    phase(world, cid, "collecting")
    left = web_participant(world, "Left bank")
    status, text = left.get(f"/participate/{cid}")
    assert status == 403 and "not open to you" in text
    assert "Right bank only" not in left.get("/participate")[1]


def test_a_participant_session_cannot_open_staff_pages(world):
    left = web_participant(world, "Left bank")
    status, text, url = left.request("GET", f"/lines/{world.line_id}")
    assert url.endswith("/participate") and "Staff" not in text


def test_a_used_personal_invitation_cannot_make_a_second_web_participant(world):
    code = issue_invitation(world.admin, world.line_id, world.side_ids["Left bank"]).rsplit("/", 1)[1]
    first = WebSession(world.stack.hub_url)
    assert post(first, f"/join/{code}", f"/join/{code}/web", {})[0] == 200
    second = WebSession(world.stack.hub_url)
    status, text = second.get(f"/join/{code}")
    assert status == 410 and "already been used" in text
