"""The appeals and listing review of issue 27 (findings B1-B4, B6, B8, B10): case numbers are
never used twice, retention removes a case's content but not what a lift in another case must
leave in place, sides are asked of both moderators, a moderator who reported through her
pseudonym is the reporter, and decisions whose proposer or run ended halfway say so."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from sqlalchemy import text

from crossline.domain import moderation as rules
from crossline.domain.audit_listing import parse_filters
from crossline.domain.consultations import Phase
from crossline.domain.moderation import Action, CaseFacts, CaseStatus, Category, Moderator
from crossline.errors import Conflict, NotAllowed, NotFound
from crossline.services import audit_listing, consultations, pseudonym_pool
from crossline.services import moderation as service
from crossline.services import pseudonyms as pseudonym_service
from crossline.setup import init_data_dir
from crossline.storage import members
from crossline.storage import moderation as store
from crossline.storage.db import create_database_engine, migrate
from crossline.web.app import create_app
from crossline.web.keys import HUB
from tests.test_appeals import HARASSER, _signed_in, mods  # noqa: F401 - five moderators on two sides
from tests.test_decision_reasons_sealed import stored_bytes
from tests.test_moderation import mod  # noqa: F401 - three moderators, a dialogue room
from tests.test_pseudonym_migration import upgrade
from tests.test_storage_contract import engine, postgres_url  # noqa: F401 - SQLite and PostgreSQL
from tests.test_web_reporting import client  # noqa: F401 - the web app

DAY_MS = 86_400_000


def matrix_report(hub, sender=HARASSER, kind="event_reports") -> int:
    """A Matrix report of a message in the dialogue room; returns Synapse's report id."""
    reports = hub.homeserver.matrix_reports[kind]
    number = len(reports) + 1
    reports.append({"id": number, "room_id": "!dialogue:crossline.local", "event_id": f"$e{number}",
                    "user_id": "@alice:crossline.local", "sender": sender, "reason": f"Insults {number}"})
    return number


async def decided(hub, actions=("ban_all", "suspend")) -> int:
    """A case about the harasser, decided by A and B and never appealed."""
    matrix_report(hub)
    (case_id,) = await service.take_in_matrix_reports(hub)
    await service.decide(hub, hub.mods["a"], case_id, list(actions), "Insults")
    await service.agree(hub, hub.mods["b"], case_id)
    return case_id


def past_retention(hub) -> list[int]:
    hub.clock.now += (hub.config.moderation.report_retention_days + 1) * DAY_MS
    return service.apply_retention(hub)


def appeal_link(hub) -> str:
    return [c[2] for c in hub.homeserver.calls if c[:2] == ("notice", HARASSER)][-1].split("/appeal/")[1]


# -- B1: a case number is never used twice ---------------------------------------------------------


async def test_a_deleted_cases_number_is_never_used_again_so_its_entries_stay_out_of_her_view(mods):
    """The newest case deleted by retention (on SQLite a removed newest row frees its number): the
    next case gets a new number, and a moderator the old case was about learns nothing of it."""
    with mods.engine.begin() as conn:
        members.set_roles(conn, mods.harasser.id, frozenset({"moderator"}))
        her = members.get_member(conn, mods.harasser.id)
    old = await decided(mods)
    assert past_retention(mods) == [old]
    new = service.report_from_web(mods, "spam", "someone else spams", "", []).case_id
    assert new > old
    # Her listing and the new case's page hold nothing of the old case (who banned her).
    rows = audit_listing.for_moderator(mods, her, parse_filters(default_limit=100)).rows
    assert {row.case_id for row in rows} == {new}
    assert {entry["case_id"] for entry in service.view(mods, her, new).audit} == {new}
    # The old number is a case that does not exist, for every moderator.
    for moderator in (her, mods.mods["c"]):
        with pytest.raises(NotFound, match="no such case"):
            service.view(mods, moderator, old)
    assert [c.id for c in service.queue(mods, mods.mods["c"])] == [new]
    # The operator's listing by case number shows each case's own entries only.
    operator = audit_listing.for_operator(mods, parse_filters(case=str(new), default_limit=100)).rows
    assert [row.what for row in operator][-1] == "report received"
    assert {row.what for row in operator} == {"report received", "case opened (reason, contact and evidence read)"}


