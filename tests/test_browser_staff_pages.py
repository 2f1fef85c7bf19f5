"""The staff pages driven in real Chromium (Debian's, through Playwright)."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import ADMIN

pytestmark = [pytest.mark.synapse, pytest.mark.browser]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
QUICK_EXIT_URL = "https://www.bbc.com/weather"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, world):
    context = browser.new_context(base_url=world.stack.hub_url, viewport={"width": 390, "height": 800})
    # The network is closed: answer the quick-exit site locally so navigation can be observed.
    context.route("https://www.bbc.com/**", lambda route: route.fulfill(body="<p>Weather</p>", content_type="text/html"))
    page = context.new_page()
    yield page
    context.close()


def log_in(page) -> None:
    page.goto("/login")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url("**/lines")


def test_wrong_password_is_refused_and_right_one_logs_in(page):
    page.goto("/login")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", "not the password at all")
    page.click("button[type=submit]")
    assert "do not match" in page.text_content("p.error")
    log_in(page)
    assert page.is_visible("text=Nistru")


def test_a_forged_csrf_token_changes_nothing(page, world):
    log_in(page)
    page.goto(f"/lines/{world.line_id}")
    page.fill("#create-room input[name=name]", "Forged room")
    page.evaluate("document.querySelector('#create-room input[name=csrf_token]').value = 'forged'")
    page.click("#create-room button[type=submit]")
    assert "did not come from this hub" in page.text_content("p.error")
    page.goto(f"/lines/{world.line_id}")
    assert "Forged room" not in page.content()


def test_a_facilitator_creates_a_room_from_a_template(page, world):
    log_in(page)
    page.goto(f"/lines/{world.line_id}")
    page.select_option("#create-room select[name=template]", "cross-line-dialogue")
    page.fill("#create-room input[name=name]", "Browser-made room")
    for user in ("alice", "bella"):
        page.check(f"#create-room label:has-text('@{user}:') input[type=checkbox]")
    page.click("#create-room button[type=submit]")
    assert "created and invitations sent" in page.text_content("p.notice")
    room_line = page.locator("li", has_text="Browser-made room")
    assert "!" in room_line.text_content()
    page.screenshot(path=str(world.stack.data_dir.parent / "line-page.png"), full_page=True)


def test_every_page_has_a_quick_exit_and_escape_leaves(page, world):
    for path in ("/login", "/join/whatever"):
        page.goto(path)
        assert page.get_attribute("#quick-exit", "href") == QUICK_EXIT_URL
    log_in(page)
    assert page.is_visible("#quick-exit")
    page.keyboard.press("Escape")
    page.wait_for_url(QUICK_EXIT_URL)
    assert "Weather" in page.content()
