"""Moderation service rules, on a real database with a recording homeserver (unit level; the whole
path against Synapse and Chromium is in test_e2e_moderation.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from crossline.cli import main
from crossline.domain.consultations import Phase
from crossline.errors import InvalidInput, NotAllowed, NotFound
from crossline.services import consultations
from crossline.services import moderation as service
from crossline.services import pseudonym_pool
from crossline.services import pseudonyms as pseudonym_service
from crossline.storage import members, rooms
from tests.pictures_support import tiny_png

PNG = tiny_png()  # a real picture: every accepted one is decoded and re-encoded
HARASSER = "@harasser:crossline.local"


@pytest.fixture
def mod(hub):
    """Three moderators: two on the left bank, one on the right; a room made by the facilitator."""
    with hub.engine.begin() as conn:
        line = conn.execute(text("select id from lines")).scalar()
        left, right = [r[0] for r in conn.execute(text("select id from sides order by id"))]
        ids = {name: members.add_member(conn, f"@{name}:crossline.local", line, side, frozenset({"moderator"}), None, 0)
               for name, side in (("mona", left), ("lena", left), ("rita", right))}
        rooms.add_room(conn, "!dialogue:crossline.local", line, "cross-line-dialogue", "Dialogue", hub.facilitator.id, 0)
        rooms.add_room(conn, "!other:crossline.local", line, "consultation", "Other", hub.facilitator.id, 0)
        hub.mods = {name: members.get_member(conn, member_id) for name, member_id in ids.items()}
    return hub


async def matrix_case(hub, reason="He keeps calling me a traitor") -> int:
    hub.homeserver.matrix_reports["event_reports"].append(
        {"id": len(hub.homeserver.matrix_reports["event_reports"]) + 1, "room_id": "!dialogue:crossline.local",
         "event_id": "$abuse", "user_id": "@alice:crossline.local", "sender": HARASSER, "reason": reason})
    (case_id,) = await service.take_in_matrix_reports(hub)
    return case_id


async def test_matrix_reports_are_taken_in_once_and_the_reporter_is_told(mod):
    case_id = await matrix_case(mod)
    assert await service.take_in_matrix_reports(mod) == []  # read again: no second case
    assert len(service.queue(mod, mod.mods["mona"])) == 1
    assert ("notice", "@alice:crossline.local") == mod.homeserver.calls[-1][:2]
    notice = mod.homeserver.calls[-1][2]
    assert f"case {case_id}" in notice and "traitor" not in notice
    # Her private link lets her add what she saw in the encrypted room, and decide about action.
    token = notice.split("/report/status/")[1]
    service.add_from_reporter(mod, token, "He wrote: you are a traitor", [PNG], wants_action=False)
    view = service.view(mod, mod.mods["mona"], case_id)
    assert [kind for _, kind, _, _, _ in view.evidence] == ["reporter_supplied", "reporter_supplied"]
    assert view.evidence[0][3] == b"He wrote: you are a traitor" and not view.case.reporter_wants_action
    # Her choice holds: moderators can record the case but not act on it.
    with pytest.raises(NotAllowed, match="record only"):
        await service.decide(mod, mod.mods["mona"], case_id, ["ban_room"], "Harassment")
    assert "No action" in await service.decide(mod, mod.mods["mona"], case_id, ["dismiss"], "Recorded as she asked")


async def test_one_moderator_alone_cannot_ban_from_every_room(mod):
    case_id = await matrix_case(mod)
    outcome = await service.decide(mod, mod.mods["mona"], case_id, ["ban_all"], "Repeated harassment")
    assert "waiting for a second moderator" in outcome
    assert not [c for c in mod.homeserver.calls if c[0] == "ban"]
    with pytest.raises(NotAllowed, match="proposed this action yourself"):
        await service.agree(mod, mod.mods["mona"], case_id)
    with pytest.raises(NotAllowed, match="another side"):
        await service.agree(mod, mod.mods["lena"], case_id)  # same side as Mona
    assert "banned from 2 hub rooms" in await service.agree(mod, mod.mods["rita"], case_id)
    bans = [c for c in mod.homeserver.calls if c[0] == "ban"]
    assert {c[1] for c in bans} == {"!dialogue:crossline.local", "!other:crossline.local"}
    assert ("state", "!policy:crossline.local", "m.policy.rule.user", HARASSER, "m.ban") in mod.homeserver.calls
    notices = [c for c in mod.homeserver.calls if c[0] == "notice"]
    assert any(c[1] == "@alice:crossline.local" and "decided" in c[2] for c in notices)
    appeal_link = next(c[2] for c in notices if c[1] == HARASSER).split("/appeal/")[1]

    # Only the harasser himself, signed in, can appeal: his link alone (it travels in a notice
    # Synapse stores in clear) cannot spend his one appeal, nor can anyone else signed in.
    with mod.engine.begin() as conn:
        harasser = members.get_member(conn, members.add_member(conn, HARASSER, None, None, frozenset({"participant"}),
                                                               None, 0))
    with pytest.raises(NotAllowed, match="Sign in"):
        service.appeal(mod, None, appeal_link, "Someone else's words")
    with pytest.raises(NotAllowed, match="concerns"):
        service.appeal(mod, mod.mods["lena"], appeal_link, "Someone else's words")
    # He appeals; only moderators who had no part in the decision may decide it, in either step
    # (tests/test_appeals.py has every combination).
    service.appeal(mod, harasser, appeal_link, "It was a misunderstanding")
    for first in ("mona", "rita"):
        with pytest.raises(NotAllowed, match="took part in the decision under appeal"):
            await service.decide(mod, mod.mods[first], case_id, ["dismiss"], "Upheld")
    assert "waiting for a second" in await service.decide(mod, mod.mods["lena"], case_id, ["dismiss"], "The ban stands")
    for first in ("mona", "rita"):
        with pytest.raises(NotAllowed, match="took part in the decision under appeal"):
            await service.agree(mod, mod.mods[first], case_id)


async def test_a_warning_reason_never_travels_in_a_notice_she_reads_it_signed_in(mod):
    """Server-notice rooms are stored in clear by Synapse: the moderators' words stay in the hub."""
    case_id = await matrix_case(mod)
    reason = "You insulted her family three times in the dialogue room"
    assert "will be told" in await service.decide(mod, mod.mods["mona"], case_id, ["warn"], reason)
    to_him = [c[2] for c in mod.homeserver.calls if c[:2] == ("notice", HARASSER)]
    assert len(to_him) == 1 and "Warn the person" in to_him[0] and "/appeal/" in to_him[0]
    assert not any("insulted" in str(call) for call in mod.homeserver.calls)
    token = to_him[0].split("/appeal/")[1]
    with mod.engine.begin() as conn:
        harasser = members.get_member(conn, members.add_member(conn, HARASSER, None, None, frozenset({"participant"}),
                                                               None, 0))
    assert service.decision_view(mod, None, token).decisions == []  # the link alone shows no reason
    assert service.decision_view(mod, mod.mods["lena"], token).decisions == []
    view = service.decision_view(mod, harasser, token)
    assert view.signed_in_as_her and view.may_appeal and view.decisions == [("Warn the person", reason)]


