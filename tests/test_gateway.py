"""The client-API gateway against a fake Synapse (an aiohttp app that records what reaches it).

The real Synapse behind the gateway is in tests/test_e2e_gateway.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crossline.config import ConfigError, parse_config
from crossline.errors import HomeserverError
from crossline.gateway import filters
from crossline.gateway.addresses import DAY_MS, AddressPseudonyms
from crossline.gateway.filters import Route
from crossline.gateway.proxy import LOGIN_FLOOR_S, Gateway, Upstream, create_gateway
from crossline.gateway.tokens import synapse_token
from crossline.matrix.homeserver import Homeserver
from crossline.synapse.files import hardened_template
from crossline_policies.names import protected_names_document
from crossline_policies.protected_names_file import ProtectedNamesFile
from tests.fakes import FakeClock

KEY = "test registration token key"
ALICE, BELLA, STRANGER = "@alice:hub.test", "@bella:hub.test", "@stranger:hub.test"
TOKENS = {"alice-token": ALICE, "stranger-token": STRANGER, "bella-token": BELLA}
ROOM = "!room:hub.test"


class FakeSynapse:
    """What the gateway asks directly (admin API), and the client API it forwards to."""

    def __init__(self):
        self.seen: list[dict] = []
        self.answers: dict[str, tuple[int, object]] = {}
        self.usable_tokens: set[str] = set()
        self.rooms = {ROOM: {ALICE: "join", BELLA: "join"}}
        self.padding = 0  # characters added to a keys/query answer
        self.display_names: dict[str, str] = {ALICE: "Alice Staff"}
        self.uploads = {"alices-photo": ALICE, "bellas-photo": BELLA}  # media id -> who uploaded it
        self.whoami_down = False  # Synapse cannot say whose a token is (restarting, overloaded)

    async def display_name(self, user_id: str) -> str | None:
        return self.display_names.get(user_id)

    async def media_uploader(self, server_name: str, media_id: str) -> str | None:
        return self.uploads.get(media_id) if server_name == "hub.test" else None

    async def registration_token_usable(self, token: str, now_ms: int) -> bool:
        return token in self.usable_tokens

    async def memberships(self, user_id: str) -> dict[str, str]:
        return {room: members[user_id] for room, members in self.rooms.items() if user_id in members}

    async def room_memberships(self, room_id: str) -> dict[str, str]:
        return self.rooms[room_id]

    async def client_api(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append({"method": request.method, "path": request.raw_path, "headers": dict(request.headers),
                          "body": body})
        path = unquote(request.raw_path.partition("?")[0])
        try:
            return self._answer(path, body, request.headers)
        except (ValueError, TypeError, KeyError):
            return web.json_response({"errcode": "M_NOT_JSON"}, status=400)

    def _answer(self, path: str, body: bytes, headers) -> web.Response:
        if path == "/_matrix/client/v3/account/whoami" and self.whoami_down:
            return web.json_response({"errcode": "M_UNKNOWN"}, status=502)
        if path == "/_matrix/client/v3/account/whoami":
            user_id = TOKENS.get(headers.get("Authorization", "").removeprefix("Bearer "))
            return web.json_response({"user_id": user_id} if user_id else {"errcode": "M_UNKNOWN_TOKEN"},
                                     status=200 if user_id else 401)
        if path == "/_matrix/client/v3/keys/query":
            asked = json.loads(body)["device_keys"]
            return web.json_response({"padding": "x" * self.padding, "device_keys": {u: {"DEVICE": {
                "device_id": "DEVICE", "unsigned": {"device_display_name": f"{u[1:].split(':')[0].title()}'s phone"}}}
                for u in asked},
                                      "master_keys": {u: {"keys": {}} for u in [*asked, STRANGER]}})
        if path == "/_matrix/client/v3/keys/claim":
            asked = json.loads(body)["one_time_keys"]
            return web.json_response({"one_time_keys": {u: {"DEVICE": {"signed_curve25519:A": {}}} for u in asked}})
        if path == "/_matrix/media/v3/upload":
            return web.json_response({"length": len(body)}, headers={"Connection": "keep-alive", "X-Kept": "yes"})
        status, answer = self.answers.get(path, (200, {}))
        return web.json_response(answer, status=status)


@pytest.fixture
async def synapse():
    fake = FakeSynapse()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", fake.client_api)
    server = TestServer(app)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


def names_file(tmp_path) -> ProtectedNamesFile:
    """The hub's protected names: Alice is staff."""
    path = tmp_path / "protected-names.json"
    path.write_text(json.dumps(protected_names_document([], [ALICE], [ALICE])))
    return ProtectedNamesFile(path)


