"""services/audit_heads.keep() and the heads posted at decisions, on SQLite and PostgreSQL: a head
is signed only over a log that still extends the head the hub kept outside the database; otherwise
the moderators' rooms are told, once per kept head, through the bot's outbox. New entries are
signed, a head goes to the rooms daily (fake clock), and entries written before entries were keyed
(migration 0014) are noted, not flagged, while an entry without a MAC after a keyed one is flagged."""

from __future__ import annotations

import json

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from crossline.domain.audit import GENESIS, entry_hash
from crossline.domain.audit_heads import read
from crossline.services import audit_heads
from crossline.storage import bot as bot_state
from crossline.storage.db import MIGRATIONS_DIR, migrate
# The hub with a moderators' room, on SQLite and on PostgreSQL.
from tests.test_audit_tamper import ROOM, hub, hub_key, postgres_url, rehash, sql, write_entries  # noqa: F401


def taken_from_the_outbox(hub) -> list[str]:
    """The moderators' room's waiting messages, taken out as the bot would send them."""
    with hub.engine.begin() as conn:
        waiting = bot_state.waiting_messages(conn, limit=1000, rooms=[ROOM])
        for message in waiting:
            bot_state.drop_message(conn, message.id)
    return [message.content["body"] for message in waiting]


def kept_seq(hub) -> int:
    return audit_heads.kept_head(hub).head.seq


def test_new_entries_are_signed_into_the_kept_head(hub):
    assert audit_heads.keep(hub) == audit_heads.Kept(None, None)  # an empty log: nothing to sign
    assert not hub.config.paths.audit_head.exists()
    write_entries(hub, 3, decision_last=False)
    assert audit_heads.keep(hub).head.head.seq == 3 and kept_seq(hub) == 3
    assert hub.config.paths.audit_head.stat().st_mode & 0o077 == 0  # private, like the secrets
    write_entries(hub, 2, decision_last=False)
    audit_heads.keep(hub)
    assert kept_seq(hub) == 5


def test_a_head_goes_to_the_moderators_rooms_daily(hub):
    write_entries(hub, 2, decision_last=False)
    audit_heads.keep(hub)
    (first,) = taken_from_the_outbox(hub)
    assert "the daily head" in first and read(first)[0][0].head.seq == 2
    hub.clock.now += audit_heads.DAY_MS - 1
    audit_heads.keep(hub)
    assert taken_from_the_outbox(hub) == []
    hub.clock.now += 1  # a day after the last: the same head again, the log still ends there
    audit_heads.keep(hub)
    (again,) = taken_from_the_outbox(hub)
    assert read(again)[0][0].head.seq == 2 and read(again)[0][0].head.at_ms == hub.clock.now


def delete_newest(hub):
    sql(hub, "delete from audit_log where seq = 4")


def delete_newest_then_write_again(hub):
    """Entry 4 removed while the hub was stopped, then the hub wrote a new entry 4."""
    sql(hub, "delete from audit_log where seq = 4")
    write_entries(hub, 1, decision_last=False)


def rewrite_with_the_key(hub):
    sql(hub, "update audit_log set details = '{\"note\": \"nothing\"}' where seq = 2")
    rehash(hub, 2, key=hub_key(hub))


def append_without_the_key(hub):
    write_entries(hub, 1, decision_last=False)
    sql(hub, "update audit_log set mac = '" + "0" * 64 + "' where seq = 5")


def append_without_a_mac(hub):
    write_entries(hub, 1, decision_last=False)
    sql(hub, "update audit_log set mac = NULL where seq = 5")


def garble_the_kept_head(hub):
    path = hub.config.paths.audit_head
    path.write_text(path.read_text("utf-8").replace("crossline-audit-head.v1.", "crossline-audit-head.v1.x"))


TAMPERING = {
    delete_newest: "entry 4 is missing: the head signed",
    delete_newest_then_write_again: "entry 4 is not the one in the head signed",
    rewrite_with_the_key: "entry 4 is not the one in the head signed",
    append_without_the_key: "entry 5 is not authenticated by the hub's key",
    append_without_a_mac: "entry 5 lost its authentication",
    garble_the_kept_head: "audit-head.txt is no head signed by this hub (the file or the hub's key was changed)",
}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=lambda f: f.__name__)
def test_no_head_is_signed_over_a_log_that_no_longer_extends_the_kept_one(hub, tamper):
    write_entries(hub, 4, decision_last=False)
    audit_heads.keep(hub)
    taken_from_the_outbox(hub)
    kept = hub.config.paths.audit_head.read_bytes()
    tamper(hub)
    kept = hub.config.paths.audit_head.read_bytes() if tamper is garble_the_kept_head else kept

    problem = audit_heads.keep(hub).problem
    assert problem and TAMPERING[tamper] in problem, problem
    assert hub.config.paths.audit_head.read_bytes() == kept  # nothing signed over it
    (alert,) = taken_from_the_outbox(hub)
    assert TAMPERING[tamper] in alert and "crossline audit verify --head FILE" in alert
    assert alert.endswith("restored from a backup on purpose, the operator moves the hub's audit-head.txt aside "
                          "once the moderators have checked the log.")

    # Told once by the keeper: not again at the next keep, nor at the next day's; a decision posts no
    # head and tells the rooms again (what was told is kept outside the database: review of issue 27).
    audit_heads.keep(hub)
    hub.clock.now += audit_heads.DAY_MS
    audit_heads.keep(hub)
    assert taken_from_the_outbox(hub) == []
    write_entries(hub, 1)  # a decision
    (again,) = taken_from_the_outbox(hub)
    assert again.startswith("Moderation record: ") and "crossline-audit-head" not in again
    assert hub.config.paths.audit_head.read_bytes() == kept


