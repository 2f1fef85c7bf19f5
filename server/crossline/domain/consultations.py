"""The consultation engine: every phase change and every participant action decided from plain
data. No I/O, no clock (times are passed in), no randomness.

A decision is either a value (what to store) or a `Refusal` raised with a sentence that is shown
to the participant as it is, in her room or on her page.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from crossline.errors import CrosslineError

MAX_STATEMENT_LENGTH = 500
MAX_PROMPT_LENGTH = 1000
MAX_QUESTIONS = 20
MAX_REASON_LENGTH = 300


class Refusal(CrosslineError):
    """An action the engine will not take; the message tells the participant why."""

    status = 409


class Phase(str, Enum):
    DRAFT = "draft"
    COLLECTING = "collecting"
    VOTING = "voting"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return {
            "draft": "being prepared",
            "collecting": "collecting statements",
            "voting": "voting",
            "closed": "closed",
        }[self.value]


NEXT_PHASE = {Phase.DRAFT: Phase.COLLECTING, Phase.COLLECTING: Phase.VOTING, Phase.VOTING: Phase.CLOSED}


class StatementStatus(str, Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class VoteValue(str, Enum):
    AGREE = "agree"
    DISAGREE = "disagree"
    PASS = "pass"


@dataclass(frozen=True)
class Question:
    id: int
    position: int
    prompts: Mapping[str, str]  # language code -> prompt text

    def prompt(self, language: str = "en") -> str:
        return self.prompts.get(language) or next(iter(self.prompts.values()))


@dataclass(frozen=True)
class Consultation:
    id: int
    line_id: int
    title: str
    phase: Phase
    eligible_side_ids: frozenset[int]
    questions: tuple[Question, ...]
    # Statements from participants wait for a facilitator's approval before anyone votes on them.
    premoderation: bool = True
    room_id: str | None = None

    def question(self, question_id: int) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def question_at(self, position: int) -> Question | None:
        return next((q for q in self.questions if q.position == position), None)


@dataclass(frozen=True)
class Participant:
    member_id: int
    side_id: int | None
    is_facilitator: bool = False


@dataclass(frozen=True)
class Statement:
    id: int
    number: int  # shown to participants: "statement 3"
    question_id: int
    author_member_id: int | None  # None: seeded by a facilitator
    text: str
    status: StatementStatus
    seeded: bool = False


# -- Designing and running ---------------------------------------------------------------


def check_design(title: str, prompts: Iterable[Mapping[str, str]], eligible_side_ids: Iterable[int],
                 line_side_ids: Iterable[int]) -> tuple[str, list[dict[str, str]], frozenset[int]]:
    title = _clean(title)
    if not title:
        raise Refusal("Give the consultation a title.")
    if len(title) > 200:
        raise Refusal("The title is too long (at most 200 characters).")
    questions = []
    for prompt in prompts:
        cleaned = {language: _clean(text) for language, text in prompt.items() if _clean(text)}
        if not cleaned:
            continue
        if any(len(text) > MAX_PROMPT_LENGTH for text in cleaned.values()):
            raise Refusal(f"A question is too long (at most {MAX_PROMPT_LENGTH} characters).")
        questions.append(cleaned)
    if not questions:
        raise Refusal("Add at least one question.")
    if len(questions) > MAX_QUESTIONS:
        raise Refusal(f"At most {MAX_QUESTIONS} questions.")
    eligible = frozenset(eligible_side_ids)
    if not eligible:
        raise Refusal("Choose at least one side whose members may take part.")
    if not eligible <= frozenset(line_side_ids):
        raise Refusal("One of the chosen sides is not a side of this line.")
    return title, questions, eligible


def advance(consultation: Consultation, actor: Participant, target: Phase, approved_count: int) -> Phase:
    """The next phase, if `target` is it and the actor may move it there."""
    if not actor.is_facilitator:
        raise Refusal("Only a facilitator can change the phase.")
    expected = NEXT_PHASE.get(consultation.phase)
    if expected is None:
        raise Refusal("This consultation is closed; it cannot be reopened.")
    if target != expected:
        raise Refusal(
            f"This consultation is {consultation.phase.label}; the next phase is {expected.label}, not {target.label}."
        )
    if target is Phase.VOTING and approved_count == 0:
        raise Refusal("There is no approved statement to vote on yet. Approve or add statements first.")
    return target


# -- Statements -------------------------------------------------------------------------------


def normalised(text: str) -> str:
    """What two statements are compared by: case, accents of form, spacing and end punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split()).rstrip(".!?…;,: ")


