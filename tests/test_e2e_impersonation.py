"""No member can pass as someone else, against a real Synapse behind the hub's gateway (issue 26
items 1 and 2): each attempt is sent as a hostile member's client sends it, and the legitimate
action beside it still works."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import pytest
from nio import AsyncClient, ProfileSetDisplayNameError, ProfileSetDisplayNameResponse

from tests.conftest import ADMIN, create_room
from tests.support import login, matrix
from tests.test_e2e_gateway import _new_member

pytestmark = pytest.mark.synapse

CLIENT = "/_matrix/client/v3"
STAFF_NAME = "Natalia Cojocaru"
# The hub's own room, whose name and topic a member's room may not copy.
HUB_ROOM = "Nistru consultation: crossings"
CONSULTATION_NOTE = ("End-to-end encrypted. The Crossline hub bot is a member of this room and can read messages "
                     "here to run the consultation.")


@pytest.fixture(scope="module")
def staff(world):
    """The hub's first admin, a facilitator, under her own name."""
    token = login(world.stack.homeserver_url, ADMIN[0], ADMIN[1])
    status, data = _set_name(world, token, world.stack.user_id(ADMIN[0]), STAFF_NAME)
    assert status == 200, data
    return token


@pytest.fixture(scope="module")
def mallory(world):
    return _hostile_member(world)


@pytest.fixture
def maker(world):
    """A member of her own for each room test: Synapse lets one account create 10 rooms in a burst."""
    return _hostile_member(world)


def _hostile_member(world) -> tuple[str, str]:
    localpart = f"mallory{secrets.token_hex(3)}"
    return world.stack.user_id(localpart), _new_member(world, localpart, "mallory password 123")


def _set_name(world, token: str, user_id: str, name: str, version: str = "v3") -> tuple[int, dict]:
    return matrix(world.stack.homeserver_url, "PUT", f"/_matrix/client/{version}/profile/{quote(user_id)}/displayname",
                  token, {"displayname": name})


def _name_of(world, token: str, user_id: str) -> str | None:
    return matrix(world.stack.homeserver_url, "GET", f"{CLIENT}/profile/{quote(user_id)}/displayname", token)[1] \
        .get("displayname")


def _refused(answer: tuple[int, dict], says: str) -> None:
    status, data = answer
    assert status == 403 and data.get("errcode") == "M_FORBIDDEN" and says in data.get("error", ""), answer


@pytest.mark.parametrize(("name", "says"), [
    (STAFF_NAME, "the name of a staff member"),
    ("NATALIA COJOCARU", "the name of a staff member"),
    ("Nаtalia Cojocaru", "two alphabets"),  # Cyrillic а
    ("Natalia\u200bCojocaru", "U+200B"),
    ("\u202eNatalia Cojocaru", "U+202E"),
    ("Natalia Cojocaru\u2066", "U+2066"),
    ("Moderator", "'moderator'"),
    ("Facilitator", "'facilitator'"),
    ("Crossline notices", "'crossline'"),
    ("Модератор", "'модератор'"),
])
def test_a_member_cannot_take_a_staff_name_a_look_alike_or_a_reserved_word(world, staff, mallory, name, says):
    user_id, token = mallory
    before = _name_of(world, token, user_id)
    for version in ("v3", "r0"):
        _refused(_set_name(world, token, user_id, name, version), says)
    assert _name_of(world, token, user_id) == before  # nothing stored, nothing shown to others


def test_the_bots_name_is_hers_alone(world, staff, mallory):
    user_id, token = mallory
    bot = world.stack.user_id("crossline-bot")
    bot_name = _name_of(world, staff, bot) or "crossline-bot"
    status, data = _set_name(world, token, user_id, bot_name)
    assert status == 403, (bot_name, data)


def test_a_member_renames_herself_and_the_facilitator_keeps_her_name(world, staff, mallory):
    user_id, token = mallory
    assert _set_name(world, token, user_id, "Dana Rusu")[0] == 200
    assert _name_of(world, token, user_id) == "Dana Rusu"
    assert _set_name(world, token, user_id, "Նունե Սարգսյան")[0] == 200  # her name in her own script
    staff_id = world.stack.user_id(ADMIN[0])
    assert _set_name(world, staff, staff_id, STAFF_NAME)[0] == 200
    assert _name_of(world, staff, staff_id) == STAFF_NAME