async def test_a_matrix_report_whose_case_retention_deleted_is_not_taken_in_again(mods):
    old = await decided(mods)
    assert past_retention(mods) == [old]
    told = len([c for c in mods.homeserver.calls if c[:2] == ("notice", "@alice:crossline.local")])
    matrix_report(mods)  # intake reads the last reports again, the deleted case's one among them
    (new,) = await service.take_in_matrix_reports(mods)
    assert new > old
    assert await service.take_in_matrix_reports(mods) == []
    notices = [c[2] for c in mods.homeserver.calls if c[:2] == ("notice", "@alice:crossline.local")][told:]
    assert len(notices) == 1 and f"case {new})" in notices[0]


def test_cases_removed_before_tombstones_keep_their_numbers_after_the_upgrade(tmp_path):
    """Migration 0016: a hub whose retention removed its newest cases (before tombstones) does not
    give their numbers, which its audit log still carries, to new cases."""
    engine = create_database_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    upgrade(engine, "0015")
    with engine.begin() as conn:
        for case_id in (1, 2, 3):
            conn.execute(text("INSERT INTO moderation_cases (id, source, category, urgent, status, created_at, "
                              "updated_at) VALUES (:i, 'web', 'other', 0, 'closed', 0, 0)"), {"i": case_id})
        for seq, case_id in enumerate((1, 2, 3, 3), start=1):
            conn.execute(text("INSERT INTO audit_log (seq, at, actor, kind, case_id, details, previous_hash, hash) "
                              "VALUES (:s, :at, 'system', 'k', :c, '{}', '', '')"), {"s": seq, "at": seq, "c": case_id})
        conn.execute(text("DELETE FROM moderation_cases WHERE id IN (2, 3)"))  # as retention did
    migrate(engine)
    with engine.begin() as conn:
        assert list(conn.execute(text("SELECT id, status, created_at, updated_at FROM moderation_cases "
                                      "WHERE id > 1 ORDER BY id"))) == [(2, "deleted", 2, 2), (3, "deleted", 3, 4)]
        assert store.add_case(conn, source="web", category=Category.SPAM, urgent=False, now_ms=5) == 4
        assert store.get_case(conn, 3) is None and [c.id for c in store.queue(conn)] == [4, 1]
    engine.dispose()


# -- B1, B2, B8: what retention removes and what it keeps ----------------------------------------------


async def test_retention_removes_all_content_and_keeps_only_what_still_holds_on_the_homeserver(mods):
    """Every piece of content goes (reason, contact, evidence, decisions' reasons, status and appeal
    links, reporter, unmasking requests); the reported account, room and the actions carried out stay
    only where a ban or suspension may still hold. An unmasking request no longer stops retention."""
    a = mods.mods["a"]
    holding = await decided(mods)
    matrix_report(mods, sender="@other:crossline.local")
    (warned,) = await service.take_in_matrix_reports(mods)
    await service.decide(mods, a, warned, ["warn"], "Insults")
    with mods.engine.begin() as conn:
        for case_id in (holding, warned):
            conn.execute(text(
                "INSERT INTO unmask_requests (case_id, pseudonym_member_id, reason, requested_by, status, "
                "created_at, expires_at) VALUES (:c, :p, 'Repeated insults', :a, 'expired', 0, 1)"),
                {"c": case_id, "p": mods.harasser.id, "a": a.id})
    assert sorted(past_retention(mods)) == [holding, warned]
    with mods.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM moderation_evidence")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM unmask_requests")).scalar() == 0
        rows = {r.id: r for r in conn.execute(text("SELECT * FROM moderation_cases"))}
        for row in rows.values():
            assert row.status == "deleted" and row.category == "other"
            assert (row.reason_sealed, row.contact_sealed, row.status_token_hash, row.appeal_token_hash,
                    row.reporter_member_id, row.reporter_user_id, row.event_id) == (None,) * 7
        assert (rows[holding].reported_user, rows[holding].room_id) == (HARASSER, "!dialogue:crossline.local")
        assert (rows[warned].reported_user, rows[warned].room_id) == (None, None)
        kept = list(conn.execute(text("SELECT case_id, action, reason, reason_sealed FROM moderation_decisions")))
        assert sorted(kept) == [(holding, "ban_all", "", None), (holding, "suspend", "", None)]
    assert service.verify_audit(mods)[1] is None