@pytest.fixture
async def gateway(synapse, aiohttp_client, tmp_path):
    session = aiohttp.ClientSession(auto_decompress=False)
    reports: list[tuple[str, str, str]] = []
    sleeps: list[float] = []

    async def take_report(reporter: str, room_id: str, reason: str) -> None:
        reports.append((reporter, room_id, reason))

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    proxy = Gateway(Upstream(synapse.url, session), synapse, KEY, FakeClock(1_000 * DAY_MS), take_report,
                    sleep=sleep, monotonic=lambda: 100.0, protected_names=names_file(tmp_path))
    client = await aiohttp_client(create_gateway(proxy))
    client.reports, client.sleeps = reports, sleeps
    yield client
    await session.close()


@pytest.fixture
async def named_gateway(synapse, aiohttp_client, tmp_path):
    """A gateway that checks display names against the hub's protected-names file (Alice is staff)."""
    session = aiohttp.ClientSession(auto_decompress=False)

    async def take_report(reporter: str, room_id: str, reason: str) -> None:
        pass

    proxy = Gateway(Upstream(synapse.url, session), synapse, KEY, FakeClock(1_000 * DAY_MS), take_report,
                    protected_names=names_file(tmp_path))
    yield await aiohttp_client(create_gateway(proxy))
    await session.close()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_bodies_pass_both_ways_and_synapse_never_sees_the_client_address(gateway, synapse):
    upload = bytes(range(256)) * 12_000  # 3 MB, streamed
    response = await gateway.post("/_matrix/media/v3/upload?filename=a.png", data=upload,
                                  headers={"X-Forwarded-For": "203.0.113.9", "Content-Type": "image/png"})
    assert response.status == 200 and await response.json() == {"length": len(upload)}
    assert response.headers["X-Kept"] == "yes"
    seen = synapse.seen[-1]
    assert seen["body"] == upload and seen["path"] == "/_matrix/media/v3/upload?filename=a.png"
    forwarded = seen["headers"]["X-Forwarded-For"]
    assert "203.0.113.9" not in forwarded and "127.0.0.1" not in forwarded
    assert ipaddress.IPv6Address(forwarded) in ipaddress.IPv6Network("fd00::/8")
    await gateway.get("/_matrix/client/versions")
    assert synapse.seen[-1]["headers"]["X-Forwarded-For"] == forwarded, "one client, one pseudonym for the day"
    async def chunks():
        for _ in range(3):
            yield b"x" * 100_000

    response = await gateway.post("/_matrix/media/v3/upload", data=chunks())  # chunked, no Content-Length
    assert await response.json() == {"length": 300_000}
    head = await gateway.head("/_matrix/client/versions")
    assert head.status == 200 and await head.read() == b""
    # Signed in, each account (each access token) from that address has a pseudonym of its own.
    signed_in = set()
    for token in ("alice-token", "stranger-token", "alice-token"):
        await gateway.get("/_matrix/client/v3/account/whoami", headers=bearer(token))
        signed_in.add(synapse.seen[-1]["headers"]["X-Forwarded-For"])
    assert len(signed_in) == 2 and forwarded not in signed_in


async def test_a_trusted_proxy_forwards_the_address_it_saw(aiohttp_client, synapse, tmp_path):
    session = aiohttp.ClientSession()

    async def nothing(*_):
        return None

    clock = FakeClock(0)
    seen = []
    for trusted in ((), ("127.0.0.0/8",)):
        proxy = Gateway(Upstream(synapse.url, session), synapse, KEY, clock, nothing, trusted_proxies=trusted,
                        addresses=AddressPseudonyms(clock, random_bytes=lambda n: b"k" * n),
                        protected_names=names_file(tmp_path))
        client = await aiohttp_client(create_gateway(proxy))
        await client.get("/_matrix/client/versions", headers={"X-Forwarded-For": "203.0.113.9"})
        seen.append(synapse.seen[-1]["headers"]["X-Forwarded-For"])
    pseudonyms = AddressPseudonyms(clock, random_bytes=lambda n: b"k" * n)
    assert seen == [pseudonyms.pseudonym("127.0.0.1"), pseudonyms.pseudonym("203.0.113.9")]
    await session.close()


