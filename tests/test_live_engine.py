"""Janus and coturn as `crossline up` runs them (the real stack): who can reach them, what they
accept, the adapter against the real VideoRoom with Chromium as the browser, and Synapse's TURN."""

from __future__ import annotations

import asyncio
import json
import re
import os
import socket
import stat
import time
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from crossline import secrets
from crossline.config import load_config, port_range
from crossline.errors import Conflict, InvalidInput, NotFound
from crossline.live.engine import janus_answers, turn_answers
from crossline.live.interfaces import default_route_interface, interface_address
from crossline.live.janus import Janus, JanusEvent
from crossline.live.turn import ice_servers
from tests.conftest import ALICE
from tests.support import login, matrix, run_cli
from tests.turn_client import TurnClient

pytestmark = [pytest.mark.synapse]


@pytest.fixture(scope="module")
def config(stack):
    return load_config(stack.data_dir)


def _status(stack) -> dict:
    return json.loads(run_cli("status", "--data-dir", str(stack.data_dir), "--json").stdout)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_janus_and_coturn_are_children_of_crossline_up_and_healthy(stack):
    report = _status(stack)
    assert report["janus"]["healthy"] and report["coturn"]["healthy"]
    for name in ("janus", "coturn"):
        assert _parent(report[name]["pid"]) == stack.process.pid, name


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _bound_addresses(inodes: set[str]) -> list[tuple[str, str, str]]:
    """(table, local address:port, state) of every IP socket with one of these inodes."""
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.append((table, fields[1], fields[3]))
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1 as /proc/net writes them
LISTEN = "0A"


def test_nothing_listens_beyond_loopback_and_janus_has_no_tcp_api(stack):
    """At rest: Janus binds media ports only while a peer connection exists (checked in the media
    test below), coturn its relays only while an allocation exists."""
    report = _status(stack)
    pids = {name: report[name]["pid"] for name in ("hub", "synapse", "janus", "coturn")}
    for name, pid in pids.items():
        for table, address, state in _bound_addresses(_socket_inodes(pid)):
            assert address.rsplit(":", 1)[0] in LOOPBACK, f"{name} has a {table} socket on {address}"
    janus_sockets = _bound_addresses(_socket_inodes(pids["janus"]))
    assert not [s for s in janus_sockets if s[0].startswith("tcp") and s[2] == LISTEN], janus_sockets
    coturn_listening = {(t, s) for t, _, s in _bound_addresses(_socket_inodes(pids["coturn"])) if t.startswith("tcp")}
    assert coturn_listening == {("tcp", LISTEN)}  # its one TURN port (no TLS, no CLI, no admin)


class _RawJanus:
    """Janus's API as any local program could speak it (WebSocket on its UNIX socket), one
    connection (a session belongs to it)."""

    def __init__(self, http: aiohttp.ClientSession, sock: aiohttp.ClientWebSocketResponse):
        self.http, self.sock = http, sock

    async def __call__(self, request: dict) -> dict:
        await self.sock.send_str(json.dumps({"transaction": "t", **request}))
        while True:
            reply = await self.sock.receive_json(timeout=10)
            if reply.get("janus") != "ack":
                return reply


async def test_janus_refuses_requests_without_the_api_secret_and_rooms_without_the_admin_key(config):
    path = config.paths.janus_socket
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as http, \
            http.ws_connect("ws://janus/", protocols=("janus-protocol",)) as sock:
        await _refusals(_RawJanus(http, sock), config)


async def _refusals(janus_api: _RawJanus, config) -> None:
    for request in ({"janus": "create"}, {"janus": "create", "apisecret": "guess"}):
        reply = await janus_api(request)
        assert reply["janus"] == "error" and reply["error"]["code"] == 403, reply
    secret = secrets.read_secret(config.paths.secrets_dir, secrets.JANUS_API_SECRET)
    session = (await janus_api({"janus": "create", "apisecret": secret}))["data"]["id"]
    handle = (await janus_api({"janus": "attach", "plugin": "janus.plugin.videoroom", "session_id": session,
                               "apisecret": secret}))["data"]["id"]
    reply = await janus_api({"janus": "message", "session_id": session, "handle_id": handle, "apisecret": secret,
                              "body": {"request": "create", "room": 4242}})
    assert reply["plugindata"]["data"]["error_code"] == 429, reply  # admin_key missing
    reply = await janus_api({"janus": "message", "session_id": session, "handle_id": handle, "apisecret": secret,
                              "body": {"request": "rtp_forward", "room": 4242, "publisher_id": 1, "host": "192.0.2.1"}})
    assert "error_code" in reply["plugindata"]["data"], reply
    info = await janus_api({"janus": "info"})
    assert list(info["plugins"]) == ["janus.plugin.videoroom"]
    assert list(info["transports"]) == ["janus.transport.websockets"]
    assert info["events"] == {} and info["loggers"] == {} and info["event_handlers"] is False


