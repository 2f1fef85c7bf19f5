"""The web layer's protections, through `aiohttp_client(create_app(config))` (no Synapse needed)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from crossline.setup import init_data_dir
from crossline.web.app import create_app
from crossline.web.ratelimit import LIMITS


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return init_data_dir(tmp_path_factory.mktemp("web") / "data", hub_port=18999, synapse_port=18998)[0]


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config, background=False))


async def csrf_token(client, path="/login") -> str:
    page = await (await client.get(path)).text()
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


async def test_every_page_carries_strict_security_headers(client):
    for path in ("/login", "/join/nope", "/setup/nope", "/static/crossline.css"):
        response = await client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP on loopback


async def test_only_a_live_session_page_may_ask_for_the_microphone(client):
    for path in ("/login", "/live/nope"):
        response = await client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "worker-src 'self'" in csp and "connect-src 'self'" in csp
        allowed = "microphone=(self)" in response.headers["Permissions-Policy"]
        assert allowed == path.startswith("/live/"), (path, response.headers["Permissions-Policy"])


async def test_cookies_are_httponly_and_strict(client):
    response = await client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie


async def test_cookies_are_secure_behind_tls(aiohttp_client, config):
    tls_config = replace(config, hub=replace(config.hub, public_url="https://hub.example.org"))
    client = await aiohttp_client(create_app(tls_config, background=False))
    response = await client.get("/login")
    assert "Secure" in response.headers["Set-Cookie"]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_a_form_without_its_csrf_token_is_refused(client):
    await client.get("/login")
    response = await client.post("/login", data={"username": "a", "password": "b"})
    assert response.status == 403
    assert "did not come from this hub" in await response.text()


async def test_a_forged_token_or_foreign_origin_is_refused(client):
    token = await csrf_token(client)
    # Change the last two characters to ones they are not: a fixed "00" equalled the real ending once in a full run.
    forged = token[:-2] + ("11" if token.endswith("00") else "00")
    assert forged != token
    response = await client.post("/login", data={"csrf_token": forged, "username": "a", "password": "b"})
    assert response.status == 403
    response = await client.post("/login", data={"csrf_token": token, "username": "a", "password": "b"},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403


async def test_a_token_from_another_browser_is_refused(aiohttp_client, config):
    first = await aiohttp_client(create_app(config, background=False))
    token = await csrf_token(first)
    second = await aiohttp_client(create_app(config, background=False))
    await second.get("/login")
    response = await second.post("/login", data={"csrf_token": token, "username": "a", "password": "b"})
    assert response.status == 403


async def test_unknown_accounts_are_told_nothing_more_and_floods_are_slowed(client):
    async def no_wait(seconds: float) -> None:
        pass

    client.app[LIMITS].pacer.sleep = no_wait  # tests/test_ratelimit.py checks when failures answer
    for _ in range(10):
        token = await csrf_token(client)
        response = await client.post("/login", data={"csrf_token": token, "username": "nobody", "password": "wrong"})
        assert response.status == 401
        assert "do not match" in await response.text()
    token = await csrf_token(client)
    response = await client.post("/login", data={"csrf_token": token, "username": "nobody", "password": "wrong"})
    assert response.status == 429


async def test_staff_pages_need_a_session(client):
    response = await client.get("/lines", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"


async def test_bad_links_get_clear_errors(client):
    response = await client.get("/join/not-a-code")
    assert response.status == 410 and "not valid" in await response.text()
    response = await client.get("/setup/not-a-code")
    assert response.status == 403 and "crossline setup-link" in await response.text()


async def test_an_oversized_form_is_refused(client):
    token = await csrf_token(client)
    response = await client.post("/login", data={"csrf_token": token, "username": "a" * 100_000, "password": "b"})
    assert response.status == 413


def test_staff_passwords_are_argon2id():
    from crossline.passwords import hash_password, verify_password

    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "wrong horse battery")
    assert not verify_password(None, "anything")


def _posts(app) -> list[str]:
    """Every POST route, from the router, with 1 for each path parameter."""
    paths = []
    for route in app.router.routes():
        if route.method == "POST":
            info = route.resource.get_info()
            paths.append(re.sub(r"\{[^}]+\}", "1", info.get("formatter") or info.get("path")))
    return paths


async def test_a_body_that_cannot_be_read_is_a_clear_400_on_every_post_route(client):
    token = await csrf_token(client)
    bodies = [
        (b"csrf_token=" + token.encode() + b"&text=\xff\xfe&username=\xc3", "application/x-www-form-urlencoded"),
        (b"\xff\xfe=\xff", "application/x-www-form-urlencoded"),
        (b"csrf_token=" + token.encode(), "application/x-www-form-urlencoded; charset=no-such-charset"),
        (b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n", "multipart/form-data"),
        (b"garbage", "multipart/form-data; boundary=x"),
    ]
    for path in _posts(client.app):
        for body, content_type in bodies:
            response = await client.post(path, data=body, headers={"Content-Type": content_type})
            assert response.status == 400, (path, content_type, response.status)
            assert "could not be read" in await response.text()


async def test_a_chunked_body_is_limited_on_the_bytes_read(client):
    token = await csrf_token(client)

    async def body():
        yield f"csrf_token={token}&username=a&password=".encode()
        for _ in range(15 * 16):  # 15 MB, with no Content-Length
            yield b"b" * 65536

    response = await client.post("/login", data=body(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413 and "too large" in await response.text()


async def test_ids_no_row_can_have_are_not_found_on_every_route_before_anything_else(client):
    routes = [(route.method, route.resource.get_info().get("formatter", "")) for route in client.app.router.routes()]
    numbered = [(method, path) for method, path in routes if re.search(r"\{(cid|\w+_id|rid)\}", path)]
    assert len(numbered) > 20
    for method, path in numbered:
        for name in re.findall(r"\{(cid|\w+_id|rid)\}", path):
            for number in ("99999999999999999999", "9" * 5000, "0" * 40 + "1"):
                target = re.sub(r"\{\w+\}", lambda m: number if m.group(0) == f"{{{name}}}" else "1", path)
                response = await client.request(method, target.replace("report.1", "report.json"),
                                                allow_redirects=False)
                assert response.status == 404, (method, target[:60], response.status)


async def test_another_persons_link_asks_before_ending_the_session(aiohttp_client, hub):
    from crossline.clock import token_hash
    from crossline.storage import lines, members

    with hub.engine.begin() as conn:
        left, _ = lines.get_line(conn, 1).sides
        for handle in ("anna", "olga"):
            member_id = members.add_member(conn, None, 1, left.id, frozenset({"participant"}), None, 0, web_handle=handle)
            members.add_access_link(conn, token_hash(f"link-{handle}"), member_id, 0)
    client = await aiohttp_client(create_app(hub.config, clock=hub.clock, background=False))
    assert (await client.get("/r/link-anna", allow_redirects=False)).status == 303
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))["crossline_session"].value

    response = await client.get("/r/link-olga", allow_redirects=False)
    page = await response.text()
    assert response.status == 200 and "crossline_session" not in response.headers.get("Set-Cookie", "")
    assert "signed in as <strong dir=\"auto\">web participant anna" in page and "web participant olga" in page
    assert client.session.cookie_jar.filter_cookies(client.make_url("/"))["crossline_session"].value == session

    response = await client.post("/r/link-olga", data={}, allow_redirects=False)
    assert response.status == 403  # going on needs the page's CSRF token
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = await client.post("/r/link-olga", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    assert client.session.cookie_jar.filter_cookies(client.make_url("/"))["crossline_session"].value != session
    assert (await client.get("/r/link-olga", allow_redirects=False)).status == 303  # her own link: no question