def test_address_pseudonyms_are_stable_for_a_day_then_change():
    clock = FakeClock(10 * DAY_MS)
    pseudonyms = AddressPseudonyms(clock, random_bytes=lambda n: b"k" * n)
    first = pseudonyms.pseudonym("198.51.100.7")
    assert pseudonyms.pseudonym("198.51.100.7") == first != pseudonyms.pseudonym("198.51.100.8")
    clock.now += DAY_MS
    assert pseudonyms.pseudonym("198.51.100.7") != first
    assert AddressPseudonyms(FakeClock(10 * DAY_MS)).pseudonym("198.51.100.7") != first, "the key is random"


async def test_register_available_never_says_a_name_is_taken(gateway, synapse):
    synapse.answers["/_matrix/client/v3/register/available"] = (400, {"errcode": "M_USER_IN_USE", "error": "taken"})
    response = await gateway.get("/_matrix/client/v3/register/available?username=alice")
    assert response.status == 200 and await response.json() == {"available": True}
    for path in ("/_matrix/client/r0/register/available", "/_matrix/client/unstable/register/available"):
        assert (await gateway.get(f"{path}?username=alice")).status == 200
    assert (await gateway.head("/_matrix/client/v3/register/available?username=alice")).status == 200
    synapse.answers["/_matrix/client/v3/register/available"] = (400, {"errcode": "M_INVALID_USERNAME", "error": "x"})
    response = await gateway.get("/_matrix/client/v3/register/available?username=Al%20ice")
    assert response.status == 400 and (await response.json())["errcode"] == "M_INVALID_USERNAME"


async def test_a_user_name_reaches_synapse_only_with_a_usable_invitation(gateway, synapse):
    path = "/_matrix/client/v3/register"
    body = {"username": "alice", "password": "a long password"}
    synapse.answers[path] = (401, {"session": "S1", "completed": []})
    await gateway.post(path, json=body)
    assert "username" not in json.loads(synapse.seen[-1]["body"])
    await gateway.post(path, json={**body, "auth": {"type": "m.login.registration_token", "token": "guess",
                                                    "session": "S1"}})
    sent = json.loads(synapse.seen[-1]["body"])
    assert "username" not in sent and sent["auth"]["token"] == synapse_token(KEY, "guess")

    synapse.usable_tokens.add(synapse_token(KEY, "CODE"))
    synapse.answers[path] = (401, {"session": "S2", "completed": ["m.login.registration_token"]})
    await gateway.post(path, json={**body, "auth": {"type": "m.login.registration_token", "token": "CODE",
                                                    "session": "S2"}})
    sent = json.loads(synapse.seen[-1]["body"])
    assert sent["username"] == "alice" and sent["auth"]["token"] == synapse_token(KEY, "CODE")
    # The next stage of the same session carries no code, but the session has shown one.
    await gateway.post(path, json={**body, "auth": {"type": "m.login.dummy", "session": "S2"}})
    assert json.loads(synapse.seen[-1]["body"])["username"] == "alice"
    await gateway.post(path, json={**body, "auth": {"type": "m.login.dummy", "session": "S1"}})
    assert "username" not in json.loads(synapse.seen[-1]["body"])


async def test_the_validity_check_sees_the_derived_token(gateway, synapse):
    await gateway.get("/_matrix/client/v1/register/m.login.registration_token/validity?token=CODE")
    assert synapse.seen[-1]["path"].endswith(f"validity?token={synapse_token(KEY, 'CODE')}")


async def test_keys_of_accounts_sharing_no_room_are_neither_asked_nor_shown(gateway, synapse):
    body = {"device_keys": {ALICE: [], BELLA: [], STRANGER: []}}
    answer = await (await gateway.post("/_matrix/client/v3/keys/query", json=body, headers=bearer("alice-token"))).json()
    assert set(json.loads(synapse.seen[-1]["body"])["device_keys"]) == {ALICE, BELLA}
    assert set(answer["device_keys"]) == {ALICE, BELLA} and set(answer["master_keys"]) == {ALICE, BELLA}

    answer = await (await gateway.post("/_matrix/client/r0/keys/query", json=body, headers=bearer("stranger-token"))).json()
    assert set(json.loads(synapse.seen[-1]["body"])["device_keys"]) == {STRANGER}
    whoami, query = synapse.seen[-2:]
    assert whoami["path"] == "/_matrix/client/v3/account/whoami", "the gateway asks whose token it is as the client"
    assert whoami["headers"]["X-Forwarded-For"] == query["headers"]["X-Forwarded-For"]
    claim = {"one_time_keys": {ALICE: {"DEVICE": "signed_curve25519"}}}
    answer = await (await gateway.post("/_matrix/client/v3/keys/claim", json=claim, headers=bearer("stranger-token"))).json()
    assert json.loads(synapse.seen[-1]["body"])["one_time_keys"] == {}, "no one-time key of hers is spent"
    # Without a valid token nothing is asked for at all (Synapse refuses the token itself).
    await gateway.post("/_matrix/client/v3/keys/query", json=body, headers=bearer("forged"))
    assert json.loads(synapse.seen[-1]["body"])["device_keys"] == {}