async def test_a_lift_leaves_what_a_case_deleted_by_retention_still_holds(mods):
    """Case 1 banned her from every room and suspended her, never appealed, and retention deleted
    it; case 2 is appealed and lifted: the bans and the suspension of case 1 stay."""
    c, d = mods.mods["c"], mods.mods["d"]
    first = await decided(mods)
    assert past_retention(mods) == [first]
    second = await decided(mods)
    service.appeal(mods, mods.harasser, appeal_link(mods), "I was quoting him")
    before = len(mods.homeserver.calls)
    await service.decide(mods, c, second, ["lift"], "Overturned")
    outcome = await service.agree(mods, d, second)
    assert "another case's ban from every hub room still holds" in outcome
    assert "another case's suspension still holds" in outcome
    assert not [call for call in mods.homeserver.calls[before:] if call[0] in ("unban", "unsuspend")]


def test_tombstones_on_sqlite_and_postgresql(engine):  # noqa: F811 - the storage contract's engine
    """Retention's tombstone, as stored, on both databases: content gone, number kept, what may
    still hold kept only for the case that holds it."""

    with engine.begin() as conn:
        moderator = members.add_member(conn, "@m:x", None, None, frozenset({"moderator"}), None, 0)
        ids = [store.add_case(conn, source="matrix_event", category=Category.THREATS, urgent=True, now_ms=0,
                              synapse_report=f"event_reports:{n}", room_id="!r:x", event_id="$e", reported_user=who,
                              reporter_user_id="@r:x", reason_sealed=b"sealed", status_token_hash=f"{n}" * 64)
               for n, who in ((1, "@banned:x"), (2, "@warned:x"))]
        for case_id, action in zip(ids, (Action.BAN_ALL, Action.WARN), strict=True):
            decision = store.add_decision(conn, case_id, action, b"reason", moderator, "pending", False, 0)
            store.finish_decision(conn, decision, "done", 0)
            store.set_status(conn, case_id, CaseStatus.DECIDED, 0)
        assert sorted(store.delete_closed_before(conn, 1)) == ids
        assert store.queue(conn) == [] and store.get_case(conn, ids[0]) is None
        rows = list(conn.execute(text("SELECT id, status, synapse_report, reported_user, room_id, reason_sealed, "
                                      "status_token_hash FROM moderation_cases ORDER BY id")))
        assert rows == [(ids[0], "deleted", "event_reports:1", "@banned:x", "!r:x", None, None),
                        (ids[1], "deleted", "event_reports:2", None, None, None, None)]
        assert [(d.case_id, d.action, d.reason_sealed) for d in store.list_decisions(conn, ids[0])] == [
            (ids[0], Action.BAN_ALL, None)]
        assert store.list_decisions(conn, ids[1]) == []
        # Taken in again, the same Synapse report is known: no new case.
        assert store.add_case(conn, source="matrix_event", category=Category.OTHER, urgent=False, now_ms=2,
                              synapse_report="event_reports:1") is None


# -- B3: both moderators have a side, and the sides differ, whichever order ------------------------


def test_sides_are_asked_of_both_moderators_in_either_order_for_heavy_decisions_and_appeals():
    """Every ordered pair over an admin (no side), two left-bank and a right-bank moderator: a first
    heavy decision and an appeal are carried exactly when both have a side and the sides differ."""

    admin, c, e, d = Moderator(9, None, "@admin"), Moderator(3, 1, "@c"), Moderator(5, 1, "@e"), Moderator(4, 2, "@d")
    everyone = (admin, c, e, d)
    for on_appeal, (first, second) in itertools.product((False, True), itertools.permutations(everyone, 2)):
        status = CaseStatus.APPEALED if on_appeal else CaseStatus.OPEN
        case = CaseFacts(status, "!r", "$e", HARASSER, frozenset({1, 2}) if on_appeal else frozenset(), None)
        try:
            rules.check_decision(case, Action.LIFT if on_appeal else Action.BAN_ALL, first, everyone, True)
            rules.check_second(replace(case, status=CaseStatus.AWAITING_SECOND), first, second, True, on_appeal,
                               everyone)
            carried = True
        except NotAllowed as refusal:
            carried = False
            if admin in (first, second):
                assert "no side" in str(refusal), (first, second, on_appeal)
        assert carried == (admin not in (first, second) and first.side_id != second.side_id), (first, second)
        if on_appeal:  # who may take each step never names a moderator of no side
            assert admin not in rules.who_may(case, everyone, None, True)
    # Without the policy, a moderator of no side may propose and agree as any other.
    open_case = CaseFacts(CaseStatus.AWAITING_SECOND, "!r", "$e", HARASSER, frozenset(), None)
    rules.check_second(open_case, admin, c, False)
    rules.check_second(open_case, c, admin, False)


