"""Speaking time per side reaches the consultation's report as counts only, small sides hidden."""

from __future__ import annotations

from crossline.domain.consultations import Phase
from crossline.domain.live import LiveStatus
from crossline.reports.neutral import FSI, PDI
from crossline.reports.render import to_markdown
from crossline.services import consultations, reports
from crossline.storage import lines, live


def test_the_report_shows_speaking_time_per_side_and_hides_small_sides(hub):
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
    made = consultations.create(hub, hub.facilitator, 1, "Wells", [{"en": "Q"}], [left.id, right.id], False)
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.COLLECTING)
    consultations.seed_statement(hub, hub.facilitator, made.id, made.questions[0].id, "Repair the wells")
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.VOTING)
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.CLOSED)
    with hub.engine.begin() as conn:
        first = live.add_session(conn, "l1", 1, made.id, None, "Wells", LiveStatus.OPEN, None, hub.facilitator.id, 1)
        live.finish(conn, first.id, {"Left bank": (754, 6), "Right bank": (300, 2)}, 2)
        live.add_session(conn, "l2", 1, made.id, None, "Wells", LiveStatus.SCHEDULED, 99, hub.facilitator.id, 3)
    draft = reports.start_draft(hub, hub.facilitator, made.id)
    report = reports.content(hub, draft.id)
    assert report["live_sessions"] == [{"session": 1, "speaking_seconds_by_side": {"Left bank": 754,
                                                                                   "Right bank": None}}]
    assert any("Right bank" in note and "Live session 1" in note for note in report["suppressed"])
    text = to_markdown(report, "fp", "digest").replace(FSI, "").replace(PDI, "")  # names are isolated
    assert "Left bank: 12 min 34 s" in text and "Right bank: not shown (too few people)" in text
    assert "300" not in str(report["live_sessions"])


def test_a_report_without_live_sessions_is_unchanged(hub):
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
    made = consultations.create(hub, hub.facilitator, 1, "Roads", [{"en": "Q"}], [left.id, right.id], False)
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.COLLECTING)
    consultations.seed_statement(hub, hub.facilitator, made.id, made.questions[0].id, "Mend the roads")
    for phase in (Phase.VOTING, Phase.CLOSED):
        consultations.change_phase(hub, hub.facilitator, made.id, phase)
    assert "live_sessions" not in reports.content(hub, reports.start_draft(hub, hub.facilitator, made.id).id)
