"""A room's live session, end to end against real Synapse (and the Janus `crossline up` starts):
the facilitator opens it from the line's page; the bot sets the widget in the room and posts the
epoch's key into it, encrypted; a member's encrypted nio client sees the widget and decrypts the
key event, and the key is the one the hub's join API gives her on the web. When the session ends
the widget is emptied. Synapse stores the key only as Megolm ciphertext."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import urllib.error
import urllib.request

import pytest
from nio import MegolmEvent, UnknownEvent

from tests.conftest import ALICE
from tests.support import WebSession, matrix, wait_for
from tests.test_e2e_cross_line_room import clients_in_a_new_room, database_bytes

pytestmark = pytest.mark.synapse

WIDGETS = "im.vector.modular.widgets"


def csrf_of(session: WebSession, path: str) -> str:
    status, page = session.get(path)
    assert status == 200, page
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def call(session: WebSession, path: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(session.base_url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-CSRF-Token": token})
    try:
        with session.opener.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def key_events(client, room_id: str, wanted, timeout_s: float = 60) -> dict:
    """Syncs until an org.crossline.live.key event satisfying `wanted` is decrypted; returns its content."""
    loop = asyncio.get_running_loop()
    deadline, undecrypted = loop.time() + timeout_s, 0
    while loop.time() < deadline:
        response = await client.sync(timeout=1000)
        room = response.rooms.join.get(room_id) if hasattr(response, "rooms") else None
        for event in room.timeline.events if room else []:
            if isinstance(event, UnknownEvent) and event.type == "org.crossline.live.key" and wanted(
                    event.source["content"]):
                return event.source["content"]
            undecrypted += isinstance(event, MegolmEvent)
        if client.should_query_keys:
            await client.keys_query()
    raise AssertionError(f"no decryptable key event arrived ({undecrypted} undecryptable events)")


async def test_a_rooms_live_session_puts_its_widget_and_keys_in_the_encrypted_room(world, tmp_path):
    stack = world.stack
    name = f"Live {secrets.token_hex(3)}"
    room_id, (alice,) = await clients_in_a_new_room(world, tmp_path, "consultation", name, [ALICE])
    try:
        line_page = f"/lines/{world.line_id}"
        page = world.admin.get(line_page)[1]
        hub_room = re.search(rf'<span dir="auto">{re.escape(name)}</span>.*?action="/rooms/(\d+)/live-sessions"',
                             page, re.S).group(1)
        status, page, landed = world.admin.request("POST", f"/rooms/{hub_room}/live-sessions",
                                                   {"csrf_token": csrf_of(world.admin, line_page), "starts_at": ""})
        assert status == 200 and "/live/" in landed, page
        lid = landed.rsplit("/", 1)[1]
        page_url = f"{stack.hub_url}/live/{lid}"

        def widget() -> dict | None:
            state = matrix(stack.homeserver_url, "GET", f"/_matrix/client/v3/rooms/{room_id}/state", alice.access_token)[1]
            return next((e["content"] for e in state if e["type"] == WIDGETS
                         and e["state_key"] == f"crossline-live-{lid}"), None)

        content = wait_for(widget, what="the bot to set the live session's widget")
        assert content == {"type": "m.custom", "url": page_url, "name": f"Live: {name}", "data": {}}

        # Alice, signed in on the hub with her Matrix password, joins from the page the widget opens.
        alice_web = WebSession(stack.hub_url)
        status, _ = alice_web.submit("/login", "/login", {"username": ALICE[0], "password": ALICE[1]})
        assert status == 200
        token = csrf_of(alice_web, f"/live/{lid}")
        status, joined = call(alice_web, f"/api/live/{lid}/join", token, {"video": False, "role": "listener"})
        assert status == 200, joined
        posted = await key_events(alice, room_id, lambda c: c.get("epoch") == joined["key"]["epoch"])
        assert posted == {"live_session": lid, "epoch": joined["key"]["epoch"], "key": joined["key"]["key"],
                          "page": page_url}
        # Synapse holds the key only encrypted.
        assert joined["key"]["key"].encode() not in database_bytes(stack.data_dir / "synapse" / "homeserver.db")

        # A member cannot set a widget of her own, to any page.
        status, refused = matrix(stack.homeserver_url, "PUT",
                                 f"/_matrix/client/v3/rooms/{room_id}/state/{WIDGETS}/crossline-live-{lid}",
                                 alice.access_token, {"type": "m.custom", "url": "https://elsewhere.example/"})
        assert status == 403, refused

        # The facilitator ends it: the widget is emptied.
        admin_token = csrf_of(world.admin, f"/live/{lid}")
        assert call(world.admin, f"/api/live/{lid}/control", admin_token, {"action": "end"})[0] == 200
        wait_for(lambda: widget() == {}, what="the bot to remove the widget")
    finally:
        await alice.close()