def test_every_engine_file_is_private(config):
    for folder in (config.paths.janus_dir, config.paths.coturn_dir):
        for path in [folder, *folder.rglob("*")]:
            if path.is_symlink():
                assert Path(os.readlink(path)).name in ("libjanus_videoroom.so", "libjanus_websockets.so")
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), f"{path} has mode {mode:o}"


def _turn_client(config, secret: str, now_ms: int) -> TurnClient:
    [server] = ice_servers(config, secret, now_ms, lambda: "test")
    return TurnClient(config.live.turn_host, config.live.turn_port, server["username"], server["credential"])


def test_coturn_accepts_a_hub_credential_and_refuses_expired_or_forged_ones(config):
    secret = secrets.read_secret(config.paths.secrets_dir, secrets.TURN_SHARED_SECRET)
    now = int(time.time() * 1000)
    good = _turn_client(config, secret, now)
    try:
        assert good.allocate() == 0
        assert good.permit(interface_address(default_route_interface())) == 0  # where Janus's media is
        for private in ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254"):
            assert good.permit(private) == 403, private  # the relay is no way into the hub's network
    finally:
        good.close()
    lifetime_ms = config.live.turn_credential_lifetime_seconds * 1000
    for client in (_turn_client(config, secret, now - lifetime_ms - 60_000), _turn_client(config, "forged", now)):
        try:
            assert client.allocate() == 401
        finally:
            client.close()


def test_synapse_gives_a_signed_in_user_turn_credentials_that_coturn_accepts(world, config):
    token = login(world.stack.homeserver_url, *ALICE)
    status, data = matrix(world.stack.homeserver_url, "GET", "/_matrix/client/v3/voip/turnServer", token)
    assert status == 200, data
    port = config.live.turn_port
    assert data["uris"] == [f"turn:127.0.0.1:{port}?transport=udp", f"turn:127.0.0.1:{port}?transport=tcp"]
    assert 0 < int(data["username"].split(":")[0]) - time.time() <= config.live.turn_credential_lifetime_seconds
    client = TurnClient(config.live.turn_host, port, data["username"], data["password"])
    try:
        assert client.allocate() == 0
    finally:
        client.close()
    status, _ = matrix(world.stack.homeserver_url, "GET", "/_matrix/client/v3/voip/turnServer")
    assert status == 401


def test_crossline_status_reports_janus_and_coturn_health(config):
    assert janus_answers(config.paths.janus_socket)
    assert turn_answers(config.live.turn_host, config.live.turn_port)
    assert not janus_answers(config.paths.janus_dir / "nobody.sock", 1)


# --- the adapter against the stack's Janus, with Chromium as the browser --------------------------

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required", "--disable-features=WebRtcHideLocalIpsWithMdns",
]

# A peer connection sending a loud tone (and, when asked, a canvas's video), its offer complete
# with candidates (no trickle, as the hub's pages do).
PUBLISH_OFFER = """async ([withVideo, name]) => {
  const context = new AudioContext();
  const tone = context.createOscillator();
  const gain = context.createGain();
  gain.gain.value = 0.9;
  const sink = context.createMediaStreamDestination();
  tone.connect(gain).connect(sink);
  tone.start();
  await context.resume();
  const pc = new RTCPeerConnection({iceServers: []});
  window[name] = pc;
  window[name + 'Gain'] = gain;
  pc.addTransceiver(sink.stream.getAudioTracks()[0], {direction: 'sendonly'});
  if (withVideo) {
    const canvas = document.createElement('canvas');
    canvas.width = 160; canvas.height = 120;
    const draw = canvas.getContext('2d');
    setInterval(() => { draw.fillStyle = '#' + Math.floor(Math.random() * 4095).toString(16); draw.fillRect(0, 0, 160, 120); }, 50);
    pc.addTransceiver(canvas.captureStream(20).getVideoTracks()[0], {direction: 'sendonly'});
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(done => { if (pc.iceGatheringState === 'complete') done();
                              pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done()); });
  return pc.localDescription.sdp;
}"""

SUBSCRIBE_ANSWER = """async (offer) => {
  const pc = new RTCPeerConnection({iceServers: []});
  window.subscriber = pc;
  await pc.setRemoteDescription({type: 'offer', sdp: offer});
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise(done => { if (pc.iceGatheringState === 'complete') done();
                              pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done()); });
  return pc.localDescription.sdp;
}"""

