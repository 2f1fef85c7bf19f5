"""Middlewares every page passes through: body and id bounds, security headers, CSRF, sessions,
error pages; and who the client is (for rate limits)."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from crossline.clock import token_hash
from crossline.domain.records import Member
from crossline.errors import CrosslineError, NotAllowed, NotFound
from crossline.storage import members, sessions
from crossline.web.forms import bounded_int, read_form, too_large
from crossline.web.keys import CSRF_COOKIE_VALUE, HUB, MEMBER, SESSION_CACHE
from crossline.web.render import csrf_token_for, render

logger = logging.getLogger(__name__)

SESSION_COOKIE = "crossline_session"
CSRF_COOKIE = "crossline_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"  # for JSON requests
SESSION_LIFETIME_MS = 12 * 3600 * 1000
MAX_FORM_BYTES = 64 * 1024
# Forms that take screenshots (abuse reports) may be larger: their handlers say so with `accepts_uploads`.
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
# Longer than any token, code or file name in a path.
MAX_PATH_VALUE = 200

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        # The live session page: its JSON API (fetch) and its media encryption worker.
        "connect-src 'self'",
        "worker-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

# Only a live session's page may ask for the microphone and camera.
PERMISSIONS = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
LIVE_PERMISSIONS = "camera=(self), microphone=(self), geolocation=(), interest-cohort=()"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def accepts_uploads(handler: Handler) -> Handler:
    """Marks a handler whose form may carry screenshots: its body may be up to MAX_UPLOAD_BYTES."""
    handler.max_body_bytes = MAX_UPLOAD_BYTES  # type: ignore[attr-defined]
    return handler


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every body is read with its page's limit, counted on the bytes actually read (a chunked body
    has no Content-Length to check): past it, reading stops with 413. Outermost, so every other
    middleware and the handler see the same bounded request."""
    limit = getattr(request.match_info.handler, "max_body_bytes", MAX_FORM_BYTES)
    return await handler(request.clone(client_max_size=limit))


@web.middleware
async def unusable_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refused before any lookup: a body announced larger than its page takes, and a value in the
    path that names nothing: a numeric id no row can have (past 64 bits, or thousands of digits that
    `int()` refuses), or anything longer than any token, code or file name (the file system refuses those)."""
    if request.content_length and request.content_length > request.client_max_size:
        raise too_large(request.client_max_size)
    if any(len(value) > MAX_PATH_VALUE or (value.isdecimal() and bounded_int(value) is None)
           for value in request.match_info.values()):
        raise NotFound("There is no such page: check the number in the address.")
    return await handler(request)


def client_address(request: web.Request, trusted_proxies: Iterable[str]) -> str:
    """Who is sending, for rate limits (kept in memory only, never logged). X-Forwarded-For is
    believed only from a configured trusted proxy, and only as far as the chain of trusted proxies
    goes: the first address from the right that is not one of them is the client. Anyone else's
    header is ignored, so a client cannot choose her own address."""
    trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    address = request.remote or ""
    hops = [hop.strip() for header in request.headers.getall("X-Forwarded-For", []) for hop in header.split(",")]
    while is_trusted(address) and hops:
        address = hops.pop()
    return address


def uses_tls(request: web.Request) -> bool:
    return request.app[HUB].config.hub_url.startswith("https://") or request.secure


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as error:
        response = error
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = LIVE_PERMISSIONS if request.path.startswith("/live/") else PERMISSIONS
    # Nothing a person saw here should stay in the browser's cache for someone else to find.
    headers["Cache-Control"] = "no-store"
    if uses_tls(request):
        headers["Strict-Transport-Security"] = "max-age=63072000"
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Typed domain errors become a page that says what to fix, with the right status."""
    try:
        return await handler(request)
    except CrosslineError as error:
        if request.path.startswith("/api/"):
            return web.json_response({"error": error.message}, status=error.status)
        return render(request, "error.html", {"message": error.message}, status=error.status)


def _cookie_flags(request: web.Request) -> dict:
    return {"httponly": True, "samesite": "Strict", "secure": uses_tls(request), "path": "/"}