async def test_redacting_needs_a_message_and_a_reason(mod):
    case = service.report_from_web(mod, "threats", "Someone wrote that they know where I live", "", [])
    with pytest.raises(InvalidInput, match="no message"):
        await service.decide(mod, mod.mods["mona"], case.case_id, ["redact"], "Threat")
    case_id = await matrix_case(mod)
    with pytest.raises(InvalidInput, match="reason"):
        await service.decide(mod, mod.mods["mona"], case_id, ["redact"], "   ")
    assert "removed" in await service.decide(mod, mod.mods["mona"], case_id, ["redact"], "A threat")
    assert ("redact", "!dialogue:crossline.local", "$abuse") in mod.homeserver.calls


def test_web_reports_are_sealed_at_rest_and_open_for_moderators(mod):
    secret = "He posted my home address in the chat"
    new = service.report_from_web(mod, "doxing", secret, "signal: +37300000000", [PNG])
    database = (mod.config.paths.hub_database).read_bytes()
    wal = mod.config.paths.hub_database.with_name("hub.sqlite3-wal")
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    assert secret.encode() not in stored and b"37300000000" not in stored
    view = service.view(mod, mod.mods["mona"], new.case_id)
    assert view.case.urgent  # doxing is urgent by default
    assert view.evidence[0][3].decode() == secret and view.contact == "signal: +37300000000"
    assert service.evidence_image(mod, mod.mods["mona"], new.case_id, view.evidence[1][0]) == \
        service.check_images([PNG])[0]  # as stored: re-encoded
    with pytest.raises(NotAllowed):
        service.view(mod, mod.facilitator, new.case_id)  # moderators only
    assert any("Moldova" in s["name"] for s in service.support_services(mod, "md"))
    (mod.config.data_dir / "support_services.toml").write_text('[[MD]]\nname = "Our own line"\nreach = "123"\n')
    assert [s["name"] for s in service.support_services(mod, "MD")] == ["Our own line"]


