"""The append-only audit log. Entries are only ever inserted, each chained to the one before and
authenticated with the hub's audit key (domain/audit.py)."""

from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select, text, update

from crossline.domain.audit import GENESIS, NotRecorded, StoredEntry, entry_hash, entry_mac
from crossline.storage.schema import audit_log

# The hub writes details at most a few levels deep: deeper is read as text, so no check recurses on it.
_MAX_DEPTH = 16
# The type each column holds as the hub writes it (SQLite stores whatever a hand-written row holds).
_TYPES = {"at": int, "actor": str, "kind": str, "case_id": (int, type(None)), "details": str,
          "previous_hash": str, "hash": str, "mac": (str, type(None))}


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
        mac = entry_mac(key, seq, digest)
        inserted = conn.execute(insert(audit_log).values(
            seq=seq, at=at, actor=actor, kind=kind, case_id=case_id, details=json.dumps(details, sort_keys=True),
            previous_hash=previous, hash=digest, mac=mac))
        # A trigger or rule can drop or change a row and report nothing: what was stored is read back.
        stored = conn.execute(select(audit_log).where(audit_log.c.seq == seq)).first()
        if inserted.rowcount == 0 or stored is None or (s := _stored(stored)).unexpected or \
                (s.previous_hash, s.hash, s.mac) != (previous, digest, mac) or not _same(s, digest):
            raise NotRecorded(seq)
    return seq, digest


def _same(stored: StoredEntry, digest: str) -> bool:
    try:
        return entry_hash(stored.previous_hash, stored.entry) == digest
    except (ValueError, TypeError):
        return False


def rewriters(conn: Connection) -> list[str]:
    """Triggers, rules and row-security policies in the hub's database, named. The hub creates none
    (its migrations hold none): each can drop or change rows as they are written, unseen by a check
    of what is stored."""
    if conn.dialect.name == "sqlite":
        query = "SELECT 'trigger ' || name || ' on ' || tbl_name FROM sqlite_master WHERE type = 'trigger'"
    else:
        query = """
            SELECT 'trigger ' || t.tgname || ' on ' || c.relname FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
            UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger
            UNION ALL SELECT 'rule ' || rulename || ' on ' || tablename FROM pg_rules
              WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
            UNION ALL SELECT 'row-security policy ' || p.polname || ' on ' || c.relname FROM pg_policy p
              JOIN pg_class c ON c.oid = p.polrelid
            UNION ALL SELECT 'row security enabled on ' || c.relname FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE (c.relrowsecurity OR c.relforcerowsecurity)
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')"""
    return sorted(conn.execute(text(query)).scalars())


def add_macs(conn: Connection, key: bytes, through: int) -> int:
    """MACs the entries up to `through` written before entries were keyed (migration 0014); the
    last one's number (0: none)."""
    unkeyed = conn.execute(select(audit_log.c.seq, audit_log.c.hash)
                           .where(audit_log.c.mac.is_(None), audit_log.c.seq <= through)).all()
    for row in unkeyed:
        conn.execute(update(audit_log).where(audit_log.c.seq == row.seq).values(mac=entry_mac(key, row.seq, row.hash)))
    return max((row.seq for row in unkeyed), default=0)


def last(conn: Connection) -> tuple[int, str] | None:
    row = conn.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)).first()
    return (row.seq, row.hash) if row else None


def hash_at(conn: Connection, seq: int) -> str | None:
    return conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq)).scalar()


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= _MAX_DEPTH:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict | list):
            stack += [(inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _details(stored: str) -> dict | None:
    """None: not the JSON object the hub writes (a row written by hand may hold anything)."""
    try:
        details = json.loads(stored)
    except (ValueError, RecursionError):
        return None
    if not isinstance(details, dict) or _depth(details) > _MAX_DEPTH or json.dumps(details, sort_keys=True) != stored:
        return None
    return details


def _readable(value: object) -> object:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _stored(row) -> StoredEntry:
    """A row as stored. What the hub never writes (a value of another type, details that are not its
    JSON) is kept as text and named in `unexpected`, so every check and listing reads it without
    failing and the check names the entry."""
    values = {name: getattr(row, name) for name in _TYPES}
    unexpected = tuple(name for name, kind in _TYPES.items()
                       if not isinstance(values[name], kind) or isinstance(values[name], bool))
    for name in unexpected:
        values[name] = repr(_readable(values[name]))
    details = _details(values["details"])
    if details is None:
        details, unexpected = {"stored details": values["details"][:2000]}, (*unexpected, "details")
    entry = _entry(row.seq, values["at"], values["actor"], values["kind"], values["case_id"], details)
    return StoredEntry(row.seq, entry, values["previous_hash"], values["hash"], values["mac"], unexpected)


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
