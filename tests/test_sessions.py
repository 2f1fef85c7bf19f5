"""A browser holds one session at a time: signing in, or going on with another person's link,
ends the session it had (its cookie stops working at once, not in 12 hours)."""

from __future__ import annotations

import re

from crossline import passwords
from crossline.clock import token_hash
from crossline.storage import members
from crossline.web.app import create_app


async def _csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', await (await client.get(path)).text()).group(1)


async def test_a_new_session_ends_the_one_the_browser_had(aiohttp_client, hub):
    with hub.engine.begin() as conn:
        members.add_member(conn, "@staffer:crossline.local", None, None, frozenset({"facilitator"}),
                           passwords.hash_password("the right one"), 0)
        maria = members.add_member(conn, "@maria:crossline.local", 1, 1, frozenset({"participant"}), None, 0)
        members.add_access_link(conn, token_hash("maria-link"), maria, 0)
    client = await aiohttp_client(create_app(hub.config, clock=hub.clock, background=False))
    response = await client.post("/login", data={"csrf_token": await _csrf(client, "/login"), "username": "staffer",
                                                 "password": "the right one"}, allow_redirects=False)
    assert response.status == 303
    staff_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["crossline_session"].value
    assert (await client.get("/lines", allow_redirects=False)).status == 200

    # A HEAD request is a GET: it too only asks, and never switches (it used to, silently).
    assert (await client.head("/r/maria-link", allow_redirects=False)).status == 200
    assert (await client.get("/lines", allow_redirects=False)).status == 200
    page = await (await client.get("/r/maria-link")).text()
    assert "maria" in page  # it asks first, naming whose link it is
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert (await client.post("/r/maria-link", data={"csrf_token": token}, allow_redirects=False)).status == 303

    other = await aiohttp_client(create_app(hub.config, clock=hub.clock, background=False))
    other.session.cookie_jar.update_cookies({"crossline_session": staff_cookie})
    assert (await other.get("/lines", allow_redirects=False)).headers.get("Location") == "/login"
