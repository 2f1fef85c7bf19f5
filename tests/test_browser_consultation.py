"""A consultation in real Chromium: the facilitator moves the phases, a web participant votes."""

from __future__ import annotations

import re

import pytest

from tests.conftest import issue_invitation
from tests.test_browser_staff_pages import browser, log_in, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.synapse, pytest.mark.browser]


def test_facilitator_moves_phases_and_a_participant_votes_on_her_phone(browser, page, world):  # noqa: F811
    log_in(page)
    page.goto(f"/lines/{world.line_id}/consultations/new")
    page.fill("input[name=title]", "Browser consultation")
    page.fill("textarea[name=questions]", "Which crossing should open first?\nru: Какой переход открыть первым?")
    page.click("#new-consultation button[type=submit]")
    page.wait_for_url(re.compile(r".*/consultations/\d+$"))
    consultation_path = page.url.split(world.stack.hub_url)[1]
    assert page.text_content("#phase") == "being prepared"

    page.click("#phase-form button")
    assert page.text_content("#phase") == "collecting statements"
    page.fill("#seed-form textarea[name=text]", "The crossing at Bender should open first")
    page.click("#seed-form button[type=submit]")
    assert "The crossing at Bender should open first" in page.text_content("#statements + table")
    page.click("#phase-form button")
    assert page.text_content("#phase") == "voting"

    # A participant on a small phone, from her invitation link, without a Matrix app.
    link = issue_invitation(world.admin, world.line_id, world.side_ids["Right bank"])
    phone = browser.new_context(base_url=world.stack.hub_url, viewport={"width": 360, "height": 740})
    her = phone.new_page()
    her.goto(link.removeprefix(world.stack.hub_url))
    her.click("#web-only button")
    assert her.input_value("#return-link").startswith(f"{world.stack.hub_url}/r/")
    her.click("text=Go to the consultations")
    her.click("text=Browser consultation")
    assert her.text_content("#phase") == "voting"
    her.click("#s1 button[value=agree]")
    assert "your vote: agree" in her.text_content("#s1")
    her.click("#s1 button[value=disagree]")
    assert "your vote: disagree" in her.text_content("#s1")
    her.screenshot(path=str(world.stack.data_dir.parent / "participant-voting.png"), full_page=True)
    assert her.evaluate("document.documentElement.scrollWidth") <= 360, "the page must fit a small phone"

    # The facilitator's live counts show that someone votes on the right bank, not how many: one
    # person is too few to show a figure about.
    page.goto(consultation_path)
    rows = page.locator("#participation tr").all_text_contents()
    assert any("Right bank" in row and "fewer than 5" in row for row in rows)
    page.click("#phase-form button")
    assert page.text_content("#phase") == "closed"
    her.reload()
    assert "your vote: disagree" in her.content()
    phone.close()
