from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from crossline.domain.consultations import Consultation, Phase, Question, Statement, StatementStatus, VoteValue
from crossline.storage.schema import (
    consultation_sides,
    consultations,
    members,
    questions,
    statements,
    votes,
    web_submissions,
)

VOTE_NUMBERS = {VoteValue.AGREE: 1, VoteValue.DISAGREE: -1, VoteValue.PASS: 0}
VOTE_VALUES = {number: value for value, number in VOTE_NUMBERS.items()}


def add_consultation(
    conn: Connection, line_id: int, title: str, premoderation: bool, side_ids: Iterable[int],
    prompts: Sequence[dict[str, str]], created_by: int, now_ms: int,
) -> int:
    consultation_id = conn.execute(
        insert(consultations).values(
            line_id=line_id, title=title, phase=Phase.DRAFT.value, premoderation=premoderation,
            created_by=created_by, created_at=now_ms, phase_changed_at=now_ms,
        )
    ).inserted_primary_key[0]
    conn.execute(insert(consultation_sides), [{"consultation_id": consultation_id, "side_id": s} for s in side_ids])
    conn.execute(
        insert(questions),
        [{"consultation_id": consultation_id, "position": i, "prompts": json.dumps(p, ensure_ascii=False)}
         for i, p in enumerate(prompts, start=1)],
    )
    return consultation_id


def _load(conn: Connection, rows) -> list[Consultation]:
    ids = [row.id for row in rows]
    if not ids:
        return []
    sides: dict[int, set[int]] = defaultdict(set)
    for consultation_id, side_id in conn.execute(
        select(consultation_sides.c.consultation_id, consultation_sides.c.side_id)
        .where(consultation_sides.c.consultation_id.in_(ids))
    ):
        sides[consultation_id].add(side_id)
    asked: dict[int, list[Question]] = defaultdict(list)
    for row in conn.execute(select(questions).where(questions.c.consultation_id.in_(ids)).order_by(questions.c.position)):
        asked[row.consultation_id].append(Question(row.id, row.position, json.loads(row.prompts)))
    return [
        Consultation(
            id=row.id, line_id=row.line_id, title=row.title, phase=Phase(row.phase),
            eligible_side_ids=frozenset(sides[row.id]), questions=tuple(asked[row.id]),
            premoderation=row.premoderation, room_id=row.room_id,
        )
        for row in rows
    ]


def get_consultation(conn: Connection, consultation_id: int) -> Consultation | None:
    found = _load(conn, conn.execute(select(consultations).where(consultations.c.id == consultation_id)).all())
    return found[0] if found else None


def consultation_for_room(conn: Connection, room_id: str) -> Consultation | None:
    found = _load(conn, conn.execute(select(consultations).where(consultations.c.room_id == room_id)).all())
    return found[0] if found else None


def list_consultations(conn: Connection, line_id: int | None = None) -> list[Consultation]:
    query = select(consultations).order_by(consultations.c.created_at.desc())
    if line_id is not None:
        query = query.where(consultations.c.line_id == line_id)
    return _load(conn, conn.execute(query).all())


def set_phase(conn: Connection, consultation_id: int, phase: Phase, now_ms: int) -> None:
    conn.execute(update(consultations).where(consultations.c.id == consultation_id)
                 .values(phase=phase.value, phase_changed_at=now_ms))


def set_room(conn: Connection, consultation_id: int, room_id: str) -> None:
    conn.execute(update(consultations).where(consultations.c.id == consultation_id).values(room_id=room_id))


# -- Statements -----------------------------------------------------------------------------


def _statement(row) -> Statement:
    return Statement(
        id=row.id, number=row.number, question_id=row.question_id, author_member_id=row.author_member_id,
        text=row.text, status=StatementStatus(row.status), seeded=row.seeded,
    )


def add_statement(
    conn: Connection, consultation_id: int, question_id: int, author_member_id: int | None, text: str,
    status: StatementStatus, seeded: bool, origin: str, now_ms: int,
) -> Statement:
    number = conn.execute(
        select(func.coalesce(func.max(statements.c.number), 0) + 1).where(statements.c.consultation_id == consultation_id)
    ).scalar_one()
    statement_id = conn.execute(
        insert(statements).values(
            consultation_id=consultation_id, question_id=question_id, number=number, author_member_id=author_member_id,
            text=text, status=status.value, seeded=seeded, origin=origin, created_at=now_ms,
        )
    ).inserted_primary_key[0]
    return Statement(statement_id, number, question_id, author_member_id, text, status, seeded)


def list_statements(conn: Connection, consultation_id: int) -> list[Statement]:
    rows = conn.execute(
        select(statements).where(statements.c.consultation_id == consultation_id).order_by(statements.c.number)
    ).all()
    return [_statement(row) for row in rows]


def ballot_index(conn: Connection, consultation_id: int) -> dict[int, Statement]:
    """Statements by number without their text: all that checking a vote needs."""
    rows = conn.execute(select(statements.c.id, statements.c.number, statements.c.question_id, statements.c.status)
                        .where(statements.c.consultation_id == consultation_id))
    return {number: Statement(statement_id, number, question_id, None, "", StatementStatus(status))
            for statement_id, number, question_id, status in rows}


def statement_by_number(conn: Connection, consultation_id: int, number: int) -> Statement | None:
    row = conn.execute(
        select(statements).where(statements.c.consultation_id == consultation_id, statements.c.number == number)
    ).first()
    return _statement(row) if row else None


