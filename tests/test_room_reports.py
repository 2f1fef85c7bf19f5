"""Room reports (Element's "Report room", "Decline and report") as the gateway hands them over."""

from __future__ import annotations

from crossline.domain.moderation import CaseStatus
from crossline.services import moderation
from crossline.storage import audit
from crossline.storage import moderation as store

ROOM = "!threats:crossline.local"


async def test_a_room_report_becomes_one_case_naming_who_invited_her(hub):
    hub.homeserver.member_events = {(ROOM, "@nina:crossline.local"): {
        "sender": "@menace:crossline.local", "content": {"membership": "invite"}}}
    case_id = await moderation.take_in_room_report(hub, "@nina:crossline.local", ROOM, "He threatens my family")
    assert case_id is not None
    with hub.engine.connect() as conn:
        cases = store.queue(conn)
    assert [(c.id, c.source, c.room_id, c.reported_user) for c in cases] == \
        [(case_id, "matrix_room", ROOM, "@menace:crossline.local")]
    assert moderation.unseal(hub, cases[0].reason_sealed) == b"He threatens my family"
    notices = notices_to(hub, "@nina:crossline.local")
    assert len(notices) == 1 and f"case {case_id}" in notices[0] and "threatens" not in notices[0]


def notices_to(hub, user_id: str) -> list[str]:
    return [text for kind, to, text in hub.homeserver.calls if kind == "notice" and to == user_id]


def room_reports(hub, case_id: int) -> list[bytes]:
    with hub.engine.connect() as conn:
        return [moderation.unseal(hub, sealed) for _, kind, _, sealed, _ in store.list_evidence(conn, case_id)
                if kind == "room_report"]


def audit_kinds(hub, case_id: int) -> list[str]:
    with hub.engine.connect() as conn:
        return [entry["kind"] for _, entry, *_ in audit.entries(conn, case_id)]


async def test_reporting_the_room_again_adds_to_her_open_case(hub):
    nina = "@nina:crossline.local"
    case_id = await moderation.take_in_room_report(hub, nina, ROOM, "He threatens my family")
    assert await moderation.take_in_room_report(hub, nina, ROOM, "Now he posts our address") == case_id
    assert await moderation.take_in_room_report(hub, nina, ROOM, "") == case_id
    with hub.engine.connect() as conn:
        assert [c.id for c in store.queue(conn)] == [case_id]
        sealed = [sealed for _, _, _, sealed, _ in store.list_evidence(conn, case_id)]
    assert room_reports(hub, case_id) == [b"Now he posts our address", b"(no reason given)"]
    assert all(b"address" not in blob for blob in sealed)  # stored sealed
    assert audit_kinds(hub, case_id) == ["report_received", "report_added", "report_added"]
    notices = notices_to(hub, nina)
    assert len(notices) == 3 and all(f"case {case_id}" in text and "was added" in text for text in notices[1:])
    assert not any("address" in text for text in notices)
    # The same words again (a second click) are recorded in the audit log, not stored twice.
    for again in ("He threatens my family", "Now he posts our address", ""):
        assert await moderation.take_in_room_report(hub, nina, ROOM, again) == case_id
    assert len(room_reports(hub, case_id)) == 2
    assert audit_kinds(hub, case_id)[3:] == ["report_repeated"] * 3
    assert "already holds what you reported" in notices_to(hub, nina)[-1]


async def test_once_her_case_is_finished_a_new_report_opens_a_new_case(hub):
    nina = "@nina:crossline.local"
    for finished in (CaseStatus.DECIDED, CaseStatus.CLOSED):
        first = await moderation.take_in_room_report(hub, nina, ROOM, "first")
        with hub.engine.begin() as conn:
            store.set_status(conn, first, finished, hub.clock.now_ms())
        second = await moderation.take_in_room_report(hub, nina, ROOM, "It started again")
        assert second not in (None, first)
        assert await moderation.take_in_room_report(hub, nina, ROOM, "and again") == second
        assert room_reports(hub, first) == [] and room_reports(hub, second) == [b"and again"]
        with hub.engine.connect() as conn:
            assert moderation.unseal(hub, store.get_case(conn, second).reason_sealed) == b"It started again"
        assert "status" in notices_to(hub, nina)[-2]  # a new status link for the new case
        with hub.engine.begin() as conn:
            store.set_status(conn, second, finished, hub.clock.now_ms())


async def test_repeated_reports_cannot_grow_a_case_without_end(hub):
    nina = "@nina:crossline.local"
    case_id = await moderation.take_in_room_report(hub, nina, ROOM, "first")
    for number in range(moderation.MAX_ROOM_REPORT_ADDITIONS + 3):
        assert await moderation.take_in_room_report(hub, nina, ROOM, f"report {number}") == case_id
    assert len(room_reports(hub, case_id)) == moderation.MAX_ROOM_REPORT_ADDITIONS
    assert audit_kinds(hub, case_id).count("report_not_added") == 3
    assert "was not added" in notices_to(hub, nina)[-1] and "status link" in notices_to(hub, nina)[-1]


async def test_a_member_of_the_room_reports_the_room_itself(hub):
    case_id = await moderation.take_in_room_report(hub, "@nina:crossline.local", ROOM, "")
    with hub.engine.connect() as conn:
        case = store.get_case(conn, case_id)
    assert case.reported_user is None and case.reason_sealed is None
    # Another reporter of the same room is another case.
    assert await moderation.take_in_room_report(hub, "@olga:crossline.local", ROOM, "") not in (None, case_id)