@web.middleware
async def csrf_protection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Double-submit token bound to a per-browser cookie by HMAC under the hub's secret,
    plus an Origin check. SameSite=Strict cookies are a third layer."""
    cookie = request.cookies.get(CSRF_COOKIE)
    new_cookie = not cookie or len(cookie) > 100
    request[CSRF_COOKIE_VALUE] = secrets.token_urlsafe(32) if new_cookie else cookie
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin != f"{request.scheme}://{request.host}":
            return _csrf_refused(request)
        if request.content_type == "application/json":
            sent = request.headers.get(CSRF_HEADER)
        else:
            sent = (await read_form(request)).get(CSRF_FIELD)
        if new_cookie or not isinstance(sent, str) or not hmac.compare_digest(sent, csrf_token_for(request)):
            return _csrf_refused(request)
    response = await handler(request)
    if new_cookie:
        response.set_cookie(CSRF_COOKIE, request[CSRF_COOKIE_VALUE], **_cookie_flags(request))
    return response


def _csrf_refused(request: web.Request) -> web.Response:
    if request.path.startswith("/api/"):
        return web.json_response({"error": "Missing or wrong X-CSRF-Token header: nothing was changed."}, status=403)
    response = render(
        request,
        "error.html",
        {"message": "This form has expired or did not come from this hub, so nothing was changed. "
                    "Go back, reload the page and send it again."},
        status=403,
    )
    response.set_cookie(CSRF_COOKIE, request[CSRF_COOKIE_VALUE], **_cookie_flags(request))
    return response


# Sessions looked up in the last few seconds, so a voter's burst of requests costs one query.
# A logout removes its entry at once; a change of roles is seen within SESSION_CACHE_MS.
SESSION_CACHE_MS = 10_000
SESSION_CACHE_MAX = 20_000


@web.middleware
async def session_loader(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[MEMBER] = None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        hub = request.app[HUB]
        cache = request.app[SESSION_CACHE]
        id_hash, now = token_hash(cookie), hub.clock.now_ms()
        cached = cache.get(id_hash)
        if cached and cached[1] > now:
            request[MEMBER] = cached[0]
        else:
            with hub.engine.connect() as conn:
                member_id = sessions.session_member_id(conn, id_hash, now)
                request[MEMBER] = members.get_member(conn, member_id) if member_id else None
            if request[MEMBER] is not None:
                if len(cache) >= SESSION_CACHE_MAX:
                    cache.clear()
                cache[id_hash] = (request[MEMBER], now + SESSION_CACHE_MS)
    return await handler(request)


def start_session(request: web.Request, response: web.StreamResponse, member: Member) -> None:
    """Whatever session this browser had ends first: a sign-in, or a switch to another person's
    link, never leaves the earlier session alive behind it."""
    end_session(request, response)
    hub = request.app[HUB]
    cookie = secrets.token_urlsafe(32)
    now = hub.clock.now_ms()
    with hub.engine.begin() as conn:
        sessions.add_session(conn, token_hash(cookie), member.id, now, now + SESSION_LIFETIME_MS)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_LIFETIME_MS // 1000, **_cookie_flags(request))
    # A fresh CSRF cookie after login, so a token seen before login is worthless after it.
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(32), **_cookie_flags(request))


def end_session(request: web.Request, response: web.StreamResponse) -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        hub = request.app[HUB]
        request.app[SESSION_CACHE].pop(token_hash(cookie), None)
        with hub.engine.begin() as conn:
            sessions.remove_session(conn, token_hash(cookie))
    response.del_cookie(SESSION_COOKIE, path="/")


def staff_member(request: web.Request) -> Member:
    member = request[MEMBER]
    if member is None:
        raise web.HTTPSeeOther("/login")
    if not member.is_staff:
        raise web.HTTPSeeOther("/participate")
    return member


def participant_member(request: web.Request) -> Member:
    member = request[MEMBER]
    if member is None:
        raise NotAllowed("Open your personal link again to take part: this browser is not signed in.")
    return member


MIDDLEWARES = [body_limit, security_headers, domain_errors, unusable_requests, csrf_protection, session_loader]