async def test_to_device_messages_reach_only_accounts_sharing_a_room(gateway, synapse):
    """A stranger can neither probe a member's devices nor send them fake verification requests."""
    body = {"messages": {ALICE: {"*": {"x": 1}}, BELLA: {"DEVICE": {"x": 2}}}}
    path = "/_matrix/client/v3/sendToDevice/m.key.verification.request/txn1"
    assert (await gateway.put(path, json=body, headers=bearer("stranger-token"))).status == 200
    assert json.loads(synapse.seen[-1]["body"]) == {"messages": {}}
    await gateway.put(path.replace("v3", "unstable"), json=body, headers=bearer("alice-token"))
    assert json.loads(synapse.seen[-1]["body"]) == body  # Alice and Bella share a room


@pytest.mark.parametrize("path", ["/_synapse/admin/v1/register", "/_synapse/admin/v2/users/@alice:hub.test",
                                  "/_synapse//admin/v1/register", "/_synapse/%61dmin/v1/register",
                                  "/%5Fsynapse/admin/v1/server_version"])
async def test_synapses_admin_api_is_not_reachable_from_outside(gateway, synapse, path):
    for method in ("GET", "POST", "HEAD"):
        response = await gateway.request(method, path, headers=bearer("alice-token"))
        assert response.status == 404
    assert synapse.seen == []


async def test_inviting_someone_does_not_show_her_devices(gateway, synapse):
    """Any member can make a room and invite anyone: an invitation alone must not make the inviter
    see (or spend the one-time keys of) the invitee's devices, nor let her send them to-device."""
    synapse.rooms["!trap:hub.test"] = {STRANGER: "join", BELLA: "invite"}
    await gateway.post("/_matrix/client/v3/keys/query", json={"device_keys": {BELLA: []}},
                       headers=bearer("stranger-token"))
    assert json.loads(synapse.seen[-1]["body"])["device_keys"] == {}
    await gateway.post("/_matrix/client/v3/keys/claim", json={"one_time_keys": {BELLA: {"D": "signed_curve25519"}}},
                       headers=bearer("stranger-token"))
    assert json.loads(synapse.seen[-1]["body"])["one_time_keys"] == {}
    await gateway.put("/_matrix/client/v3/sendToDevice/m.key.verification.request/t2",
                      json={"messages": {BELLA: {"*": {}}}}, headers=bearer("stranger-token"))
    assert json.loads(synapse.seen[-1]["body"]) == {"messages": {}}
    # Nor does it show the invitee the room's members before she has agreed to join.
    await gateway.post("/_matrix/client/v3/keys/query", json={"device_keys": {STRANGER: []}},
                       headers=bearer("bella-token"))
    assert json.loads(synapse.seen[-1]["body"])["device_keys"] == {}


async def test_other_peoples_device_names_are_left_out(gateway, synapse):
    answer = await (await gateway.post("/_matrix/client/v3/keys/query", json={"device_keys": {ALICE: [], BELLA: []}},
                                       headers=bearer("alice-token"))).json()
    assert answer["device_keys"][ALICE]["DEVICE"]["unsigned"] == {"device_display_name": "Alice's phone"}
    assert answer["device_keys"][BELLA]["DEVICE"]["unsigned"] == {}
    assert answer["device_keys"][BELLA]["DEVICE"]["device_id"] == "DEVICE"


async def test_a_new_room_member_is_seen_at_once(gateway, synapse):
    body = {"device_keys": {ALICE: [], "@new:hub.test": []}}
    await gateway.post("/_matrix/client/v3/keys/query", json=body, headers=bearer("alice-token"))
    assert set(json.loads(synapse.seen[-1]["body"])["device_keys"]) == {ALICE}
    synapse.rooms[ROOM]["@new:hub.test"] = "join"
    await gateway.post("/_matrix/client/v3/keys/query", json=body, headers=bearer("alice-token"))
    assert set(json.loads(synapse.seen[-1]["body"])["device_keys"]) == {ALICE, "@new:hub.test"}


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"device_keys": [1]}'])
async def test_json_of_the_wrong_shape_reaches_synapse_unchanged_for_it_to_answer(gateway, synapse, body):
    """JSON that is not what Synapse expects is Synapse's to refuse (it says what is wrong); what is
    not JSON at all is refused by the gateway itself (see the test below)."""
    synapse.answers["/_matrix/client/v3/register"] = (400, {"errcode": "M_BAD_JSON"})
    for path in ("/_matrix/client/v3/register", "/_matrix/client/v3/keys/query", "/_matrix/client/v3/login"):
        response = await gateway.post(path, data=body, headers=bearer("alice-token") if "keys" in path else {})
        assert response.status < 500
    assert synapse.seen[0]["body"] == body


