"""Abuse reporting end to end: real Synapse, end-to-end-encrypted nio clients, real Chromium.

A member harasses another in an encrypted cross-line room; the target reports it through the
standard client report API (what Element's Report button does); the case appears once in the
queue; a moderator removes the message and bans him through the web pages in Chromium; he can no
longer send to the room; the ban is a policy rule in the policy room; the reporter is told.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from nio import RoomMessageText
from playwright.async_api import async_playwright

from tests.conftest import ADMIN, ALICE, issue_invitation, member_ids_on_page
from tests.support import matrix, register_like_element, wait_for
from tests.test_browser_staff_pages import CHROMIUM_ARGS
from tests.test_e2e_cross_line_room import clients_in_a_new_room, receive_text

pytestmark = [pytest.mark.synapse, pytest.mark.browser]

HARRY = ("harry", "harasser password 5521")


async def notices_for(client, timeout_s: float = 30, expect: str = "has been decided") -> list[str]:
    """Server notices (Synapse's notices room invites the account; joining shows them)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    texts: list[str] = []
    while loop.time() < deadline:
        response = await client.sync(timeout=1000, sync_filter={"room": {"timeline": {"limit": 50}}})
        for room_id in list(client.invited_rooms):
            await client.join(room_id)
        for room in getattr(response, "rooms", None).join.values() if hasattr(response, "rooms") else []:
            texts += [e.body for e in room.timeline.events if isinstance(e, RoomMessageText)]
        if any(expect in t for t in texts):
            return texts
    return texts


async def test_a_reported_harasser_is_removed_and_banned_by_moderators(world, tmp_path):
    stack = world.stack
    code = issue_invitation(world.admin, world.line_id, world.side_ids["Right bank"]).rsplit("/", 1)[1]
    status, data = register_like_element(stack.homeserver_url, HARRY[0], HARRY[1], code)
    assert status == 200, data
    harry_id = stack.user_id("harry")
    wait_for(lambda: harry_id in member_ids_on_page(world.admin.get(f"/lines/{world.line_id}")[1]),
             what="Harry to become a member")
    room_id, (alice, harry) = await clients_in_a_new_room(
        world, tmp_path, "cross-line-dialogue", f"Dialogue {secrets.token_hex(3)}", [ALICE, HARRY])
    try:
        insult = f"You are a traitor to your side {secrets.token_hex(4)}"
        sent = await harry.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": insult},
                                     ignore_unverified_devices=True)
        await receive_text(alice, room_id, insult)

        # Alice reports it as Element does.
        status, body = matrix(stack.homeserver_url, "POST", f"/_matrix/client/v3/rooms/{room_id}/report/{sent.event_id}",
                              alice.access_token, {"reason": "Harassment: he calls me a traitor"})
        assert status == 200, body

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                       args=CHROMIUM_ARGS)
            page = await (await browser.new_context(base_url=stack.hub_url)).new_page()
            await page.goto("/login")
            await page.fill("input[name=username]", ADMIN[0])
            await page.fill("input[name=password]", ADMIN[1])
            await page.click("button[type=submit]")
            await page.wait_for_url("**/lines")

            async def harrys_cases() -> list[str]:
                await page.goto("/moderation")
                rows = page.locator("#queue tr", has_text=harry_id)
                return [await rows.nth(i).locator("a").get_attribute("href") for i in range(await rows.count())]

            for _ in range(40):
                if await harrys_cases():
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(7)  # two more intake rounds: the same report must not come twice
            cases = await harrys_cases()
            assert len(cases) == 1, cases
            case_link = cases[0]

            await page.goto(case_link)
            assert "he calls me a traitor" in await page.text_content("#case-facts")
            assert harry_id in await page.text_content("#case-facts")
            await page.check("#decide-form input[value=redact]")
            await page.check("#decide-form input[value=ban_room]")
            await page.fill("#decide-form textarea[name=reason]", "Harassment of another member")
            await page.click("#decide-form button[type=submit]")
            outcome = await page.text_content("p.notice")
            assert "the message was removed" in outcome and "Ban from the room: done" in outcome, outcome
            assert await page.text_content("#case-status") == "decided"
            await page.goto("/moderation")
            policy_room = await page.text_content("#policy-room")
            await browser.close()

        # Harry is out: he can no longer send to the room.
        blocked = await harry.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "still here?"},
                                        ignore_unverified_devices=True)
        assert not getattr(blocked, "event_id", None), blocked
        # The message is redacted on the server.
        admin_token = (stack.data_dir / "secrets" / "hub_admin_access_token").read_text().strip()
        status, event = matrix(stack.homeserver_url, "GET", f"/_matrix/client/v3/rooms/{room_id}/event/{sent.event_id}",
                               alice.access_token)
        assert status == 200 and event.get("content") == {} and "redacted_because" in event.get("unsigned", {})
        # The ban is a policy rule Draupnir/Mjolnir can follow.
        status, state = matrix(stack.synapse_socket, "GET", f"/_synapse/admin/v1/rooms/{policy_room}/state", admin_token)
        # Rules a lift on appeal withdrew are empty (test_e2e_appeal.py, earlier in the same run).
        rules = [e["content"] for e in state["state"] if e["type"] == "m.policy.rule.user" and e["content"]]
        assert any(r["entity"] == harry_id and r["recommendation"] == "m.ban" for r in rules)
        # Alice hears the outcome, without the report's content.
        texts = await notices_for(alice)
        assert any("has been decided" in t and "Ban from the room" in t for t in texts), texts
        assert not any(insult in t for t in texts)
    finally:
        await alice.close()
        await harry.close()
