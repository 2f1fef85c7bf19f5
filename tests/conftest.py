from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.fakes import make_unit_hub
from tests.support import HubStack, WebSession, register_like_element, wait_for

ADMIN = ("facilitator1", "admin password for tests")
ALICE = ("alice", "alice password for tests")  # left bank, registers in a Matrix client
BELLA = ("bella", "bella password for tests")  # right bank, registers on the hub's page


@pytest.fixture
def hub(tmp_path):
    """A unit-level hub: real SQLite, fake homeserver and clock."""
    return make_unit_hub(tmp_path)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> HubStack:
    """One real Synapse and hub for the whole run, started by the README's own `crossline up`."""
    stack = HubStack.start(tmp_path_factory.mktemp("hub") / "data")
    yield stack
    code = stack.stop()
    assert code == 0, "crossline up did not stop cleanly:\n" + "".join(stack.output)


@dataclass
class World:
    stack: HubStack
    admin: WebSession
    line_id: int
    side_ids: dict[str, int]
    room_id: str = ""


def issue_invitation(admin: WebSession, line_id: int, side_id: int | str, roles=("participant",)) -> str:
    fields = [("side_id", str(side_id)), *[("roles", role) for role in roles]]
    status, page = admin.submit(f"/lines/{line_id}", f"/lines/{line_id}/invitations", fields)
    assert status == 200, page
    return re.search(r'id="invitation-link" readonly value="([^"]+)"', page).group(1)


def member_ids_on_page(page: str) -> dict[str, int]:
    return {user: int(value) for value, user in re.findall(r'value="(\d+)">\s*<span dir="auto">(@[^<]+)</span>', page)}


@pytest.fixture(scope="session")
def world(stack: HubStack) -> World:
    """The first admin, the Nistru line, and Alice and Bella onboarded from opposite banks."""
    admin = WebSession(stack.hub_url)
    setup_path = stack.setup_link.removeprefix(stack.hub_url)
    status, _ = admin.submit(setup_path, setup_path,
                             {"username": ADMIN[0], "password": ADMIN[1], "password_again": ADMIN[1]})
    assert status == 200
    status, page, url = _create_line(admin)
    line_id = int(url.rsplit("/", 1)[1])
    side_ids = {name: int(value) for value, name in re.findall(r'<option value="(\d+)">([^<]+)</option>', page)}
    assert set(side_ids) == {"Left bank", "Right bank"}

    alice_link = issue_invitation(admin, line_id, side_ids["Left bank"])
    bella_link = issue_invitation(admin, line_id, side_ids["Right bank"])

    # Alice: any Matrix client, with the invitation code as registration token.
    status, data = register_like_element(stack.homeserver_url, ALICE[0], ALICE[1], alice_link.rsplit("/", 1)[1])
    assert status == 200, data
    # Bella: the hub's page registers the account for her.
    bella = WebSession(stack.hub_url)
    bella_path = bella_link.removeprefix(stack.hub_url)
    status, page = bella.submit(bella_path, bella_path,
                                {"username": BELLA[0], "password": BELLA[1], "password_again": BELLA[1]})
    assert status == 200 and "Your account is ready" in page, page

    def both_members() -> bool:
        members = member_ids_on_page(admin.get(f"/lines/{line_id}")[1])
        return stack.user_id("alice") in members and stack.user_id("bella") in members

    wait_for(both_members, what="Alice's Element registration to make her a member")
    return World(stack, admin, line_id, side_ids)


def _create_line(admin: WebSession):
    status, page = admin.get("/lines")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return admin.request("POST", "/lines", {"csrf_token": token, "name": "Nistru", "sides": "Left bank\nRight bank"})


def create_room(world: World, template: str, name: str, invite: list[str]) -> tuple[int, str, str]:
    """Create a room through the web page; returns (status, page, room id)."""
    path = f"/lines/{world.line_id}"
    ids = member_ids_on_page(world.admin.get(path)[1])
    fields = [("template", template), ("name", name), ("topic", "")] + [("member_ids", str(ids[user])) for user in invite]
    status, page = world.admin.submit(path, f"{path}/rooms", fields)
    match = re.search(rf'<span dir="auto">{re.escape(name)}</span> <span class="small">[^·]+· (![^<\s]+)</span>', page)
    return status, page, match.group(1) if match else ""