@pytest.mark.parametrize("target", ["http://x:/_matrix/client/versions", "http://evil.example/_matrix/client/versions"])
async def test_a_request_target_that_is_not_a_path_is_a_clear_4xx(gateway, target):
    reader, writer = await asyncio.open_connection(gateway.server.host, gateway.server.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = (await reader.readline()).decode()
    writer.close()
    assert status_line.split()[1] == "400", status_line


async def test_a_refused_login_is_answered_no_sooner_than_the_floor(gateway, synapse):
    synapse.answers["/_matrix/client/v3/login"] = (403, {"errcode": "M_FORBIDDEN"})
    response = await gateway.post("/_matrix/client/v3/login", json={"type": "m.login.password"})
    assert response.status == 403 and gateway.sleeps == [LOGIN_FLOOR_S]
    synapse.answers["/_matrix/client/v3/login"] = (200, {"access_token": "t"})
    await gateway.post("/_matrix/client/v3/login", json={"type": "m.login.password"})
    assert gateway.sleeps == [LOGIN_FLOOR_S], "a successful login is not delayed"


async def test_nobody_can_lock_an_account_out_of_element(aiohttp_client, synapse, tmp_path):
    """Wrong passwords are limited per account and address together, before Synapse (whose own
    limit is per account alone and is set out of reach in the hardened config)."""
    session = aiohttp.ClientSession()

    async def nothing(*_):
        return None

    async def no_wait(_):
        return None

    proxy = Gateway(Upstream(synapse.url, session), synapse, KEY, FakeClock(0), nothing,
                    trusted_proxies=("127.0.0.0/8",), sleep=no_wait, protected_names=names_file(tmp_path))
    client = await aiohttp_client(create_gateway(proxy))
    synapse.answers["/_matrix/client/v3/login"] = (403, {"errcode": "M_FORBIDDEN"})

    async def login(user: str, address: str) -> int:
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": "x"}
        return (await client.post("/_matrix/client/v3/login", json=body, headers={"X-Forwarded-For": address})).status

    attacker, alice_phone = "203.0.113.9", "198.51.100.7"
    assert [await login("alice", attacker) for _ in range(10)] == [403] * 10
    reached = len(synapse.seen)
    assert await login("@Alice:hub.test", attacker) == 429  # the same account however it is spelled
    assert len(synapse.seen) == reached, "a limited attempt never reaches Synapse"
    synapse.answers["/_matrix/client/v3/login"] = (200, {"access_token": "t"})
    assert await login("alice", alice_phone) == 200  # she is not locked out
    await session.close()


def test_synapses_own_failed_login_limit_cannot_lock_anyone_out():
    rc_login = hardened_template()["rc_login"]
    assert rc_login["failed_attempts"]["burst_count"] >= 10_000


@pytest.mark.parametrize("path", ["/_matrix/client/v3/rooms/%21room%3Ahub.test/report",
                                  "/_matrix/client/unstable/org.matrix.msc4151/rooms/%21room%3Ahub.test/report"])
async def test_a_room_report_synapse_accepted_reaches_the_queue(gateway, synapse, path):
    response = await gateway.post(path, json={"reason": "they threaten me"}, headers=bearer("alice-token"))
    assert response.status == 200
    assert [unquote(seen["path"]) for seen in synapse.seen] == [f"/_matrix/client/v3/rooms/{ROOM}/report",
                                                                "/_matrix/client/v3/account/whoami"]
    assert gateway.reports == [(ALICE, ROOM, "they threaten me")]


async def test_other_reports_and_refused_ones_are_left_to_synapse(gateway, synapse):
    await gateway.post("/_matrix/client/v3/rooms/%21room%3Ahub.test/report/%24event", json={"reason": "x"},
                       headers=bearer("alice-token"))
    synapse.answers["/_matrix/client/v3/rooms/!gone:hub.test/report"] = (404, {"errcode": "M_NOT_FOUND"})
    await gateway.post("/_matrix/client/v3/rooms/%21gone%3Ahub.test/report", json={"reason": "x"},
                       headers=bearer("alice-token"))
    assert gateway.reports == []


async def test_synapse_down_is_a_clear_matrix_error(aiohttp_client, synapse, tmp_path):
    session = aiohttp.ClientSession()

    async def nothing(*_):
        return None

    proxy = Gateway(Upstream("http://127.0.0.1:9", session), synapse, KEY, FakeClock(0), nothing,
                    protected_names=names_file(tmp_path))
    client = await aiohttp_client(create_gateway(proxy))
    response = await client.get("/_matrix/client/versions")
    assert response.status == 502 and (await response.json())["errcode"] == "M_UNKNOWN"
    await session.close()


def test_a_data_directory_too_long_for_synapses_socket_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="too long for Synapse's socket"):
        parse_config({}, tmp_path / ("d" * 90))


