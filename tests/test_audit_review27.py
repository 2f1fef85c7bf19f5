"""The moderation record against whoever holds the database, as the review of issue 27 (reviewer A)
tried it: triggers and rules that keep entries or heads from being written, the state that said
when heads were posted and which problem was told, values the hub never writes, entries stripped
of their MAC, many heads at once, a database set back a migration, two keeps at once, entries
replaced after a head, and a head file without end. SQLite and PostgreSQL where the database
matters (tests/test_audit_tamper.py's hub fixture)."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from sqlalchemy import text

from crossline.cli import main
from crossline.cli_audit import record_status
from crossline.domain.audit import NotRecorded
from crossline.services import audit_heads, audit_state
from tests.support import wait_for
from tests.test_audit_keeper import kept_seq, taken_from_the_outbox
from tests.test_audit_tamper import ROOM, hub, postgres_url, room_head, sql, verify, write_entries  # noqa: F401


def is_sqlite(hub) -> bool:
    return hub.engine.dialect.name == "sqlite"


def decide(hub, actor: str = "member:9") -> None:
    hub.clock.now += 1000
    with hub.engine.begin() as conn:
        audit_heads.record(conn, hub, actor, "decided", 1, {"note": "a decision"}, "a decision")


def listing(hub, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "list", "--data-dir", str(hub.config.data_dir)])
    return code, capsys.readouterr().out


# -- 1. Triggers, rules and row security ------------------------------------------------------------


def install_rewriters(hub) -> None:
    """What a database holder installs once so that chosen entries, and the heads, are never written."""
    if is_sqlite(hub):
        sql(hub, "CREATE TRIGGER t_hide BEFORE INSERT ON audit_log WHEN NEW.kind = 'decided' "
                 "BEGIN SELECT RAISE(IGNORE); END",
            "CREATE TRIGGER t_nohead BEFORE INSERT ON outbox WHEN NEW.purpose = 'audit_head' "
            "BEGIN SELECT RAISE(IGNORE); END")
    else:
        sql(hub, "CREATE RULE r_hide AS ON INSERT TO audit_log WHERE NEW.kind = 'decided' DO INSTEAD NOTHING",
            "CREATE FUNCTION drop_head() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF NEW.purpose = 'audit_head' THEN RETURN NULL; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER t_nohead BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION drop_head()",
            "ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY p_hide ON audit_log USING (kind <> 'decided')")


def test_an_entry_the_database_does_not_store_is_never_taken_for_recorded(hub, capsys):
    write_entries(hub, 6)
    audit_heads.keep(hub)
    install_rewriters(hub)
    with pytest.raises(NotRecorded, match="did not store entry 7 as it was written"):
        decide(hub)  # the decision's transaction fails with it: nothing is done unrecorded
    with hub.engine.connect() as conn:
        assert conn.execute(text("select max(seq) from audit_log")).scalar() == 6

    named = "trigger t_nohead on outbox"
    problem = audit_heads.keep(hub).problem
    assert problem and named in problem and "The hub makes none" in problem
    code, out, err = verify(hub, capsys)
    assert code == 1 and err.startswith("AUDIT LOG BROKEN: the hub's database holds "), err
    others = ["trigger t_hide on audit_log"] if is_sqlite(hub) else [
        "rule r_hide on audit_log", "row-security policy p_hide on audit_log", "row security enabled on audit_log"]
    assert all(name in err for name in [named, *others]), err
    assert record_status(hub.config.data_dir)["line"].startswith("Audit log: BROKEN: the hub's database holds ")


# -- 2. When heads were posted and what was told: outside the database -------------------------------


def test_the_database_cannot_silence_heads_or_alerts(hub):
    write_entries(hub, 6, decision_last=False)
    audit_heads.keep(hub)
    kept = audit_heads.kept_head(hub)
    taken_from_the_outbox(hub)
    # What silenced both when they were kept in bot_state: the alert marked told, the room as posted far ahead.
    sql(hub, "delete from bot_state")
    with hub.engine.begin() as conn:
        conn.execute(text("insert into bot_state (key, value) values ('audit_head_alert', :v), "
                          "('audit_head_posted', :p)"), {"v": kept.token, "p": json.dumps({ROOM: 10**14})})
    sql(hub, "delete from audit_log where seq = 6")
    assert audit_heads.keep(hub).problem
    (alert,) = taken_from_the_outbox(hub)
    assert alert.startswith("Moderation record: the audit log no longer extends the head the hub kept: entry 6")
    decide(hub)  # while broken, every decision tells the rooms again
    (again,) = taken_from_the_outbox(hub)
    assert again.startswith("Moderation record: ")
    state = json.loads(hub.config.paths.audit_state.read_text("utf-8"))
    assert state["alerted"] and hub.config.paths.audit_state.stat().st_mode & 0o777 == 0o600


def test_a_posted_time_to_come_is_due(hub):
    write_entries(hub, 2, decision_last=False)
    audit_state.posted(hub.config.paths.audit_state, [ROOM], hub.clock.now_ms() + 10 * audit_heads.DAY_MS)
    audit_heads.keep(hub)
    (head,) = taken_from_the_outbox(hub)
    assert "(the daily head)" in head
    audit_heads.keep(hub)
    assert taken_from_the_outbox(hub) == []  # and then not again the same day


# -- 3. Values the hub never writes --------------------------------------------------------------------


def hand_written(hub) -> list[tuple[str, str]]:
    """(what, the SQL that writes it into entry 4): on SQLite, any type in any column; on both,
    details nested deeper than any parser's recursion, and details in another spelling."""
    deep = "[" * 5000 + "]" * 5000
    cases = [("deep details", f"update audit_log set details = '{{\"n\": {deep}}}' where seq = 4"),
             ("details respelt", "update audit_log set details = '{\"note\": \"x\", \"note\": \"entry 4\"}' "
                                 "where seq = 4")]
    if is_sqlite(hub):
        cases += [(column, f"update audit_log set {column} = {value} where seq = 4")
                  for column, value in (("mac", "X'00'"), ("previous_hash", "X'00'"), ("hash", "7"),
                                        ("actor", "X'6d656d6265723a33'"), ("kind", "X'00'"), ("at", "1.5"),
                                        ("case_id", "'abc'"), ("details", "X'7b7d'"))]
    return cases


