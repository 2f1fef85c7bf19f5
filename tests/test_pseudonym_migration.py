"""Migration 0006 on a database that has an escrow, a pseudonym and an open request with a share
given in clear under the old scheme (0005)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import inspect, text

from crossline.storage import pseudonyms as store
from crossline.storage.db import MIGRATIONS_DIR, create_database_engine, migrate


def upgrade(engine, revision: str) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_0006_drops_the_clear_shares_expires_open_requests_and_retires_old_escrows(tmp_path):
    engine = create_database_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO lines (id, slug, name, created_at) VALUES (1, 'l', 'L', 0)"))
        conn.execute(text("INSERT INTO sides (id, line_id, name) VALUES (1, 1, 'A')"))
        for member_id, user in ((1, "@mod:x"), (2, "@p-old:x")):
            conn.execute(text("INSERT INTO members (id, matrix_user_id, line_id, side_id, created_at) "
                              "VALUES (:i, :u, 1, 1, 0)"), {"i": member_id, "u": user})
        conn.execute(text("INSERT INTO consultations (id, line_id, title, phase, premoderation, created_by, "
                          "created_at, phase_changed_at) VALUES (1, 1, 'C', 'collecting', 0, 1, 0, 0)"))
        conn.execute(text("INSERT INTO moderation_cases (id, source, category, urgent, status, created_at, updated_at) "
                          "VALUES (1, 'web', 'other', 0, 'open', 0, 0)"))
        conn.execute(text("INSERT INTO escrows (id, public_key, threshold, created_at) VALUES (1, x'00', 2, 0)"))
        conn.execute(text("INSERT INTO escrow_shares VALUES (1, 1, x'01')"))
        conn.execute(text("INSERT INTO pseudonyms VALUES (2, 1, 'tag', 'Old Name', 1, x'02', 123456)"))
        conn.execute(text("INSERT INTO unmask_requests (id, case_id, pseudonym_member_id, reason, requested_by, "
                          "status, created_at) VALUES (1, 1, 2, 'why', 1, 'open', 5)"))
        conn.execute(text("INSERT INTO unmask_shares VALUES (1, 1, 1, x'0303')"))
    migrate(engine)
    assert "unmask_shares" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status, expires_at FROM unmask_requests")).one() == ("expired", 5)
        assert conn.execute(text("SELECT invitation FROM pseudonyms")).scalar() == "sent"
        held = store.get_escrow(conn, 1)
        assert held is not None and not held.current_scheme
        assert store.current_escrow(conn) is None  # new pseudonyms wait for an escrow set up again
    engine.dispose()
