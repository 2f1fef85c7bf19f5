"""The live session's page and JSON API through HTTP, with a fake Janus: a whole visit, the
page's data for the script, and hostile bodies on a real session answered 4xx, never 5xx."""

from __future__ import annotations

import hmac
import json
import re
import secrets
from hashlib import sha256
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crossline.clock import token_hash
from crossline.domain.consultations import Phase
from crossline.services import consultations
from crossline.storage import lines, members, sessions
from crossline.web.app import create_app
from crossline.web.keys import HUB, LIVE, WEB_SECRET
from crossline.web.security import CSRF_COOKIE, SESSION_COOKIE
from tests.fakes import FakeHomeserver, FakeJanus


class Browser:
    def __init__(self, client: TestClient, cookie: str | None):
        self.client, self.cookie = client, cookie
        self.csrf = hmac.new(client.app[WEB_SECRET], f"csrf-{cookie}".encode(), sha256).hexdigest()

    def headers(self) -> dict:
        cookies = f"{CSRF_COOKIE}=csrf-{self.cookie}" + (f"; {SESSION_COOKIE}={self.cookie}" if self.cookie else "")
        return {"Cookie": cookies, "X-CSRF-Token": self.csrf}

    async def api(self, path: str, body=None, raw: bytes | None = None) -> tuple[int, dict]:
        if raw is not None:
            response = await self.client.post(path, data=raw, headers={**self.headers(),
                                                                        "Content-Type": "application/json"})
        elif body is None:
            response = await self.client.get(path, headers=self.headers())
        else:
            response = await self.client.post(path, json=body, headers=self.headers())
        return response.status, json.loads(await response.text())

    async def page(self, path: str) -> tuple[int, str]:
        response = await self.client.get(path, headers=self.headers(), allow_redirects=False)
        return response.status, await response.text()

    async def form(self, path: str, fields: dict) -> tuple[int, str]:
        response = await self.client.post(path, data={**fields, "csrf_token": self.csrf}, headers=self.headers(),
                                          allow_redirects=False)
        return response.status, response.headers.get("Location", "")