def test_hand_written_values_are_named_never_a_crash(hub, tmp_path, capsys):
    write_entries(hub, 6)
    audit_heads.keep(hub)
    with hub.engine.connect() as conn:
        genuine = dict(conn.execute(text("select * from audit_log where seq = 4")).one()._mapping)
    for what, statement in hand_written(hub):
        sql(hub, statement)
        code, _out, err = verify(hub, capsys)
        assert code == 1 and "entry 4" in err.splitlines()[0], (what, err)
        assert record_status(hub.config.data_dir)["verifies"] is False, what
        assert listing(hub, capsys)[0] == 0, what
        with hub.engine.begin() as conn:  # put back for the next one
            conn.execute(text("delete from audit_log where seq = 4"))
            conn.execute(text("insert into audit_log (seq, at, actor, kind, case_id, details, previous_hash, hash, "
                              "mac) values (:seq, :at, :actor, :kind, :case_id, :details, :previous_hash, :hash, "
                              ":mac)"), genuine)
    assert verify(hub, capsys)[0] == 0


def test_after_the_kept_head_they_are_told_and_decisions_go_through(hub):
    write_entries(hub, 6, decision_last=False)
    audit_heads.keep(hub)
    taken_from_the_outbox(hub)
    write_entries(hub, 1, decision_last=False)
    sql(hub, hand_written(hub)[0][1].replace("seq = 4", "seq = 7"))
    assert "entry 7 holds what the hub never writes (its details)" in audit_heads.keep(hub).problem
    decide(hub)  # recorded, no head signed over it, the rooms told
    with hub.engine.connect() as conn:
        assert conn.execute(text("select max(seq) from audit_log")).scalar() == 8
    assert all(m.startswith("Moderation record: the audit log no longer") for m in taken_from_the_outbox(hub))


def test_a_check_that_fails_is_told_and_the_decision_goes_through(hub, monkeypatch):
    write_entries(hub, 2, decision_last=False)

    def failing(*_args, **_kwargs):
        raise TypeError("something nobody thought of")

    monkeypatch.setattr(audit_heads.chain, "check", failing)
    decide(hub)
    (told,) = taken_from_the_outbox(hub)
    assert "the audit log could not be checked (TypeError)" in told
    with hub.engine.connect() as conn:
        assert conn.execute(text("select max(seq) from audit_log")).scalar() == 3


# -- 4. Entries without a MAC ------------------------------------------------------------------------


def test_every_mac_stripped_with_no_head_kept_is_named(hub, capsys):
    write_entries(hub, 6, decision_last=False)
    audit_heads.keep(hub)
    hub.config.paths.audit_head.unlink()
    sql(hub, "update audit_log set mac = NULL",
        "update audit_log set details = '{\"note\": \"nothing\"}' where seq = 3")
    from tests.test_audit_tamper import rehash
    rehash(hub, 1, key=None)
    code, _out, err = verify(hub, capsys)
    assert code == 1 and err.startswith("AUDIT LOG BROKEN: entries 1 to 6 lost their authentication"), err


def test_entries_without_a_mac_are_never_said_to_be_authenticated(hub, capsys):
    """A copy of the database verified without the hub's record of keying: the old entries are
    noted as not authenticated, and the verdict does not claim they are."""
    write_entries(hub, 3, decision_last=False)
    sql(hub, "update audit_log set mac = NULL")
    code, out, _err = verify(hub, capsys)
    assert code == 0 and "authenticated by the hub's key." not in out.splitlines()[0], out
    assert "they are not authenticated by the hub's key" in out


# -- 5, 7, 10. Heads given ----------------------------------------------------------------------------