async def test_element_like_clients_see_the_refusal(world, staff, mallory):
    user_id, token = mallory
    client = AsyncClient(world.stack.homeserver_url, user_id)
    client.access_token, client.user_id = token, user_id
    try:
        refused = await client.set_displayname("Natalia Cojocaru\u200d")
        assert isinstance(refused, ProfileSetDisplayNameError) and "invisible" in refused.message, refused
        accepted = await client.set_displayname("Olesea Ceban")
        assert isinstance(accepted, ProfileSetDisplayNameResponse), accepted
    finally:
        await client.close()


def _room(world, token: str, **request) -> tuple[int, dict]:
    return matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/createRoom", token, {"preset": "private_chat", **request})


def test_a_per_room_name_cannot_pass_as_staff(world, staff, maker):
    user_id, token = maker
    status, data = _room(world, token, name="Knitting circle")  # an ordinary room still works
    assert status == 200, data
    room_id = data["room_id"]
    path = f"{CLIENT}/rooms/{room_id}/state/m.room.member/{quote(user_id)}"
    for name in (STAFF_NAME, "Moderator"):
        status, data = matrix(world.stack.homeserver_url, "PUT", path, token, {"membership": "join", "displayname": name})
        assert status == 403 and data["errcode"] == "M_FORBIDDEN", (name, data)
    joined = matrix(world.stack.homeserver_url, "GET", f"{CLIENT}/rooms/{room_id}/joined_members", token)[1]["joined"]
    assert joined[user_id].get("display_name") not in (STAFF_NAME, "Moderator")


def test_a_member_cannot_make_a_look_alike_of_a_hub_room(world, staff, maker):
    _, token = maker
    status, page, _ = create_room(world, "cross-line-dialogue", HUB_ROOM, [])
    assert status == 200, page
    for request, says in (
        ({"name": HUB_ROOM}, "one of the hub's rooms"),
        ({"name": "Nistru consultatіon: crossings"}, "two alphabets"),  # Cyrillic і
        ({"name": "NISTRU consu1tation - crossings"}, "one of the hub's rooms"),
        ({"name": "Crossline notices"}, "'crossline'"),
        ({"name": "Moderators"}, "'moderator'"),
        ({"name": "Tea", "topic": CONSULTATION_NOTE}, "one of the hub's rooms"),
        ({"name": "Tea", "topic": f"Nistru — {CONSULTATION_NOTE}"}, "one of the hub's rooms"),
    ):
        _refused(_room(world, token, **request), says)
    status, data = _room(world, token, name="Book club", topic="Wednesdays at six")
    assert status == 200, data
    room_id = data["room_id"]
    base = f"{CLIENT}/rooms/{room_id}/state"
    hs = world.stack.homeserver_url
    _refused(matrix(hs, "PUT", f"{base}/m.room.name/", token, {"name": HUB_ROOM}), "one of the hub's rooms")
    _refused(matrix(hs, "PUT", f"{base}/m.room.topic/", token, {"topic": CONSULTATION_NOTE}), "one of the hub's rooms")
    assert matrix(hs, "PUT", f"{base}/m.room.name/", token, {"name": "Book club (autumn)"})[0] == 200


def test_members_have_no_room_addresses(world, staff, maker):
    _, token = maker
    hs, server = world.stack.homeserver_url, world.stack.user_id("x").split(":", 1)[1]
    _refused(_room(world, token, name="Notices", room_alias_name="crossline-notices"), "")
    status, data = _room(world, token, name="Garden")
    assert status == 200, data
    room_id = data["room_id"]
    for alias in ("#crossline-notices", "#consultation-nistru", "#moderators", "#crossline-help"):
        _refused(matrix(hs, "PUT", f"{CLIENT}/directory/room/{quote(f'{alias}:{server}')}", token,
                        {"room_id": room_id}), "Room addresses")
    _refused(matrix(hs, "PUT", f"{CLIENT}/rooms/{room_id}/state/m.room.canonical_alias/", token,
                    {"alias": f"#crossline-notices:{server}"}), "m.room.canonical_alias")


