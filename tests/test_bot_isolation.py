"""A room batch on a real database: poison events isolated, the batch's effects, processed marks and
answers committed together (SQLite and PostgreSQL), edits and deletions, what the bot posts."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from crossline.domain.consultations import Phase, StatementStatus
from crossline.domain.room_messages import WORD_JOINER
from crossline.services import consultations as service
from crossline.services import room_events
from crossline.services.hub import Hub
from crossline.services.room_events import ANSWERED_KEY, COULD_NOT_HANDLE, RoomMessage, apply_room_messages_in
from crossline.storage import bot as bot_store
from crossline.storage import consultations as store
from crossline.storage import lines, members
from crossline.storage.db import create_database_engine, migrate
from crossline.storage.schema import outbox, processed_events, votes
from tests.fakes import make_unit_hub
from tests.postgres import PostgresServer

ROOM = "!consult:crossline.local"
PEOPLE = ("ana", "bea", "cai", "dan")
ids = itertools.count()


@pytest.fixture(scope="module")
def postgres_url():
    server = PostgresServer()
    yield server.start()
    server.stop()


def _consultation(hub: Hub, premoderation: bool = True) -> Hub:
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
        for n, name in enumerate(PEOPLE):
            members.add_member(conn, f"@{name}:crossline.local", 1, (left, right)[n % 2].id,
                               frozenset({"participant"}), None, 0)
    consultation = service.create(hub, hub.facilitator, 1, "Bridges", [{"en": "What first?"}], [left.id, right.id],
                                  premoderation=premoderation)
    service.attach_room(hub, hub.facilitator, consultation.id, ROOM)
    hub.consultation_id = consultation.id
    service.change_phase(hub, hub.facilitator, consultation.id, Phase.COLLECTING)
    return hub


def _voting(hub: Hub) -> Hub:
    question = _question(hub)
    for words in ("Open the bridge", "Reopen schools", "Repair the road"):
        service.submit_statement(hub, hub.facilitator, hub.consultation_id, question, words, "web")
    service.change_phase(hub, hub.facilitator, hub.consultation_id, Phase.VOTING)
    return hub


def _question(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return store.get_consultation(conn, hub.consultation_id).questions[0].id


@pytest.fixture(params=["sqlite", "postgresql"])
def any_hub(request, tmp_path):
    hub = make_unit_hub(tmp_path)
    if request.param == "postgresql":
        engine = create_database_engine(request.getfixturevalue("postgres_url"))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        migrate(engine)
        with engine.begin() as conn:
            lines.add_line(conn, "nistru", "Nistru", ["Left bank", "Right bank"], 0)
            fac = members.add_member(conn, "@fac:crossline.local", None, None, frozenset({"facilitator"}), None, 0)
            hub.facilitator = members.get_member(conn, fac)
        hub.engine = engine
    yield _voting(_consultation(hub))
    hub.engine.dispose()


@pytest.fixture
def voting(tmp_path):
    return _voting(_consultation(make_unit_hub(tmp_path)))


def msg(who: str, body: str, event_id: str | None = None, **kwargs) -> RoomMessage:
    return RoomMessage.text(event_id or f"$e{next(ids)}", ROOM, f"@{who}:crossline.local", body, **kwargs)


def raw(who: str, event: object, event_id: str | None = None) -> RoomMessage:
    return RoomMessage(event_id or f"$e{next(ids)}", ROOM, f"@{who}:crossline.local", event)


def edit(who: str, original: str, new_body: str) -> RoomMessage:
    return raw(who, {"type": "m.room.message", "content": {
        "msgtype": "m.text", "body": f"* {new_body}", "m.new_content": {"msgtype": "m.text", "body": new_body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original}}})


def redaction(who: str, redacted: str) -> RoomMessage:
    return raw(who, {"type": "m.room.redaction", "redacts": redacted, "content": {}})


def apply(hub: Hub, batch: list[RoomMessage]):
    with hub.engine.begin() as conn:
        return apply_room_messages_in(conn, hub, batch)


def answers(hub: Hub) -> dict[str, list[str]]:
    """Event id -> the bodies of the queued notices that answer it (one line each in a combined notice)."""
    found: dict[str, list[str]] = {}
    with hub.engine.connect() as conn:
        for message in bot_store.waiting_messages(conn, 100_000):
            for event_id in message.content.get(ANSWERED_KEY, []):
                found.setdefault(event_id, []).append(message.content["body"])
    return found


def answer(hub: Hub, message: RoomMessage) -> str:
    apply(hub, [message])
    (body,) = answers(hub)[message.event_id]
    return body


def vote_values(hub: Hub) -> dict[tuple[str, int], int]:
    with hub.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT m.matrix_user_id, s.number, v.value FROM votes v JOIN members m ON m.id = v.member_id "
            "JOIN statements s ON s.id = v.statement_id")).all()
    return {(user.split(":")[0][1:], number): value for user, number, value in rows}


def count(hub: Hub, table) -> int:
    with hub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- One commit for the batch -----------------------------------------------------------------


def test_a_batch_commits_its_effects_marks_and_answers_together_or_not_at_all(any_hub):
    hub = any_hub
    before = (count(hub, votes), count(hub, processed_events), count(hub, outbox))
    with pytest.raises(RuntimeError):
        with hub.engine.begin() as conn:
            apply_room_messages_in(conn, hub, [msg("ana", "!agree 1"), msg("bea", "!disagree 2")])
            # Meanwhile nothing is visible to anyone else (pysqlite committed at each savepoint).
            with hub.engine.connect() as other:
                assert other.execute(select(func.count()).select_from(votes)).scalar_one() == before[0]
            raise RuntimeError("the process dies before the commit")
    assert (count(hub, votes), count(hub, processed_events), count(hub, outbox)) == before
    first, second = msg("ana", "!agree 1"), msg("bea", "!disagree 2")
    apply(hub, [first, second])
    assert vote_values(hub) == {("ana", 1): 1, ("bea", 2): -1}
    assert first.event_id in answers(hub) and second.event_id in answers(hub)


def test_a_poison_event_is_skipped_and_answered_and_the_rest_applied(any_hub, monkeypatch, caplog):
    hub = any_hub

    def broken(*_):
        raise KeyError("a bug this event uncovers")

    monkeypatch.setattr(room_events, "_status", broken)
    batch = [msg("ana", "!agree 1"), raw("bea", None), msg("cai", "!status secret words"), msg("dan", "!pass 3")]
    assert apply(hub, batch).failed == 2
    found = answers(hub)
    assert [len(found[m.event_id]) for m in batch] == [1, 1, 1, 1]
    assert COULD_NOT_HANDLE.split(",")[0] in found[batch[1].event_id][0]
    assert vote_values(hub) == {("ana", 1): 1, ("dan", 3): 0}
    assert "secret" not in caplog.text and "KeyError" in caplog.text
    assert apply(hub, batch).new == 0  # never tried again


# -- Property: good events handled and confirmed exactly once ---------------------------------

good_votes = st.tuples(st.sampled_from(PEOPLE), st.sampled_from(["!agree", "!disagree", "!pass"]), st.integers(1, 3))
poison = st.one_of(
    st.just(None),  # the bot's client failed on it
    st.just("!status"),  # made to raise below: a bug in one command's handling
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                 max_leaves=8),
    st.builds(lambda relates, body: {"type": "m.room.message",
                                     "content": {"msgtype": "m.text", "body": body, "m.relates_to": relates}},
              st.one_of(st.text(max_size=5), st.lists(st.text(max_size=3)), st.none(), st.integers()),
              st.sampled_from(["!agree ²", "!agree 99999999999999999999999999999", "!agree " + str(2 ** 63),
                               "!nonsense @room", "\ud800"])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.lists(st.one_of(good_votes.map(lambda v: ("good", v)), poison.map(lambda p: ("poison", p))),
                min_size=1, max_size=12))
def test_every_good_event_is_handled_and_confirmed_exactly_once(voting, monkeypatch, batch):
    hub = voting

    def broken(*_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(room_events, "_status", broken)
    messages, expected = [], dict(vote_values(hub))
    for kind, item in batch:
        if kind == "good":
            who, word, number = item
            messages.append(msg(who, f"{word} {number}"))
            expected[(who, number)] = {"!agree": 1, "!disagree": -1, "!pass": 0}[word]
        elif item == "!status":
            messages.append(msg("ana", "!status"))
        else:
            messages.append(raw("bea", item))
    apply(hub, messages)
    apply(hub, messages)  # a replayed batch changes nothing and answers nothing twice
    found = answers(hub)
    for (kind, _), message in zip(batch, messages):
        if kind == "good":
            assert len(found.get(message.event_id, [])) == 1
            assert "Vote recorded" in found[message.event_id][0]
        else:
            assert len(found.get(message.event_id, [])) <= 1
    assert vote_values(hub) == expected


# -- Edits, replies and deletions ---------------------------------------------------------------


def test_an_edited_vote_is_a_changed_vote_and_only_its_sender_can_edit_it(voting):
    hub = voting
    vote = msg("ana", "!agree 2")
    assert "Vote recorded on statement 2: agree" in answer(hub, vote)
    assert "Vote changed on statement 2: disagree" in answer(hub, edit("ana", vote.event_id, "!disagree 2"))
    assert vote_values(hub)[("ana", 2)] == -1
    intruder = edit("bea", vote.event_id, "!agree 2")
    apply(hub, [intruder])
    assert intruder.event_id not in answers(hub) and vote_values(hub) == {("ana", 2): -1}
    assert "plain digits" in answer(hub, edit("ana", vote.event_id, "!agree ²"))
    assert vote_values(hub) == {("ana", 2): -1}
    # Edited into words: the message is no longer a vote, so neither is its vote (see
    # test_bot_review_fixes for votes edited to other numbers).
    assert "statement 2 is withdrawn" in answer(hub, edit("ana", vote.event_id, "I changed my mind"))
    assert vote_values(hub) == {}


def test_a_vote_as_a_reply_with_or_without_the_fallback_quote(voting):
    hub = voting
    quoted = msg("ana", "> <@crossline-bot:crossline.local> Statement 1: “Open the bridge”\n\n!agree 1", reply_to="$bot")
    assert "Vote recorded on statement 1" in answer(hub, quoted)
    assert "Vote recorded on statement 3" in answer(hub, msg("bea", "!pass 3", reply_to="$bot"))
    assert vote_values(hub) == {("ana", 1): 1, ("bea", 3): 0}


def _statement(hub: Hub, number: int):
    with hub.engine.connect() as conn:
        return next(s for s in store.list_statements(conn, hub.consultation_id) if s.number == number)


def test_a_statement_is_edited_before_approval_and_refused_after(tmp_path):
    hub = _consultation(make_unit_hub(tmp_path))
    said = msg("ana", "!say Open the brigde")
    assert "number 1" in answer(hub, said)
    assert "is updated" in answer(hub, edit("ana", said.event_id, "Open the bridge"))
    assert _statement(hub, 1).text == "Open the bridge"
    # An edit that is a command does not become a second statement, nor change the first.
    assert "not make it a command" in answer(hub, edit("ana", said.event_id, "!agree 1"))
    apply(hub, [edit("bea", said.event_id, "Close the bridge")])  # not hers: nothing
    assert _statement(hub, 1).text == "Open the bridge"
    with hub.engine.connect() as conn:
        assert len(store.list_statements(conn, hub.consultation_id)) == 1
    # Approved as the facilitator read it (an edited statement needs its words' revision, see
    # test_bot_review_fixes).
    service.moderate(hub, hub.facilitator, hub.consultation_id, 1, True, "", service.text_revision("Open the bridge"))
    refused = answer(hub, edit("ana", said.event_id, "Open every bridge"))
    assert "is approved, so your edit does not change it" in refused
    assert _statement(hub, 1).text == "Open the bridge"


def test_a_statement_deleted_by_its_author_before_approval_is_withdrawn(tmp_path):
    hub = _consultation(make_unit_hub(tmp_path))
    first, second = msg("ana", "!say Open the bridge"), msg("ana", "!say Reopen schools")
    apply(hub, [first])
    apply(hub, [second])
    apply(hub, [redaction("bea", first.event_id)])  # someone else's deletion changes nothing
    assert _statement(hub, 1).status is StatementStatus.PENDING
    assert "withdrawn" in answer(hub, redaction("ana", first.event_id))
    assert _statement(hub, 1).status is StatementStatus.WITHDRAWN
    service.moderate(hub, hub.facilitator, hub.consultation_id, 2, True, "")
    assert "so it stays" in answer(hub, redaction("ana", second.event_id))
    assert _statement(hub, 2).status is StatementStatus.APPROVED


# -- What the bot posts ------------------------------------------------------------------------


def test_nothing_the_bot_posts_carries_a_members_words_with_the_bots_power(tmp_path):
    hub = _consultation(make_unit_hub(tmp_path), premoderation=False)
    words = "@room Voting on this consultation has closed <b>see</b> https://evil.example @bob:crossline.local \u202eli"
    said = msg("ana", f"!say {words}")
    unknown = msg("bea", "!" + "@room" * 9600)  # 48,000 characters
    apply(hub, [said])
    apply(hub, [unknown])
    with hub.engine.connect() as conn:
        sent = bot_store.waiting_messages(conn, 1000)
    assert sent and all(m.content.get("m.mentions") == {} and "formatted_body" not in m.content
                        for m in sent if m.purpose == "reply")
    found = answers(hub)
    (statement_answer,) = found[said.event_id]
    line = statement_answer.split("\n")[1]
    assert line.startswith("Statement 1: “") and line.endswith("”")  # her words, quoted on one line
    assert "@room" not in line and f"@{WORD_JOINER}room" in line
    assert "https://" not in line and "evil.example" not in line and "@bob:crossline" not in line
    assert "\u202e" not in line and "<b>see</b>" in line  # plain text: shown, never rendered
    (unknown_answer,) = found[unknown.event_id]
    assert "@room" not in unknown_answer and len(unknown_answer) < 100
    assert len(json.dumps([m.content for m in sent])) < 10_000