RENEGOTIATE = """async (offer) => {
  await window.subscriber.setRemoteDescription({type: 'offer', sdp: offer});
  await window.subscriber.setLocalDescription(await window.subscriber.createAnswer());
  return window.subscriber.localDescription.sdp;
}"""

SENT_AUDIO = """async () => {
  const sent = {bytes: 0, target: 0};
  (await window.anna.getStats()).forEach(r => { if (r.type === 'outbound-rtp' && r.kind === 'audio') {
    sent.bytes += r.bytesSent; sent.target = r.targetBitrate || 0; } });
  return sent;
}"""

PACKETS_RECEIVED = """async () => {
  let packets = 0;
  (await window.subscriber.getStats()).forEach(r => { if (r.type === 'inbound-rtp' && r.kind === 'audio') packets += r.packetsReceived; });
  return packets;
}"""


@pytest.fixture
async def browser_page(stack):
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(bypass_csp=True)
        page = await context.new_page()
        await page.goto(stack.hub_url + "/_crossline/health")  # a page on loopback: a secure context
        yield page
        await browser.close()


@pytest.fixture
async def janus(config):
    adapter = Janus.from_config(config)
    yield adapter
    await adapter.close()


async def _until(events, predicate, what: str, timeout_s: float = 30) -> JanusEvent:
    async def first() -> JanusEvent:
        async for event in events:
            if predicate(event):
                return event
        raise AssertionError("events ended")
    try:
        return await asyncio.wait_for(first(), timeout_s)
    except TimeoutError as error:
        raise AssertionError(f"no {what} event") from error


