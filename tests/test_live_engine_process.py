"""Janus and coturn as processes: missing packages, a Janus that fails to start, a Janus restart
under the adapter."""

from __future__ import annotations

import asyncio
import re

import pytest

from crossline.config import parse_config
from crossline.errors import NotFound
from crossline.live import engine
from crossline.live.janus import Janus, JanusEvent
from crossline.live.janus_config import write_janus_config
from tests.support import free_ports, run_cli, wait_for


@pytest.fixture
def data_dir(tmp_path):
    hub, synapse, turn = free_ports(3)
    data = tmp_path / "data"
    run_cli("init", "--data-dir", str(data), "--hub-port", str(hub), "--synapse-port", str(synapse),
            "--turn-port", str(turn))
    return data


def _set_live(data_dir, key: str, value: str) -> None:
    path = data_dir / "crossline.toml"
    path.write_text(re.sub(rf"^{key} = .*$", f"{key} = {value}", path.read_text(), flags=re.M))


def test_up_says_how_to_install_janus_and_coturn_when_missing(data_dir):
    _set_live(data_dir, "janus_binary", '"/nonexistent/janus"')
    result = run_cli("up", "--data-dir", str(data_dir), check=False)
    assert result.returncode == 2
    assert "/nonexistent/janus is not installed" in result.stderr
    assert "apt-get install janus coturn" in result.stderr and "enabled = false" in result.stderr
    assert not (data_dir / "synapse" / "client.sock").exists()  # nothing was started


def test_up_refuses_a_loopback_media_interface(data_dir):
    _set_live(data_dir, "ice_interfaces", '["lo"]')
    result = run_cli("up", "--data-dir", str(data_dir), check=False)
    assert result.returncode == 2 and "loopback interface 'lo'" in result.stderr


@pytest.mark.synapse
def test_a_janus_that_fails_to_start_stops_the_hub_with_its_last_lines(data_dir, tmp_path):
    fake = tmp_path / "janus"
    fake.write_text("#!/bin/sh\necho 'Loading the plugin failed: a clear reason' >&2\nexit 3\n")
    fake.chmod(0o700)
    _set_live(data_dir, "janus_binary", f'"{fake}"')
    result = run_cli("up", "--data-dir", str(data_dir), check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Janus stopped (exit status 3)" in result.stdout
    assert "Loading the plugin failed: a clear reason" in result.stdout
    assert not (data_dir / "synapse" / "client.sock").exists()  # Synapse was stopped with it


@pytest.fixture
def own_janus(tmp_path):
    """A Janus of this test's own, from the generated configuration."""
    config = parse_config({}, tmp_path / "engine")
    from crossline.live.interfaces import media_interfaces

    write_janus_config(config, "api-secret", "admin-key", media_interfaces(config))

    def start() -> engine.EngineProcess:
        process = engine.janus_process(config)
        process.start()
        wait_for(lambda: engine.janus_answers(config.paths.janus_socket, 1) or not process.running(),
                 what="Janus to answer")
        assert process.running(), process.failure()
        return process

    processes = [start()]
    yield config, processes, start
    for process in processes:
        process.stop()


async def test_the_adapter_survives_a_janus_restart(own_janus):
    config, processes, start = own_janus
    janus = Janus(config.paths.janus_socket, "api-secret", "admin-key")
    events = janus.events()
    try:
        room = await janus.create_room("Before", max_publishers=3)
        await janus.join_publisher(room, 31, "A")
        assert await asyncio.wait_for(anext(events), 10) == JanusEvent(room.room_id, 31, "joined")
        processes[0].stop()
        # The feeds Janus held are reported gone: their media ended with it.
        assert await asyncio.wait_for(anext(events), 10) == JanusEvent(room.room_id, 31, "left")
        processes.append(start())
        with pytest.raises(NotFound, match="no longer exists"):
            await janus.join_publisher(room, 32, "B")  # a new session, but the old room is gone
        again = await janus.create_room("After", max_publishers=3)
        await janus.join_publisher(again, 33, "C")
        assert await asyncio.wait_for(anext(events), 10) == JanusEvent(again.room_id, 33, "joined")
        assert (config.paths.janus_log.read_text().count("Starting Meetecho Janus")) == 2
        assert "api-secret" not in config.paths.janus_log.read_text()
    finally:
        await janus.close()


async def test_an_unreachable_janus_is_a_clear_error(tmp_path):
    janus = Janus(tmp_path / "no.sock", "s", "k")
    from crossline.live.janus import JanusError

    with pytest.raises(JanusError, match="not running or cannot be reached"):
        await janus.create_room("x", 2)
    await janus.close()  # closing an adapter that never connected is fine


def _offer(audio_lines: int) -> str:
    """A browser-like offer with many audio m-lines: well over the 8 KB Janus's plain UNIX-socket
    transport dropped (the hub then waited 20 s and gave up)."""
    fingerprint = ":".join(f"{b:02X}" for b in range(32))
    lines = ["v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE " + " ".join(str(i) for i in range(audio_lines)), "a=msid-semantic: WMS",
             f"a=fingerprint:sha-256 {fingerprint}", "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx"]
    for mid in range(audio_lines):
        lines += ["m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=setup:actpass", f"a=mid:{mid}",
                  "a=sendonly", "a=rtcp-mux", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
                  f"a=ssrc:{1000 + mid} cname:crossline-test",
                  "a=candidate:1 1 udp 2122260223 192.0.2.2 40000 typ host"]
    return "\r\n".join(lines) + "\r\n"


async def test_descriptions_longer_than_8_kb_reach_janus_and_come_back(own_janus):
    config, processes, start = own_janus
    offer = _offer(40)
    assert len(offer.encode()) > 8192
    janus = Janus(config.paths.janus_socket, "api-secret", "admin-key")
    try:
        room = await janus.create_room("Big", max_publishers=3)
        handle = await janus.join_publisher(room, 41, "A")
        answer = await janus.publish(handle, offer, audio_bitrate=16000, video=False, language="ru")
        assert answer.startswith("v=0") and answer.count("m=audio") == 40 and len(answer.encode()) > 8192
    finally:
        await janus.close()
