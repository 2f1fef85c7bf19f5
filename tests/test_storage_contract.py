"""One storage contract, run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from crossline.storage import invitations, lines, members, rooms, sessions
from crossline.storage.db import create_database_engine, migrate
from tests.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_url():
    server = PostgresServer()
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_database_engine(url)
    if request.param == "postgresql":
        with engine.begin() as conn:  # a clean schema for each test
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate(engine)
    yield engine
    engine.dispose()


def test_migrations_create_every_table_and_run_twice(engine):
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"lines", "sides", "members", "member_roles", "invitations", "rooms", "web_sessions",
            "setup_tokens", "alembic_version"} <= tables


def test_lines_members_and_roles_round_trip(engine):
    with engine.begin() as conn:
        line_id = lines.add_line(conn, "nistru", "Nistru", ["Left bank", "Right bank"], 10)
        line = lines.get_line(conn, line_id)
        left = line.sides[0]
        member_id = members.add_member(conn, "@a:x", line_id, left.id, frozenset({"participant", "negotiator"}), None, 11)
    with engine.connect() as conn:
        member = members.get_member(conn, member_id)
        assert member.roles == frozenset({"participant", "negotiator"}) and member.side_id == left.id
        assert [m.matrix_user_id for m in members.list_members(conn, line_id)] == ["@a:x"]
        assert lines.slug_taken(conn, "nistru") and not lines.slug_taken(conn, "enguri")
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            members.add_member(conn, "@a:x", None, None, frozenset({"admin"}), None, 12)


def test_an_invitation_is_used_once(engine):
    with engine.begin() as conn:
        line_id = lines.add_line(conn, "enguri", "Enguri", ["North", "South"], 0)
        staff = members.add_member(conn, "@f:x", None, None, frozenset({"facilitator"}), None, 0)
        invitation_id = invitations.add_invitation(conn, "h" * 64, line_id, None, frozenset({"moderator"}), staff, 0, 100)
        first = members.add_member(conn, "@m1:x", line_id, None, frozenset({"moderator"}), None, 1)
        second = members.add_member(conn, "@m2:x", line_id, None, frozenset({"moderator"}), None, 1)
    with engine.begin() as conn:
        assert invitations.pending_token_hashes(conn, 50) == ["h" * 64]
        assert invitations.mark_used(conn, invitation_id, first, 60)
        assert not invitations.mark_used(conn, invitation_id, second, 61)
    with engine.connect() as conn:
        found = invitations.find_by_token_hash(conn, "h" * 64)
        assert (found.used_at, found.member_id) == (60, first)
        assert invitations.pending_token_hashes(conn, 50) == []


def test_sessions_expire_and_setup_tokens_work_once(engine):
    with engine.begin() as conn:
        member_id = members.add_member(conn, "@s:x", None, None, frozenset({"admin"}), "hash", 0)
        sessions.add_session(conn, "s" * 64, member_id, 0, 100)
        sessions.add_setup_token(conn, "t" * 64, 0, 100)
    with engine.begin() as conn:
        assert sessions.session_member_id(conn, "s" * 64, 99) == member_id
        assert sessions.session_member_id(conn, "s" * 64, 100) is None
        assert sessions.use_setup_token(conn, "t" * 64, 50)
        assert not sessions.use_setup_token(conn, "t" * 64, 51)
        assert members.count_admins(conn) == 1


def test_rooms_are_listed_per_line(engine):
    with engine.begin() as conn:
        line_id = lines.add_line(conn, "l", "L", ["A", "B"], 0)
        staff = members.add_member(conn, "@f:x", None, None, frozenset({"facilitator"}), None, 0)
        rooms.add_room(conn, "!r:x", line_id, "cross-line-dialogue", "Talk", staff, 5)
    with engine.connect() as conn:
        (room,) = rooms.list_rooms(conn, line_id)
        assert (room.room_id, room.template, room.created_by) == ("!r:x", "cross-line-dialogue", staff)
