"""Bans reach the rooms members made (services.member_rooms), which the hub did not create and learns
from Synapse: on a real database with a recording homeserver."""

from __future__ import annotations

from crossline.services import moderation as service
from tests.test_moderation import HARASSER, matrix_case, mod  # noqa: F401 - the fixture

LURE = "!lure:crossline.local"  # a member's room he was invited to
HIS = "!his:crossline.local"  # a room he made: nobody outranks him there
NOTICES = "!notices:crossline.local"  # his server-notices room: the decision reaches him there


async def test_a_ban_from_every_room_reaches_the_rooms_members_made(mod):  # noqa: F811
    server = mod.homeserver
    server.room_members = {"!dialogue:crossline.local": {HARASSER}, LURE: {HARASSER, "@olga:crossline.local"},
                           HIS: {HARASSER, "@alice:crossline.local"}, NOTICES: {HARASSER}}
    server.room_creators = {LURE: "@olga:crossline.local", HIS: HARASSER, NOTICES: "@crossline-notices:crossline.local"}
    server.room_levels = {LURE: {"@olga:crossline.local": 100}, HIS: {HARASSER: 100, "@alice:crossline.local": 50}}
    case_id = await matrix_case(mod)
    await service.decide(mod, mod.mods["mona"], case_id, ["ban_all"], "Repeated harassment")
    outcome = await service.agree(mod, mod.mods["rita"], case_id)
    assert "banned from 2 hub rooms and 1 rooms members made" in outcome and "1 rooms the person made were closed" in outcome
    bans = {c[1] for c in server.calls if c[0] == "ban"}
    assert bans == {"!dialogue:crossline.local", "!other:crossline.local", LURE}
    assert ("make_room_admin", LURE) in server.calls and ("close_room", HIS) in server.calls
    assert not [c for c in server.calls if NOTICES in c]  # he still hears the decision and can appeal


async def test_a_ban_from_one_room_works_in_a_room_a_member_made(mod):  # noqa: F811
    server = mod.homeserver
    server.matrix_reports["event_reports"].append(
        {"id": 1, "room_id": LURE, "event_id": "$abuse", "user_id": "@olga:crossline.local", "sender": HARASSER,
         "reason": "He lured us here"})
    (case_id,) = await service.take_in_matrix_reports(mod)
    outcome = await service.decide(mod, mod.mods["mona"], case_id, ["ban_room"], "Harassment")
    assert "done in the room" in outcome, outcome
    assert ("make_room_admin", LURE) in server.calls and ("ban", LURE, HARASSER) in server.calls


def test_only_a_person_nobody_outranks_has_her_room_closed():
    from crossline.services.member_rooms import outranks_everyone
    assert outranks_everyone("@h:x", "@h:x", {"@h:x": 100, "@a:x": 50})
    assert outranks_everyone("@h:x", "@h:x", {"@a:x": 100})  # version 12: the creator is above every level
    assert not outranks_everyone("@h:x", "@o:x", {"@h:x": 50, "@o:x": 100})
    assert not outranks_everyone("@h:x", "@o:x", {"@o:x": 100})
