"""Two additions to reports at the same moment (two threads, or the web and the bot, each with its
own connection) each take their own audit number: the last entry is read inside the write
transaction (review of issue 24, finding 12). An addition with no words, pictures or choice wrote
nothing before its audit entry, so pysqlite (legacy transactions) read the last number outside any
transaction: both read the same one, and the second insert failed (IntegrityError, a 500)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, text

from crossline.services import moderation as service
from crossline.storage import audit
from crossline.storage.db import create_database_engine, migrate
from tests.fakes import make_unit_hub
from tests.postgres import PostgresServer


@pytest.fixture(scope="module")
def postgres_url():
    server = PostgresServer()
    yield server.start()
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request, tmp_path):
    hub = make_unit_hub(tmp_path)
    if request.param == "postgresql":
        hub.engine = create_database_engine(request.getfixturevalue("postgres_url"))
        with hub.engine.begin() as conn:  # a clean schema for each test
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        migrate(hub.engine)
    return hub


def test_two_additions_at_once_take_two_audit_numbers(hub):
    token = service.report_from_web(hub, "threats", "He follows me home", "", []).status_token
    # Each addition is held just before it writes its audit entry until the other has got that far
    # too (what two at once can do) or, if the other cannot (it waits for the write lock), briefly.
    both_read = threading.Barrier(2)

    def hold(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            try:
                both_read.wait(timeout=2)
            except threading.BrokenBarrierError:
                pass

    event.listen(hub.engine, "before_cursor_execute", hold)
    failures: list[BaseException] = []

    def addition():
        try:
            service.add_from_reporter(hub, token, "", [], None)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=addition) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    event.remove(hub.engine, "before_cursor_execute", hold)
    assert not any(thread.is_alive() for thread in threads) and failures == []
    with hub.engine.connect() as conn:
        numbers = [stored.seq for stored in audit.entries(conn)]
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) == 3