def submit_statement(
    consultation: Consultation,
    author: Participant,
    question_id: int,
    text: str,
    existing: Iterable[Statement],
) -> tuple[str, StatementStatus, bool]:
    """Returns (clean text, initial status, seeded) for a new statement."""
    seeding = author.is_facilitator
    if seeding and consultation.phase not in (Phase.DRAFT, Phase.COLLECTING, Phase.VOTING):
        raise Refusal("This consultation is closed: no more statements.")
    if not seeding:
        if consultation.phase is Phase.DRAFT:
            raise Refusal("This consultation has not opened yet. Statements can be sent once it is collecting them.")
        if consultation.phase is not Phase.COLLECTING:
            raise Refusal(f"Statements are no longer collected: this consultation is {consultation.phase.label}.")
        _check_eligible(consultation, author)
    question = consultation.question(question_id)
    if question is None:
        raise Refusal("There is no such question in this consultation.")
    text = _clean(text)
    if not text:
        raise Refusal("The statement is empty. Write what you want others to agree or disagree with.")
    if len(text) > MAX_STATEMENT_LENGTH:
        raise Refusal(
            f"The statement is too long ({len(text)} characters; at most {MAX_STATEMENT_LENGTH}). Shorten it and send again."
        )
    key = normalised(text)
    for statement in existing:
        if statement.question_id == question_id and statement.status is not StatementStatus.WITHDRAWN \
                and normalised(statement.text) == key:
            raise Refusal(f"The same statement is already there (statement {statement.number}). Vote on it instead.")
    status = StatementStatus.APPROVED if seeding or not consultation.premoderation else StatementStatus.PENDING
    return text, status, seeding


def moderate(consultation: Consultation, actor: Participant, statement: Statement, approve: bool, reason: str) -> tuple[StatementStatus, str]:
    if not actor.is_facilitator:
        raise Refusal("Only a facilitator can approve or reject statements.")
    if consultation.phase is Phase.CLOSED:
        raise Refusal("This consultation is closed.")
    if statement.status is StatementStatus.WITHDRAWN:
        raise Refusal(f"Statement {statement.number} was withdrawn by its author.")
    reason = _clean(reason)
    if len(reason) > MAX_REASON_LENGTH:
        raise Refusal(f"The reason is too long (at most {MAX_REASON_LENGTH} characters).")
    if approve:
        if statement.status is StatementStatus.APPROVED:
            raise Refusal(f"Statement {statement.number} is already approved.")
        return StatementStatus.APPROVED, reason
    if not reason:
        raise Refusal("Say why the statement is rejected: its author will see the reason.")
    if statement.status is StatementStatus.REJECTED:
        raise Refusal(f"Statement {statement.number} is already rejected.")
    return StatementStatus.REJECTED, reason


def withdraw(consultation: Consultation, actor: Participant, statement: Statement) -> StatementStatus:
    if statement.author_member_id != actor.member_id:
        raise Refusal(f"Statement {statement.number} is not yours to withdraw.")
    if consultation.phase is not Phase.COLLECTING:
        raise Refusal("Statements can only be withdrawn while they are being collected.")
    if statement.status is StatementStatus.WITHDRAWN:
        raise Refusal(f"Statement {statement.number} is already withdrawn.")
    return StatementStatus.WITHDRAWN


# -- Votes ------------------------------------------------------------------------------------


def parse_vote(value: str) -> VoteValue:
    word = (value or "").strip().casefold()
    aliases = {"agree": VoteValue.AGREE, "yes": VoteValue.AGREE, "+": VoteValue.AGREE, "+1": VoteValue.AGREE,
               "disagree": VoteValue.DISAGREE, "no": VoteValue.DISAGREE, "-": VoteValue.DISAGREE, "-1": VoteValue.DISAGREE,
               "pass": VoteValue.PASS, "skip": VoteValue.PASS, "0": VoteValue.PASS}
    if word not in aliases:
        raise Refusal(f"“{value}” is not a vote. Vote agree, disagree or pass.")
    return aliases[word]


def vote(consultation: Consultation, voter: Participant, statement: Statement | None, value: VoteValue,
         number: int | None = None) -> VoteValue:
    if consultation.phase is not Phase.VOTING:
        if consultation.phase is Phase.CLOSED:
            raise Refusal("Voting has closed.")
        raise Refusal(f"Voting has not started: this consultation is {consultation.phase.label}.")
    _check_eligible(consultation, voter)
    if statement is None:
        raise Refusal(f"There is no statement {number} in this consultation." if number is not None
                      else "There is no statement with that number.")
    if statement.status is not StatementStatus.APPROVED:
        raise Refusal(f"Statement {statement.number} is not open for voting.")
    return value


def _check_eligible(consultation: Consultation, participant: Participant) -> None:
    if participant.side_id not in consultation.eligible_side_ids:
        raise Refusal("Your side is not taking part in this consultation, so you cannot contribute to it.")


def _clean(text: str) -> str:
    return " ".join((text or "").split())


def with_phase(consultation: Consultation, phase: Phase) -> Consultation:
    return replace(consultation, phase=phase)


def parse_questions_text(text: str, default_language: str = "en") -> list[dict[str, str]]:
    """Questions as a facilitator types them: one per line; a line starting with a language code
    and a colon ("ru: ...") is a translation of the question above it."""
    questions: list[dict[str, str]] = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        code, colon, rest = line.partition(":")
        if colon and len(code) in (2, 3) and code.isalpha() and code.islower() and rest.strip():
            if not questions:
                raise Refusal(f"The translation “{line}” has no question above it.")
            questions[-1][code] = rest.strip()
        else:
            questions.append({default_language: line})
    return questions