async def test_a_ban_reaches_rooms_the_hub_did_not_create(world, staff):
    """The hub's ban path (services.member_rooms) against the real Synapse and our module: in a room
    a member made, the hub's admin account takes power and bans; a room the banned person made
    himself is closed."""
    from types import SimpleNamespace

    from crossline import secrets as secret_files
    from crossline.clock import SystemClock
    from crossline.config import load_config
    from crossline.matrix.homeserver import Homeserver, synapse_session
    from crossline.services import member_rooms
    from crossline.storage.db import create_database_engine

    hs = world.stack.homeserver_url
    maker_id, maker_token = _hostile_member(world)
    harasser_id, harasser_token = _hostile_member(world)
    # A room a facilitator made in her client (not through the hub), and one the harasser made.
    status, data = _room(world, staff, name="Evening talk", invite=[harasser_id, maker_id])
    assert status == 200, data
    theirs = data["room_id"]
    assert matrix(hs, "POST", f"{CLIENT}/join/{quote(theirs)}", harasser_token, {})[0] == 200
    assert matrix(hs, "POST", f"{CLIENT}/join/{quote(theirs)}", maker_token, {})[0] == 200
    status, data = _room(world, harasser_token, name="Tea", invite=[maker_id])
    assert status == 200, data
    his = data["room_id"]
    assert matrix(hs, "POST", f"{CLIENT}/join/{quote(his)}", maker_token, {})[0] == 200

    config = load_config(world.stack.data_dir)
    admin_token = secret_files.read_secret(config.paths.secrets_dir, secret_files.HUB_ADMIN_ACCESS_TOKEN)
    async with synapse_session(config) as session:
        hub = SimpleNamespace(config=config, engine=create_database_engine(config.database_url), clock=SystemClock(),
                              homeserver=Homeserver(config.homeserver_url, session, admin_token=admin_token))
        assert await member_rooms.ban_from_member_rooms(hub, harasser_id, set()) == (1, 1)
        hub.engine.dispose()
    member = matrix(hs, "GET", f"{CLIENT}/rooms/{quote(theirs)}/state/m.room.member/{quote(harasser_id)}", staff)[1]
    assert member.get("membership") == "ban", member
    assert matrix(hs, "POST", f"{CLIENT}/join/{quote(theirs)}", harasser_token, {})[0] == 403
    # His own room: closed for everyone, nobody can join it again.
    rooms = matrix(hs, "GET", f"{CLIENT}/joined_rooms", maker_token)[1]["joined_rooms"]
    assert theirs in rooms and his not in rooms
    assert matrix(hs, "POST", f"{CLIENT}/join/{quote(his)}", maker_token, {})[0] == 403


def test_an_account_id_cannot_read_as_staff_or_the_hub(world, staff):
    from tests.conftest import issue_invitation
    from tests.support import register_like_element
    code = issue_invitation(world.admin, world.line_id, world.side_ids["Left bank"]).rsplit("/", 1)[1]
    for localpart, says in (("natalia.cojocaru", "a staff member"), ("crossline-support", "'crossline'"),
                            ("moderator2", "'moderator'")):
        status, data = register_like_element(world.stack.homeserver_url, localpart, "a password for tests 1", code)
        assert status == 400 and data.get("errcode") == "M_INVALID_USERNAME" and says in data["error"], data
    status, data = register_like_element(world.stack.homeserver_url, f"olesea{secrets.token_hex(2)}",
                                         "a password for tests 1", code)
    assert status == 200, data  # the same invitation, an ordinary name


def test_the_hubs_notices_still_reach_a_member(world, staff):
    """Synapse's notices account makes each member's 'Crossline notices' room: its words are the hub's."""
    from crossline import secrets as secret_files
    user_id, _ = _hostile_member(world)
    admin = secret_files.read_secret(world.stack.data_dir / "secrets", secret_files.HUB_ADMIN_ACCESS_TOKEN)
    status, data = matrix(world.stack.synapse_socket, "POST", "/_synapse/admin/v1/send_server_notice", admin,
                          {"user_id": user_id, "content": {"msgtype": "m.text", "body": "Case 1 was decided"}})
    assert status == 200, data


def test_a_custom_profile_field_carries_no_free_text(world, staff, mallory):
    """Synapse stores any namespaced profile field (MSC4133) and room peers read it: refused at the gateway."""
    user_id, token = mallory
    path = f"{CLIENT}/profile/{quote(user_id)}/m.tz"
    status, data = matrix(world.stack.homeserver_url, "PUT", path, token, {"m.tz": "We know who you talked to"})
    assert status == 403 and "display name only" in data["error"], data
    status, profile = matrix(world.stack.homeserver_url, "GET", f"{CLIENT}/profile/{quote(user_id)}", token)
    assert status == 200 and "m.tz" not in profile, profile
    assert _set_name(world, token, user_id, "Dana Rusu")[0] == 200, "her display name still changes"
