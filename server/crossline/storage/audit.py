"""The append-only audit log. Entries are only ever inserted, each chained to the one before."""

from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select, text

from crossline.domain.audit import GENESIS, entry_hash
from crossline.storage.schema import audit_log


def _entry(seq: int, at: int, actor: str, kind: str, case_id: int | None, details: dict) -> dict:
    return {"seq": seq, "at": at, "actor": actor, "kind": kind, "case_id": case_id, "details": details}


def append(conn: Connection, at: int, actor: str, kind: str, case_id: int | None, details: dict) -> int:
    """In the caller's transaction, so an action and its record commit together. The last entry
    is read and the next one inserted with its primary key, with other writers kept out between
    the two, so that two never read the same last entry: on SQLite the savepoint takes the write
    lock first if the caller's transaction has written nothing yet (storage/db.py, BEGIN
    IMMEDIATE), on PostgreSQL the table is locked until the caller commits."""
    with conn.begin_nested():
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
        last = conn.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)).first()
        seq, previous = (last.seq + 1, last.hash) if last else (1, GENESIS)
        digest = entry_hash(previous, _entry(seq, at, actor, kind, case_id, details))
        conn.execute(insert(audit_log).values(seq=seq, at=at, actor=actor, kind=kind, case_id=case_id,
                                              details=json.dumps(details, sort_keys=True), previous_hash=previous,
                                              hash=digest))
    return seq


def entries(conn: Connection, case_id: int | None = None):
    """(seq, entry, stored previous hash, stored hash), in order."""
    query = select(audit_log).order_by(audit_log.c.seq)
    if case_id is not None:
        query = query.where(audit_log.c.case_id == case_id)
    for row in conn.execute(query):
        yield row.seq, _entry(row.seq, row.at, row.actor, row.kind, row.case_id, json.loads(row.details)), \
            row.previous_hash, row.hash