async def raw_request(gateway, head: bytes, body: bytes = b"") -> bytes:
    """What a client that writes its own request line gets back (aiohttp's client would drop a '#')."""
    reader, writer = await asyncio.open_connection(gateway.server.host, gateway.server.port)
    writer.write(head + b"\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.parametrize("path", [b"/_matrix/client/v3/keys/query#", b"/_matrix/client/v3/login#x",
                                  b"/_matrix/client/v3/register#", b"/_matrix/client/v3/rooms/%21r%3Ahub.test/report#"])
async def test_a_fragment_never_carries_a_request_past_the_filters(gateway, synapse, path):
    answer = await raw_request(gateway, b"POST " + path + b" HTTP/1.1", b'{"device_keys": {}}')
    assert answer.startswith(b"HTTP/1.1 400") and synapse.seen == []


@pytest.mark.parametrize("path", ["/_matrix/client/v3/auth/m.login.registration_token/fallback/web?session=S",
                                  "/_matrix/client/r0/auth/m.login.registration_token/fallback/web",
                                  "/_matrix/client/v3/auth/m.login.registration%5Ftoken/fallback/web"])
async def test_the_registration_token_web_page_is_not_reachable(gateway, synapse, path):
    """It takes the token as typed: Synapse's own token, copied from its database, would pass."""
    for method in ("GET", "POST"):
        assert (await gateway.request(method, path, data={"token": "T"})).status == 404
    assert synapse.seen == []


