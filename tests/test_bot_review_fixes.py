"""What a hostile review of the bot found, each case as the reviewer tried it: a statement edited
after the facilitator read it, a pseudonym holder outed by the bot's public refusal, edited votes
that counted twice or not at all, edits and deletions sent in another room, and a raw title."""

from __future__ import annotations

import pytest

from crossline.domain.consultations import Phase, StatementStatus
from crossline.domain.room_messages import WORD_JOINER
from crossline.errors import Conflict
from crossline.services import consultations as service
from crossline.services import direct_rooms, pseudonyms
from crossline.services.room_events import RoomMessage, apply_room_messages_in
from crossline.storage import bot as bot_store
from crossline.storage import consultations as store
from tests import test_one_vote as one_vote
from tests.fakes import make_unit_hub
from tests.test_bot_isolation import _consultation, _voting, answer, answers, apply, edit, msg, redaction, vote_values
from tests.test_one_vote import members_get, postgres_url, race  # noqa: F401 - fixtures

OTHER_ROOM = "!elsewhere:crossline.local"
ANA_DIRECT = "!ana-and-the-bot:crossline.local"


def _queued_bodies(hub) -> list[str]:
    with hub.engine.connect() as conn:
        return [m.content["body"] for m in bot_store.waiting_messages(conn, 1000)]


def _statement(hub, number: int):
    with hub.engine.connect() as conn:
        return store.statement_by_number(conn, hub.consultation_id, number)


def _pending_then_edited(tmp_path):
    hub = _consultation(make_unit_hub(tmp_path), premoderation=True)
    said = msg("ana", "!say Reopen the bridge for families")
    apply(hub, [said])
    read = service.text_revision(service.facilitator_view(hub, hub.facilitator, hub.consultation_id).statements[0].text)
    assert "is updated" in answer(hub, edit("ana", said.event_id, "They are all murderers, drive them out"))
    return hub, read


def test_a_statement_edited_after_the_facilitator_read_it_is_not_approved_by_its_number(tmp_path):
    hub, read = _pending_then_edited(tmp_path)
    before = _queued_bodies(hub)
    # The web form names the words she read: they changed, so nothing is approved or announced.
    with pytest.raises(Conflict, match="changed by its author after you read it"):
        service.moderate(hub, hub.facilitator, hub.consultation_id, 1, True, "", read)
    # A number alone (an old form, the room's !approve) does not approve edited words either.
    with pytest.raises(Conflict, match="approve it there"):
        service.moderate(hub, hub.facilitator, hub.consultation_id, 1, True, "")
    assert _statement(hub, 1).status is StatementStatus.PENDING and _queued_bodies(hub) == before
    # Read again, approved: the words she approved are the words announced.
    again = service.text_revision(_statement(hub, 1).text)
    assert service.moderate(hub, hub.facilitator, hub.consultation_id, 1, True, "", again).status \
        is StatementStatus.APPROVED


def test_approve_in_the_room_refuses_an_edited_statement_and_points_to_the_page(tmp_path):
    hub, _ = _pending_then_edited(tmp_path)
    refused = answer(hub, msg("fac", "!approve 1"))
    assert "edited by its author" in refused and "page" in refused
    assert _statement(hub, 1).status is StatementStatus.PENDING
    assert not any("murderers" in body for body in _queued_bodies(hub))
    # A statement nobody edited is still approved from the room.
    apply(hub, [msg("bea", "!say Repair the school roof")])
    assert "Statement 2 is approved" in answer(hub, msg("fac", "!approve 2"))


@pytest.fixture
def three_people(monkeypatch):
    monkeypatch.setattr(one_vote, "PEOPLE", 3)


async def test_a_pseudonym_holder_is_never_named_in_the_room(three_people, race):
    hub = race
    (ana_id, ana_user, _, name), (_, bea_user, _, _) = hub.people[0], hub.people[1]
    await pseudonyms.create_pseudonym(hub, members_get(hub, ana_id), hub.consultation.id, name)
    with hub.engine.begin() as conn:
        direct_rooms.joined_in(conn, hub, ANA_DIRECT, ana_user)
    batch = [RoomMessage.text("$ana-vote", one_vote.ROOM, ana_user, "!agree 1", sender_name="Ana"),
             RoomMessage.text("$bea-vote", one_vote.ROOM, bea_user, "!agree 1", sender_name="Bea")]
    with hub.engine.begin() as conn:
        applied = apply_room_messages_in(conn, hub, batch)
    # Her commands are taken out of the room (the bot redacts them), and nothing answers them there.
    assert [m.event_id for m in applied.hidden] == ["$ana-vote"]
    with hub.engine.connect() as conn:
        queued = bot_store.waiting_messages(conn, 1000)
    in_room = [m for m in queued if m.room_id == one_vote.ROOM]
    assert in_room and all("$ana" not in str(m.content.get("crossline.answered")) for m in in_room)
    assert all(name_part not in m.content["body"] for m in in_room for name_part in ("Ana", ana_user, "pseudonym"))
    assert any("Vote recorded" in m.content["body"] for m in in_room)  # Bea's vote, recorded and confirmed
    # She alone is told why, in her direct room with the bot.
    (private,) = [m for m in queued if m.room_id == ANA_DIRECT and m.purpose == "reply"]
    assert "removed" in private.content["body"] and "pseudonym" in private.content["body"]