async def test_an_admin_cannot_be_one_of_the_two_sides_of_a_heavy_decision(mods):
    """The service, with the policy on: an admin proposing a ban from every room is refused with
    what to do, and an admin's agreement to a left-bank moderator's proposal is refused."""

    assert mods.config.moderation.second_moderator_from_other_side
    matrix_report(mods)
    (case_id,) = await service.take_in_matrix_reports(mods)
    with pytest.raises(NotAllowed, match="no side of the line"):
        await service.decide(mods, mods.admin, case_id, ["ban_all"], "Insults")
    await service.decide(mods, mods.mods["c"], case_id, ["ban_all"], "Insults")
    with pytest.raises(NotAllowed, match="You belong to no side of the line"):
        await service.agree(mods, mods.admin, case_id)
    assert "banned from" in await service.agree(mods, mods.mods["d"], case_id)


# -- B4: a moderator who reported through her pseudonym is the reporter -----------------------------


async def test_a_moderator_who_reported_through_her_pseudonym_takes_no_step_on_the_case(mod):
    """Mona reports through her pseudonym: she may not decide, agree, or take either step of the
    appeal; what the other moderators' pages say of who may act still names her (it tells them
    nothing about who is behind the pseudonym), and the case is decided without her."""

    with mod.engine.begin() as conn:
        line, side = mod.mods["mona"].line_id, mod.mods["mona"].side_id
        right = mod.mods["rita"].side_id
        members.set_roles(conn, mod.mods["mona"].id, frozenset({"moderator", "participant"}))
        for name, on in (("sara", side), ("tina", right)):
            mod.mods[name] = members.get_member(conn, members.add_member(
                conn, f"@{name}:crossline.local", line, on, frozenset({"moderator"}), None, 0))
        mod.harasser = members.get_member(conn, members.add_member(conn, HARASSER, line, right,
                                                                   frozenset({"participant"}), None, 0))
        mona = members.get_member(conn, mod.mods["mona"].id)
    lena, rita, sara, tina = (mod.mods[n] for n in ("lena", "rita", "sara", "tina"))
    for name in ("mona", "lena", "rita"):
        pseudonym_service.set_moderator_key(mod, mod.mods[name], f"{name}'s long passphrase")
    pseudonym_service.set_up_escrow(mod, mod.admin, 2, [mod.mods[n].id for n in ("mona", "lena", "rita")])
    consultation = consultations.create(mod, mod.facilitator, line, "Bridges", [{"en": "What first?"}], [side],
                                        premoderation=False)
    consultations.change_phase(mod, mod.facilitator, consultation.id, Phase.COLLECTING)
    for _ in range(2):
        await pseudonym_pool.run_batch(mod)
    mine = await pseudonym_service.create_pseudonym(mod, mona, consultation.id, "River Voice")
    mod.homeserver.matrix_reports["user_reports"].append(
        {"id": 1, "user_id": mine.user_id, "target_user_id": HARASSER, "reason": "Insults"})
    (case_id,) = await service.take_in_matrix_reports(mod)

    with pytest.raises(NotAllowed, match="You reported this case"):
        await service.decide(mod, mona, case_id, ["warn"], "Insults")
    await service.decide(mod, lena, case_id, ["ban_all"], "Insults")
    with pytest.raises(NotAllowed, match="You reported this case"):
        await service.agree(mod, mona, case_id)
    await service.agree(mod, rita, case_id)
    link = [c[2] for c in mod.homeserver.calls if c[:2] == ("notice", HARASSER)][-1].split("/appeal/")[1]
    service.appeal(mod, mod.harasser, link, "I was quoting him")
    with pytest.raises(NotAllowed, match="(?i)you reported this case"):
        await service.decide(mod, mona, case_id, ["lift"], "Overturned")
    assert mona.shown_as in service.appeal_deciders(mod, tina, case_id).may  # others' pages name her
    assert mona.shown_as not in service.appeal_deciders(mod, mona, case_id).may
    await service.decide(mod, tina, case_id, ["lift"], "Overturned")
    with pytest.raises(NotAllowed, match="(?i)you reported this case"):
        await service.agree(mod, mona, case_id)
    assert "Lift the decision" in await service.agree(mod, sara, case_id)


