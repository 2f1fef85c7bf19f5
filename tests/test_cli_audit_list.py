"""`crossline audit list`: the moderation record read without SQL, on a real database made by the
moderation service itself, SQLite and PostgreSQL; bad filters get a sentence saying what to write (exit 2), never a
traceback, and change nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from crossline.cli import main
from crossline.domain.audit_listing import KIND_LABELS
from crossline.services import moderation as service
from crossline.services import pseudonyms
from crossline.storage.schema import audit_log
from tests.test_audit_tamper import hub, postgres_url  # noqa: F401 - each test on SQLite and on PostgreSQL
from tests.test_moderation import matrix_case, mod  # noqa: F401 - the three moderators and their reports

SOURCES = Path(__file__).resolve().parent.parent / "server" / "crossline"


def at(day: str, hour: int = 12) -> int:
    return int(datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
async def record(mod):  # noqa: F811
    """Two cases on two days: the first decided by two moderators, the second only reported."""
    mod.clock.now = at("2026-11-26")
    first = await matrix_case(mod)
    service.view(mod, mod.mods["mona"], first)
    await service.decide(mod, mod.mods["mona"], first, ["ban_all"], "Threats, again")
    await service.agree(mod, mod.mods["rita"], first)
    mod.clock.now = at("2026-11-28")
    second = await matrix_case(mod, "She posted my address")
    pseudonyms.set_moderator_key(mod, mod.mods["lena"], "lena's long passphrase")
    mod.cases = (first, second)
    return mod


def listing(hub, capsys, *options: str) -> tuple[int, list[str], str]:
    code = main(["audit", "list", "--data-dir", str(hub.config.data_dir), *options])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def entries(hub) -> list[tuple]:
    with hub.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(audit_log).order_by(audit_log.c.seq))]


async def test_every_entry_is_a_line_of_words_newest_first(record, capsys):
    first, second = record.cases
    code, lines, err = listing(record, capsys)
    assert code == 0 and err == ""
    numbers = [int(line.split()[0]) for line in lines]
    assert numbers == sorted(numbers, reverse=True) == list(range(len(entries(record)), 0, -1))
    newest = lines[0]
    assert "2026-11-28 12:00:00 UTC" in newest and "@lena:crossline.local" in newest
    assert "escrow passphrase set" in newest
    by_number = {int(line.split()[0]): line for line in lines}
    opened = next(line for line in lines if "case opened" in line)
    assert "@mona:crossline.local" in opened and f"case {first}" in opened
    received = by_number[1]
    assert "a Matrix report" in received and "report received" in received and f"case {first}" in received
    proposed = next(line for line in lines if "proposed (waits for a second moderator)" in line)
    assert "actions: Ban from every hub room" in proposed and "on appeal: no" in proposed
    assert any("@rita:crossline.local" in line and "agreed, as the second moderator" in line for line in lines)
    assert any(f"case {second}" in line and "2026-11-28" in line for line in lines)
    assert not any("member:" in line for line in lines)  # people by their Matrix id, never a row's key


async def test_filters_by_case_person_and_day(record, capsys):
    first, second = record.cases
    _, lines, _ = listing(record, capsys, "--case", str(second))
    assert lines and all(f"case {second}" in line for line in lines)
    _, lines, _ = listing(record, capsys, "--moderator", "@rita:crossline.local")
    assert [line.split("  ")[3] for line in lines] == ["action carried out", "agreed, as the second moderator"]
    rita = record.mods["rita"].id
    assert listing(record, capsys, "--moderator", str(rita))[1] == lines
    _, lines, _ = listing(record, capsys, "--moderator", "matrix")
    assert len(lines) == 2 and all("a Matrix report" in line for line in lines)
    _, lines, _ = listing(record, capsys, "--since", "2026-11-27")
    assert lines and all("2026-11-28" in line for line in lines)
    _, lines, _ = listing(record, capsys, "--until", "2026-11-26")
    assert lines and all("2026-11-26" in line for line in lines)
    _, lines, _ = listing(record, capsys, "--since", "2026-11-28", "--until", "2026-11-28", "--case", str(first))
    assert lines == ["No entries match."]


async def test_a_long_record_is_read_in_pages(record, capsys):
    total = len(entries(record))
    _, lines, _ = listing(record, capsys, "--limit", "3")
    assert [int(line.split()[0]) for line in lines[:3]] == [total, total - 1, total - 2]
    assert lines[3] == f"Older entries match too: continue with --before {total - 2}."
    seen = []
    before = str(total + 1)
    while True:
        _, lines, _ = listing(record, capsys, "--limit", "4", "--before", before)
        page = [int(line.split()[0]) for line in lines if line[:1] == " " or line[:1].isdigit()]
        seen += page
        if not lines[-1].startswith("Older entries"):
            break
        before = lines[-1].rsplit(" ", 1)[1].rstrip(".")
    assert seen == list(range(total, 0, -1))


HOSTILE = {
    "--case": ["-1", "0", "twelve", "12.5", "1e3", "٣", "１２", "9" * 20, "1" * 10_240, "12; drop table audit_log"],
    "--moderator": ["@nobody:crossline.local", "not a person", "мона", "@" + "a" * 10_240 + ":crossline.local",
                    "@mona", "member:3", "-1", "0", "9" * 30],
    "--since": ["2026-13-01", "2026-02-30", "yesterday", "20261128", "2026-11-28T00:00", "２０２６-１１-２８",
                "x" * 10_240, "-2026-11-28", "0000-01-01"],
    "--until": ["2026-11-31", "28/11/2026", "\u202e2026-11-28"],
    "--limit": ["0", "-5", "1001", "9" * 25, "ten", "\x00"],
    "--before": ["0", "-1", "one", "9" * 25],
}


async def test_bad_filters_say_what_to_write_and_change_nothing(record, capsys):
    before, wrong = entries(record), []
    for option, values in HOSTILE.items():
        for value in values:
            code, lines, err = listing(record, capsys, f"{option}={value}")
            if not (code == 2 and lines == [] and err.startswith("crossline audit list: ") and "Traceback" not in err
                    and re.search(r"write|at most|before since|no member", err) and len(err) < 400):
                wrong.append(f"{option}={value[:40]!r}: exit {code}, {lines[:2]}, {err[:300]!r}")
    assert not wrong, "\n".join(wrong)  # each says what to write, never echoing a long value back
    assert entries(record) == before


async def test_until_before_since_is_refused(record, capsys):
    code, _, err = listing(record, capsys, "--since", "2026-11-28", "--until", "2026-11-27")
    assert code == 2 and "Until is before since" in err


async def test_a_hand_written_row_cannot_drive_the_terminal(record, capsys):
    """Whoever can write the database must not reach the operator's terminal through the listing
    (verify says the row was changed; the listing still prints it, harmlessly)."""
    with record.engine.begin() as conn:
        conn.execute(text("update audit_log set kind = :kind, details = :details where seq = 1"),
                     {"kind": "made_up\x1b]0;owned\x07", "details": '{"n": [1, 2], "note": "\\u001b[2Jcleared"}'})
    code, lines, _ = listing(record, capsys, "--case", str(record.cases[0]))
    assert code == 0
    assert not any(c in line for line in lines for c in "\x1b\x07")
    assert "made up\\x1b]0;owned\\x07" in lines[-1] and "note: \\x1b[2Jcleared" in lines[-1]


def _kinds_written() -> set[str]:
    """Every kind of entry the hub's code appends: the 4th argument of each `_audit(conn, hub, ...)`
    and `audit_heads.record(conn, hub, ...)` call; a kind made at run time must be listed here."""
    dynamic = {'"action_" + status': {"action_done", "action_failed"}}
    kinds, calls = set(), 0
    for path in SOURCES.rglob("*.py"):
        source = path.read_text("utf-8")
        for raw in re.findall(r"(?:_audit|audit_heads\.record)\(\s*conn,\s*hub,\s*[^,]+,\s*([^,)]+)", source):
            calls += 1
            raw = raw.strip()
            if raw == "kind":  # a module's own _audit passing its caller's kind on
                continue
            if raw in dynamic:
                kinds |= dynamic[raw]
            else:
                assert raw.startswith('"'), f"{path.name}: a kind made at run time ({raw}): add its values here"
                kinds |= set(re.findall(r'"([a-z_]+)"', raw))
    assert calls >= 25  # the search finds the calls (there were 27 when this was written)
    return kinds


def test_every_kind_the_hub_writes_has_words():
    missing = _kinds_written() - set(KIND_LABELS)
    assert not missing, f"kinds with no label in domain/audit_listing.KIND_LABELS: {sorted(missing)}"
