"""Room reports (Element's "Report room", "Decline and report") as the gateway hands them over."""

from __future__ import annotations

from crossline.services import moderation
from crossline.storage import moderation as store

ROOM = "!threats:crossline.local"


async def test_a_room_report_becomes_one_case_naming_who_invited_her(hub):
    hub.homeserver.member_events = {(ROOM, "@nina:crossline.local"): {
        "sender": "@menace:crossline.local", "content": {"membership": "invite"}}}
    case_id = await moderation.take_in_room_report(hub, "@nina:crossline.local", ROOM, "He threatens my family")
    assert case_id is not None
    assert await moderation.take_in_room_report(hub, "@nina:crossline.local", ROOM, "again") is None
    with hub.engine.connect() as conn:
        cases = store.queue(conn)
    assert [(c.id, c.source, c.room_id, c.reported_user) for c in cases] == \
        [(case_id, "matrix_room", ROOM, "@menace:crossline.local")]
    assert moderation.unseal(hub, cases[0].reason_sealed) == b"He threatens my family"
    notices = [call for call in hub.homeserver.calls if call[0] == "notice"]
    assert len(notices) == 1 and f"case {case_id}" in notices[0][2] and "threatens" not in notices[0][2]


async def test_a_member_of_the_room_reports_the_room_itself(hub):
    case_id = await moderation.take_in_room_report(hub, "@nina:crossline.local", ROOM, "")
    with hub.engine.connect() as conn:
        case = store.get_case(conn, case_id)
    assert case.reported_user is None and case.reason_sealed is None
    # Another reporter of the same room is another case.
    assert await moderation.take_in_room_report(hub, "@olga:crossline.local", ROOM, "") not in (None, case_id)
