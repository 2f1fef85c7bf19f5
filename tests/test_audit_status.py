"""`crossline status` says in one line whether the moderation record verifies against the head the
hub keeps (and under "audit_log" with --json), reading only: no migration, nothing written, no
database created where there was none."""

from __future__ import annotations

import json

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from crossline.cli import main
from crossline.cli_audit import record_status
from crossline.services import audit_heads
from crossline.setup import init_data_dir
from crossline.storage.db import MIGRATIONS_DIR, create_database_engine
from tests.test_audit_tamper import sql, write_entries


def status(data_dir, capsys, *options: str) -> str:
    capsys.readouterr()
    main(["status", "--data-dir", str(data_dir), *options])
    return capsys.readouterr().out


def audit_line(data_dir, capsys) -> str:
    (line,) = [line for line in status(data_dir, capsys).splitlines() if line.startswith("Audit log")]
    return line


def everything_stored(hub) -> list[str]:
    raw = hub.engine.raw_connection()
    try:
        return list(raw.driver_connection.iterdump())
    finally:
        raw.close()


def test_status_says_whether_the_record_verifies(hub, capsys):
    write_entries(hub, 3, decision_last=False)
    assert record_status(hub.config.data_dir)["line"] == "Audit log: verifies, 3 entries, no head kept yet."
    audit_heads.keep(hub, daily=False)
    assert audit_line(hub.config.data_dir, capsys) == "Audit log: verifies, 3 entries, head kept at entry 3."
    report = record_status(hub.config.data_dir)
    assert report["verifies"] is True and report["entries"] == 3 and report["head_kept_at"] == 3

    sql(hub, "delete from audit_log where seq = 3")
    stored, kept = everything_stored(hub), hub.config.paths.audit_head.read_bytes()
    line = audit_line(hub.config.data_dir, capsys)
    assert line.startswith("Audit log: BROKEN: entry 3 is missing at the end: the head signed")
    assert line.endswith("Run `crossline audit verify`.")
    report = json.loads(status(hub.config.data_dir, capsys, "--json"))["audit_log"]
    assert report["verifies"] is False and report["problems"][0].startswith("entry 3 is missing at the end")
    # Read only: the moderators were not told from here (keep() does that), nothing was written.
    assert everything_stored(hub) == stored and hub.config.paths.audit_head.read_bytes() == kept


def test_status_creates_no_database_and_migrates_none(tmp_path):
    config = init_data_dir(tmp_path / "data", hub_port=18111, synapse_port=18112)[0]
    assert record_status(config.data_dir)["line"] == "Audit log: no database yet (the hub has not run)."
    assert not config.paths.hub_database.exists()

    engine = create_database_engine(config.database_url)
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:  # a database the hub left before entries were keyed
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0013")
    line = record_status(config.data_dir)["line"]
    assert line.startswith("Audit log: not checked: the database cannot be read")
    assert line.endswith("has the hub run since its last upgrade?")
    with engine.connect() as connection:
        assert connection.execute(text("select version_num from alembic_version")).scalar() == "0013"
    engine.dispose()


def test_status_without_the_hubs_key_says_so(hub):
    write_entries(hub, 2, decision_last=False)
    (hub.config.paths.secrets_dir / "report_signing_key").rename(hub.config.paths.secrets_dir / "elsewhere")
    assert record_status(hub.config.data_dir)["line"].startswith("Audit log: not checked: ")