async def _wait_for(page, script: str, predicate, what: str, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await page.evaluate(script)
        if predicate(value):
            return value
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_publisher_and_a_subscriber_through_the_real_videoroom(janus, browser_page, stack):
    events = janus.events()
    room = await janus.create_room("Consultation call", max_publishers=4)
    feed = 2**51 + 12345
    publisher = await janus.join_publisher(room, feed, "Anna")
    assert await _until(events, lambda e: e.feed_id == feed, "joined") == JanusEvent(room.room_id, feed, "joined")

    offer = await browser_page.evaluate(PUBLISH_OFFER, [True, "anna"])
    assert re.search(r"m=video [1-9]", offer)
    answer = await janus.publish(publisher, offer, audio_bitrate=16000, video=False, language="ru")
    assert "m=video 0 " in answer  # audio only unless video is asked for
    assert "maxaveragebitrate=16000" in answer and "b=AS:16" in answer
    candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
    media_address = interface_address(default_route_interface())
    assert candidates and all(f" {media_address} " in line for line in candidates), answer  # its one interface
    await browser_page.evaluate("async (sdp) => window.anna.setRemoteDescription({type: 'answer', sdp})", answer)
    await _until(events, lambda e: e.feed_id == feed and e.kind == "published", "published")
    await _until(events, lambda e: e.feed_id == feed and e.kind == "talking", "talking")
    sent = await _wait_for(browser_page, SENT_AUDIO, lambda stats: stats["bytes"] > 20_000, "audio sent")
    assert 0 < sent["target"] <= 16000, sent  # Chromium's Opus encoder follows the capped answer
    await browser_page.evaluate("() => { window.annaGain.gain.value = 0; }")
    await _until(events, lambda e: e.feed_id == feed and e.kind == "stopped-talking", "stopped-talking")

    handle, sub_offer = await janus.subscribe(room, None, [feed])
    assert "m=audio" in sub_offer and "a=candidate:" in sub_offer
    sub_answer = await browser_page.evaluate(SUBSCRIBE_ANSWER, sub_offer)
    await janus.start_subscription(handle, sub_answer)
    await _wait_for(browser_page, PACKETS_RECEIVED, lambda n: n > 50, "audio forwarded to the subscriber")
    # Janus's media sockets: on its one interface's address, in the configured port range.
    config = load_config(stack.data_dir)
    low, high = port_range(config.live.rtp_port_range)
    media = socket.inet_aton(media_address)[::-1].hex().upper()
    udp = [address for table, address, _ in _bound_addresses(_socket_inodes(_status(stack)["janus"]["pid"]))
           if table.startswith("udp")]
    assert udp and all(a.startswith(media + ":") and low <= int(a.rsplit(":", 1)[1], 16) <= high for a in udp), udp

    same_handle, again = await janus.subscribe(room, handle, [feed])  # the same feeds: a fresh offer
    assert same_handle == handle and again.count("m=audio") == 1
    await janus.start_subscription(handle, await browser_page.evaluate(RENEGOTIATE, again))

    second = feed + 7
    bea = await janus.join_publisher(room, second, "Bea")
    bea_answer = await janus.publish(bea, await browser_page.evaluate(PUBLISH_OFFER, [False, "bea"]),
                                     audio_bitrate=16000, video=False, language=None)
    await browser_page.evaluate("async (sdp) => window.bea.setRemoteDescription({type: 'answer', sdp})", bea_answer)
    await _until(events, lambda e: e.feed_id == second and e.kind == "published", "the second publisher")
    same_handle, both = await janus.subscribe(room, handle, [feed, second])  # one more feed: an updated offer
    assert same_handle == handle and both.count("m=audio") == 2
    assert set(janus.subscription_streams(handle).values()) == {feed, second}  # each feed's m-lines by mid
    await janus.start_subscription(handle, await browser_page.evaluate(RENEGOTIATE, both))
    _, one = await janus.subscribe(room, handle, [second])  # one fewer: her stream is ended in the offer
    anna_section = one.split("m=audio")[1]
    assert anna_section.startswith(" 0 ") or "a=inactive" in anna_section, one
    assert set(janus.subscription_streams(handle).values()) == {second}
    await janus.start_subscription(handle, await browser_page.evaluate(RENEGOTIATE, one))
    await janus.moderate(room, feed, muted=True)
    await janus.moderate(room, feed, muted=False)
    _, both = await janus.subscribe(room, handle, [feed, second])
    await janus.start_subscription(handle, await browser_page.evaluate(RENEGOTIATE, both))
    await janus.kick(room, feed)
    assert await _until(events, lambda e: e.feed_id == feed and e.kind == "left", "left") == JanusEvent(
        room.room_id, feed, "left")
    # Her feed left while subscribed: Janus dropped its streams itself, so asking for the others
    # (or for one who arrived since) still gets an offer rather than "no offer".
    _, after = await janus.subscribe(room, handle, [second, feed])
    assert set(janus.subscription_streams(handle).values()) == {second} and after.startswith("v=0")
    await janus.destroy_room(room)
    with pytest.raises(NotFound, match="no longer exists"):
        await janus.join_publisher(room, feed + 1, "Bea")
    # What the engines wrote holds no session description, secret, room pin or credential.
    janus_log, turn_log = config.paths.janus_log.read_text(), config.paths.coturn_log.read_text()
    for text in ("a=ice-pwd", "a=fingerprint", "v=0", room.secret, room.pin, media_address,
                 secrets.read_secret(config.paths.secrets_dir, secrets.JANUS_API_SECRET),
                 secrets.read_secret(config.paths.secrets_dir, secrets.JANUS_ADMIN_SECRET)):
        assert text not in janus_log, text
    assert secrets.read_secret(config.paths.secrets_dir, secrets.TURN_SHARED_SECRET) not in turn_log
    assert media_address not in turn_log


async def test_each_room_event_arrives_once(janus):
    room = await janus.create_room("Once", max_publishers=6)
    handles = [await janus.join_publisher(room, feed, f"P{feed}") for feed in (11, 12, 13)]
    await janus.detach(handles[1])
    await janus.destroy_room(room)
    seen: list[JanusEvent] = []
    events = janus.events()
    while len(seen) < 6:
        seen.append(await asyncio.wait_for(anext(events), 10))
    assert sorted((e.feed_id, e.kind) for e in seen) == [
        (11, "joined"), (11, "left"), (12, "joined"), (12, "left"), (13, "joined"), (13, "left")]
    # Janus's own notices (each handle is told of each arrival and departure) added nothing more.
    assert janus._events.empty()


async def test_janus_errors_become_clear_crossline_errors(janus):
    room = await janus.create_room("Errors", max_publishers=2)
    try:
        # A feed Janus does not have (or whose media is not up) is left out, not sent to fail the
        # whole subscription; with nothing left there is nothing to subscribe to.
        for feeds in ([999], []):
            with pytest.raises(Conflict, match="None of those participants is sending"):
                await janus.subscribe(room, None, feeds)
        handle = await janus.join_publisher(room, 21, "A")
        with pytest.raises(InvalidInput, match="session description"):
            await janus.publish(handle, "v=0\r\nnot an sdp\r\n", audio_bitrate=16000, video=False, language=None)
        with pytest.raises(NotFound):
            await janus.start_subscription(123456789, "v=0\r\n")
    finally:
        await janus.destroy_room(room)
