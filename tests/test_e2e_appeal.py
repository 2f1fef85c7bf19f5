"""An appeal no one decides twice, end to end against the real Synapse (issue 27).

Moderators A (left bank) and B (right bank) ban Hanna from every hub room and suspend her; she
appeals, signed in to the hub as herself; A and B each try to propose and to agree on the appeal
and are refused; C and D, who took no part, carry it with "Lift the decision", and Hanna is let
back: no longer suspended, invited again, and she joins the room she was banned from; the ban
rule in the policy list is withdrawn.
"""

from __future__ import annotations

import html
import re
import secrets
from urllib.parse import quote

import pytest

from tests.conftest import ALICE, create_room, issue_invitation, member_ids_on_page
from tests.support import WebSession, matrix, register_like_element, wait_for

pytestmark = [pytest.mark.synapse]

ADMIN_API = "/_synapse/admin"
CLIENT = "/_matrix/client/v3"


def moderator(world, name: str, side: str) -> tuple[str, WebSession]:
    """A moderator of one bank, registered on the hub's page and signed in."""
    stack = world.stack
    link = issue_invitation(world.admin, world.line_id, world.side_ids[side], roles=("moderator",))
    session = WebSession(stack.hub_url)
    path = link.removeprefix(stack.hub_url)
    password = f"{name} moderator password 4411"
    status, page = session.submit(path, path, {"username": name, "password": password, "password_again": password})
    assert status == 200, page
    return stack.user_id(name), signed_in(stack, name, password)


def signed_in(stack, username: str, password: str) -> WebSession:
    session = WebSession(stack.hub_url)
    status, page = session.submit("/login", "/login", {"username": username, "password": password})
    assert f'class="who" dir="auto">@{username}:' in page, (status, page)
    return session


def notices(stack, admin_token: str, user_id: str) -> list[str]:
    """What the server notices rooms hold for her, read with the admin API (not encrypted)."""
    status, data = matrix(stack.synapse_socket, "GET", f"{ADMIN_API}/v1/users/{quote(user_id)}/memberships",
                          admin_token)
    assert status == 200, data
    texts = []
    for room_id in data.get("memberships", {}):
        status, page = matrix(stack.synapse_socket, "GET",
                              f"{ADMIN_API}/v1/rooms/{quote(room_id)}/messages?dir=b&limit=100", admin_token)
        texts += [event["content"].get("body", "") for event in page.get("chunk", [])
                  if event.get("type") == "m.room.message"]
    return texts


def membership(stack, admin_token: str, user_id: str, room_id: str) -> str | None:
    data = matrix(stack.synapse_socket, "GET", f"{ADMIN_API}/v1/users/{quote(user_id)}/memberships", admin_token)[1]
    return data.get("memberships", {}).get(room_id)


def suspended(stack, admin_token: str, user_id: str) -> bool:
    status, data = matrix(stack.synapse_socket, "GET", f"{ADMIN_API}/v2/users/{quote(user_id)}", admin_token)
    assert status == 200, data
    return bool(data.get("suspended"))


def rule(stack, admin_token: str, session: WebSession, case: str) -> dict:
    """The content of the case's ban rule in the policy list room (empty once withdrawn)."""
    policy_room = html.unescape(re.search(r'id="policy-room">([^<]+)<', session.get("/moderation")[1]).group(1))
    status, state = matrix(stack.synapse_socket, "GET", f"{ADMIN_API}/v1/rooms/{quote(policy_room)}/state",
                           admin_token)
    assert status == 200, state
    key = f"crossline-case-{case.rsplit('/', 1)[1]}"
    return next(e["content"] for e in state["state"] if e["type"] == "m.policy.rule.user" and e["state_key"] == key)


def outcome(page: str) -> str:
    """The notice (an outcome) or the error a page shows, as text."""
    found = re.search(r'<p class="notice" role="status">(.*?)</p>', page, re.S) or re.search(
        r"<main[^>]*>(.*?)</main>", page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1) if found else page))