@pytest.fixture
async def site(hub):
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
        ids = {"anna": members.add_member(conn, "@anna:crossline.local", 1, left.id, frozenset({"participant"}), None, 0),
               "bella": members.add_member(conn, None, 1, right.id, frozenset({"participant"}), None, 0,
                                           web_handle="bella-handle"),
               "fac": hub.facilitator.id}
        cookies = {}
        for name, member_id in ids.items():
            cookies[name] = secrets.token_urlsafe(16)
            sessions.add_session(conn, token_hash(cookies[name]), member_id, 0, hub.clock.now_ms() + 3600_000)
    made = consultations.create(hub, hub.facilitator, 1, "River talks", [{"en": "Q"}], [left.id, right.id], True)
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.COLLECTING)
    client = TestClient(TestServer(create_app(hub.config, clock=hub.clock, background=False)),
                        cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    client.app[HUB].homeserver = FakeHomeserver()
    client.app[LIVE].janus = FakeJanus()
    client.app[LIVE].long_poll_s = 0.01  # nothing here waits on a change that does not come
    client.facilitator = hub.facilitator
    yield client, made, {name: Browser(client, cookie) for name, cookie in cookies.items()}, Browser(client, None)
    await client.close()


async def test_a_facilitator_opens_a_session_and_participants_take_part(site):
    client, made, people, anonymous = site
    status, location = await people["fac"].form(f"/consultations/{made.id}/live-sessions", {"starts_at": ""})
    assert status == 303 and location.startswith("/live/")
    lid = location.rsplit("/", 1)[1]
    status, page = await people["fac"].page(f"/consultations/{made.id}")
    assert f'href="/live/{lid}"' in page
    status, page = await people["anna"].page(f"/live/{lid}")
    assert status == 200 and f'data-live-id="{lid}"' in page and f'data-api-base="/api/live/{lid}"' in page
    assert 'id="live-media"' in page and 'data-role="listener"' in page and "live-interpreter" not in page
    status, page = await people["fac"].page(f"/live/{lid}")
    assert 'data-facilitator="true"' in page and 'id="live-interpreter"' in page
    status, page = await anonymous.page(f"/live/{lid}")
    assert status == 403 and 'http-equiv="refresh"' in page and "?checked=1" in page
    status, page = await anonymous.page(f"/live/{lid}?checked=1")
    assert status == 403 and "http-equiv" not in page and 'href="/login"' in page

    api = f"/api/live/{lid}"
    status, anna = await people["anna"].api(f"{api}/join", {"video": False, "role": "listener", "language": None})
    assert status == 200 and anna["key"]["epoch"] == 1 and anna["audio_bitrate"] > 0
    status, bella = await people["bella"].api(f"{api}/join", {"video": False, "role": "listener"})
    assert "bella-handle" not in json.dumps(bella)
    assert (await people["bella"].api(f"{api}/publish", {"sdp": "v=0 offer", "video": False}))[1] == {"sdp": "v=0 answer"}
    live = client.app[LIVE]  # Janus reports her media up (webrtcup): only then is her feed listed
    await live.handle_event(SimpleNamespace(room_id=live.running[lid].room.room_id, feed_id=bella["feed_id"],
                                            kind="published"))
    status, offer = await people["anna"].api(f"{api}/subscribe", {"feeds": [bella["feed_id"]]})
    assert (status, offer) == (200, {"sdp": "v=0 offer", "streams": {"0": bella["feed_id"]}})
    assert await people["anna"].api(f"{api}/subscribe/answer", {"sdp": "v=0 answer"}) == (200, {})
    assert await people["anna"].api(f"{api}/hand", {"raised": True}) == (200, {})
    status, state = await people["anna"].api(f"{api}/state?since=0")
    assert state["hands"] == ["anna"] and [f["feed_id"] for f in state["feeds"]] == [bella["feed_id"]]
    assert "speaking_seconds_by_side" not in state
    status, waited = await people["anna"].api(f"{api}/state?since={state['version']}")
    assert waited["version"] == state["version"]  # nothing changed: answered when the wait ran out
    await people["fac"].api(f"{api}/join", {"video": False, "role": "listener"})
    status, state = await people["fac"].api(f"{api}/state")
    assert "speaking_seconds_by_side" in state
    assert await people["fac"].api(f"{api}/control", {"action": "remove", "participant_id": bella["participant_id"]}) \
        == (200, {})
    status, refused = await people["bella"].api(f"{api}/join", {"video": False, "role": "listener"})
    assert status == 403 and "removed" in refused["error"]
    assert await people["anna"].api(f"{api}/leave", {}) == (200, {})
    assert (await people["fac"].api(f"{api}/control", {"action": "end", "participant_id": None}))[0] == 200
    status, state = await people["anna"].api(f"{api}/state")
    assert state["status"] == "ended" and state["key"] is None


@pytest.mark.parametrize("body", [
    b"[]", b'"x"', b"null", b'{"video": "yes"}', b'{"role": ["listener"]}', b'{"language": 5}',
    b'{"sdp": 7}', b'{"sdp": "not sdp"}', b'{"feeds": "all"}', b'{"feeds": [true]}', b'{"feeds": [' + b"9" * 400 + b"]}",
    b'{"raised": "yes"}', b'{"action": "mute", "participant_id": {"a": 1}}', b'{"action": null}', b"\xff\xfe",
])
async def test_hostile_bodies_on_a_real_session_are_refused_clearly(site, body):
    client, made, people, anonymous = site
    lid = client.app[LIVE].open_for_consultation(client.facilitator, made.id, None).public_id
    await people["fac"].api(f"/api/live/{lid}/join", {"video": False, "role": "listener"})
    await people["anna"].api(f"/api/live/{lid}/join", {"video": False, "role": "listener"})
    refused = 0
    for who in ("anna", "fac"):
        for route in ("join", "publish", "subscribe", "subscribe/answer", "hand", "control"):
            status, answer = await people[who].api(f"/api/live/{lid}/{route}", raw=body)
            assert status < 500 and (status < 400 or answer["error"]), (who, route, status, answer)
            refused += status >= 400
    assert refused >= 6  # each body is wrong for at least the routes that read its fields
    for since in ("x", "9" * 400, "-"):
        status, answer = await people["anna"].api(f"/api/live/{lid}/state?since={since}")
        assert status == 400 and "since" in answer["error"]


async def test_a_media_server_failure_is_not_a_server_error(site):
    client, made, people, anonymous = site
    from crossline.errors import HomeserverError

    class Broken(FakeJanus):
        async def create_room(self, description, max_publishers):
            raise HomeserverError("The media server did not answer.")  # any 5xx error of the adapter

    client.app[LIVE].janus = Broken()
    lid = client.app[LIVE].open_for_consultation(client.facilitator, made.id, None).public_id
    status, answer = await people["anna"].api(f"/api/live/{lid}/join", {"video": False, "role": "listener"})
    assert status == 409 and "media server" in answer["error"]
    client.app[LIVE].janus = None
    status, answer = await people["anna"].api(f"/api/live/{lid}/join", {"video": False, "role": "listener"})
    assert status == 409 and "not available" in answer["error"]


async def test_schedule_forms_say_what_to_fix(site):
    client, made, people, anonymous = site
    status, location = await people["fac"].form(f"/consultations/{made.id}/live-sessions", {"starts_at": "soon"})
    assert status == 400
    status, location = await people["fac"].form(f"/consultations/{made.id}/live-sessions",
                                                {"starts_at": "2999-01-01T10:00"})
    lid = location.rsplit("/", 1)[1]
    status, page = await people["anna"].page(f"/live/{lid}")
    assert "not started yet" in page and "2999-01-01 10:00" in page and 'id="live-media"' not in page
    assert re.search(r'action="/live/[^"]+/start"', (await people["fac"].page(f"/live/{lid}"))[1])
    status, location = await people["fac"].form(f"/live/{lid}/start", {})
    assert (status, location) == (303, f"/live/{lid}")


async def test_participants_find_the_session_on_their_consultation_page(site):
    client, made, people, anonymous = site
    lid = client.app[LIVE].open_for_consultation(client.facilitator, made.id, None).public_id
    status, page = await people["anna"].page(f"/participate/{made.id}")
    assert status == 200 and f'href="/live/{lid}"' in page