def test_bad_web_reports_say_what_to_fix_and_store_nothing(mod):
    for args, message in (
        (("harassment", "  ", "", []), "Write what happened"),
        (("harassment", "x" * 5001, "", []), "too long"),
        (("nonsense", "What happened", "", []), "listed kinds"),
        (("harassment", "What happened", "", [b"GIF89a"]), "PNG, JPEG or WebP"),
        (("harassment", "What happened", "", [PNG] * 4), "At most 3"),
        (("harassment", "What happened", "", [PNG + b"\x00" * (5 * 1024 * 1024)]), "too large"),
    ):
        with pytest.raises(InvalidInput, match=message):
            service.report_from_web(mod, *args)
    assert service.queue(mod, mod.mods["mona"]) == []


async def test_the_audit_log_verifies_and_names_an_edited_entry(mod, capsys):
    case_id = await matrix_case(mod)
    await service.decide(mod, mod.mods["mona"], case_id, ["warn"], "Please stop")
    count, broken = service.verify_audit(mod)
    assert count >= 3 and broken is None
    assert main(["audit", "verify", "--data-dir", str(mod.config.data_dir)]) == 0
    with mod.engine.begin() as conn:
        conn.execute(text("update audit_log set actor = 'member:999' where seq = 2"))
    assert service.verify_audit(mod)[1] == "entry 2 was changed after it was written (its content no longer " \
                                           "matches its hash)"
    assert main(["audit", "verify", "--data-dir", str(mod.config.data_dir)]) == 1
    assert "entry 2" in capsys.readouterr().err
    with mod.engine.begin() as conn:
        conn.execute(text("delete from audit_log where seq = 1"))
    assert service.verify_audit(mod)[1].startswith("entry 1 is missing at the start")


async def test_closed_cases_are_deleted_after_the_retention_period(mod):
    case_id = await matrix_case(mod)
    await service.decide(mod, mod.mods["mona"], case_id, ["dismiss"], "Not abuse")
    assert service.apply_retention(mod) == []
    mod.clock.now += (mod.config.moderation.report_retention_days + 1) * 86_400_000
    assert service.apply_retention(mod) == [case_id]
    assert service.queue(mod, mod.mods["mona"]) == [] and service.verify_audit(mod)[1] is None


