"""Bad input never becomes a 5xx and never hurts anyone else's request (issue 10, item 15).

Every route comes from `app.router`, every form field name from the templates and handlers, so a
new route or field is covered without editing this file. Each route is tried anonymously and with
each role's session, with the inputs that once gave 500: invalid UTF-8, multipart without a
boundary, ids past 64 bits or of thousands of digits, JSON true and 5,000-digit numbers, bodies
past the limit without a Content-Length. Then hypothesis mixes them at random (fixed examples,
derandomized, so CI is reproducible). Finally, good votes sent at the same moment as all that
must all be recorded.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import re
import secrets
from hashlib import sha256
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossline.clock import token_hash
from crossline.domain.consultations import Phase
from crossline.services import consultations as service
from crossline.storage import consultations as store
from crossline.storage import lines, members, sessions
from crossline.web.app import create_app
from crossline.web.keys import HUB, WEB_SECRET
from crossline.web.ratelimit import LIMITS
from crossline.web.security import CSRF_COOKIE, MAX_FORM_BYTES, SESSION_COOKIE
from tests.fakes import FakeHomeserver

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("participant", "facilitator", "moderator", "negotiator", "admin")
BAD_NUMBERS = ("99999999999999999999", "9" * 4400, "-99999999999999999999", "0" * 30 + "1", "true", "1e999", "")
BAD_PATH_VALUES = ("99999999999999999999", "9" * 4400, "0" * 30 + "1", "%FF%FE", "x" * 300, "٣")


def field_names() -> list[str]:
    """Every form field a page or handler uses."""
    names = set()
    for template in (ROOT / "web" / "crossline_web" / "templates").glob("*.html"):
        names |= set(re.findall(r'name="([a-z_]+)"', template.read_text()))
    for module in (ROOT / "server" / "crossline" / "web").glob("*.py"):
        names |= set(re.findall(r'form\.get(?:all)?\("([a-z_]+)"', module.read_text()))
    return sorted(names - {"viewport", "csrf_token"})


async def _no_wait(seconds: float) -> None:
    pass


def _template(resource) -> str:
    info = resource.get_info()
    return info.get("formatter") or info.get("path") or info["prefix"] + "/{filename}"


class Fuzzer:
    """A running hub (real SQLite, fake homeserver and clock) and a session for each role."""

    def __init__(self, hub):
        self.hub = hub
        with hub.engine.begin() as conn:
            left, right = lines.get_line(conn, 1).sides
        consultation = service.create(hub, hub.facilitator, 1, "Fuzz", [{"en": "Q"}], [left.id, right.id], True)
        service.change_phase(hub, hub.facilitator, consultation.id, Phase.COLLECTING)
        for text in ("one", "two", "three"):
            service.submit_statement(hub, hub.facilitator, consultation.id, consultation.questions[0].id, text, "seed")
        service.change_phase(hub, hub.facilitator, consultation.id, Phase.VOTING)
        self.consultation_id = consultation.id
        self.cookies: dict[str | None, str] = {None: ""}
        self.voters: list[str] = []
        now = hub.clock.now_ms()
        with hub.engine.begin() as conn:
            for role in ROLES:
                member_id = members.add_member(conn, None, 1, left.id if role == "participant" else None,
                                               frozenset({role}), None, 0, web_handle=f"fuzz-{role}")
                self.cookies[role] = self._session(conn, member_id, now)
            for i in range(30):
                member_id = members.add_member(conn, None, 1, (left, right)[i % 2].id, frozenset({"participant"}),
                                               None, 0, web_handle=f"voter{i}")
                self.voters.append(self._session(conn, member_id, now))
        self.fields = field_names()

    @staticmethod
    def _session(conn, member_id: int, now: int) -> str:
        cookie = secrets.token_urlsafe(32)
        sessions.add_session(conn, token_hash(cookie), member_id, now, now + 3600_000)
        return cookie

    async def start(self) -> None:
        app = create_app(self.hub.config, clock=self.hub.clock, background=False)
        self.client = TestClient(TestServer(app), cookie_jar=aiohttp.DummyCookieJar())
        await self.client.start_server()
        self.app = self.client.app
        self.app[HUB].homeserver = FakeHomeserver()
        self.app[LIMITS].pacer.sleep = _no_wait  # failed logins answer at once here
        routes = [r for r in self.app.router.routes() if r.method in ("GET", "POST") and r.resource is not None]
        self.routes = [(r.method, _template(r.resource)) for r in routes]
        self.body_limits = {(r.method, _template(r.resource)): getattr(r.handler, "max_body_bytes", MAX_FORM_BYTES)
                            for r in routes}

    def headers(self, role: str | None, content_type: str | None = None) -> dict[str, str]:
        csrf = f"fuzz-csrf-{role}"
        headers = {"Cookie": f"{CSRF_COOKIE}={csrf}; {SESSION_COOKIE}={self.cookies[role]}",
                   "X-CSRF-Token": self.csrf_token(role)}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def csrf_token(self, role: str | None) -> str:
        return hmac.new(self.app[WEB_SECRET], f"fuzz-csrf-{role}".encode(), sha256).hexdigest()

    def path(self, template: str, values: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: values.get(m.group(1), "1"), template)

    async def send(self, method: str, path: str, role: str | None, body=None, content_type=None) -> int:
        response = await self.client.request(method, path, data=body, headers=self.headers(role, content_type),
                                             allow_redirects=False)
        await response.read()
        assert response.status < 500, (method, path[:80], role, content_type, response.status, await response.text())
        return response.status

    def form(self, role: str | None, value: str, names: list[str]) -> bytes:
        pairs = [("csrf_token", self.csrf_token(role))] + [(name, value) for name in names]
        return "&".join(f"{k}={aiohttp.helpers.quote(v, safe='')}" for k, v in pairs).encode()

    def named_bodies(self, role: str | None) -> list[tuple[bytes, str]]:
        """The bodies that once gave 500, each with a valid CSRF token where one can be carried."""
        token = self.csrf_token(role).encode()
        form = "application/x-www-form-urlencoded"
        bodies = [(b"csrf_token=" + token + b"&" + b"&".join(n.encode() + b"=\xff\xfe" for n in self.fields), form),
                  (b"\xff=\xfe", form),
                  (b"--b\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" + token + b"\r\n--b--\r\n",
                   "multipart/form-data"),
                  (b"--b\r\nContent-Transfer-Encoding: nonsense\r\nContent-Disposition: form-data; name=\"text\""
                   b"\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b"),
                  (b'{"votes": [[' + b"9" * 5000 + b', "agree"]]}', "application/json"),
                  (b'{"votes": [[true, "agree"]], "number": true, "value": "agree"}', "application/json"),
                  (b"[" * 30_000, "application/json")]
        # Every field at once with each bad number, in slices that stay under the 64 KB form limit.
        for value in BAD_NUMBERS:
            size = max(1, 60_000 // (len(value) + 20))
            for start in range(0, len(self.fields), size):
                bodies.append((self.form(role, value, self.fields[start:start + size]), form))
        return bodies


@pytest.fixture
async def fuzzer(hub):
    fuzzer = Fuzzer(hub)
    await fuzzer.start()
    yield fuzzer
    await fuzzer.client.close()


async def _chunked(prefix: bytes, size: int):
    yield prefix
    for _ in range(size // 65536 + 1):
        yield b"9" * 65536


async def test_no_route_answers_the_named_bad_inputs_with_a_server_error(fuzzer):
    assert len(fuzzer.routes) > 40
    # The sessions work, so handlers are reached past their login checks.
    assert await fuzzer.send("GET", "/lines", "admin") == 200
    assert await fuzzer.send("GET", f"/participate/{fuzzer.consultation_id}", "participant") == 200
    for role in (None, *ROLES):
        for method, template in fuzzer.routes:
            names = re.findall(r"\{(\w+)", template)
            for name, value in itertools.product(names, BAD_PATH_VALUES):
                await fuzzer.send(method, fuzzer.path(template, {name: value}), role)
            if method == "POST":
                path = fuzzer.path(template, {"cid": str(fuzzer.consultation_id)})
                for body, content_type in fuzzer.named_bodies(role):
                    await fuzzer.send(method, path, role, body, content_type)
                prefix = fuzzer.form(role, "1", ["text"])
                status = await fuzzer.send(method, path, role, _chunked(prefix, fuzzer.body_limits[method, template]),
                                           "application/x-www-form-urlencoded")
                assert status in (404, 413), (path, role, status)


def test_random_input_on_any_route_never_gives_a_server_error(hub):
    fuzzer = Fuzzer(hub)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(fuzzer.start())

    @settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data):
        loop.run_until_complete(_random_request(fuzzer, data))

    try:
        check()
    finally:
        loop.run_until_complete(fuzzer.client.close())
        loop.close()


VALUES = st.one_of(st.sampled_from(BAD_NUMBERS), st.sampled_from(["1", "2", "agree", "yes", "json"]),
                   st.text(max_size=40), st.integers(-2**70, 2**70).map(str))
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.text(max_size=10) | st.floats(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["votes", "number", "value", "submission_id"]), inner, max_size=3),
                    max_leaves=8)
RAW_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=b",
             "application/json", "text/plain", "application/x-www-form-urlencoded; charset=x"]


async def _random_request(fuzzer: Fuzzer, data) -> None:
    method, template = data.draw(st.sampled_from(fuzzer.routes))
    role = data.draw(st.sampled_from((None, *ROLES)))
    path_values = st.one_of(VALUES, st.sampled_from(BAD_PATH_VALUES)).map(lambda v: re.sub(r"[/?#%]", "", v) or "1")
    path = fuzzer.path(template, {name: data.draw(path_values) for name in re.findall(r"\{(\w+)", template)})
    if method == "GET":
        await fuzzer.send(method, path, role)
        return
    kind = data.draw(st.sampled_from(["form", "json", "raw"]))
    if kind == "form":
        fields = data.draw(st.lists(st.tuples(st.sampled_from(fuzzer.fields), VALUES), max_size=8))
        body = "&".join([f"csrf_token={fuzzer.csrf_token(role)}"] +
                        [f"{k}={aiohttp.helpers.quote(v, safe='')}" for k, v in fields]).encode()
        await fuzzer.send(method, path, role, body, "application/x-www-form-urlencoded")
    elif kind == "json":
        await fuzzer.send(method, path, role, json.dumps(data.draw(JSON)).encode(), "application/json")
    else:
        await fuzzer.send(method, path, role, data.draw(st.binary(max_size=200)), data.draw(st.sampled_from(RAW_TYPES)))


async def test_good_votes_sent_with_bad_requests_at_the_same_moment_all_succeed(fuzzer):
    cid = fuzzer.consultation_id
    path = f"/api/consultations/{cid}/votes"

    async def good(i: int, cookie: str) -> int:
        headers = {"Cookie": f"{CSRF_COOKIE}=voter-{i}; {SESSION_COOKIE}={cookie}",
                   "X-CSRF-Token": hmac.new(fuzzer.app[WEB_SECRET], f"voter-{i}".encode(), sha256).hexdigest()}
        response = await fuzzer.client.post(path, json={"votes": [[1 + i % 3, "agree"]], "submission_id": f"good-{i:04d}"},
                                            headers=headers)
        return response.status

    bad = [fuzzer.send("POST", f"/api/consultations/{number}/votes", "participant", body, "application/json")
           for number in (cid, "99999999999999999999", "9" * 4400)
           for body, _ in fuzzer.named_bodies("participant")[:7]]
    bad += [fuzzer.send("POST", fuzzer.path(template, {"cid": str(cid)}), "participant", body, content_type)
            for method, template in fuzzer.routes if method == "POST"
            for body, content_type in fuzzer.named_bodies("participant")[:4]]
    results = await asyncio.gather(*[good(i, cookie) for i, cookie in enumerate(fuzzer.voters)], *bad)
    assert results[:30] == [200] * 30
    with fuzzer.hub.engine.connect() as conn:
        tallies = store.tallies_by_side(conn, cid)
    assert sum(sum(counts.values()) for by_side in tallies.values() for counts in by_side.values()) == 30