def test_many_heads_in_one_file_the_newest_is_used(hub, tmp_path, capsys):
    write_entries(hub, 6)
    newest = room_head(hub, tmp_path)
    audit_heads.keep(hub)
    old = audit_heads.kept_head(hub).token  # entry 6 too; an older one, many times, then the newest
    write_entries(hub, 1, decision_last=False)
    sql(hub, "delete from audit_log where seq = 7")
    many = tmp_path / "many.txt"
    many.write_text(("x " + old + "\n") * 1500 + open(newest).read(), "utf-8")
    write_entries(hub, 1)  # a decision at 7, then removed: only the newest head shows it
    newest = room_head(hub, tmp_path)
    many.write_text(("x " + old + "\n") * 1500 + open(newest).read(), "utf-8")
    sql(hub, "delete from audit_log where seq = 7")
    code, _out, err = verify(hub, capsys, str(many))
    assert code == 1 and "entry 7 is missing at the end" in err, err


def test_replaced_entries_are_named_from_the_last_head_they_match(hub, tmp_path, capsys):
    write_entries(hub, 3)
    at_three = room_head(hub, tmp_path)
    (tmp_path / "at-three.txt").write_text(open(at_three).read(), "utf-8")
    write_entries(hub, 3)  # 4 to 6, a decision at 6
    at_six = room_head(hub, tmp_path)
    sql(hub, "delete from audit_log where seq >= 4")
    write_entries(hub, 3, decision_last=False)  # three others in their place
    code, _out, err = verify(hub, capsys, str(tmp_path / "at-three.txt"), at_six)
    assert code == 1 and err.startswith("AUDIT LOG BROKEN: entries 4 to 6 may each have been removed, replaced or "
                                        "rewritten: entry 6 is not the one in the head signed"), err


def test_a_head_file_without_end_is_refused_quickly(hub, capsys):
    code, _out, err = verify(hub, capsys, "/dev/zero")
    assert code == 2 and "/dev/zero is too large to be a file of signed heads" in err


# -- 8. verify and list read the database as it is ---------------------------------------------------


def test_verify_and_list_never_migrate_the_database(hub, capsys):
    write_entries(hub, 3)
    sql(hub, "update alembic_version set version_num = '0013'")
    assert verify(hub, capsys)[0] == 0
    assert listing(hub, capsys)[0] == 0
    with hub.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0013"
    sql(hub, "drop table audit_log")  # a foreign or older schema
    code, _out, err = verify(hub, capsys)
    assert code == 2 and err.startswith("crossline audit verify: not checked: the database cannot be read"), err
    capsys.readouterr()
    assert main(["audit", "list", "--data-dir", str(hub.config.data_dir)]) == 2
    assert capsys.readouterr().err.startswith("crossline audit list: not read: the database cannot be read")


# -- 9. Two keeps at once -------------------------------------------------------------------------------


def test_two_keeps_at_once_never_take_the_kept_head_back(hub, monkeypatch):
    """The first keep is held after its check (at entry 7); meanwhile entry 8 is written and a second
    keep (a head download) runs: the kept head ends at 8, whatever order they finish in."""
    write_entries(hub, 6)
    audit_heads.keep(hub)
    write_entries(hub, 1, decision_last=False)
    first_checked, go_on, second_started = threading.Event(), threading.Event(), threading.Event()
    sign, flock = audit_heads._sign, audit_state.fcntl.flock

    def held_sign(h, seq, digest):
        if threading.current_thread().name == "first":
            first_checked.set()
            go_on.wait(60)
        return sign(h, seq, digest)

    def watched_flock(handle, operation):
        if threading.current_thread().name == "second":
            second_started.set()
        return flock(handle, operation)

    monkeypatch.setattr(audit_heads, "_sign", held_sign)
    monkeypatch.setattr(audit_state.fcntl, "flock", watched_flock)
    first = threading.Thread(target=audit_heads.keep, args=(hub, False), name="first")
    first.start()
    wait_for(first_checked.is_set, what="the first keep checked the log")
    write_entries(hub, 1, decision_last=False)
    second = threading.Thread(target=audit_heads.keep, args=(hub, False), name="second")
    second.start()
    wait_for(lambda: second_started.is_set() or not second.is_alive(), what="the second keep ran")
    go_on.set()
    first.join(60)
    second.join(60)
    assert kept_seq(hub) == 8
    audit_heads.keep(hub, daily=False)
    assert kept_seq(hub) == 8


def test_a_problem_is_logged_once_not_every_keep(hub, caplog):
    write_entries(hub, 3, decision_last=False)
    audit_heads.keep(hub)
    sql(hub, "delete from audit_log where seq = 3")
    with caplog.at_level(logging.ERROR, logger="crossline.services.audit_heads"):
        for _ in range(3):
            assert audit_heads.keep(hub).problem
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_what_the_hub_does_by_itself_is_worded_as_the_hub():
    """Not "the hub (retention)": it also marks decisions a stop cut short (finding 6)."""
    from crossline.domain.audit_listing import describe

    entry = {"seq": 1, "at": 0, "actor": "system", "kind": "action_failed", "case_id": 3, "details": {}}
    assert describe(entry, {}).who == "the hub"
