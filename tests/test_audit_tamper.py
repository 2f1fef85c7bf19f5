"""The audit log tampered with in its database, as a hostile insider would, on SQLite and on a real
PostgreSQL server: `crossline audit verify` (the command, its exit code and what it prints) names
what was done, against the signed head the hub queued for the moderators' room (the text a
moderator's client receives) or the head it keeps outside the database. A genuine log verifies.
(issue 27: deleting the newest entry with the hub stopped went unnoticed, 252 -> 251.)
The room's head here is the text the bot would send, taken from the outbox; only
tests/test_e2e_audit_heads.py (SQLite) reads it from a real room, decrypted by a nio client."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from crossline import secrets
from crossline.cli import main
from crossline.domain.audit import GENESIS, audit_key, entry_hash, entry_mac
from crossline.domain.audit_heads import Head, sign
from crossline.reports.signing import signing_key_from_secret
from crossline.services import audit_heads
from crossline.storage import audit, lines, members, rooms
from crossline.storage import bot as bot_state
from crossline.storage.db import create_database_engine, migrate
from tests.fakes import make_unit_hub
from tests.postgres import PostgresServer

ROOM = "!moderators:crossline.local"
ENTRIES = 6  # the sixth is a decision: its head goes to the moderators' room


@pytest.fixture(scope="module")
def postgres_url():
    server = PostgresServer()
    yield server.start()
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request, tmp_path):
    hub = make_unit_hub(tmp_path)
    if request.param == "postgresql":
        # The command reads the database from the data directory's config, as an operator's would.
        url = request.getfixturevalue("postgres_url")
        config_file = hub.config.paths.config_file
        config_file.write_text(config_file.read_text("utf-8").replace('[database]\n', f'[database]\nurl = "{url}"\n')
                               .replace('\nurl = ""\n', "\n"), "utf-8")
        hub.engine = create_database_engine(url)
        with hub.engine.begin() as conn:  # a clean schema for each test
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        migrate(hub.engine)
        with hub.engine.begin() as conn:
            lines.add_line(conn, "nistru", "Nistru", ["Left bank", "Right bank"], 0)
            hub.facilitator = members.get_member(conn, members.add_member(
                conn, "@fac:crossline.local", None, None, frozenset({"facilitator"}), None, 0))
    with hub.engine.begin() as conn:
        line_id = conn.execute(text("select min(id) from lines")).scalar()
        rooms.add_room(conn, ROOM, line_id, "moderation", "Moderators", hub.facilitator.id, 0)
    yield hub
    hub.engine.dispose()


def write_entries(hub, count: int, decision_last: bool = True) -> None:
    for number in range(1, count + 1):
        hub.clock.now += 1000
        post = "a decision on case 1" if decision_last and number == count else None
        with hub.engine.begin() as conn:
            audit_heads.record(conn, hub, f"member:{number}", "decided" if post else "case_viewed", 1,
                               {"note": f"entry {number}"}, post)


def room_head(hub, tmp_path) -> str:
    """The latest head the hub queued for the moderators' room, saved as a moderator would: the
    message's text, as her client shows it."""
    with hub.engine.connect() as conn:
        queued = [m for m in bot_state.waiting_messages(conn, rooms=[ROOM]) if m.purpose == "audit_head"]
    path = tmp_path / "head-from-the-room.txt"
    path.write_text(queued[-1].content["body"], "utf-8")
    return str(path)


def verify(hub, capsys, *head_files: str) -> tuple[int, str, str]:
    capsys.readouterr()
    arguments = ["audit", "verify", "--data-dir", str(hub.config.data_dir)]
    for path in head_files:
        arguments += ["--head", path]
    code = main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sql(hub, *statements: str) -> None:
    with hub.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def rehash(hub, start: int, key: bytes | None) -> None:
    """Recomputes every entry's hash from `start` on, as someone who can write the database can;
    with the hub's key (an insider who also holds its secrets) the MACs too, else they are left."""
    with hub.engine.begin() as conn:
        stored = list(audit.entries(conn))
        previous = GENESIS
        for entry in stored:
            if entry.seq >= start:
                digest = entry_hash(previous, entry.entry)
                mac = entry_mac(key, entry.seq, digest) if key else entry.mac
                conn.execute(text("update audit_log set previous_hash = :p, hash = :h, mac = :m where seq = :s"),
                             {"p": previous, "h": digest, "m": mac, "s": entry.seq})
                previous = digest
            else:
                previous = entry.hash


def hub_key(hub) -> bytes:
    return audit_key(secrets.read_secret(hub.config.paths.secrets_dir, secrets.REPORT_SIGNING_KEY))


def test_a_genuine_log_verifies_against_the_head_from_the_room(hub, tmp_path, capsys):
    write_entries(hub, ENTRIES)
    code, out, err = verify(hub, capsys, room_head(hub, tmp_path))
    assert code == 0, err
    assert f"Audit log verifies: {ENTRIES} entries" in out
    assert f"It holds the latest signed head known (entry {ENTRIES})" in out


