"""Consultation services and room-message handling on a real SQLite database (no Synapse)."""

from __future__ import annotations

import pytest

from crossline.domain.consultations import Phase, Refusal, StatementStatus, VoteValue
from crossline.services import consultations as service
from crossline.services.room_events import ANSWERED_KEY, RoomMessage, apply_room_messages_in
from crossline.storage import bot as bot_store
from crossline.storage import consultations as store
from crossline.storage import lines, members

ROOM = "!consult:crossline.local"


@pytest.fixture
def consult(hub):
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
        ids = {
            "ana": members.add_member(conn, "@ana:crossline.local", 1, left.id, frozenset({"participant"}), None, 0),
            "bea": members.add_member(conn, "@bea:crossline.local", 1, right.id, frozenset({"participant"}), None, 0),
            "cai": members.add_member(conn, "@cai:crossline.local", 1, right.id, frozenset({"participant"}), None, 0),
        }
        people = {name: members.get_member(conn, member_id) for name, member_id in ids.items()}
    consultation = service.create(hub, hub.facilitator, 1, "Bridges", [{"en": "What first?"}, {"en": "Who decides?"}],
                                  [left.id, right.id], premoderation=True)
    service.attach_room(hub, hub.facilitator, consultation.id, ROOM)
    hub.people = people
    hub.consultation_id = consultation.id
    return hub


counter = iter(range(10_000))


def say(hub, who: str, body: str, reply_to: str | None = None, event_id: str | None = None) -> str:
    event_id = event_id or f"$e{next(counter)}"
    with hub.engine.begin() as conn:
        apply_room_messages_in(conn, hub, [RoomMessage.text(event_id, ROOM, f"@{who}:crossline.local", body, reply_to)])
    with hub.engine.connect() as conn:
        replies = [m for m in bot_store.waiting_messages(conn, 1000) if m.txn_id == f"reply-{event_id}"]
    return replies[0].content["body"] if replies else ""


def test_a_whole_consultation_through_room_messages(consult):
    hub = consult
    assert "has not opened yet" in say(hub, "ana", "!say 1 Too early")
    assert "now collecting statements" in say(hub, "fac", "!open")
    with hub.engine.connect() as conn:
        questions = [m for m in bot_store.waiting_messages(conn, 1000) if m.purpose == "question"]
        asked = store.get_consultation(conn, hub.consultation_id).questions
    assert [m.question_id for m in questions] == [q.id for q in asked]
    # A reply to a question post is a statement for that question.
    with hub.engine.begin() as conn:
        bot_store.message_sent(conn, questions[1], "$question2")
    assert "number 1" in say(hub, "ana", "> <@crossline> Question 2\n\nThe people living there", reply_to="$question2")
    assert "number 2" in say(hub, "bea", "!say 1 Open the bridge")
    assert "already there (statement 2)" in say(hub, "cai", "!say 1 open the bridge!")
    assert "several questions" in say(hub, "cai", "!say Reopen schools")
    assert "number 3" in say(hub, "cai", "!say 1 Reopen schools")
    assert "withdrawn" in say(hub, "cai", "!withdraw 3")
    assert "Only a facilitator" in say(hub, "ana", "!approve 1")
    assert "approved" in say(hub, "fac", "!approve 1")
    assert "approved" in say(hub, "fac", "!approve 2")
    assert "Voting has not started" in say(hub, "ana", "!agree 1")
    assert "now voting" in say(hub, "fac", "!voting")
    assert "Vote recorded on statements 1, 2" in say(hub, "ana", "!agree 1 2")
    assert "Vote recorded" in say(hub, "bea", "!disagree 1")
    assert "Vote recorded" in say(hub, "bea", "!agree 1")  # changed her mind: the latest counts
    assert "not open for voting" in say(hub, "cai", "!agree 3")
    assert "no statement 9" in say(hub, "cai", "!agree 9")
    assert "Vote recorded" in say(hub, "cai", "!pass 1")
    assert "closed" in say(hub, "fac", "!close")
    assert "Voting has closed" in say(hub, "ana", "!disagree 1")
    with hub.engine.connect() as conn:
        tallies = store.tallies_by_side(conn, hub.consultation_id)
        statement_1 = store.statement_by_number(conn, hub.consultation_id, 1)
        statement_2 = store.statement_by_number(conn, hub.consultation_id, 2)
    left, right = hub.people["ana"].side_id, hub.people["bea"].side_id
    assert tallies[statement_1.id][left] == {VoteValue.AGREE: 1}
    assert tallies[statement_1.id][right] == {VoteValue.AGREE: 1, VoteValue.PASS: 1}
    assert tallies[statement_2.id][left] == {VoteValue.AGREE: 1}


def test_an_event_is_applied_once(consult):
    hub = consult
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.COLLECTING)
    say(hub, "ana", "!say 1 Open the bridge", event_id="$same")
    say(hub, "ana", "!say 1 Open the bridge", event_id="$same")
    with hub.engine.connect() as conn:
        assert len(store.list_statements(conn, hub.consultation_id)) == 1


