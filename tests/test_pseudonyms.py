"""Pseudonyms and unmasking, on a real database with a recording homeserver (the whole path with
Synapse is in test_e2e_pseudonym.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from crossline.domain.consultations import Phase, VoteValue
from crossline.errors import Conflict, InvalidInput, NotAllowed
from crossline.pseudonyms import escrow
from crossline.services import consultations, moderation
from crossline.services import pseudonyms as service
from crossline.storage import members, rooms

PASSPHRASES = {"mona": "mona's long passphrase", "lena": "lena's long passphrase", "rita": "rita's long passphrase"}


@pytest.fixture
async def world(hub):
    with hub.engine.begin() as conn:
        line = conn.execute(text("select id from lines")).scalar()
        left, right = [r[0] for r in conn.execute(text("select id from sides order by id"))]
        mods = {name: members.add_member(conn, f"@{name}:crossline.local", line, side, frozenset({"moderator"}), None, 0)
                for name, side in (("mona", left), ("lena", left), ("rita", right))}
        person = members.add_member(conn, None, line, left, frozenset({"participant"}), None, 0, web_handle="webmaria")
        other = members.add_member(conn, "@olga:crossline.local", line, right, frozenset({"participant"}), None, 0)
        rooms.add_room(conn, "!consult:crossline.local", line, "consultation", "Consult", hub.facilitator.id, 0)
        hub.mods = {n: members.get_member(conn, i) for n, i in mods.items()}
        hub.person, hub.other = members.get_member(conn, person), members.get_member(conn, other)
        hub.sides = (left, right)
    hub.homeserver.accounts["@olga:crossline.local"] = {"displayname": "Olga Rusu"}
    for name, member in hub.mods.items():
        service.set_moderator_key(hub, member, PASSPHRASES[name])
    service.set_up_escrow(hub, hub.admin, 2, [m.id for m in hub.mods.values()])
    consultation = consultations.create(hub, hub.facilitator, 1, "Bridges", [{"en": "What first?"}], list(hub.sides),
                                        premoderation=False)
    consultations.attach_room(hub, hub.facilitator, consultation.id, "!consult:crossline.local")
    consultations.change_phase(hub, hub.facilitator, consultation.id, Phase.COLLECTING)
    hub.consultation = consultation
    return hub


async def test_a_pseudonym_is_an_opaque_account_of_her_side_with_a_sealed_link(world):
    new = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    assert new.user_id.startswith("@p-") and "maria" not in new.user_id and len(new.password) >= 24
    assert world.homeserver.accounts[new.user_id]["displayname"] == "River Voice"
    assert ("logout", f"token-{new.user_id[1:].split(':')[0]}") in world.homeserver.calls  # no device kept
    assert ("invite", "!consult:crossline.local", new.user_id) in world.homeserver.calls
    with world.engine.connect() as conn:
        pseudonym = members.find_by_user_id(conn, new.user_id)
        row = conn.execute(text("select * from pseudonyms")).mappings().one()
        audit_rows = conn.execute(text("select actor, details from audit_log")).all()
    assert pseudonym.side_id == world.person.side_id and pseudonym.roles == frozenset({"participant"})
    assert b"webmaria" not in row["sealed_link"] and str(world.person.id) != row["person_tag"]
    assert not any("webmaria" in r.details or r.actor == f"member:{world.person.id}" for r in audit_rows)


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
    case = moderation.report_from_web(world, "harassment", f"{new.user_id} threatens me", "", "", [])
    request_id = service.request_unmasking(world, world.mods["mona"], case.case_id, new.user_id, "Threats")
    with pytest.raises(NotAllowed, match="passphrase"):
        service.approve_unmasking(world, world.mods["mona"], request_id, "not my passphrase at all")
    first = service.approve_unmasking(world, world.mods["mona"], request_id, PASSPHRASES["mona"])
    assert (first.approvals, first.threshold, first.unmasked_user_id) == (1, 2, None)
    with pytest.raises(Conflict, match="already approved"):
        service.approve_unmasking(world, world.mods["mona"], request_id, PASSPHRASES["mona"])
    done = service.approve_unmasking(world, world.mods["rita"], request_id, PASSPHRASES["rita"])
    assert done.unmasked_user_id == "web participant webmaria"
    view = moderation.view(world, world.mods["lena"], case.case_id)
    assert any(kind == "unmasking_result" and b"webmaria" in opened for _, kind, _, opened, _ in view.evidence)
    kinds = [entry["kind"] for entry in view.audit]
    assert kinds.count("unmasking_approved") == 2 and "unmasking_requested" in kinds and "unmasked" in kinds
    assert "unmasking_passphrase_refused" in kinds
    with world.engine.connect() as conn:
        assert conn.execute(text("select count(*) from unmask_shares")).scalar() == 0  # shares gone after use
    assert moderation.verify_audit(world)[1] is None
    with world.engine.begin() as conn:
        conn.execute(text("update audit_log set kind = 'nothing' where kind = 'unmasked'"))
    assert moderation.verify_audit(world)[1] is not None


def test_the_sealed_link_opens_with_k_shares_and_not_with_k_minus_one():
    key = escrow.new_key_pair()
    link = escrow.seal(bytes(key.public_key), {"person": 7, "pseudonym_user_id": "@p-x:hub"})
    shares = escrow.split(key, 3, 5)
    assert b'"person": 7' in escrow.open_sealed(escrow.combine(shares[1:4]), link)
    for fewer in (shares[:2], shares[3:], [shares[0], shares[4]]):
        with pytest.raises(escrow.EscrowError):
            escrow.open_sealed(escrow.combine(fewer), link)
    with pytest.raises(escrow.EscrowError, match="quorum"):
        escrow.split(key, 1, 3)
