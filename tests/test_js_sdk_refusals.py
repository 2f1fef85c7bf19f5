"""The hub's refusals as Element's users meet them: each action is sent by matrix-js-sdk (the SDK
Element is built on, tests/js/attempt.mjs) to the gateway's client URL, as Element would send it.
Each refusal must reach the SDK as a Matrix error with a code and a message that says what happened;
each legitimate action next to it must still work."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from crossline import secrets as secret_files
from tests.conftest import create_room
from tests.support import matrix, wait_for
from tests.test_e2e_gateway import _new_member
from tests.test_e2e_refusals import _register_outsider

pytestmark = pytest.mark.synapse

JS = Path(__file__).parent / "js"
CLIENT = "/_matrix/client/v3"


@dataclass
class Member:
    user_id: str
    token: str


def attempt(world, who: Member, action: str, **fields) -> dict:
    """`action` sent by matrix-js-sdk as `who`; its outcome, as the SDK reported it."""
    node = shutil.which("node")
    assert node, "Node is missing: ops/test installs Debian's nodejs and npm"
    assert (JS / "node_modules" / "matrix-js-sdk").is_dir(), "matrix-js-sdk is missing: ops/test runs npm ci in tests/js"
    request = {"base_url": world.stack.homeserver_url, "user_id": who.user_id, "access_token": who.token,
               "action": action, **fields}
    # The token goes on stdin: a command line is visible to every local user.
    result = subprocess.run([node, str(JS / "attempt.mjs")], input=json.dumps(request), capture_output=True,
                            text=True, timeout=120, cwd=JS)
    assert result.returncode == 0 and result.stdout.count("\n") == 1, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def assert_refused(outcome: dict, says: str, errcode: str = "M_FORBIDDEN") -> None:
    """Refused as a Matrix error the SDK understood: its code, and a message for the person."""
    assert outcome["ok"] is False, outcome
    assert outcome["errcode"] == errcode and outcome["status"] == 403, outcome
    assert says in outcome["error"], outcome


def assert_ok(outcome: dict) -> dict:
    assert outcome["ok"] is True, outcome
    return outcome["result"]


def _fresh(world, prefix: str) -> Member:
    localpart = f"{prefix}{secrets.token_hex(3)}"
    return Member(world.stack.user_id(localpart), _new_member(world, localpart, f"{localpart} password 1"))


@pytest.fixture(scope="module")
def jo(world) -> Member:
    """A member of the Nistru line's left bank who uses Element."""
    return _fresh(world, "jo")


@pytest.fixture(scope="module")
def kim(world, jo) -> Member:
    """Another left-bank member, who shares a room the facilitator made with Jo."""
    kim = _fresh(world, "kim")
    status, page, room_id = create_room(world, "cross-line-dialogue", f"Jo and Kim {secrets.token_hex(2)}",
                                        [jo.user_id, kim.user_id])
    assert status == 200 and room_id, page
    hs = world.stack.homeserver_url
    for member in (jo, kim):
        wait_for(lambda: matrix(hs, "POST", f"{CLIENT}/join/{room_id}", member.token, {})[0] == 200,
                 what=f"{member.user_id} to join the facilitator's room")
    return kim


@pytest.fixture(scope="module")
def jos_room(world, jo) -> str:
    """A room Jo made in Element with an ordinary name (the legitimate action)."""
    result = assert_ok(attempt(world, jo, "create_room", options={"name": "Tea on Sunday"}))
    return result["room_id"]


def test_a_member_creates_a_room_with_an_ordinary_name(world, jo, jos_room):
    hs = world.stack.homeserver_url
    state = matrix(hs, "GET", f"{CLIENT}/rooms/{jos_room}/state", jo.token)[1]
    by_type = {event["type"]: event["content"] for event in state}
    assert by_type["m.room.name"]["name"] == "Tea on Sunday"
    assert by_type["m.room.join_rules"]["join_rule"] == "invite"


@pytest.mark.parametrize(
    "options, says",
    [
        ({"name": "Open to all", "visibility": "public"}, "public room directory"),
        ({"name": "Open to all", "preset": "public_chat"}, "invite-only"),
        ({"name": "In clear", "initial_state": [
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "none"}}]},
         "must be end-to-end encrypted"),
    ],
)
def test_a_public_or_unencrypted_room_is_refused(world, jo, options, says):
    assert_refused(attempt(world, jo, "create_room", options=options), says)


def test_publishing_a_room_to_the_directory_is_refused(world, jo, jos_room):
    assert_refused(attempt(world, jo, "set_directory_visibility", room_id=jos_room, visibility="public"),
                   "cannot be published")


def test_inviting_an_account_the_hub_does_not_know_is_refused(world, jo, jos_room):
    stack = world.stack
    shared = secret_files.read_secret(stack.data_dir / "secrets", secret_files.REGISTRATION_SHARED_SECRET)
    localpart = f"outsider{secrets.token_hex(3)}"
    outsider = _register_outsider(stack.synapse_socket, shared, localpart, f"{localpart} password 1")
    assert_refused(attempt(world, jo, "invite", room_id=jos_room, user_id=outsider),
                   "not a member of this Crossline hub")


def test_a_member_invites_someone_she_shares_a_room_with(world, jo, kim):
    room_id = assert_ok(attempt(world, jo, "create_room", options={"name": "Kim and me"}))["room_id"]
    assert_ok(attempt(world, jo, "invite", room_id=room_id, user_id=kim.user_id))
    assert_ok(attempt(world, kim, "join", room_id=room_id))