# -- B6: a proposal whose proposer is no longer a moderator --------------------------------------------


@pytest.mark.parametrize("on_appeal", [False, True])
async def test_an_agreement_to_a_proposal_whose_proposer_is_no_longer_a_moderator_is_refused(mods, on_appeal):
    """The proposal is withdrawn (audited), nothing is carried out, and the case waits for a new
    proposal, which two moderators can then carry."""

    c, d, e = mods.mods["c"], mods.mods["d"], mods.mods["e"]
    if on_appeal:
        case_id = await decided(mods)
        service.appeal(mods, mods.harasser, appeal_link(mods), "I was quoting him")
        proposer, second, action = c, d, "lift"
    else:
        matrix_report(mods)
        (case_id,) = await service.take_in_matrix_reports(mods)
        proposer, second, action = mods.mods["a"], mods.mods["b"], "ban_all"
    await service.decide(mods, proposer, case_id, [action], "Insults")
    with mods.engine.begin() as conn:
        members.set_roles(conn, proposer.id, frozenset({"participant"}))
    before = len(mods.homeserver.calls)
    with pytest.raises(Conflict, match="no longer a moderator.*propose the decision again"):
        await service.agree(mods, second, case_id)
    assert mods.homeserver.calls[before:] == []
    with mods.engine.connect() as conn:
        case = store.get_case(conn, case_id)
        assert case.status is (CaseStatus.APPEALED if on_appeal else CaseStatus.OPEN)
        assert [d.status for d in store.list_decisions(conn, case_id)][-1] == "withdrawn"
        last = list(service.audit.entries(conn, case_id))[-1].entry
    assert last["kind"] == "action_failed" and last["details"]["withdrawn"] == "the proposer is no longer a moderator"
    # Proposed again, by a moderator who still is one, it is carried.
    again, agreeing = (e, d) if on_appeal else (c, d)
    await service.decide(mods, again, case_id, [action], "Insults")
    outcome = await service.agree(mods, agreeing, case_id)
    assert ("Lift the decision" if on_appeal else "banned from") in outcome


# -- B10: a decision a stop cut short ---------------------------------------------------------------------


async def test_a_decision_cut_short_by_a_stop_says_part_of_it_may_have_taken_effect(client):  # noqa: F811
    """Recovered at start: the decision is 'interrupted', its audit entry says it may have taken
    effect in part, and so does the case page the next moderator opens."""

    hub = client.app[HUB]
    a, _ = _signed_in(hub, "amira")
    _, cookie = _signed_in(hub, "carmen")
    with hub.engine.begin() as conn:
        case_id = store.add_case(conn, source="matrix_user", category=Category.OTHER, urgent=False, now_ms=0,
                                 reported_user=HARASSER)
        store.add_decision(conn, case_id, Action.KICK, service.seal(hub, "Shouting"), a, "pending", False, 0)
    assert service.recover_interrupted(hub) == [case_id]
    with hub.engine.connect() as conn:
        assert [d.status for d in store.list_decisions(conn, case_id)] == ["interrupted"]
        last = list(service.audit.entries(conn, case_id))[-1].entry
    assert last["details"] == {"action": "kick", "interrupted": True, "may_have_taken_effect": True}
    page = await (await client.get(f"/moderation/cases/{case_id}", cookies=cookie)).text()
    assert "interrupted (a stop of the hub cut it short: part of it may have taken effect" in page


