"""The consultation engine: plain data, no event loop. (Room commands: test_room_parser.)"""

from __future__ import annotations

import pytest

from crossline.domain.consultations import (
    Consultation, Participant, Phase, Question, Refusal, Statement, StatementStatus, VoteValue,
    advance, check_design, moderate, submit_statement, vote, withdraw,
)

LEFT, RIGHT, OTHER = 1, 2, 9
Q1 = Question(id=10, position=1, prompts={"en": "What should reopen first?", "ru": "Что открыть первым?"})
FAC = Participant(member_id=100, side_id=None, is_facilitator=True)
ANA = Participant(member_id=1, side_id=LEFT)
BEA = Participant(member_id=2, side_id=RIGHT)
OUT = Participant(member_id=3, side_id=OTHER)


def consultation(phase: Phase, premoderation: bool = True) -> Consultation:
    return Consultation(1, 1, "Bridges", phase, frozenset({LEFT, RIGHT}), (Q1,), premoderation)


def statement(number=1, status=StatementStatus.APPROVED, author=1, text="Open the bridge") -> Statement:
    return Statement(id=number, number=number, question_id=Q1.id, author_member_id=author, text=text, status=status)


@pytest.mark.parametrize(
    "phase, target, actor, approved, result",
    [
        (Phase.DRAFT, Phase.COLLECTING, FAC, 0, Phase.COLLECTING),
        (Phase.COLLECTING, Phase.VOTING, FAC, 1, Phase.VOTING),
        (Phase.VOTING, Phase.CLOSED, FAC, 1, Phase.CLOSED),
        (Phase.COLLECTING, Phase.VOTING, FAC, 0, "no approved statement"),
        (Phase.DRAFT, Phase.VOTING, FAC, 1, "the next phase is collecting statements"),
        (Phase.CLOSED, Phase.VOTING, FAC, 1, "cannot be reopened"),
        (Phase.DRAFT, Phase.COLLECTING, ANA, 0, "Only a facilitator"),
    ],
)
def test_phase_changes(phase, target, actor, approved, result):
    if isinstance(result, Phase):
        assert advance(consultation(phase), actor, target, approved) is result
    else:
        with pytest.raises(Refusal, match=result):
            advance(consultation(phase), actor, target, approved)


@pytest.mark.parametrize(
    "phase, author, text, existing, result",
    [
        (Phase.COLLECTING, ANA, "  Open   the bridge ", [], ("Open the bridge", StatementStatus.PENDING, False)),
        (Phase.DRAFT, FAC, "Seeded", [], ("Seeded", StatementStatus.APPROVED, True)),
        (Phase.DRAFT, ANA, "Too early", [], "has not opened yet"),
        (Phase.VOTING, ANA, "Too late", [], "no longer collected"),
        (Phase.COLLECTING, OUT, "Not my line", [], "Your side is not taking part"),
        (Phase.COLLECTING, ANA, "   ", [], "The statement is empty"),
        (Phase.COLLECTING, ANA, "x" * 501, [], "too long \\(501 characters; at most 500\\)"),
        (Phase.COLLECTING, BEA, "open the BRIDGE.", [statement()], "already there \\(statement 1\\)"),
        (Phase.COLLECTING, BEA, "Open the bridge", [statement(status=StatementStatus.WITHDRAWN)],
         ("Open the bridge", StatementStatus.PENDING, False)),
    ],
)
def test_statements(phase, author, text, existing, result):
    if isinstance(result, tuple):
        assert submit_statement(consultation(phase), author, Q1.id, text, existing) == result
    else:
        with pytest.raises(Refusal, match=result):
            submit_statement(consultation(phase), author, Q1.id, text, existing)


def test_without_premoderation_statements_are_approved_at_once():
    assert submit_statement(consultation(Phase.COLLECTING, premoderation=False), ANA, Q1.id, "Hi", [])[1] \
        is StatementStatus.APPROVED


def test_unknown_question_is_refused():
    with pytest.raises(Refusal, match="no such question"):
        submit_statement(consultation(Phase.COLLECTING), ANA, 999, "text", [])


@pytest.mark.parametrize(
    "actor, current, approve, reason, result",
    [
        (FAC, StatementStatus.PENDING, True, "", (StatementStatus.APPROVED, "")),
        (FAC, StatementStatus.PENDING, False, "Names a person", (StatementStatus.REJECTED, "Names a person")),
        (FAC, StatementStatus.PENDING, False, "", "Say why"),
        (FAC, StatementStatus.APPROVED, True, "", "already approved"),
        (FAC, StatementStatus.WITHDRAWN, True, "", "withdrawn by its author"),
        (ANA, StatementStatus.PENDING, True, "", "Only a facilitator"),
    ],
)
def test_moderation(actor, current, approve, reason, result):
    if isinstance(result, tuple):
        assert moderate(consultation(Phase.COLLECTING), actor, statement(status=current), approve, reason) == result
    else:
        with pytest.raises(Refusal, match=result):
            moderate(consultation(Phase.COLLECTING), actor, statement(status=current), approve, reason)


def test_withdrawal_is_for_the_author_while_collecting():
    assert withdraw(consultation(Phase.COLLECTING), ANA, statement(author=1)) is StatementStatus.WITHDRAWN
    with pytest.raises(Refusal, match="not yours"):
        withdraw(consultation(Phase.COLLECTING), BEA, statement(author=1))
    with pytest.raises(Refusal, match="only be withdrawn while"):
        withdraw(consultation(Phase.VOTING), ANA, statement(author=1))


@pytest.mark.parametrize(
    "phase, voter, target, result",
    [
        (Phase.VOTING, ANA, statement(), VoteValue.AGREE),
        (Phase.VOTING, BEA, statement(author=2), VoteValue.AGREE),
        (Phase.COLLECTING, ANA, statement(), "Voting has not started"),
        (Phase.CLOSED, ANA, statement(), "Voting has closed"),
        (Phase.VOTING, OUT, statement(), "Your side is not taking part"),
        (Phase.VOTING, ANA, None, "no statement with that number"),
        (Phase.VOTING, ANA, statement(status=StatementStatus.REJECTED), "not open for voting"),
        (Phase.VOTING, ANA, statement(status=StatementStatus.PENDING), "not open for voting"),
    ],
)
def test_votes(phase, voter, target, result):
    if isinstance(result, VoteValue):
        assert vote(consultation(phase), voter, target, VoteValue.AGREE) is result
    else:
        with pytest.raises(Refusal, match=result):
            vote(consultation(phase), voter, target, VoteValue.AGREE)


def test_design_checks():
    title, questions, sides = check_design(" Bridges ", [{"en": " Q1 "}, {"en": ""}], [LEFT], [LEFT, RIGHT])
    assert (title, questions, sides) == ("Bridges", [{"en": "Q1"}], frozenset({LEFT}))
    with pytest.raises(Refusal, match="at least one question"):
        check_design("T", [{"en": " "}], [LEFT], [LEFT])
    with pytest.raises(Refusal, match="not a side of this line"):
        check_design("T", [{"en": "Q"}], [OTHER], [LEFT])
    with pytest.raises(Refusal, match="at least one side"):
        check_design("T", [{"en": "Q"}], [], [LEFT])
