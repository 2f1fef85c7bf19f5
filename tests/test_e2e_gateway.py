"""The client-API gateway in front of a real Synapse: what an outsider, a stranger and a copy of
Synapse's files can no longer learn, and room reports reaching the moderators."""

from __future__ import annotations

import ipaddress
import re
import secrets
import sqlite3
from urllib.parse import quote

import pytest

from crossline import secrets as secret_files
from crossline.gateway.tokens import synapse_token
from tests.conftest import ALICE, BELLA, issue_invitation, member_ids_on_page
from tests.contact_support import choose_who_may_invite, share_a_room
from tests.support import WebSession, login, matrix, register_like_element, wait_for

pytestmark = pytest.mark.synapse

CLIENT = "/_matrix/client/v3"


def _name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def _new_member(world, localpart: str, password: str) -> str:
    """An account registered in a Matrix client with an invitation; returns its access token."""
    code = issue_invitation(world.admin, world.line_id, world.side_ids["Left bank"]).rsplit("/", 1)[1]
    status, data = register_like_element(world.stack.homeserver_url, localpart, password, code)
    assert status == 200, data
    user_id = world.stack.user_id(localpart)
    wait_for(lambda: user_id in member_ids_on_page(world.admin.get(f"/lines/{world.line_id}")[1]),
             what=f"{localpart} to become a member")
    return login(world.stack.homeserver_url, localpart, password)


