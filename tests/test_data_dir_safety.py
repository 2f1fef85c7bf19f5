"""Start-up, files and logs (issue 10, item 16): secrets are made by `crossline init` only and the
hub refuses to start without them; everything in the data directory is private to the hub's user;
no log line holds a client's address; the audit log holds nothing about an anonymous reporter."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path

import pytest

from crossline import secrets
from crossline.cli import main
from crossline.services import moderation
from crossline.setup import init_data_dir
from crossline.storage import audit
from crossline.web.app import create_app


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_hub_refuses_to_start_without_a_secret_and_never_makes_one(tmp_path):
    config = init_data_dir(tmp_path / "data", hub_port=18211, synapse_port=18212)[0]
    lost = config.paths.secret(secrets.EVIDENCE_KEY)
    lost.unlink()
    with pytest.raises(secrets.SecretError, match="evidence_key.*missing.*backup"):
        create_app(config, background=False)
    assert not lost.exists()


def test_crossline_up_without_a_secret_says_which_and_starts_nothing(tmp_path, capsys):
    data = tmp_path / "data"
    config = init_data_dir(data, hub_port=18213, synapse_port=18214)[0]
    config.paths.secret(secrets.PSEUDONYM_TAG_KEY).unlink()
    assert main(["up", "--data-dir", str(data)]) == 2
    assert "pseudonym_tag_key" in capsys.readouterr().err
    assert not config.paths.secret(secrets.PSEUDONYM_TAG_KEY).exists()
    assert not config.paths.run_state.exists()


def test_sealing_with_a_lost_key_fails_instead_of_making_a_new_one(hub):
    hub.config.paths.secret(secrets.EVIDENCE_KEY).unlink()
    with pytest.raises(secrets.SecretError, match="missing"):
        moderation.seal(hub, "what she wrote")
    assert not hub.config.paths.secret(secrets.EVIDENCE_KEY).exists()


def test_init_on_a_hub_with_data_will_not_replace_a_lost_key(tmp_path):
    data = tmp_path / "data"
    config = init_data_dir(data, hub_port=18215, synapse_port=18216)[0]
    config.paths.hub_database.write_bytes(b"")  # the hub has run: there is data the key protects
    config.paths.secret(secrets.EVIDENCE_KEY).unlink()
    with pytest.raises(secrets.SecretError, match="Restore it from your backup"):
        init_data_dir(data)
    assert not config.paths.secret(secrets.EVIDENCE_KEY).exists()
    # A secret that protects no stored data is simply made again.
    config.paths.secret(secrets.FORM_SECRET).unlink()
    config.paths.secret(secrets.EVIDENCE_KEY).write_text("restored from backup")
    config.paths.secret(secrets.EVIDENCE_KEY).chmod(0o600)
    init_data_dir(data)
    assert _mode(config.paths.secret(secrets.FORM_SECRET)) == 0o600


def test_init_says_when_pending_invitations_stop_working(tmp_path, capsys):
    """A lost registration-token key is made again (it protects no stored data), but every pending
    invitation dies with it: the operator is told, not left to hear it from members."""
    data = tmp_path / "data"
    config = init_data_dir(data, hub_port=18221, synapse_port=18222)[0]
    config.paths.hub_database.write_bytes(b"")
    config.paths.secret(secrets.REGISTRATION_TOKEN_KEY).unlink()
    init_data_dir(data)
    assert "invitations issued before now no longer work" in capsys.readouterr().err


def test_init_makes_an_existing_data_directory_private(tmp_path):
    data = tmp_path / "data"
    config = init_data_dir(data, hub_port=18217, synapse_port=18218)[0]
    loose_dir = data / "synapse" / "media_store"
    loose_dir.mkdir(mode=0o755)
    loose_file = loose_dir / "picture"
    loose_file.write_bytes(b"x")
    loose_file.chmod(0o644)
    config.paths.hub_database.write_bytes(b"")
    config.paths.hub_database.chmod(0o644)
    data.chmod(0o755)
    init_data_dir(data)
    for path in [data, *data.rglob("*")]:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_no_log_line_holds_a_client_address(tmp_path, caplog):
    """aiohttp logs "Error handling request from <address>" on a malformed request."""
    config = init_data_dir(tmp_path / "data", hub_port=18219, synapse_port=18220)[0]

    async def malformed_request() -> None:
        from aiohttp.test_utils import TestServer

        server = TestServer(create_app(config, background=False), host="127.0.0.1")
        await server.start_server()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n")
            await writer.drain()
            await reader.read()
            writer.close()
        finally:
            await server.close()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(malformed_request())
        logging.getLogger("crossline.test").warning("peer %s and %s", "203.0.113.9", "2001:db8::7")
    assert "Error handling request" in caplog.text  # the line is still there, without the address
    assert "127.0.0.1" not in caplog.text
    assert "203.0.113.9" not in caplog.text and "2001:db8::7" not in caplog.text


def test_the_audit_log_keeps_nothing_about_an_anonymous_reporter(hub):
    moderation.report_from_web(hub, "threats", "He said he knows my street", "", [])
    with hub.engine.connect() as conn:
        logged = [json.dumps(entry) for _, entry, *_ in audit.entries(conn)]
    assert any('"report_received"' in text for text in logged)
    assert not any('"MD"' in text or "country" in text for text in logged)


@pytest.mark.synapse
def test_every_file_the_running_hub_and_synapse_made_is_private(world):
    """After onboarding, rooms and consultations have run: Synapse's database and log, the hub's
    database, the bot's store, media, claims, all 0600 in 0700 directories."""
    data = world.stack.data_dir
    loose = [f"{path.relative_to(data)} {_mode(path):o}" for path in [data, *data.rglob("*")]
             if not path.is_symlink() and _mode(path) != (0o700 if path.is_dir() else 0o600)]
    assert not loose, loose