def test_the_first_deciders_are_refused_at_each_step_and_two_others_lift_the_decision(world):
    stack, tag = world.stack, secrets.token_hex(3)
    admin_token = (stack.data_dir / "secrets" / "hub_admin_access_token").read_text().strip()
    # Hanna, a member of the right bank, in a cross-line room.
    hanna, password = f"hanna{tag}", "hanna's password 9081"
    code = issue_invitation(world.admin, world.line_id, world.side_ids["Right bank"]).rsplit("/", 1)[1]
    status, registered = register_like_element(stack.homeserver_url, hanna, password, code)
    assert status == 200, registered
    hanna_id, hanna_token = stack.user_id(hanna), registered["access_token"]
    wait_for(lambda: hanna_id in member_ids_on_page(world.admin.get(f"/lines/{world.line_id}")[1]),
             what="Hanna to become a member")
    status, page, room_id = create_room(world, "cross-line-dialogue", f"Appeal room {tag}",
                                        [stack.user_id(ALICE[0]), hanna_id])
    assert status == 200 and room_id, page
    wait_for(lambda: membership(stack, admin_token, hanna_id, room_id) == "invite", what="Hanna's invitation")
    assert matrix(stack.homeserver_url, "POST", f"{CLIENT}/join/{quote(room_id)}", hanna_token, {})[0] == 200

    (a_id, a), (b_id, b) = moderator(world, f"amod{tag}", "Left bank"), moderator(world, f"bmod{tag}", "Right bank")
    (c_id, c), (d_id, d) = moderator(world, f"cmod{tag}", "Left bank"), moderator(world, f"dmod{tag}", "Right bank")

    # Alice reports her as Element does (a user report); the case reaches the queue.
    status, alice = matrix(stack.homeserver_url, "POST", f"{CLIENT}/login", body={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": ALICE[0]}, "password": ALICE[1]})
    assert status == 200, alice
    status, body = matrix(stack.homeserver_url, "POST", f"{CLIENT}/users/{quote(hanna_id)}/report",
                          alice["access_token"], {"reason": "She insulted me"})
    assert status == 200, body

    def case_path() -> str | None:
        rows = [row for row in re.findall(r"<tr[^>]*>(.*?)</tr>", a.get("/moderation")[1], re.S) if hanna_id in row]
        return re.search(r'href="(/moderation/cases/\d+)"', rows[0]).group(1) if rows else None

    case = wait_for(case_path, timeout_s=60, what="the report to reach the queue")

    # The first decision: A proposes a ban from every hub room and a suspension, B agrees.
    status, page = a.submit(case, f"{case}/decide", [("action", "ban_all"), ("action", "suspend"),
                                                      ("reason", "Repeated insults")])
    assert status == 200 and "waiting for a second moderator" in outcome(page), outcome(page)
    status, page = b.submit(case, f"{case}/agree", {})
    assert status == 200 and "the account is suspended" in outcome(page), outcome(page)
    assert membership(stack, admin_token, hanna_id, room_id) == "ban" and suspended(stack, admin_token, hanna_id)
    status, _ = matrix(stack.homeserver_url, "POST", f"{CLIENT}/join/{quote(room_id)}", hanna_token, {})
    assert status == 403
    assert rule(stack, admin_token, a, case)["entity"] == hanna_id

    # She appeals, signed in to the hub as herself, through the link in her server notice.
    link = wait_for(lambda: next((t for t in notices(stack, admin_token, hanna_id) if "/appeal/" in t), None),
                    timeout_s=60, what="the decision notice with her appeal link")
    appeal = "/appeal/" + link.split("/appeal/")[1].split()[0]
    status, page = signed_in(stack, hanna, password).submit(appeal, appeal, {"text": "I was quoting him"})
    assert status == 200, page
    assert re.search(r'id="case-status">appealed<', c.get(case)[1])

    # A and B took part: neither may propose the appeal's decision ...
    for first in (a, b):
        status, page = first.submit(case, f"{case}/decide", [("action", "lift"), ("reason", "Mine to undo")])
        assert status == 403 and "took part in the decision under appeal" in outcome(page), outcome(page)
    # ... the page names who took part and who may propose instead ...
    page = c.get(case)[1]
    assert f"{a_id}, {b_id}" in page or f"{b_id}, {a_id}" in page
    # ... C proposes (it waits for a second moderator), and neither A nor B may agree.
    status, page = c.submit(case, f"{case}/decide", [("action", "lift"), ("reason", "She was quoting him")])
    assert status == 200 and "waiting for a second moderator who took no part" in outcome(page), outcome(page)
    for first in (a, b):
        status, page = first.submit(case, f"{case}/agree", {})
        assert status == 403 and "took part in the decision under appeal" in outcome(page), outcome(page)
        assert d_id in outcome(page)  # who may agree instead
    assert membership(stack, admin_token, hanna_id, room_id) == "ban" and suspended(stack, admin_token, hanna_id)

    # D, of the other bank and no part in the decision, agrees: the decision is lifted.
    status, page = d.submit(case, f"{case}/agree", {})
    said = outcome(page)
    assert status == 200 and "no longer suspended" in said and "invited again to" in said, said
    assert re.search(r'id="case-status">closed<', page)
    assert not suspended(stack, admin_token, hanna_id)
    assert membership(stack, admin_token, hanna_id, room_id) == "invite"
    assert matrix(stack.homeserver_url, "POST", f"{CLIENT}/join/{quote(room_id)}", hanna_token, {})[0] == 200
    assert membership(stack, admin_token, hanna_id, room_id) == "join"
    assert rule(stack, admin_token, a, case) == {}  # withdrawn from the policy list