def test_an_outsider_cannot_tell_whether_a_name_has_an_account(world):
    hs, unknown = world.stack.homeserver_url, _name("nobody")
    for method, version in (("GET", "v3"), ("GET", "r0"), ("HEAD", "v3")):
        answers = [matrix(hs, method, f"/_matrix/client/{version}/register/available?username={name}")
                   for name in ("alice", unknown)]
        assert answers[0] == answers[1] and answers[0][0] == 200, (method, version, answers)

    for auth in (None, {"type": "m.login.registration_token", "token": "a guess"}, {"type": "m.login.dummy"}):
        answers = []
        for name in ("alice", unknown):
            body = {"username": name, "password": "some password 123"}
            if auth:
                session = matrix(hs, "POST", f"{CLIENT}/register", body=body)[1]["session"]
                body["auth"] = {**auth, "session": session}
            status, data = matrix(hs, "POST", f"{CLIENT}/register", body=body)
            answers.append((status, data.get("errcode"), sorted(data.get("completed", []))))
        assert answers[0] == answers[1] and answers[0][0] == 401, answers

    wrong = [matrix(hs, "POST", f"{CLIENT}/login", body={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": "wrong password"})
        for name in ("alice", unknown)]
    assert wrong[0] == wrong[1] and wrong[0][0] == 403, wrong
    profiles = [matrix(hs, "GET", f"{CLIENT}/profile/{quote(world.stack.user_id(name))}") for name in ("alice", unknown)]
    assert profiles[0][0] == profiles[1][0] == 401


def test_only_someone_holding_an_invitation_learns_that_a_name_is_taken(world):
    hs = world.stack.homeserver_url
    code = issue_invitation(world.admin, world.line_id, world.side_ids["Right bank"]).rsplit("/", 1)[1]
    status, data = register_like_element(hs, "alice", "another password 1", code)
    assert status == 400 and data["errcode"] == "M_USER_IN_USE", data
    # Learning it did not spend the invitation.
    status, data = register_like_element(hs, _name("alicia"), "another password 1", code)
    assert status == 200, data


def _upload_device(hs: str, token: str, user_id: str, device_id: str) -> dict:
    keys = {f"curve25519:{device_id}": "c" * 43, f"ed25519:{device_id}": "e" * 43}
    status, data = matrix(hs, "POST", f"{CLIENT}/keys/upload", token, {
        "device_keys": {"user_id": user_id, "device_id": device_id, "keys": keys,
                        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                        "signatures": {user_id: {f"ed25519:{device_id}": "s" * 86}}},
        "one_time_keys": {"signed_curve25519:AAAAAQ": {"key": "o" * 43,
                                                       "signatures": {user_id: {f"ed25519:{device_id}": "s" * 86}}}}})
    assert status == 200, data
    return data["one_time_key_counts"]


def test_a_stranger_learns_nothing_about_a_members_devices(world):
    stack, hs = world.stack, world.stack.homeserver_url
    status, data = matrix(hs, "POST", f"{CLIENT}/login", body={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": ALICE[1],
        "initial_device_display_name": "Alice's secret phone"})
    assert status == 200, data
    alice, device = stack.user_id("alice"), data["device_id"]
    alice_token = data["access_token"]
    try:
        _a_stranger_sees_none_of(world, alice, alice_token, device)
    finally:
        # Its keys are made up: no later test should encrypt to this device.
        matrix(hs, "POST", f"{CLIENT}/logout", alice_token, {})


def _a_stranger_sees_none_of(world, alice: str, alice_token: str, device: str) -> None:
    stack, hs = world.stack, world.stack.homeserver_url
    assert _upload_device(hs, alice_token, alice, device) == {"signed_curve25519": 1}

    stranger = _new_member(world, _name("stella"), "stranger password 1")
    profiles = [matrix(hs, "GET", f"{CLIENT}/profile/{quote(user)}", stranger) for user in (alice, alice + "x")]
    assert profiles[0] == profiles[1] and profiles[0][0] == 403, "an account exists or not: the same answer"
    status, answer = matrix(hs, "POST", f"{CLIENT}/keys/query", stranger, {"device_keys": {alice: []}})
    assert status == 200 and not answer["device_keys"].get(alice), answer
    assert device not in str(answer) and "secret phone" not in str(answer) and alice not in str(answer)
    status, answer = matrix(hs, "POST", f"{CLIENT}/keys/claim", stranger,
                            {"one_time_keys": {alice: {device: "signed_curve25519"}}})
    assert status == 200 and not answer["one_time_keys"].get(alice), answer
    assert matrix(hs, "POST", f"{CLIENT}/keys/upload", alice_token, {})[1]["one_time_key_counts"] == \
        {"signed_curve25519": 1}, "the stranger's claim spent none of her one-time keys"

    # A new member, only invited to a room of Alice's, does not see her device yet (an invitation
    # makes nobody a peer); once she has joined, she does: end-to-end encryption can reach her.
    # (A new member: Bella may already share rooms with Alice from other tests.)
    ivy_name = _name("ivy")
    ivy = _new_member(world, ivy_name, "ivy's own password 1")
    choose_who_may_invite(world, ivy_name, "ivy's own password 1", "line")  # she shares no room with Alice
    status, room = matrix(hs, "POST", f"{CLIENT}/createRoom", alice_token, {"invite": [stack.user_id(ivy_name)]})
    assert status == 200, room
    status, answer = matrix(hs, "POST", f"{CLIENT}/keys/query", ivy, {"device_keys": {alice: []}})
    assert not answer["device_keys"].get(alice), answer
    assert matrix(hs, "POST", f"{CLIENT}/join/{quote(room['room_id'])}", ivy, {})[0] == 200
    status, answer = matrix(hs, "POST", f"{CLIENT}/keys/query", ivy, {"device_keys": {alice: []}})
    assert device in answer["device_keys"][alice], answer


def test_synapse_keeps_no_client_address(world):
    """Clients come from 127.0.0.1 here; Synapse must only ever see the gateway's pseudonyms."""
    stack, hs = world.stack, world.stack.homeserver_url
    token = login(hs, "alice", ALICE[1])
    device = matrix(hs, "GET", f"{CLIENT}/account/whoami", token)[1]["device_id"]
    # The gateway's own look-ups for this request (whose token is it) count as hers too.
    assert matrix(hs, "POST", f"{CLIENT}/keys/query", token, {"device_keys": {stack.user_id("bella"): []}})[0] == 200
    database = stack.data_dir / "synapse" / "homeserver.db"

    def alices_addresses() -> list[str]:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return [row[0] for row in db.execute("SELECT ip FROM user_ips WHERE user_id = ? AND device_id = ?",
                                                 (stack.user_id("alice"), device))]

    addresses = wait_for(alices_addresses, what="Synapse to record the device's address")
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("fd00::/8") for a in addresses), addresses
    matrix(hs, "POST", f"{CLIENT}/logout", token, {})


def test_synapse_holds_no_invitation_code_and_its_token_opens_nothing(world):
    stack, hs = world.stack, world.stack.homeserver_url
    staff_code = issue_invitation(world.admin, world.line_id, "", roles=("moderator",)).rsplit("/", 1)[1]
    code = issue_invitation(world.admin, world.line_id, world.side_ids["Left bank"]).rsplit("/", 1)[1]
    database = stack.data_dir / "synapse" / "homeserver.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        held = {row[0] for row in db.execute("SELECT token FROM registration_tokens")}
    assert staff_code not in held and code not in held
    key = secret_files.read_secret(stack.data_dir / "secrets", secret_files.REGISTRATION_TOKEN_KEY)
    staff_token = synapse_token(key, staff_code)
    assert staff_token in held

    # What Synapse holds is no invitation: not in a Matrix client, not on the hub's page.
    status, data = register_like_element(hs, _name("mallory"), "mallory password 1", staff_token)
    assert status == 401 and "m.login.registration_token" not in data.get("completed", []), data
    assert WebSession(stack.hub_url).get(f"/join/{staff_token}")[0] == 410
    validity = "/_matrix/client/v1/register/m.login.registration_token/validity?token="
    assert matrix(hs, "GET", validity + staff_token) == (200, {"valid": False})
    assert matrix(hs, "GET", validity + staff_code) == (200, {"valid": True})

    # The code itself works, and Synapse's log keeps neither it nor the sign-up.
    localpart = _name("logan")
    status, data = register_like_element(hs, localpart, "logan password 12", code)
    assert status == 200, data
    login(hs, localpart, "logan password 12")
    log = (stack.data_dir / "synapse" / "homeserver.log").read_text(encoding="utf-8", errors="replace")
    for secret in (code, synapse_token(key, code), staff_code, staff_token):
        assert secret not in log
    assert stack.user_id(localpart) not in log and localpart not in log
    assert "Auth completed" not in log


def _room_cases(admin: WebSession, room_id: str) -> list[str]:
    queue = admin.get("/moderation")[1]
    links = re.findall(r'<tr[^>]*><td><a href="(/moderation/cases/\d+)">[^\n]*?<td>matrix_room</td>', queue)
    return [link for link in links if room_id in admin.get(link)[1]]


@pytest.mark.parametrize("version", ["v3", "unstable/org.matrix.msc4151"])
def test_decline_and_report_reaches_the_moderators_once(world, version):
    stack, hs = world.stack, world.stack.homeserver_url
    inviter_name = _name("ivan")
    inviter = _new_member(world, inviter_name, "inviter password 1")
    bella = login(hs, "bella", BELLA[1])
    share_a_room(world, {stack.user_id(inviter_name): inviter, stack.user_id("bella"): bella})  # he may invite her
    status, room = matrix(hs, "POST", f"{CLIENT}/createRoom", inviter, {"invite": [stack.user_id("bella")]})
    assert status == 200, room
    room_id = room["room_id"]
    # Element's "Decline and report": report the room, then leave it. A second click changes nothing.
    for _ in range(2):
        status, data = matrix(hs, "POST", f"/_matrix/client/{version}/rooms/{quote(room_id)}/report", bella,
                              {"reason": "Threatening invitation"})
        assert status == 200, data
    assert matrix(hs, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", bella, {})[0] == 200

    cases = wait_for(lambda: _room_cases(world.admin, room_id), what="the room report in the moderation queue")
    assert len(cases) == 1, cases
    case_page = world.admin.get(cases[0])[1]
    assert "Threatening invitation" in case_page and "<th>Reporter</th><td>a member" in case_page
    assert f"<code>{stack.user_id(inviter_name)}</code>" in case_page, "the case names who invited her"


def test_synapses_admin_api_answers_only_on_its_socket(world):
    """From outside, the admin API does not exist; the hub (and these tests) use Synapse's socket."""
    stack = world.stack
    admin = secret_files.read_secret(stack.data_dir / "secrets", secret_files.HUB_ADMIN_ACCESS_TOKEN)
    for path in ("/_synapse/admin/v1/register", "/_synapse/admin/v1/server_version", "/_synapse/%61dmin/v1/register"):
        assert matrix(stack.homeserver_url, "GET", path, admin)[0] == 404, path
    status, data = matrix(stack.synapse_socket, "GET", "/_synapse/admin/v1/register")
    assert status == 200 and data.get("nonce")


def test_wrong_passwords_from_elsewhere_never_lock_a_member_out(world):
    """Synapse's own failed-login limit is per account alone: six wrong passwords from anyone
    locked her out of Element and of the hub's pages. Now an attacker slows only herself."""
    stack, name, password = world.stack, _name("dina"), "dina's own password 1"
    code = issue_invitation(world.admin, world.line_id, world.side_ids["Left bank"]).rsplit("/", 1)[1]
    assert register_like_element(stack.homeserver_url, name, password, code)[0] == 200
    for attempt in range(8):
        status, _ = matrix(stack.homeserver_url, "POST", f"{CLIENT}/login", body={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": f"guess {attempt}"})
        assert status == 403
    # The attacker and she share this test's address, so only Synapse's per-account limit could
    # stop her, and it must not.
    assert login(stack.homeserver_url, name, password)


def test_no_spelling_of_a_filtered_request_reaches_synapse_unfiltered(world):
    """A '#' ended the path the gateway classified but not the one Synapse got; Synapse's web page
    for the token stage took its own stored token as typed."""
    import socket

    host, port = world.stack.homeserver_url.removeprefix("http://").split(":")
    body = b'{"username": "alice", "password": "some password 123"}'
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(b"POST /_matrix/client/v3/register# HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        answer = b"".join(iter(lambda: raw.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 400") and b"M_USER_IN_USE" not in answer
    session = matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/register", body={})[1]["session"]
    status, _ = matrix(world.stack.homeserver_url, "GET",
                       f"{CLIENT}/auth/m.login.registration_token/fallback/web?session={session}")
    assert status == 404


def test_a_password_stage_confirms_only_the_signed_in_owners_password(world):
    """Synapse's user-interactive auth checked any account's password for anyone and said whether it
    was right (an unlimited guessing oracle, and a way to tell who has an account)."""
    hs = world.stack.homeserver_url
    right = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": ALICE[0]}, "password": ALICE[1]}
    for path in (f"{CLIENT}/account/password", f"{CLIENT}/register"):
        status, data = matrix(hs, "POST", path, body={"new_password": "x" * 20, "auth": right})
        assert status == 403 and "completed" not in data, (path, data)
    stranger = login(hs, BELLA[0], BELLA[1])
    status, data = matrix(hs, "POST", f"{CLIENT}/delete_devices", stranger, {"devices": [], "auth": right})
    assert status == 403 and "completed" not in data
    # Her own: signed in, she confirms her password to sign out another of her devices.
    spare, own = login(hs, ALICE[0], ALICE[1]), login(hs, ALICE[0], ALICE[1])
    spare_device = matrix(hs, "GET", f"{CLIENT}/account/whoami", spare)[1]["device_id"]
    status, data = matrix(hs, "POST", f"{CLIENT}/delete_devices", own, {"devices": [spare_device], "auth": right})
    assert status == 200, data
    assert matrix(hs, "GET", f"{CLIENT}/account/whoami", spare)[0] == 401