def moderation_reasons(conn: Connection, consultation_id: int) -> dict[int, str]:
    return dict(conn.execute(
        select(statements.c.id, statements.c.moderation_reason).where(statements.c.consultation_id == consultation_id)
    ).all())


def set_statement_status(conn: Connection, statement_id: int, status: StatementStatus, reason: str = "") -> None:
    conn.execute(update(statements).where(statements.c.id == statement_id)
                 .values(status=status.value, moderation_reason=reason))


def approved_count(conn: Connection, consultation_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(statements).where(
            statements.c.consultation_id == consultation_id, statements.c.status == StatementStatus.APPROVED.value)
    ).scalar_one()


# -- Votes ----------------------------------------------------------------------------------


def upsert_votes(conn: Connection, rows: Sequence[dict]) -> None:
    """Rows of {consultation_id, statement_id, member_id, value: VoteValue, voted_at}. The latest
    vote of a participant on a statement replaces her earlier one, in one statement per batch."""
    if not rows:
        return
    values = [{**row, "value": VOTE_NUMBERS[row["value"]]} for row in rows]
    # One statement run for many rows (executemany): compiled once and cached, unlike a
    # multi-row VALUES clause, which would be compiled again for every batch size.
    conn.execute(_UPSERT_VOTE[conn.dialect.name], values)


def _upsert_vote(dialect) -> object:
    statement = dialect.insert(votes)
    return statement.on_conflict_do_update(
        index_elements=[votes.c.statement_id, votes.c.member_id],
        set_={"value": statement.excluded.value, "voted_at": statement.excluded.voted_at},
    )


_UPSERT_VOTE = {"sqlite": _upsert_vote(sqlite), "postgresql": _upsert_vote(postgresql)}


def member_votes(conn: Connection, consultation_id: int, member_id: int) -> dict[int, VoteValue]:
    rows = conn.execute(select(votes.c.statement_id, votes.c.value).where(
        votes.c.consultation_id == consultation_id, votes.c.member_id == member_id))
    return {statement_id: VOTE_VALUES[value] for statement_id, value in rows}


def tallies_by_side(conn: Connection, consultation_id: int) -> dict[int, dict[int | None, dict[VoteValue, int]]]:
    """{statement_id: {side_id: {vote value: count}}}. Who voted what never leaves this function."""
    result: dict[int, dict[int | None, dict[VoteValue, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    rows = conn.execute(
        select(votes.c.statement_id, members.c.side_id, votes.c.value, func.count())
        .join(members, members.c.id == votes.c.member_id)
        .where(votes.c.consultation_id == consultation_id)
        .group_by(votes.c.statement_id, members.c.side_id, votes.c.value)
    )
    for statement_id, side_id, value, count in rows:
        result[statement_id][side_id][VOTE_VALUES[value]] = count
    return result


def participation_by_side(conn: Connection, consultation_id: int) -> dict[int | None, dict[str, int]]:
    """Per side: how many people voted, how many votes, how many statements were submitted."""
    result: dict[int | None, dict[str, int]] = defaultdict(lambda: {"voters": 0, "votes": 0, "statements": 0})
    for side_id, voters, count in conn.execute(
        select(members.c.side_id, func.count(func.distinct(votes.c.member_id)), func.count())
        .join(members, members.c.id == votes.c.member_id)
        .where(votes.c.consultation_id == consultation_id).group_by(members.c.side_id)
    ):
        result[side_id].update(voters=voters, votes=count)
    for side_id, count in conn.execute(
        select(members.c.side_id, func.count())
        .join(members, members.c.id == statements.c.author_member_id)
        .where(statements.c.consultation_id == consultation_id).group_by(members.c.side_id)
    ):
        result[side_id]["statements"] = count
    return result


# -- Idempotent web submissions ------------------------------------------------------------


def record_submission(conn: Connection, member_id: int, submission_id: str, now_ms: int) -> bool:
    """True the first time this submission id is seen for this member; False for a retry."""
    if submission_seen(conn, member_id, submission_id):
        return False
    conn.execute(insert(web_submissions).values(member_id=member_id, submission_id=submission_id, created_at=now_ms))
    return True


def submission_seen(conn: Connection, member_id: int, submission_id: str) -> bool:
    return conn.execute(select(web_submissions.c.submission_id).where(
        web_submissions.c.member_id == member_id, web_submissions.c.submission_id == submission_id)).first() is not None


def seen_submissions(conn: Connection, keys: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which (member, submission id) pairs were already applied: one query for a whole batch."""
    keys = set(keys)
    if not keys:
        return set()
    # Row values match the primary key (member_id, submission_id), so each is an index lookup.
    rows = conn.execute(select(web_submissions.c.member_id, web_submissions.c.submission_id).where(
        tuple_(web_submissions.c.member_id, web_submissions.c.submission_id).in_(sorted(keys))))
    return {(member, submission) for member, submission in rows}


def record_submissions(conn: Connection, keys: Iterable[tuple[int, str]], now_ms: int) -> None:
    rows = [{"member_id": member_id, "submission_id": submission_id, "created_at": now_ms} for member_id, submission_id in keys]
    if rows:
        conn.execute(insert(web_submissions), rows)


def forget_submissions_before(conn: Connection, before_ms: int) -> int:
    return conn.execute(web_submissions.delete().where(web_submissions.c.created_at < before_ms)).rowcount