def test_a_busy_batch_is_answered_in_one_notice_naming_each_person(consult):
    hub = consult
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.COLLECTING)
    for text in ("Open the bridge", "Reopen schools"):
        service.submit_statement(hub, hub.facilitator, hub.consultation_id, _q1(hub), text, "web")
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.VOTING)
    batch = [RoomMessage.text("$a", ROOM, "@ana:crossline.local", "!agree 1", sender_name="Ana"),
             RoomMessage.text("$b", ROOM, "@bea:crossline.local", "!disagree 7", sender_name="Bea\nB."),
             RoomMessage.text("$c", ROOM, "@ana:crossline.local", "hello all", sender_name="Ana"),
             RoomMessage.text("$d", ROOM, "@cai:crossline.local", "!pass 2", sender_name="")]
    with hub.engine.begin() as conn:
        assert apply_room_messages_in(conn, hub, batch).new == 4
        assert apply_room_messages_in(conn, hub, batch).new == 0  # the same batch again: nothing new
    with hub.engine.connect() as conn:
        (notice,) = [m for m in bot_store.waiting_messages(conn, 1000) if m.txn_id.startswith("replies-")]
    assert notice.txn_id == "replies-$a"
    assert notice.content[ANSWERED_KEY] == ["$a", "$b", "$d"]  # ordinary chat gets no answer
    assert notice.content["m.mentions"] == {}  # naming people must not ping them
    lines = notice.content["body"].split("\n")
    assert lines[0].startswith("• Ana: ✓ Vote recorded on statement 1")
    assert lines[1].startswith("• Bea B.: ") and "no statement 7" in lines[1]
    # A user id shown by the bot is neither a mention nor a link (word joiners after "@", ":" and ".").
    assert lines[2].startswith("• @\u2060cai:\u2060crossline.\u2060local: ✓ Vote recorded on statement 2")


def test_a_very_busy_batch_is_answered_in_chunks(consult):
    hub = consult
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.COLLECTING)
    batch = [RoomMessage.text(f"$m{n}", ROOM, "@ana:crossline.local", "!status", sender_name="Ana") for n in range(60)]
    with hub.engine.begin() as conn:
        apply_room_messages_in(conn, hub, batch)
    with hub.engine.connect() as conn:
        notices = [m for m in bot_store.waiting_messages(conn, 1000) if m.txn_id.startswith("replies-")]
    assert [id for m in notices for id in m.content[ANSWERED_KEY]] == [m.event_id for m in batch]
    assert len(notices) > 1 and all(len(m.content["body"]) <= 4000 for m in notices)


def test_ordinary_chat_is_ignored_and_unknown_senders_are_told(consult):
    hub = consult
    assert say(hub, "ana", "good morning everyone") == ""
    assert "not a member of this hub" in say(hub, "stranger", "!agree 1")


def test_a_refused_vote_in_a_batch_records_none_of_it(consult):
    hub = consult
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.COLLECTING)
    service.submit_statement(hub, hub.facilitator, hub.consultation_id, _q1(hub), "Seeded one", "web")
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.VOTING)
    assert "no statement 5" in say(hub, "ana", "!agree 1 5")
    with hub.engine.connect() as conn:
        assert store.member_votes(conn, hub.consultation_id, hub.people["ana"].id) == {}


def test_a_retried_web_submission_is_not_doubled(consult):
    hub = consult
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.COLLECTING)
    first = service.submit_statement(hub, hub.people["ana"], hub.consultation_id, _q1(hub), "Once", "web", "sub-1")
    again = service.submit_statement(hub, hub.people["ana"], hub.consultation_id, _q1(hub), "Once", "web", "sub-1")
    assert first.status is StatementStatus.PENDING and again is None
    with pytest.raises(Refusal, match="already there"):
        service.submit_statement(hub, hub.people["ana"], hub.consultation_id, _q1(hub), "Once", "web", "sub-2")


def test_participation_counts_by_side_only(consult):
    hub = consult
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.COLLECTING)
    service.submit_statement(hub, hub.facilitator, hub.consultation_id, _q1(hub), "Seeded", "web")
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.VOTING)
    service.cast_votes(hub, hub.people["bea"], hub.consultation_id, [(1, VoteValue.AGREE)])
    counts = service.participation(hub, hub.facilitator, hub.consultation_id)
    # One voter on the right bank: a figure about one person is not shown, only that there are some.
    assert [(c.side_name, c.voters, c.votes) for c in counts] == [("Left bank", 0, 0), ("Right bank", None, None)]


def _q1(hub) -> int:
    with hub.engine.connect() as conn:
        return store.get_consultation(conn, hub.consultation_id).questions[0].id


def test_bookkeeping_is_forgotten_once_it_can_no_longer_matter(consult):
    from crossline.services.housekeeping import DAY_MS, forget_what_is_no_longer_needed

    hub = consult
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.COLLECTING)
    say(hub, "ana", "!say 1 Open the bridge", event_id="$old")
    service.submit_statement(hub, hub.people["bea"], hub.consultation_id, _q1(hub), "Reopen schools", "web", "sub-old")
    hub.clock.now += DAY_MS
    assert forget_what_is_no_longer_needed(hub).processed_events == 0  # a day on: still guarded
    hub.clock.now += 7 * DAY_MS
    forgotten = forget_what_is_no_longer_needed(hub)
    assert (forgotten.processed_events, forgotten.web_submissions) == (1, 1)
    with hub.engine.connect() as conn:
        assert len(store.list_statements(conn, hub.consultation_id)) == 2  # the effects stay