async def test_a_pending_proposal_by_a_moderator_of_no_side_is_withdrawn_where_sides_must_differ(mods):
    """Made before sides were asked of both (or by an admin since): no agreement carries it, and
    the case does not stay locked by it."""

    matrix_report(mods)
    (case_id,) = await service.take_in_matrix_reports(mods)
    with mods.engine.begin() as conn:
        store.add_decision(conn, case_id, Action.BAN_ALL, service.seal(mods, "Insults"), mods.admin.id,
                           "pending", False, 0)
        store.set_status(conn, case_id, CaseStatus.AWAITING_SECOND, 0)
    with pytest.raises(Conflict, match="belongs to no side of the line.*propose the decision again"):
        await service.agree(mods, mods.mods["d"], case_id)
    assert not [call for call in mods.homeserver.calls if call[0] == "ban"]
    await service.decide(mods, mods.mods["c"], case_id, ["ban_all"], "Insults")
    assert "banned from" in await service.agree(mods, mods.mods["d"], case_id)


# -- B7: unmasking requests' reasons are sealed ---------------------------------------------------------


UNMASK_REASON = "She posted the address of the shelter 5512"


async def test_an_unmasking_requests_reason_is_stored_sealed_and_opened_on_the_case_page(mod):
    """The reason a moderator gives for unmasking is case content: sealed with the evidence key as
    decisions' reasons are, opened only for the moderators' case page."""

    lena = mod.mods["lena"]
    for name in ("mona", "lena", "rita"):
        pseudonym_service.set_moderator_key(mod, mod.mods[name], f"{name}'s long passphrase")
    pseudonym_service.set_up_escrow(mod, mod.admin, 2, [m.id for m in mod.mods.values()])
    with mod.engine.begin() as conn:
        writer = members.get_member(conn, members.add_member(conn, "@writer:crossline.local", lena.line_id,
                                                             lena.side_id, frozenset({"participant"}), None, 0))
    consultation = consultations.create(mod, mod.facilitator, lena.line_id, "Bridges", [{"en": "What first?"}],
                                        [lena.side_id], premoderation=False)
    consultations.change_phase(mod, mod.facilitator, consultation.id, Phase.COLLECTING)
    for _ in range(2):
        await pseudonym_pool.run_batch(mod)
    theirs = await pseudonym_service.create_pseudonym(mod, writer, consultation.id, "Quiet Voice")
    mod.homeserver.matrix_reports["user_reports"].append(
        {"id": 1, "user_id": "@alice:crossline.local", "target_user_id": theirs.user_id, "reason": "Threats"})
    (case_id,) = await service.take_in_matrix_reports(mod)
    pseudonym_service.request_unmasking(mod, lena, case_id, theirs.user_id, UNMASK_REASON)
    assert UNMASK_REASON.encode() not in stored_bytes(mod)
    with mod.engine.connect() as conn:
        assert conn.execute(text("select reason from unmask_requests")).scalars().all() == [""]
    assert [r.reason for r in pseudonym_service.unmasking_requests(mod, mod.mods["rita"], case_id)] == [UNMASK_REASON]


async def test_unmasking_reasons_stored_in_clear_before_0016_are_sealed_when_the_hub_starts(aiohttp_client, tmp_path):

    config = init_data_dir(tmp_path / "data", hub_port=18983, synapse_port=18982)[0]
    engine = create_database_engine(config.database_url)
    upgrade(engine, "0015")
    with engine.begin() as conn:
        for member_id, user in ((1, "@mod:x"), (2, "@p-x:x")):
            conn.execute(text("INSERT INTO members (id, matrix_user_id, created_at) VALUES (:i, :u, 0)"),
                         {"i": member_id, "u": user})
        conn.execute(text("INSERT INTO moderation_cases (id, source, category, urgent, status, created_at, "
                          "updated_at) VALUES (1, 'web', 'other', 0, 'open', 0, 0)"))
        conn.execute(text("INSERT INTO unmask_requests (id, case_id, pseudonym_member_id, reason, requested_by, "
                          "status, created_at, expires_at) VALUES (1, 1, 2, :r, 1, 'expired', 0, 1)"),
                     {"r": UNMASK_REASON})
    engine.dispose()
    client = await aiohttp_client(create_app(config, background=False))  # the hub starts: migrates, then seals
    hub = client.app[HUB]
    with hub.engine.connect() as conn:
        ((reason, sealed),) = conn.execute(text("select reason, reason_sealed from unmask_requests")).all()
    assert reason == "" and service.unseal(hub, sealed).decode() == UNMASK_REASON
    assert service.seal_clear_reasons(hub) == 0