def test_a_vote_edited_to_other_numbers_replaces_the_original_votes(tmp_path):
    hub = _voting(_consultation(make_unit_hub(tmp_path)))
    first = msg("ana", "!agree 1 3")
    apply(hub, [first])
    changed = answer(hub, edit("ana", first.event_id, "!agree 2 3"))
    assert "Vote changed on statements 2, 3: agree" in changed and "statement 1 is withdrawn" in changed
    assert vote_values(hub) == {("ana", 2): 1, ("ana", 3): 1}
    # A later message's vote on a number is hers to keep: editing the first one again leaves it.
    apply(hub, [msg("ana", "!disagree 2")])
    apply(hub, [edit("ana", first.event_id, "!agree 3")])
    assert vote_values(hub) == {("ana", 2): -1, ("ana", 3): 1}
    apply(hub, [msg("bea", "!pass 1")])
    assert vote_values(hub)[("bea", 1)] == 0


def test_a_vote_edited_into_words_is_withdrawn_and_she_is_told(tmp_path):
    hub = _voting(_consultation(make_unit_hub(tmp_path)))
    first = msg("ana", "!disagree 1")
    apply(hub, [first])
    told = answer(hub, edit("ana", first.event_id, "sorry, wrong room"))
    assert "statement 1 is withdrawn" in told
    assert ("ana", 1) not in vote_values(hub)


def test_an_edit_or_deletion_sent_in_another_room_changes_nothing(tmp_path):
    hub = _voting(_consultation(make_unit_hub(tmp_path)))
    with hub.engine.connect() as conn:
        sides = list(store.get_consultation(conn, hub.consultation_id).eligible_side_ids)
    other = service.create(hub, hub.facilitator, 1, "Schools", [{"en": "Which?"}], sides, premoderation=False)
    service.attach_room(hub, hub.facilitator, other.id, OTHER_ROOM)
    service.change_phase(hub, hub.facilitator, other.id, Phase.COLLECTING)
    service.submit_statement(hub, hub.facilitator, other.id, other.questions[0].id, "One", "web")
    service.change_phase(hub, hub.facilitator, other.id, Phase.VOTING)
    vote = msg("ana", "!agree 1")
    apply(hub, [vote])
    elsewhere = edit("ana", vote.event_id, "!disagree 1")
    elsewhere = RoomMessage(elsewhere.event_id, OTHER_ROOM, elsewhere.sender, elsewhere.event)
    deleted = redaction("ana", vote.event_id)
    deleted = RoomMessage(deleted.event_id, OTHER_ROOM, deleted.sender, deleted.event)
    batch = apply(hub, [elsewhere, deleted])
    assert batch.failed == 0 and elsewhere.event_id not in answers(hub) and deleted.event_id not in answers(hub)
    with hub.engine.connect() as conn:
        ana = service.member_by_user_id(conn, "@ana:crossline.local")
        assert not store.member_votes(conn, other.id, ana.id)  # no vote appeared in the other consultation
    assert vote_values(hub) == {("ana", 1): 1}


def test_status_shows_the_title_as_member_words(tmp_path):
    hub = _consultation(make_unit_hub(tmp_path))
    with hub.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE consultations SET title = '@room see https://evil.example'")
    status = answer(hub, msg("ana", "!status"))
    assert f"@{WORD_JOINER}room" in status and "https://evil.example" not in status


def test_a_statement_edited_or_deleted_from_another_consultations_room_is_left_alone(tmp_path):
    hub = _consultation(make_unit_hub(tmp_path), premoderation=True)
    with hub.engine.connect() as conn:
        sides = list(store.get_consultation(conn, hub.consultation_id).eligible_side_ids)
    other = service.create(hub, hub.facilitator, 1, "Schools", [{"en": "Which?"}], sides, premoderation=True)
    service.attach_room(hub, hub.facilitator, other.id, OTHER_ROOM)
    said = msg("ana", "!say Reopen the bridge")
    apply(hub, [said])
    moved = edit("ana", said.event_id, "Close the bridge")
    moved = RoomMessage(moved.event_id, OTHER_ROOM, moved.sender, moved.event)
    deleted = redaction("ana", said.event_id)
    deleted = RoomMessage(deleted.event_id, OTHER_ROOM, deleted.sender, deleted.event)
    batch = apply(hub, [moved, deleted])
    assert batch.failed == 0 and moved.event_id not in answers(hub) and deleted.event_id not in answers(hub)
    assert _statement(hub, 1).text == "Reopen the bridge" and _statement(hub, 1).status is StatementStatus.PENDING


async def test_a_pseudonym_holders_statement_as_herself_is_not_answered_in_the_room(three_people, race):
    hub = race
    ana_id, ana_user, _, name = hub.people[0]
    collecting = service.create(hub, hub.facilitator, 1, "Later", [{"en": "Q"}], hub.sides, False)
    service.attach_room(hub, hub.facilitator, collecting.id, OTHER_ROOM)
    service.change_phase(hub, hub.facilitator, collecting.id, Phase.COLLECTING)
    await pseudonyms.create_pseudonym(hub, members_get(hub, ana_id), collecting.id, name)
    said = RoomMessage.text("$ana-say", OTHER_ROOM, ana_user, "!say Let the buses run", sender_name="Ana")
    with hub.engine.begin() as conn:
        applied = apply_room_messages_in(conn, hub, [said])
        assert not store.list_statements(conn, collecting.id)
    assert [m.event_id for m in applied.hidden] == ["$ana-say"]
    with hub.engine.connect() as conn:
        assert not [m for m in bot_store.waiting_messages(conn, 1000) if "$ana-say" in m.content.get(
            "crossline.answered", [])]
