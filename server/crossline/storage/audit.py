"""The append-only audit log. Entries are only ever inserted, each chained to the one before and
authenticated with the hub's audit key (domain/audit.py)."""

from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select, text

from crossline.domain.audit import GENESIS, StoredEntry, entry_hash, entry_mac
from crossline.storage.schema import audit_log


def _entry(seq: int, at: int, actor: str, kind: str, case_id: int | None, details: dict) -> dict:
    return {"seq": seq, "at": at, "actor": actor, "kind": kind, "case_id": case_id, "details": details}


def append(conn: Connection, key: bytes, at: int, actor: str, kind: str, case_id: int | None,
           details: dict) -> tuple[int, str]:
    """(number, hash) of the new entry. In the caller's transaction, so an action and its record
    commit together. The last entry is read and the next one inserted with its primary key, with
    other writers kept out between the two, so that two never read the same last entry: on SQLite
    the savepoint takes the write lock first if the caller's transaction has written nothing yet
    (storage/db.py, BEGIN IMMEDIATE), on PostgreSQL the table is locked until the caller commits."""
    with conn.begin_nested():
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
        last = conn.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)).first()
        seq, previous = (last.seq + 1, last.hash) if last else (1, GENESIS)
        digest = entry_hash(previous, _entry(seq, at, actor, kind, case_id, details))
        conn.execute(insert(audit_log).values(seq=seq, at=at, actor=actor, kind=kind, case_id=case_id,
                                              details=json.dumps(details, sort_keys=True), previous_hash=previous,
                                              hash=digest, mac=entry_mac(key, seq, digest)))
    return seq, digest


def last(conn: Connection) -> tuple[int, str] | None:
    row = conn.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)).first()
    return (row.seq, row.hash) if row else None


def hash_at(conn: Connection, seq: int) -> str | None:
    return conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq)).scalar()


def _details(stored: str) -> dict:
    """A row written by hand may hold anything: what is not the JSON the hub writes is kept as text,
    so the check names the entry as changed instead of failing."""
    try:
        details = json.loads(stored)
    except ValueError:
        return {"unreadable": stored}
    return details if isinstance(details, dict) else {"unreadable": stored}


def _stored(row) -> StoredEntry:
    return StoredEntry(row.seq, _entry(row.seq, row.at, row.actor, row.kind, row.case_id, _details(row.details)),
                       row.previous_hash, row.hash, row.mac)


def entries(conn: Connection, case_id: int | None = None, after_seq: int = 0):
    """StoredEntry (seq, entry, previous hash, hash, mac), in order."""
    query = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
    if case_id is not None:
        query = query.where(audit_log.c.case_id == case_id)
    for row in conn.execute(query):
        yield _stored(row)


def listing(conn: Connection, *, case_id: int | None = None, actor: str | None = None,
            since_ms: int | None = None, until_ms: int | None = None, limit: int = 200,
            before_seq: int | None = None) -> list[StoredEntry]:
    """Newest first, filtered, at most `limit` (then continue with before_seq)."""
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if case_id is not None:
        query = query.where(audit_log.c.case_id == case_id)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if since_ms is not None:
        query = query.where(audit_log.c.at >= since_ms)
    if until_ms is not None:
        query = query.where(audit_log.c.at < until_ms)
    if before_seq is not None:
        query = query.where(audit_log.c.seq < before_seq)
    return [_stored(row) for row in conn.execute(query)]
