"""Moderators' reasons are sealed with the evidence key like other case content (issue 27, item 4
of h27d): never written in clear, opened for the case page and her decision link; reasons stored in
clear before migration 0015 are sealed when the hub starts (a migration cannot read the key)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from crossline.services import moderation as service
from crossline.setup import init_data_dir
from crossline.storage import members
from crossline.storage.db import MIGRATIONS_DIR, create_database_engine
from crossline.web.app import create_app
from crossline.web.keys import HUB
from tests.test_moderation import HARASSER, matrix_case, mod  # noqa: F401 - the moderators' fixture

REASON = "He wrote her home street in the dialogue room 7731"


def stored_bytes(hub) -> bytes:
    database = hub.config.paths.hub_database
    wal = database.with_name(database.name + "-wal")
    return database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def test_a_reason_is_stored_sealed_and_opened_for_moderators_and_for_her(mod):  # noqa: F811
    case_id = await matrix_case(mod)
    await service.decide(mod, mod.mods["mona"], case_id, ["warn"], REASON)
    assert REASON.encode() not in stored_bytes(mod)
    with mod.engine.connect() as conn:
        assert conn.execute(text("select reason from moderation_decisions")).scalars().all() == [""]
    assert [d.reason for d in service.view(mod, mod.mods["lena"], case_id).decisions] == [REASON]
    link = [c[2] for c in mod.homeserver.calls if c[:2] == ("notice", HARASSER)][-1].split("/appeal/")[1]
    with mod.engine.begin() as conn:
        harasser = members.get_member(conn, members.add_member(conn, HARASSER, None, None, frozenset({"participant"}),
                                                               None, 0))
    assert service.decision_view(mod, harasser, link).decisions == [("Warn the person", REASON)]


async def test_reasons_stored_in_clear_before_0015_are_sealed_when_the_hub_starts(aiohttp_client, tmp_path):
    config = init_data_dir(tmp_path / "data", hub_port=18993, synapse_port=18992)[0]
    engine = create_database_engine(config.database_url)
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0014")
        connection.execute(text("INSERT INTO members (id, matrix_user_id, created_at) VALUES (1, '@mod:x', 0)"))
        connection.execute(text("INSERT INTO moderation_cases (id, source, category, urgent, status, created_at, "
                                "updated_at) VALUES (1, 'web', 'other', 0, 'decided', 0, 0)"))
        for decision_id, reason in ((1, REASON), (2, "A second reason")):
            connection.execute(text(
                "INSERT INTO moderation_decisions (id, case_id, action, reason, proposed_by, status, on_appeal, "
                "created_at) VALUES (:i, 1, 'warn', :r, 1, 'done', 0, 0)"), {"i": decision_id, "r": reason})
    engine.dispose()

    client = await aiohttp_client(create_app(config, background=False))  # the hub starts: migrates, then seals
    hub = client.app[HUB]
    with hub.engine.connect() as conn:
        rows = conn.execute(text("select reason, reason_sealed from moderation_decisions order by id")).all()
    assert [reason for reason, _ in rows] == ["", ""]
    assert [service.unseal(hub, sealed).decode() for _, sealed in rows] == [REASON, "A second reason"]
    assert service.seal_clear_reasons(hub) == 0  # nothing left in clear: a second start does nothing