async def test_compressed_request_bodies_are_refused(gateway, synapse):
    response = await gateway.post("/_matrix/client/v3/keys/changes", data=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    assert response.status == 415 and synapse.seen == []


async def test_a_large_answer_is_read_whole(gateway, synapse):
    """aiohttp's read(n) returns what is buffered: answers over 64 KiB were cut and sent as 200."""
    synapse.padding = 3_000_000
    response = await gateway.post("/_matrix/client/v3/keys/query", json={"device_keys": {ALICE: [], BELLA: []}},
                                  headers=bearer("alice-token"))
    answer = await response.json()
    assert response.status == 200 and len(answer["padding"]) == 3_000_000 and set(answer["device_keys"]) == {ALICE, BELLA}


@pytest.mark.parametrize("route", ["/_matrix/client/v3/login", "/_matrix/client/v3/register",
                                   "/_matrix/client/v3/keys/query"])
@pytest.mark.parametrize("body", [b'{"password": "secret-PW", "identifier": {},}', b"[" * 50_000 + b"]" * 50_000,
                                  b"{not json", b"\xff\xfe"])
async def test_a_body_that_is_not_json_never_reaches_synapse_on_the_routes_the_gateway_reads(gateway, synapse, route,
                                                                                             body):
    """Synapse logs an unparsable body whole (a password, an invitation code); deep nesting
    made the gateway itself answer 500."""
    response = await gateway.post(route, data=body, headers={"Content-Type": "application/json", **bearer("alice-token")})
    assert response.status == 400 and (await response.json())["errcode"] == "M_NOT_JSON"
    assert synapse.seen == []


async def test_synapse_never_sees_the_clients_user_agent(gateway, synapse):
    await gateway.get("/_matrix/client/versions", headers={"User-Agent": "Element/1.6.12 (Xiaomi M2101K6G; Android 12)"})
    assert synapse.seen[-1]["headers"]["User-Agent"] == "Matrix client via Crossline"


def password_stage(user: str, password: str = "a guess") -> dict:
    return {"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                     "password": password}}


@pytest.mark.parametrize("method, path", [("POST", "/_matrix/client/v3/account/password"),
                                          ("POST", "/_matrix/client/v3/register"),
                                          ("POST", "/_matrix/client/r0/delete_devices"),
                                          ("DELETE", "/_matrix/client/v3/devices/ABCDEF"),
                                          ("POST", "/_matrix/client/v3/account/deactivate"),
                                          ("POST", "/_matrix/client/v3/keys/device_signing/upload")])
async def test_a_password_stage_is_no_way_to_guess_someone_elses_password(gateway, synapse, method, path):
    """Synapse checks the password of whatever account a user-interactive auth stage names and says
    whether it was right: without a session, or for another account, it never reaches Synapse."""
    for headers, user in (({}, "alice"), (bearer("stranger-token"), "alice"), (bearer("stranger-token"), "")):
        response = await gateway.request(method, path, json=password_stage(user), headers=headers)
        assert response.status == 403 and (await response.json())["errcode"] == "M_FORBIDDEN"
    assert [seen["path"] for seen in synapse.seen if "whoami" not in seen["path"]] == []
    assert gateway.sleeps and all(s == LOGIN_FLOOR_S for s in gateway.sleeps), "refusals are padded like logins"


async def test_her_own_password_stage_works_and_is_limited_like_a_login(gateway, synapse):
    # Her own password stage works for what she needs (deleting a device, cross-signing), unpadded.
    synapse.answers["/_matrix/client/v3/keys/device_signing/upload"] = (200, {})
    response = await gateway.post("/_matrix/client/v3/keys/device_signing/upload",
                                  json=password_stage("alice", "her password"), headers=bearer("alice-token"))
    assert response.status == 200 and gateway.sleeps == []
    # Wrong passwords count as failed logins do: ten, then she waits (an attacker would too).
    path = "/_matrix/client/v3/delete_devices"
    synapse.answers[path] = (401, {"errcode": "M_FORBIDDEN", "flows": [{"stages": ["m.login.password"]}]})
    statuses = [(await gateway.post(path, json=password_stage("@alice:hub.test"), headers=bearer("alice-token"))).status
                for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    assert len([s for s in synapse.seen if s["path"] == path]) == 10
    assert gateway.sleeps == [LOGIN_FLOOR_S] * 11


DISPLAY_NAME = "/_matrix/client/v3/profile/%40bella%3Ahub.test/displayname"


def display_name_changes(synapse) -> list[bytes]:
    return [seen["body"] for seen in synapse.seen if seen["path"].endswith("/displayname")]


async def test_a_display_name_is_checked_before_synapse_stores_it(named_gateway, synapse):
    """Her own new name passes; staff's name or a role word never reaches Synapse."""
    for name, status in (("Bella Rusu", 200), ("Alice Staff", 403), ("Moderator", 403)):
        response = await named_gateway.put(DISPLAY_NAME, json={"displayname": name}, headers=bearer("bella-token"))
        assert response.status == status, name
    assert display_name_changes(synapse) == [b'{"displayname": "Bella Rusu"}']


async def test_a_display_name_longer_than_synapse_allows_is_refused_before_it_is_read(named_gateway, synapse):
    """Each character costs the name check time on the gateway's event loop: past Synapse's own limit
    (256) a name is refused with what to do, unchecked and not forwarded."""
    name = "Ana " * 65  # 260 characters of an ordinary name
    response = await named_gateway.put(DISPLAY_NAME, json={"displayname": name}, headers=bearer("bella-token"))
    assert response.status == 403 and "at most 256 characters" in (await response.json())["error"]
    assert display_name_changes(synapse) == []


@pytest.mark.parametrize("method, path", [
    ("PUT", "/_matrix/client/v3/profile/%40bella%3Ahub.test/m.tz"),
    ("PUT", "/_matrix/client/v3/profile/@bella:hub.test/org.example.status"),
    ("PUT", "/_matrix/client/unstable/uk.tcpip.msc4133/profile/%40bella%3Ahub.test/us.cloke.msc4175.tz"),
    ("PUT", "/_matrix/client/v3/profile/%40bella%3Ahub.test/%6D.tz"),
    ("DELETE", "/_matrix/client/v3/profile/%40bella%3Ahub.test/m.tz"),
])
async def test_custom_profile_fields_are_no_channel_for_free_text(named_gateway, synapse, method, path):
    """Room peers read every profile field, and Element shows m.tz: only the (checked) display name is set."""
    response = await named_gateway.request(method, path, json={"m.tz": "We know who you talked to"},
                                           headers=bearer("bella-token"))
    assert response.status == 403 and "display name only" in (await response.json())["error"]
    assert [seen for seen in synapse.seen if "/profile/" in seen["path"]] == []
    response = await named_gateway.get(path, headers=bearer("bella-token"))
    assert response.status == 200, "reading a profile still works"


async def test_a_display_name_is_never_forwarded_unchecked_when_synapse_cannot_say_whose_it_is(named_gateway, synapse):
    """If whoami fails (Synapse restarting, overloaded), the name is not forwarded unchecked: she is told to
    try again. Once Synapse answers, her own name passes."""
    synapse.whoami_down = True
    for name in ("Moderator", "Bella Rusu"):
        response = await named_gateway.put(DISPLAY_NAME, json={"displayname": name}, headers=bearer("bella-token"))
        assert response.status == 503 and "Try again" in (await response.json())["error"]
    response = await named_gateway.put(DISPLAY_NAME, json={"displayname": "Moderator"}, headers=bearer("no-such-token"))
    assert response.status == 503
    assert display_name_changes(synapse) == []
    synapse.whoami_down = False
    response = await named_gateway.put(DISPLAY_NAME, json={"displayname": "Bella Rusu"}, headers=bearer("bella-token"))
    assert response.status == 200



MEDIA_PATHS = ["/_matrix/client/v1/media/download/hub.test/{id}",
               "/_matrix/client/v1/media/download/hub.test/{id}/photo.jpg",
               "/_matrix/client/v1/media/thumbnail/hub.test/{id}",
               "/_matrix/client/unstable/org.matrix.msc3916/media/download/hub.test/{id}",
               "/_matrix/media/v3/download/hub.test/{id}",
               "/_matrix/media/r0/thumbnail/hub%2Etest/{id}",
               "/_matrix/media/v1/download//hub.test/{id}"]


@pytest.mark.parametrize("path", MEDIA_PATHS)
async def test_a_file_reaches_only_its_uploader_and_those_who_share_a_room_with_her(named_gateway, synapse, path):
    """A member's clear upload (a picture sent outside encrypted rooms) is no file for strangers or other
    lines: they are answered as for a file that does not exist, and Synapse is never asked for it."""
    for method in ("GET", "HEAD"):
        response = await named_gateway.request(method, path.format(id="bellas-photo"), headers=bearer("stranger-token"))
        assert response.status == 404
    assert [seen for seen in synapse.seen if "photo" in seen["path"]] == []
    for token, media_id in (("alice-token", "bellas-photo"), ("bella-token", "bellas-photo"),
                            ("bella-token", "alices-photo"), ("stranger-token", "alices-photo"),  # a hub account's
                            ("stranger-token", "no-such-file")):
        response = await named_gateway.get(path.format(id=media_id), headers=bearer(token))
        assert response.status == 200, (token, media_id)
    response = await named_gateway.get(path.format(id="bellas-photo"))
    assert response.status == 401


def test_media_paths_are_recognised_only_for_downloads():
    assert filters.classify("GET", "/_matrix/client/v1/media/config").route is Route.PASS
    assert filters.classify("POST", "/_matrix/media/v3/upload").route is Route.PASS
    assert filters.classify("GET", "/_matrix/client/v1/media/preview_url").route is Route.PASS
    assert filters.classify("GET", "/_matrix/client/v1/media/download/hub.test").route is Route.PASS
    assert filters.classify("GET", "/_matrix/client/v1/media/download/hub.test/x").media == ("hub.test", "x")


async def test_the_uploader_is_read_from_synapses_media_information(aiohttp_client):
    """The admin API's answer as Synapse 1.163 gives it ({"media_info": {...}}); a form not understood
    never lets a file through."""
    answers = {"mine": (200, {"media_info": {"user_id": ALICE, "media_id": "mine"}}),
               "remote": (200, {"media_info": {"user_id": None}}), "odd": (200, {"user_id": ALICE})}

    async def media_info(request: web.Request) -> web.Response:
        status, body = answers.get(request.match_info["id"], (404, {"errcode": "M_NOT_FOUND"}))
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/_synapse/admin/v1/media/{server}/{id}", media_info)
    client = await aiohttp_client(app)
    homeserver = Homeserver(str(client.make_url("")), client.session, admin_token="admin")
    assert await homeserver.media_uploader("hub.test", "mine") == ALICE
    assert await homeserver.media_uploader("hub.test", "remote") is None
    assert await homeserver.media_uploader("hub.test", "gone") is None
    with pytest.raises(HomeserverError):
        await homeserver.media_uploader("hub.test", "odd")
