"""Engine creation and migrations (Alembic, run at every start; a no-op when up to date)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def create_database_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_savepoint_inside_a_transaction)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web pages read while a write commits; synchronous=FULL so a crash or
    # power cut after a commit loses nothing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted rows (unmasking shares, sessions, cases past retention) are overwritten with zeros,
    # not left in free pages where a copy of the file would still hold them.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_savepoint_inside_a_transaction(conn, _name) -> None:
    """pysqlite (in its default, legacy mode) opens a transaction only before an INSERT, UPDATE or
    DELETE. A SAVEPOINT sent before any of these therefore opens the transaction itself, and its
    RELEASE commits everything so far: a service's "all of this or none of it" would commit piece by
    piece (a batch's processed marks without their answers). The transaction is opened first, and
    IMMEDIATE (taking the write lock now, waiting as long as the busy timeout) because a savepoint
    precedes a write and a deferred one could not then take the lock from a stale snapshot."""
    dbapi_connection = conn.connection.dbapi_connection
    if not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        alembic_config.attributes["connection"] = connection
        command.upgrade(alembic_config, "head")
