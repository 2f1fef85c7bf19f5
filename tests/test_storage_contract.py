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


def test_live_sessions_keep_only_side_totals_once_ended(engine):
    from crossline.domain.live import LiveStatus
    from crossline.storage import live

    with engine.begin() as conn:
        line_id = lines.add_line(conn, "live", "Live", ["A", "B"], 0)
        staff = members.add_member(conn, "@f:x", None, None, frozenset({"facilitator"}), None, 0)
        one = members.add_member(conn, "@one:x", line_id, None, frozenset({"participant"}), None, 0)
        room = rooms.add_room(conn, "!r:x", line_id, "consultation", "Talk", staff, 5)
        made = live.add_session(conn, "pub-1", line_id, None, room, "Talk", LiveStatus.SCHEDULED, 99, staff, 6)
    with engine.begin() as conn:
        assert live.next_epoch(conn, made.id) == 1 and live.next_epoch(conn, made.id) == 2
        live.set_status(conn, made.id, LiveStatus.OPEN)
        live.set_engine_room(conn, made.id, 2**51)
        live.set_interpreter(conn, made.id, one, "ru")
        live.add_participant(conn, made.id, one)
        live.add_participant(conn, made.id, one)
        live.mark_removed(conn, made.id, one)
        live.stop_keys_to_room(conn, made.id)
    with engine.connect() as conn:
        found = live.get_session(conn, "pub-1")
        assert (found.status, found.janus_room_id, found.epoch, found.keys_to_room) == (LiveStatus.OPEN, 2**51, 2, False)
        assert live.interpreters(conn, made.id) == {one: "ru"} and live.is_removed(conn, made.id, one)
        assert [s.public_id for s in live.sessions_of(conn, hub_room_id=room)] == ["pub-1"]
        assert [s.public_id for s in live.unended(conn)] == ["pub-1"]
    with engine.begin() as conn:
        live.finish(conn, made.id, {"A": (120, 5), "no side": (30, 1)}, 1000)
    with engine.connect() as conn:
        found = live.get_session(conn, "pub-1")
        assert (found.status, found.ended_at, found.janus_room_id) == (LiveStatus.ENDED, 1000, None)
        assert live.participant_ids(conn, made.id) == [] and live.interpreters(conn, made.id) == {}
        assert live.side_totals(conn, made.id) == {"A": (120, 5), "no side": (30, 1)}
        assert live.unended(conn) == []
        columns = {c["name"] for t in ("live_sessions", "live_participants", "live_side_totals", "live_interpreters")
                   for c in inspect(conn).get_columns(t)}
        assert not any("key" in name and name != "keys_to_room" for name in columns)