TAMPERING = {
    # name: (what is done to the database, what `verify` must say first)
    "newest entry deleted": (
        [f"delete from audit_log where seq = {ENTRIES}"],
        f"entry {ENTRIES} is missing at the end: the head signed"),
    "truncated": (
        ["delete from audit_log where seq > 2"],
        f"entries 3 to {ENTRIES} are missing at the end: the head signed"),
    "emptied": (
        ["delete from audit_log"],
        f"entries 1 to {ENTRIES} are missing at the end: the head signed"),
    "first entry deleted": (
        ["delete from audit_log where seq = 1"],
        "entry 1 is missing at the start (the log begins at entry 2)"),
    "middle entry deleted": (
        ["delete from audit_log where seq = 3"],
        "entry 3 is missing (the log goes from entry 2 to entry 4)"),
    "two entries swapped": (
        ["update audit_log set seq = -1 where seq = 2", "update audit_log set seq = 2 where seq = 4",
         "update audit_log set seq = 4 where seq = -1"],
        "entry 2 is out of place: it was written after the entry now numbered 3 (entries were reordered)"),
    "entry edited": (
        ["update audit_log set actor = 'member:99' where seq = 3"],
        "entry 3 was changed after it was written"),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_verify_names_what_was_done_to_the_database(hub, tmp_path, capsys, tampering):
    write_entries(hub, ENTRIES)
    head = room_head(hub, tmp_path)
    statements, first_problem = TAMPERING[tampering]
    sql(hub, *statements)
    code, out, err = verify(hub, capsys, head)
    assert code == 1 and "verifies" not in out
    assert err.startswith(f"AUDIT LOG BROKEN: {first_problem}"), err
    assert err.rstrip().endswith("compare the entries named with a backup of the database.")


def test_rewritten_and_rehashed_without_the_key_the_entries_are_named(hub, tmp_path, capsys):
    write_entries(hub, ENTRIES)
    head = room_head(hub, tmp_path)
    sql(hub, "update audit_log set details = '{\"note\": \"nothing happened\"}' where seq = 3")
    rehash(hub, 3, key=None)
    code, _out, err = verify(hub, capsys)  # no head at all: the MACs show it
    assert code == 1
    assert err.startswith(f"AUDIT LOG BROKEN: entries 3 to {ENTRIES} are not authenticated by the hub's key"), err
    code, _out, err = verify(hub, capsys, head)  # and the head from the room too
    assert code == 1 and err.startswith(f"AUDIT LOG BROKEN: entries 1 to {ENTRIES} may each have been removed, "
                                        f"replaced or rewritten: entry {ENTRIES} is not the one in the head signed")
    assert f"Also: entries 3 to {ENTRIES} are not authenticated by the hub's key" in err, err


def test_stripping_the_macs_does_not_pass_the_entries_off_as_older_than_keys(hub, tmp_path, capsys):
    """Entries after the last head rewritten without the key, every MAC removed: they are not taken
    for entries written before migration 0014 (which carry none)."""
    write_entries(hub, ENTRIES)
    head = room_head(hub, tmp_path)
    write_entries(hub, 2, decision_last=False)
    sql(hub, f"update audit_log set details = '{{\"note\": \"nothing\"}}' where seq = {ENTRIES + 2}",
        "update audit_log set mac = NULL")
    rehash(hub, ENTRIES + 2, key=None)
    code, _out, err = verify(hub, capsys, head)
    assert code == 1
    assert err.startswith(f"AUDIT LOG BROKEN: entries {ENTRIES + 1} to {ENTRIES + 2} lost their authentication"), err


def test_an_insider_with_the_key_is_shown_only_by_the_head_from_the_room(hub, tmp_path, capsys):
    write_entries(hub, ENTRIES)
    audit_heads.keep(hub, daily=False)
    head = room_head(hub, tmp_path)
    sql(hub, "update audit_log set details = '{\"note\": \"nothing happened\"}' where seq = 2")
    rehash(hub, 2, key=hub_key(hub))
    # She holds the hub's secrets too: she signs the rewritten log's head into the hub's own file.
    secret = secrets.read_secret(hub.config.paths.secrets_dir, secrets.REPORT_SIGNING_KEY)
    with hub.engine.connect() as conn:
        last = audit.last(conn)
    forged = sign(Head(hub.config.synapse.server_name, last[0], last[1], hub.clock.now_ms()),
                  signing_key_from_secret(secret))
    hub.config.paths.audit_head.write_text(forged.token + "\n", "utf-8")
    code, out, err = verify(hub, capsys)
    assert code == 0, err  # nothing the hub holds can show it...
    code, out, err = verify(hub, capsys, head)  # ...the head on the moderators' devices does
    assert code == 1
    assert err.startswith(f"AUDIT LOG BROKEN: entries 1 to {ENTRIES} may each have been removed, replaced or "
                          f"rewritten: entry {ENTRIES} is not the one in the head signed"), err


def test_the_kept_head_alone_shows_the_newest_entries_deleted_while_the_hub_was_stopped(hub, capsys):
    write_entries(hub, 252, decision_last=False)
    audit_heads.keep(hub, daily=False)  # as the hub does every 30 seconds and when it stops
    assert verify(hub, capsys)[0] == 0
    sql(hub, "delete from audit_log where seq = 252")
    code, out, err = verify(hub, capsys)
    assert code == 1 and "251 entries" not in out
    assert err.startswith("AUDIT LOG BROKEN: entry 252 is missing at the end: the head signed"), err


def test_details_that_are_not_json_are_named_not_a_crash(tmp_path):
    """A hand-written row whose details are not the hub's JSON (review of issue 27): verify names it."""
    from crossline.cli import main
    from crossline.services import moderation as moderation_service
    from tests.fakes import make_unit_hub

    hub = make_unit_hub(tmp_path)
    moderation_service.report_from_web(hub, "threats", "He follows me home", "", [])
    moderation_service.report_from_web(hub, "spam", "Adverts", "", [])
    for bad in ("not json", "[1, 2]", "null"):
        with hub.engine.begin() as conn:
            conn.execute(text("update audit_log set details = :d where seq = 1"), {"d": bad})
        assert main(["audit", "verify", "--data-dir", str(hub.config.data_dir)]) == 1
