"""The hub's own SQLite database keeps nothing of a deleted row in its file.

Some SQLite builds (Debian's) overwrite deleted content by default, most do not: each test first
turns the setting off on every new connection, as those builds start, before the hub's own
connection setup runs."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from crossline.storage.db import create_database_engine


def _as_most_builds_start(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA secure_delete=OFF")


@pytest.fixture
def engine(tmp_path):
    engine = create_database_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    event.listen(engine, "connect", _as_most_builds_start, insert=True)
    yield engine
    engine.dispose()


def test_every_connection_overwrites_what_it_deletes(engine):
    with engine.connect() as first, engine.connect() as second:
        assert first.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        assert second.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def test_a_deleted_row_is_gone_from_the_file(engine, tmp_path):
    marker = "unmasking share 7f3a9c" * 4
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE shares (id INTEGER PRIMARY KEY, share TEXT)"))
        conn.execute(text("INSERT INTO shares (share) VALUES (:s), ('another row')"), {"s": marker})
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM shares WHERE share = :s"), {"s": marker})
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL's frames, old ones included, go
    data = b"".join(candidate.read_bytes() for candidate in tmp_path.iterdir())
    assert b"another row" in data and marker.encode() not in data
