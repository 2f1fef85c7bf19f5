"""Guard rows that let a person count once in a consultation: her own voice or her pseudonym's.

A row is (consultation, keyed person tag) and nothing else. Her own first vote or statement
claims it (a second claim is a no-op) and the making of her pseudonym takes it (a second take
fails), in the same transaction as what they write, so the database's primary key decides which
of two concurrent attempts counts.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, insert
from sqlalchemy.dialects import postgresql, sqlite

from crossline.storage.schema import consultation_voices

_CLAIM = {"sqlite": sqlite.insert(consultation_voices).on_conflict_do_nothing(),
          "postgresql": postgresql.insert(consultation_voices).on_conflict_do_nothing()}


def claim(conn: Connection, keys: Iterable[tuple[int, str]]) -> None:
    """Claims these (consultation, tag) voices where nobody holds them yet. On PostgreSQL a claim
    waits for a concurrent uncommitted take of the same key, so the caller then sees it."""
    rows = [{"consultation_id": c, "person_tag": t} for c, t in sorted(set(keys))]  # one order: no deadlock
    if rows:
        conn.execute(_CLAIM[conn.dialect.name], rows)


def take(conn: Connection, consultation_id: int, tag: str) -> None:
    """Takes the voice for a pseudonym; IntegrityError if it is held (by her own or a pseudonym)."""
    conn.execute(insert(consultation_voices).values(consultation_id=consultation_id, person_tag=tag))