def test_once_the_log_is_restored_the_same_problem_is_told_again(hub):
    write_entries(hub, 4, decision_last=False)
    audit_heads.keep(hub)
    taken_from_the_outbox(hub)
    with hub.engine.connect() as conn:
        row = dict(conn.execute(text("select * from audit_log where seq = 4")).one()._mapping)
    delete_newest(hub)
    assert audit_heads.keep(hub).problem
    assert len(taken_from_the_outbox(hub)) == 1
    with hub.engine.begin() as conn:  # the operator restores entry 4 from a backup
        conn.execute(text("insert into audit_log (seq, at, actor, kind, case_id, details, previous_hash, hash, mac) "
                          "values (:seq, :at, :actor, :kind, :case_id, :details, :previous_hash, :hash, :mac)"), row)
    assert audit_heads.keep(hub).problem is None
    delete_newest(hub)
    assert audit_heads.keep(hub).problem
    assert len(taken_from_the_outbox(hub)) == 1


def test_entries_written_before_keys_are_keyed_once_and_from_then_on_a_missing_mac_is_flagged(hub):
    """The first keep MACs the entries written before keys, after checking them, and notes outside
    the database that it did: from then on an entry without a MAC lost it, even with no head kept
    (review of issue 27, A finding 4: every MAC stripped and the log rewritten passed as old)."""
    write_entries(hub, 3, decision_last=False)
    sql(hub, "update audit_log set mac = NULL")  # as written before migration 0014
    assert audit_heads.keep(hub).problem is None and kept_seq(hub) == 3
    assert json.loads(hub.config.paths.audit_state.read_text("utf-8"))["keyed_through"] == 3
    assert hub.config.paths.audit_state.stat().st_mode & 0o777 == 0o600
    verdict = audit_heads.verify(hub).verdict
    assert verdict.verifies and verdict.authenticated and verdict.notes == []

    hub.config.paths.audit_head.unlink()  # no kept head either: the note outside the database still holds
    sql(hub, "update audit_log set mac = NULL")
    verdict = audit_heads.verify(hub).verdict
    assert verdict.problems == ["entries 1 to 3 lost their authentication (every entry after the first keyed one, "
                                "or after a signed head, carries one, and every entry once the hub keyed its older "
                                "ones): they may have been rewritten outside the hub"]
    assert "lost their authentication" in audit_heads.keep(hub).problem


def test_a_log_written_before_entries_were_keyed_is_carried_on(hub):
    """The hub's real upgrade: entries written at migration 0013 (no MAC column), then 0014 on."""
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS_DIR))
    with hub.engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.downgrade(alembic, "0013")
    previous = GENESIS
    with hub.engine.begin() as conn:
        for seq in (1, 2, 3):  # as storage/audit.append wrote them then
            entry = {"seq": seq, "at": seq * 1000, "actor": "hub", "kind": "report_received", "case_id": seq,
                     "details": {"category": "threats"}}
            digest = entry_hash(previous, entry)
            conn.execute(text("insert into audit_log (seq, at, actor, kind, case_id, details, previous_hash, hash) "
                              "values (:seq, :at, :actor, :kind, :case_id, :details, :previous, :hash)"),
                         {**entry, "details": json.dumps(entry["details"]), "previous": previous, "hash": digest})
            previous = digest
    migrate(hub.engine)
    write_entries(hub, 2)  # the upgraded hub decides: a head goes to the room over the whole log
    (posted,) = taken_from_the_outbox(hub)
    assert read(posted)[0][0].head.seq == 5
    assert audit_heads.keep(hub).problem is None and kept_seq(hub) == 5
    verdict = audit_heads.verify(hub).verdict  # the keep keyed the old entries
    assert verdict.verifies and verdict.entries == 5 and verdict.authenticated
    with hub.engine.connect() as conn:
        assert conn.execute(text("select count(*) from audit_log where mac is null")).scalar() == 0


async def test_a_kept_head_that_cannot_be_read_is_told_and_decisions_still_go_through(hub):
    write_entries(hub, 2, decision_last=False)
    audit_heads.keep(hub)
    taken_from_the_outbox(hub)
    hub.config.paths.audit_head.unlink()
    hub.config.paths.audit_head.mkdir()  # what reading it meets, the way a broken disk or a wrong owner would
    write_entries(hub, 1)  # a decision: recorded, with no head
    with hub.engine.connect() as conn:
        assert conn.execute(text("select count(*) from audit_log")).scalar() == 3
    (alert,) = taken_from_the_outbox(hub)
    assert "audit-head.txt cannot be read (Is a directory)" in alert
    assert audit_heads.keep(hub).problem and taken_from_the_outbox(hub) == []
    checked = audit_heads.verify(hub)  # and verify says why it has no kept head
    assert checked.verdict.verifies and "audit-head.txt cannot be read (Is a directory)" in checked.unusable[0]
