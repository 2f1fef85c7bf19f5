"""A member's direct room with the bot, at the service level (the whole path with Synapse and
encrypted clients is tests/test_e2e_direct_room.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from crossline.domain.consultations import Phase
from crossline.domain.direct_messages import say, split_target, without_target
from crossline.matrix.direct_rooms import invitation_facts
from crossline.services import consultations
from crossline.services import direct_rooms as service
from crossline.services.room_events import ANSWERED_KEY, RoomMessage
from crossline.storage import bot as bot_store
from crossline.storage import members

DM = "!dm:crossline.local"
ANA = "@ana:crossline.local"


@pytest.fixture
def dm(hub):
    """Ana (left bank) in two consultations, both voting; Bea (right bank) voted too."""
    with hub.engine.begin() as conn:
        left, right = [r[0] for r in conn.execute(text("select id from sides order by id"))]
        hub.ana = members.get_member(conn, members.add_member(conn, ANA, 1, left, frozenset({"participant"}), None, 0))
        hub.bea = members.get_member(conn, members.add_member(conn, "@bea:crossline.local", 1, right,
                                                               frozenset({"participant"}), None, 0))
        service.joined_in(conn, hub, DM)
    hub.ids = []
    for title in ("Bridges", "Water"):
        c = consultations.create(hub, hub.facilitator, 1, title, [{"en": "Q"}], [left, right], False)
        consultations.change_phase(hub, hub.facilitator, c.id, Phase.COLLECTING)
        for words in ("one", "two", "three"):
            consultations.submit_statement(hub, hub.facilitator, c.id, c.questions[0].id, words, "seed")
        consultations.change_phase(hub, hub.facilitator, c.id, Phase.VOTING)
        hub.ids.append(c.id)
    return hub


def send(hub, body: str, sender: str = ANA, event_id: str | None = None) -> str:
    event_id = event_id or f"$e{abs(hash((body, sender)))}"
    with hub.engine.begin() as conn:
        service.apply_direct_messages_in(conn, hub, [RoomMessage.text(event_id, DM, sender, body)])
    with hub.engine.connect() as conn:
        (answer,) = [m.content for m in bot_store.waiting_messages(conn, 500)
                     if m.content.get(ANSWERED_KEY) == [event_id]]
    assert answer["m.mentions"] == {} and answer["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
    return answer["body"]


def votes_of(hub, member_id: int) -> dict:
    with hub.engine.connect() as conn:
        return {c: consultations.store.member_votes(conn, c, member_id) for c in hub.ids}


def test_a_vote_names_its_consultation_when_several_are_voting(dm):
    first, second = dm.ids
    asked = send(dm, "!agree 3")
    assert "Several of your consultations are voting" in asked and f"{first}: “Bridges”" in asked
    assert f"{second}: “Water”" in asked and votes_of(dm, dm.ana.id) == {first: {}, second: {}}
    assert "Vote recorded on statement 3 in “Water”" in send(dm, f"!agree 3 in {second}")
    assert "statements 1, 2 in “Bridges”" in send(dm, f"!disagree 1 2 in {first}")
    consultations.change_phase(dm, dm.facilitator, first, Phase.CLOSED)
    assert "in “Water”" in send(dm, "!pass 2")  # the one still voting
    assert "no consultation with that number" in send(dm, "!agree 1 in 999")
    assert "Voting has closed" in send(dm, f"!agree 1 in {first}")
    counted = votes_of(dm, dm.ana.id)
    assert [len(counted[first]), len(counted[second])] == [2, 2]


def test_status_shows_her_consultations_and_only_her_votes(dm):
    first, second = dm.ids
    consultations.cast_votes(dm, dm.bea, first, [(1, consultations.VoteValue.AGREE), (2, consultations.VoteValue.AGREE)])
    send(dm, f"!disagree 3 in {first}")
    status = send(dm, "!status")
    assert f"{first}: “Bridges” is voting" in status and f"{second}: “Water” is voting" in status
    assert "Your votes there: statement 3 disagree" in status and "statement 1" not in status
    assert "You have not voted there." in status
    assert "!status" in send(dm, "!help") and "statements in the consultation's room" in send(dm, "!say 1 hello")
    with dm.engine.connect() as conn:
        assert bot_store.get_state(conn, "next_batch") is None  # nothing of the sync's own state touched


def test_a_message_is_applied_once_and_conversation_is_not_answered(dm):
    first, _ = dm.ids
    send(dm, f"!agree 1 in {first}", event_id="$once")
    with dm.engine.begin() as conn:
        service.apply_direct_messages_in(conn, dm, [RoomMessage.text("$once", DM, ANA, f"!disagree 1 in {first}")])
        service.apply_direct_messages_in(conn, dm, [RoomMessage.text("$chat", DM, ANA, "hello there")])
    assert list(votes_of(dm, dm.ana.id)[first].values()) == [consultations.VoteValue.AGREE]
    with dm.engine.connect() as conn:
        assert not [m for m in bot_store.waiting_messages(conn, 500) if m.content.get(ANSWERED_KEY) == ["$chat"]]


def test_someone_with_no_line_is_refused_and_nothing_is_recorded(dm):
    assert send(dm, "!agree 1", sender="@facilitator:crossline.local") == say("not_a_member")
    assert service.invitation_refusal(dm, "@fac:crossline.local", True, True, DM) == say("not_a_member")
    assert service.invitation_refusal(dm, "@stranger:elsewhere.org", True, True, DM) == say("not_a_member")
    assert service.invitation_refusal(dm, ANA, False, True, DM) == say("not_private")
    assert service.invitation_refusal(dm, ANA, True, False, DM) == say("not_private")
    assert service.invitation_refusal(dm, ANA, True, True, DM) is None


def test_the_in_suffix_is_read_in_any_digits_and_only_at_the_end():
    assert split_target("!agree 3 in 12") == ("!agree 3", 12)
    assert split_target("!agree 3 IN ١٢") == ("!agree 3", 12)
    assert split_target("!agree 3") == ("!agree 3", None)
    assert split_target("!agree in 3 5") == ("!agree in 3 5", None)
    edited = {"type": "m.room.message", "content": {"body": "* !agree 1 in 4", "m.new_content": {"body": "!agree 1 in 4"}}}
    assert without_target(edited) == ({"type": "m.room.message", "content": {
        "body": "* !agree 1 in 4", "m.new_content": {"body": "!agree 1"}}}, 4)
    for odd in (None, "x", {"content": "x"}, {"content": {"body": 5}}):
        assert without_target(odd) == (odd, None)


def test_invitation_facts_read_the_stripped_state_whatever_its_shape():
    from nio.responses import SyncResponse

    bot = "@crossline-bot:crossline.local"

    def state(*events):
        return SyncResponse._get_invite_state({"events": list(events)})  # as nio parses a sync

    invite = {"type": "m.room.member", "state_key": bot, "sender": ANA,
              "content": {"membership": "invite", "is_direct": True}}
    encryption = {"type": "m.room.encryption", "state_key": "", "sender": ANA, "content": {"algorithm": "x"}}
    assert invitation_facts(bot, state(encryption, invite)) == (ANA, True)
    assert invitation_facts(bot, state({**invite, "content": {"membership": "invite"}})) == (ANA, False)
    assert invitation_facts(bot, state({**invite, "content": {"membership": "invite", "is_direct": "yes"}})) == (ANA, False)
    assert invitation_facts(bot, state({**invite, "state_key": "@other:x"}, encryption)) == (None, False)
    assert invitation_facts(bot, [object(), None]) == (None, False)


def test_a_member_is_served_in_one_direct_room_at_a_time(dm):
    # Ana's first direct room is served; any further one she invites the bot to is declined,
    # whoever else is served, until the bot no longer serves her first one.
    with dm.engine.begin() as conn:
        service.joined_in(conn, dm, "!first:crossline.local", ANA)
    assert service.invitation_refusal(dm, ANA, True, True, "!first:crossline.local") is None
    for i in range(3):
        assert service.invitation_refusal(dm, ANA, True, True, f"!more{i}:crossline.local") == say("already_served")
    assert service.invitation_refusal(dm, "@bea:crossline.local", True, True, "!bea:crossline.local") is None
    with dm.engine.begin() as conn:
        service.left_in(conn, "!first:crossline.local")
    assert service.invitation_refusal(dm, ANA, True, True, "!more0:crossline.local") is None


def test_the_rooms_of_a_sync_are_read_in_one_query(dm):
    from sqlalchemy import event

    rooms = {f"!r{i}:crossline.local" for i in range(300)}
    with dm.engine.begin() as conn:
        for i, room_id in enumerate(sorted(rooms)):
            if i % 2:
                service.invited_in(conn, room_id, ANA, True)
    statements = []
    with dm.engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", lambda *args: statements.append(args[2]))
        invited, direct = service.rooms_by_state(conn, rooms | {DM})
    assert len(invited) == 150 and direct == {DM} and len(statements) == 1