async def test_a_moderator_never_sees_or_decides_a_case_about_herself(mod):
    mona, lena, rita = mod.mods["mona"], mod.mods["lena"], mod.mods["rita"]
    mod.homeserver.matrix_reports["user_reports"].append(
        {"id": 1, "user_id": "@alice:crossline.local", "target_user_id": mona.matrix_user_id,
         "reason": "She threatened me; reach me on signal +37311111111"})
    (case_id,) = await service.take_in_matrix_reports(mod)
    other_case = await matrix_case(mod)
    service.add_from_reporter(mod, _status_token(mod, case_id), "A screenshot", [PNG], wants_action=None)
    image_id = service.view(mod, lena, case_id).evidence[-1][0]

    assert [c.id for c in service.queue(mod, mona)] == [other_case]
    assert {c.id for c in service.queue(mod, lena)} == {case_id, other_case}
    # Every way in answers as for a case that does not exist: she cannot even tell there is one.
    refusals = [
        lambda: service.view(mod, mona, case_id),
        lambda: service.evidence_image(mod, mona, case_id, image_id),
        lambda: service.triage(mod, mona, case_id, "threats", True),
        lambda: pseudonym_service.unmasking_requests(mod, mona, case_id),
        lambda: pseudonym_service.request_unmasking(mod, mona, case_id, "@p-x:crossline.local", "Needed"),
    ]
    for refused in refusals:
        with pytest.raises(NotFound, match="no such case"):
            refused()
    with pytest.raises(NotFound, match="no such case"):
        await service.decide(mod, mona, case_id, ["dismiss"], "Nothing happened")

    # Another moderator proposes a heavy action; she cannot be the second, nor decide the appeal.
    assert "waiting for a second" in await service.decide(mod, lena, case_id, ["deactivate"], "Threats")
    with pytest.raises(NotFound, match="no such case"):
        await service.agree(mod, mona, case_id)
    await service.agree(mod, rita, case_id)
    appeal_link = next(c[2] for c in mod.homeserver.calls if c[:2] == ("notice", mona.matrix_user_id))
    service.appeal(mod, mona, appeal_link.split("/appeal/")[1], "I never wrote that")
    assert case_id not in [c.id for c in service.queue(mod, mona)]
    with pytest.raises(NotFound, match="no such case"):
        await service.decide(mod, mona, case_id, ["dismiss"], "Overturned")
    with pytest.raises(NotFound, match="no such case"):
        service.view(mod, mona, case_id)


async def test_a_moderator_never_sees_a_case_about_her_own_pseudonym(mod):
    mona, lena = mod.mods["mona"], mod.mods["lena"]
    with mod.engine.begin() as conn:
        members.set_roles(conn, mona.id, frozenset({"moderator", "participant"}))
        mona = members.get_member(conn, mona.id)
    for name, member in (("mona", mona), ("lena", lena), ("rita", mod.mods["rita"])):
        pseudonym_service.set_moderator_key(mod, member, f"{name}'s long passphrase")
    pseudonym_service.set_up_escrow(mod, mod.admin, 2, [m.id for m in mod.mods.values()])
    consultation = consultations.create(mod, mod.facilitator, mona.line_id, "Bridges", [{"en": "What first?"}],
                                        [mona.side_id], premoderation=False)
    consultations.change_phase(mod, mod.facilitator, consultation.id, Phase.COLLECTING)
    for _ in range(2):  # accounts made by one batch can be taken from the next one on
        await pseudonym_pool.run_batch(mod)
    mine = await pseudonym_service.create_pseudonym(mod, mona, consultation.id, "River Voice")
    mod.homeserver.matrix_reports["user_reports"].append(
        {"id": 1, "user_id": "@alice:crossline.local", "target_user_id": mine.user_id, "reason": "Insults"})
    (case_id,) = await service.take_in_matrix_reports(mod)

    assert case_id not in [c.id for c in service.queue(mod, mona)]
    assert case_id in [c.id for c in service.queue(mod, lena)]
    with pytest.raises(NotFound, match="no such case"):
        service.view(mod, mona, case_id)
    # Nor can she approve unmasking herself on it.
    request_id = pseudonym_service.request_unmasking(mod, lena, case_id, mine.user_id, "Repeated insults")
    with pytest.raises(NotFound, match="no such case"):
        pseudonym_service.approve_unmasking(mod, mona, request_id, "mona's long passphrase")


def _status_token(hub, case_id: int) -> str:
    notice = next(c[2] for c in hub.homeserver.calls if c[0] == "notice" and f"case {case_id})" in c[2])
    return notice.split("/report/status/")[1]
