"""Pseudonyms and unmasking, on a real database with a recording homeserver (the whole path with
Synapse is in test_e2e_pseudonym.py; the pure threshold escrow in test_pseudonym_escrow.py)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import text

from crossline.domain.consultations import Phase, VoteValue
from crossline.errors import Conflict, InvalidInput, NotAllowed
from crossline.pseudonyms import escrow
from crossline.services import consultations, moderation
from crossline.services import pseudonym_pool as pool
from crossline.services import pseudonyms as service
from crossline.storage import members, rooms
from crossline.storage import pseudonyms as store

PASSPHRASES = {name: f"{name}'s long passphrase" for name in ("mona", "lena", "rita", "nina")}
DAY_MS = 86_400_000


async def ready_pool(hub) -> None:
    """Accounts made by one batch can be taken from the next one on."""
    await pool.run_batch(hub)
    await pool.run_batch(hub)


@pytest.fixture
async def world(hub):
    with hub.engine.begin() as conn:
        line = conn.execute(text("select id from lines")).scalar()
        left, right = [r[0] for r in conn.execute(text("select id from sides order by id"))]
        mods = {name: members.add_member(conn, f"@{name}:crossline.local", line, side, frozenset({"moderator"}), None, 0)
                for name, side in (("mona", left), ("lena", left), ("rita", right), ("nina", right))}
        person = members.add_member(conn, None, line, left, frozenset({"participant"}), None, 0, web_handle="webmaria")
        other = members.add_member(conn, "@olga:crossline.local", line, right, frozenset({"participant"}), None, 0)
        rooms.add_room(conn, "!consult:crossline.local", line, "consultation", "Consult", hub.facilitator.id, 0)
        hub.mods = {n: members.get_member(conn, i) for n, i in mods.items()}
        hub.person, hub.other = members.get_member(conn, person), members.get_member(conn, other)
        hub.sides = (left, right)
    hub.homeserver.accounts["@olga:crossline.local"] = {"displayname": "Olga Rusu"}
    for name, member in hub.mods.items():
        service.set_moderator_key(hub, member, PASSPHRASES[name])
    service.set_up_escrow(hub, hub.admin, 2, [hub.mods[n].id for n in ("mona", "lena", "rita")])
    consultation = consultations.create(hub, hub.facilitator, 1, "Bridges", [{"en": "What first?"}], list(hub.sides),
                                        premoderation=False)
    consultations.attach_room(hub, hub.facilitator, consultation.id, "!consult:crossline.local")
    consultations.change_phase(hub, hub.facilitator, consultation.id, Phase.COLLECTING)
    hub.consultation = consultation
    await ready_pool(hub)
    return hub


def rows(hub, query: str) -> list:
    with hub.engine.connect() as conn:
        return list(conn.execute(text(query)).mappings())


async def test_a_pseudonym_comes_from_the_pool_with_day_times_and_is_named_and_invited_two_batches_later(world):
    world.clock.now += 5 * 3_600_000 + 1234  # a precise moment in the day
    pooled = {r["user_id"] for r in rows(world, "select user_id from pseudonym_pool")}
    audit_before = len(rows(world, "select seq from audit_log"))
    new = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    assert new.user_id in pooled and new.user_id.startswith("@p-") and len(new.password) >= 24
    assert world.homeserver.accounts[new.user_id]["password"] == new.password  # set through the admin API
    assert "displayname" not in world.homeserver.accounts[new.user_id]  # not named yet: that comes later
    assert not any(call[0] == "invite" for call in world.homeserver.calls)
    with world.engine.connect() as conn:
        pseudonym = members.find_by_user_id(conn, new.user_id)
    times = [r["created_at"] for r in rows(world, f"select created_at from members where id = {pseudonym.id}")]
    times += [r["created_at"] for r in rows(world, "select created_at from pseudonyms")]
    times += [r["created_at"] for r in rows(world, f"select created_at from web_access_links where member_id = {pseudonym.id}")]
    assert times and all(t % DAY_MS == 0 for t in times), times  # the day only
    assert len(rows(world, "select seq from audit_log")) == audit_before  # nothing timed about it
    row = rows(world, "select * from pseudonyms")[0]
    assert b"webmaria" not in row["sealed_link"] and str(world.person.id) != row["person_tag"]
    assert pseudonym.side_id == world.person.side_id and pseudonym.roles == frozenset({"participant"})

    first = await pool.run_batch(world)  # finds it waiting
    assert (first.invited, first.now_waiting) == (0, 1) and "displayname" not in world.homeserver.accounts[new.user_id]
    second = await pool.run_batch(world)  # names and invites it
    assert second.invited == 1
    assert world.homeserver.accounts[new.user_id]["displayname"] == "River Voice"
    assert ("invite", world.config.bot_user_id, "!consult:crossline.local", new.user_id) in world.homeserver.calls
    audit_rows = rows(world, "select actor, kind, details from audit_log")
    assert audit_rows[-1]["kind"] == "pseudonyms_invited" and '"count": 1' in audit_rows[-1]["details"]
    assert not any("webmaria" in r["details"] or r["actor"] == f"member:{world.person.id}" for r in audit_rows)
    assert (await pool.run_batch(world)).invited == 0  # once


async def test_accounts_are_taken_only_from_the_batch_after_the_one_that_made_them(hub):
    assert (await pool.run_batch(hub)).made == pool.POOL_SIZE
    with hub.engine.begin() as conn:
        assert store.take_from_pool(conn) is None  # made just now: not yet
    assert (await pool.run_batch(hub)).made == 0
    with hub.engine.begin() as conn:
        taken = store.take_from_pool(conn)
    assert taken.startswith("@p-") and ("register_appservice_user", taken[1:].split(":")[0]) in hub.homeserver.calls
    assert (await pool.run_batch(hub)).made == 1  # refilled


async def test_an_empty_pool_refuses_clearly_and_loses_nothing(world):
    with world.engine.begin() as conn:
        conn.execute(text("delete from pseudonym_pool"))
    with pytest.raises(Conflict, match="No pseudonym is ready"):
        await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    assert rows(world, "select * from pseudonyms") == []


async def test_one_pseudonym_per_person_per_consultation_and_no_double_voting(world):
    new = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    with pytest.raises(Conflict, match="already have a pseudonym"):
        await service.create_pseudonym(world, world.person, world.consultation.id, "Another Name")
    consultations.submit_statement(world, world.facilitator, world.consultation.id,
                                   world.consultation.questions[0].id, "Seeded", "web")
    consultations.change_phase(world, world.facilitator, world.consultation.id, Phase.VOTING)
    with pytest.raises(NotAllowed, match="count once"):
        consultations.cast_votes(world, world.person, world.consultation.id, [(1, VoteValue.AGREE)])
    with world.engine.connect() as conn:
        pseudonym = members.find_by_user_id(conn, new.user_id)
    assert consultations.cast_votes(world, pseudonym, world.consultation.id, [(1, VoteValue.AGREE)]) == [1]
    # A pseudonym belongs to its consultation: it does not see or count in another one.
    other = consultations.create(world, world.facilitator, 1, "Water", [{"en": "Who decides?"}], list(world.sides),
                                 premoderation=False)
    consultations.change_phase(world, world.facilitator, other.id, Phase.COLLECTING)
    assert [c.id for c in consultations.consultations_for(world, pseudonym)] == [world.consultation.id]
    with pytest.raises(NotAllowed, match="count once"):
        consultations.submit_statement(world, pseudonym, other.id, other.questions[0].id, "Elsewhere", "web")
    # The other way round: having voted under her own name, she cannot then take a pseudonym.
    consultations.cast_votes(world, world.other, world.consultation.id, [(1, VoteValue.DISAGREE)])
    with pytest.raises(Conflict, match="under your own name"):
        await service.create_pseudonym(world, world.other, world.consultation.id, "Quiet Hill")


async def test_names_imitating_others_are_refused(world):
    await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    for imitation in ("R1ver  Voice", "river-voice", "Olga Rusu", "0lga Rusu!", "olga"):
        with pytest.raises(InvalidInput, match="too close"):
            await service.create_pseudonym(world, world.other, world.consultation.id, imitation)
    for bad in ("ab", "@olga:crossline.local", "!!!!"):
        with pytest.raises(InvalidInput):
            await service.create_pseudonym(world, world.other, world.consultation.id, bad)


async def test_unmasking_needs_the_quorum_and_every_step_is_audited(world):
    new = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    case = moderation.report_from_web(world, "harassment", f"{new.user_id} threatens me", "", [])
    request_id = service.request_unmasking(world, world.mods["mona"], case.case_id, new.user_id, "Threats")
    with pytest.raises(NotAllowed, match="passphrase"):
        service.approve_unmasking(world, world.mods["mona"], request_id, "not my passphrase at all")
    first = service.approve_unmasking(world, world.mods["mona"], request_id, PASSPHRASES["mona"])
    assert (first.approvals, first.threshold, first.unmasked_user_id) == (1, 2, None)
    with pytest.raises(Conflict, match="already approved"):
        service.approve_unmasking(world, world.mods["mona"], request_id, PASSPHRASES["mona"])
    with pytest.raises(NotAllowed, match="no share"):  # nina is a moderator, but not a holder of this escrow
        service.approve_unmasking(world, world.mods["nina"], request_id, PASSPHRASES["nina"])
    done = service.approve_unmasking(world, world.mods["rita"], request_id, PASSPHRASES["rita"])
    assert done.unmasked_user_id == "web participant webmaria"
    view = moderation.view(world, world.mods["lena"], case.case_id)
    assert any(kind == "unmasking_result" and b"webmaria" in opened for _, kind, _, opened, _ in view.evidence)
    kinds = [entry["kind"] for entry in view.audit]
    assert kinds.count("unmasking_approved") == 2 and "unmasking_requested" in kinds and "unmasked" in kinds
    assert "unmasking_passphrase_refused" in kinds
    assert rows(world, "select * from unmask_partials") == []  # partials and blinds gone after use
    with pytest.raises(Conflict, match="already finished"):
        service.approve_unmasking(world, world.mods["lena"], request_id, PASSPHRASES["lena"])
    assert moderation.verify_audit(world)[1] is None
    with world.engine.begin() as conn:
        conn.execute(text("update audit_log set kind = 'nothing' where kind = 'unmasked'"))
    assert moderation.verify_audit(world)[1] is not None


def database_attack(captured: list[dict], links: list[dict]) -> list[dict]:
    """What the hub database alone gives: every partial ever stored (even ones deleted since and
    recovered from freed pages), combined in every way that could meet the quorum, against
    every sealed link. Returns whatever opened."""
    opened = []
    for link in links:
        for size in range(2, len(captured) + 1):
            for chosen in itertools.combinations(captured, size):
                by_index = {row["share_index"]: row["partial"] for row in chosen}
                if len(by_index) < size:
                    continue
                try:
                    opened.append(escrow.open_link(link["public_key"], link["sealed_link"], by_index))
                except escrow.EscrowError:
                    pass
    return opened


async def test_approvals_below_the_quorum_open_nothing_even_combined_across_requests(world):
    """The issue's attack: quorum 3 of 4; two approvals on request 1, one on request 2 (on the
    same pseudonym, once request 1 has expired, and on another pseudonym), then the hub database
    alone, with every partial it ever held, opens nothing."""
    four = [world.mods[n].id for n in ("mona", "lena", "rita", "nina")]
    service.set_up_escrow(world, world.admin, 3, four)
    maria = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    olga = await service.create_pseudonym(world, world.other, world.consultation.id, "Quiet Hill")
    case = moderation.report_from_web(world, "harassment", "threats", "", [])
    captured = []

    def capture():
        captured.extend(r for r in rows(world, "select share_index, partial from unmask_partials where partial is not null")
                        if r not in captured)

    first = service.request_unmasking(world, world.mods["mona"], case.case_id, maria.user_id, "Threats")
    with pytest.raises(Conflict, match="already has an open"):  # one open request per pseudonym
        service.request_unmasking(world, world.mods["lena"], case.case_id, maria.user_id, "Threats again")
    for name in ("mona", "lena"):
        assert service.approve_unmasking(world, world.mods[name], first, PASSPHRASES[name]).unmasked_user_id is None
    capture()
    on_other = service.request_unmasking(world, world.mods["rita"], case.case_id, olga.user_id, "Threats")
    assert service.approve_unmasking(world, world.mods["rita"], on_other, PASSPHRASES["rita"]).unmasked_user_id is None
    capture()
    world.clock.now += service.REQUEST_LIFETIME_MS  # request 1 ends: its partials are deleted
    assert service.expire_unmasking_requests(world) == [first, on_other]
    assert rows(world, "select * from unmask_partials") == []
    second = service.request_unmasking(world, world.mods["nina"], case.case_id, maria.user_id, "Threats")
    assert service.approve_unmasking(world, world.mods["nina"], second, PASSPHRASES["nina"]).unmasked_user_id is None
    capture()
    with pytest.raises(Conflict, match=r"finished \(expired\)"):
        service.approve_unmasking(world, world.mods["rita"], first, PASSPHRASES["rita"])
    assert [r["status"] for r in rows(world, "select status from unmask_requests order by id")] == \
        ["expired", "expired", "open"]

    assert len(captured) == 4 and len({r["share_index"] for r in captured}) == 4  # 4 holders, any 3 would do
    links = rows(world, "select sealed_link, public_key from pseudonyms join escrows on escrows.id = escrow_id")
    assert database_attack(captured, links) == []
    # The same request, approved by a quorum, opens.
    for name in ("mona", "lena"):
        step = service.approve_unmasking(world, world.mods[name], second, PASSPHRASES[name])
    assert step.unmasked_user_id == "web participant webmaria"


async def test_a_tampered_partial_is_caught_and_its_approver_named(world):
    new = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    case = moderation.report_from_web(world, "harassment", "threats", "", [])
    request_id = service.request_unmasking(world, world.mods["mona"], case.case_id, new.user_id, "Threats")
    service.approve_unmasking(world, world.mods["mona"], request_id, PASSPHRASES["mona"])
    with world.engine.begin() as conn:  # someone with write access swaps mona's partial for another point
        conn.execute(text("update unmask_partials set partial = :p where partial is not null"),
                     {"p": escrow.blind_key(escrow.random_scalar())})
    with pytest.raises(Conflict, match="@mona:crossline.local does not verify"):
        service.approve_unmasking(world, world.mods["rita"], request_id, PASSPHRASES["rita"])
    assert rows(world, "select status from unmask_requests")[0]["status"] == "failed"
    assert rows(world, "select * from unmask_partials") == []


async def test_pseudonyms_sealed_under_the_old_scheme_are_refused_with_a_clear_message(world):
    new = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    with world.engine.begin() as conn:
        conn.execute(text("update escrows set scheme = 'shamir-x25519'"))
        assert store.current_escrow(conn) is None  # new pseudonyms wait for an escrow set up again
    case = moderation.report_from_web(world, "harassment", "threats", "", [])
    with pytest.raises(Conflict, match="before threshold decryption"):
        service.request_unmasking(world, world.mods["mona"], case.case_id, new.user_id, "Threats")
    with pytest.raises(Conflict, match="escrow is not set up"):
        await service.create_pseudonym(world, world.other, world.consultation.id, "Quiet Hill")


async def test_an_expired_request_is_refused_and_its_partials_deleted_even_before_any_sweep(world):
    new = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    case = moderation.report_from_web(world, "harassment", "threats", "", [])
    request_id = service.request_unmasking(world, world.mods["mona"], case.case_id, new.user_id, "Threats")
    service.approve_unmasking(world, world.mods["mona"], request_id, PASSPHRASES["mona"])
    world.clock.now += service.REQUEST_LIFETIME_MS
    assert [r.status for r in service.unmasking_requests(world, world.mods["lena"], case.case_id)] == ["expired"]
    with pytest.raises(Conflict, match="has expired"):
        service.approve_unmasking(world, world.mods["rita"], request_id, PASSPHRASES["rita"])
    assert rows(world, "select * from unmask_partials") == []
    assert rows(world, "select status from unmask_requests")[0]["status"] == "expired"
    # A new request on the same pseudonym starts from nothing.
    again = service.request_unmasking(world, world.mods["lena"], case.case_id, new.user_id, "Threats")
    assert service.approve_unmasking(world, world.mods["rita"], again, PASSPHRASES["rita"]).approvals == 1


async def test_batches_run_at_random_moments_one_to_two_windows_apart(hub):
    window = hub.config.pseudonyms.decoupling_seconds
    asked, slept = [], []

    def uniform(low, high):
        asked.append((low, high))
        return low + 0.25 * (high - low)

    async def sleep(seconds):
        slept.append(seconds)
        if len(slept) == 2:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await pool.run_batches_forever(hub, sleep=sleep, uniform=uniform)
    assert asked == [(window, 2 * window)] * 2 and slept == [1.25 * window] * 2
    assert rows(hub, "select count(*) as n from pseudonym_pool where ready")[0]["n"] == pool.POOL_SIZE


async def test_taking_a_pseudonym_does_not_tell_which_consultations_exist(world):
    """A draft of her side, a consultation of the other side only and a number nobody uses all get
    the same answer as on her pages (a 409, a 403 and a 404 told them apart), and make nothing."""
    draft = consultations.create(world, world.facilitator, 1, "Not yet", [{"en": "Later?"}], list(world.sides),
                                 premoderation=False)
    theirs = consultations.create(world, world.facilitator, 1, "Right bank only", [{"en": "?"}], [world.sides[1]],
                                  premoderation=False)
    consultations.change_phase(world, world.facilitator, theirs.id, Phase.COLLECTING)
    answers = set()
    for consultation_id in (draft.id, theirs.id, 987654):
        with pytest.raises(NotAllowed) as refused:
            await service.create_pseudonym(world, world.person, consultation_id, "Quiet Hill")
        answers.add((refused.value.status, refused.value.message))
    assert len(answers) == 1
    assert rows(world, "select count(*) as n from pseudonyms")[0]["n"] == 0
