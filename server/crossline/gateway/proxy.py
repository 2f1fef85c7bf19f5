"""The client-API gateway: a reverse proxy in the hub process, where Matrix clients connect.

Synapse listens only on a UNIX socket in the data directory; everything a client sends reaches it
through here. Almost everything passes unchanged and streamed (media, /sync long polls). The
gateway changes only what Synapse has no setting or module hook for:

- It tells Synapse a keyed, daily pseudonym of the client's address (and of her access token
  when signed in, `addresses.py`), never the address itself. Behind a reverse proxy listed in
  `[hub] trusted_proxies` the address is the one that proxy forwards; anyone else's
  X-Forwarded-For is ignored.
- /register/available never says that a name is taken, and /register checks a user name only
  for someone who has shown a usable invitation code (Synapse otherwise checks it first).
- A failed password login is never answered sooner than `LOGIN_FLOOR_S`, so an unknown name
  and a wrong password take the same time.
- Invitation codes become the registration tokens Synapse holds (`tokens.py`).
- /keys/query and /keys/claim only reach accounts the requester shares a room with (`peers.py`).
- /sendToDevice only reaches accounts the sender shares a room with.
- A room report Synapse accepted (Element's "Report room", "Decline and report") is handed to
  the moderation queue.
- Synapse's admin API is not reachable from outside (the hub uses Synapse's socket).
- A display-name change is checked (`crossline_policies.names`) before Synapse stores it: nobody
  takes a staff member's, the bot's or a pseudonym's name, a look-alike of one, or a reserved word.

It logs no request, token, body or address: only the type of an unexpected error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from yarl import URL

from crossline.clock import Clock
from crossline.errors import CrosslineError
from crossline.gateway import filters
from crossline.gateway.addresses import AddressPseudonyms
from crossline.gateway.filters import Route
from crossline.gateway.peers import RoomPeers
from crossline.gateway.tokens import synapse_token
from crossline.web.ratelimit import Limits
from crossline.web.security import client_address
from crossline_policies import names
from crossline_policies.protected_names_file import ProtectedNamesFile, with_staff_names

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade"})
# Set by the gateway itself, never taken from the client.
NOT_FORWARDED = HOP_BY_HOP | {"host", "expect", "forwarded", "x-forwarded-for", "x-forwarded-proto",
                              "x-forwarded-host", "x-real-ip", "user-agent"}
FORWARDED_USER_AGENT = "Matrix client via Crossline"
# Bodies the gateway reads whole to change them: small JSON requests and answers.
MAX_FILTERED_BODY = 2 * 1024 * 1024
# Synapse's answers the gateway reads whole: the device keys of a big room run to megabytes.
MAX_FILTERED_ANSWER = 64 * 1024 * 1024
CLIENT_PREFIX = "/_matrix/client/v3"
LOGIN_FLOOR_S = 1.0
VERIFIED_SESSION_MS = 24 * 3600 * 1000
MAX_VERIFIED_SESSIONS = 10_000

RoomReportSink = Callable[[str, str, str], Awaitable[Any]]


class GatewayHomeserver(Protocol):
    """What the gateway asks of Synapse directly (with the hub's admin token)."""

    async def registration_token_usable(self, token: str, now_ms: int) -> bool: ...
    async def memberships(self, user_id: str) -> dict[str, str]: ...
    async def room_memberships(self, room_id: str) -> dict[str, str]: ...
    async def display_name(self, user_id: str) -> str | None: ...
    async def media_uploader(self, server_name: str, media_id: str) -> str | None: ...


@dataclass
class Upstream:
    """Synapse as the gateway forwards to it: a base URL and a session that reaches it."""

    base_url: str
    session: aiohttp.ClientSession


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Gateway:
    def __init__(self, upstream: Upstream, homeserver: GatewayHomeserver, token_key: str, clock: Clock,
                 on_room_report: RoomReportSink, trusted_proxies: tuple[str, ...] = (),
                 addresses: AddressPseudonyms | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic, *, protected_names: ProtectedNamesFile):
        self._upstream = upstream
        self._homeserver = homeserver
        self._token_key = token_key
        self._clock = clock
        self._on_room_report = on_room_report
        self._trusted_proxies = trusted_proxies
        self._sleep = sleep
        self._monotonic = monotonic
        self._protected_names = protected_names
        self._addresses = addresses or AddressPseudonyms(clock)
        self._peers = RoomPeers(homeserver, clock)
        self._verified_sessions: dict[str, int] = {}  # registration sessions past the token stage
        # Password logins, limited per account and client address together (as on the hub's pages):
        # an attacker's failures never lock the account's owner out.
        self._login_limits = Limits.on(clock)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not request.raw_path.startswith("/"):  # absolute-form or "*": no Matrix request is either
            return _matrix_error(400, "M_UNRECOGNIZED",
                                 "Send the request to a path on this server, such as /_matrix/client/versions.")
        path, _, query = request.raw_path.partition("?")
        if "#" in request.raw_path or self._url(path).raw_path != path:
            # A fragment is not sent on (so "/keys/query#" would reach Synapse as "/keys/query"
            # past every filter): what is classified must be exactly what Synapse gets.
            return _matrix_error(400, "M_UNRECOGNIZED", "A request path cannot contain '#'. Remove it and send again.")
        if request.headers.get("Content-Encoding", "identity").lower() != "identity":
            # aiohttp would decompress the body but forward the sender's length: a body Synapse
            # waits for, or one cut short. Matrix clients do not compress requests.
            return _matrix_error(415, "M_UNRECOGNIZED", "Send the request body uncompressed.")
        match = filters.classify(request.method, path)
        try:
            if match.route is Route.PASS:
                return await self._stream(request, match.upstream_path + ("?" + query if query else ""))
            handler = _HANDLERS[match.route]
            return await handler(self, request, match, query)
        except ConnectionError:
            raise  # the client went away: aiohttp drops the connection quietly
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.warning("Synapse could not be reached through its socket (%s)", type(error).__name__)
            return _matrix_error(502, "M_UNKNOWN", "The homeserver is not answering. Try again in a moment.")

    # -- Forwarding ---------------------------------------------------------------------------------

    def _headers(self, request: web.Request, body_length: int | None = None,
                 extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {name: value for name, value in request.headers.items() if name.lower() not in NOT_FORWARDED}
        headers.update(extra or {})
        if body_length is not None:
            headers = {name: value for name, value in headers.items() if name.lower() != "content-length"}
            headers["Content-Length"] = str(body_length)
        # The app, phone model and system build would be kept in `user_ips` and `devices` and would
        # tie her own account to her pseudonym used from the same phone.
        headers["User-Agent"] = FORWARDED_USER_AGENT
        headers["X-Forwarded-For"] = self._addresses.pseudonym(client_address(request, self._trusted_proxies),
                                                               _access_token(request))
        headers["X-Forwarded-Proto"] = request.scheme
        return headers

    def _url(self, raw_path_and_query: str) -> URL:
        return URL(self._upstream.base_url + raw_path_and_query, encoded=True)

    async def _stream(self, request: web.Request, raw_target: str) -> web.StreamResponse:
        """Both bodies streamed: media uploads and downloads, /sync long polls."""
        data = request.content if request.body_exists else None
        async with self._upstream.session.request(
            request.method, self._url(raw_target), headers=self._headers(request), data=data, allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            _copy_headers(upstream.headers.items(), response)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError) as error:
                # Synapse stopped half-way: the client must see a cut connection, not a whole answer.
                raise ConnectionResetError from error
            await response.write_eof()
            return response

    async def _exchange(self, request: web.Request, raw_target: str, body: bytes, method: str = "",
                        extra_headers: dict[str, str] | None = None) -> _Answer:
        """One buffered round trip, for the small JSON requests the gateway looks into."""
        async with self._upstream.session.request(
            method or request.method, self._url(raw_target), headers=self._headers(request, len(body), extra_headers),
            data=body,
            allow_redirects=False,
        ) as upstream:
            chunks, size = [], 0
            async for chunk in upstream.content.iter_chunked(64 * 1024):  # read(n) stops at what is buffered
                size += len(chunk)
                if size > MAX_FILTERED_ANSWER:
                    return _Answer(502, [], _error_body("M_UNKNOWN", "The homeserver's answer was too large."))
                chunks.append(chunk)
            return _Answer(upstream.status, list(upstream.headers.items()), b"".join(chunks))

    # -- Routes ---------------------------------------------------------------------------------------

    async def _keys(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        body_bytes = await _read(request)
        body = _json(body_bytes)
        target = _target(match.upstream_path, query)
        if body_bytes and body is None:
            return _not_json()
        if body is None:  # no body: Synapse says what is missing
            return _reply(await self._exchange(request, target, body_bytes))
        requester, allowed = await self._visible(request, filters.users_asked_for(match.route, body))
        restricted = filters.restrict_keys_request(match.route, body, allowed) if isinstance(body, dict) else body
        answer = await self._exchange(request, target, json.dumps(restricted).encode())
        data = answer.json()
        if answer.status != 200 or data is None:
            return _reply(answer)
        return _reply(answer, json.dumps(
            filters.restrict_keys_response(data, allowed | {requester or ""}, requester or "")).encode())

    async def _send_to_device(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        body_bytes = await _read(request)
        body = _json(body_bytes)
        target = _target(match.upstream_path, query)
        if body_bytes and body is None:
            return _not_json()
        if not isinstance(body, dict):  # not the shape Synapse accepts: Synapse says so
            return _reply(await self._exchange(request, target, body_bytes))
        _, allowed = await self._visible(request, filters.users_messaged(body))
        restricted = filters.restrict_to_device(body, allowed)
        return _reply(await self._exchange(request, target, json.dumps(restricted).encode()))

    async def _visible(self, request: web.Request, wanted: set[str]) -> tuple[str | None, set[str]]:
        """The requester, and those of `wanted` whose devices she may see or reach: nobody without
        a valid token; only herself if Synapse cannot say whom she shares rooms with (fail closed)."""
        requester = await self._requester(request)
        if requester is None:
            return None, set()
        try:
            return requester, await self._peers.visible(requester, wanted)
        except CrosslineError:
            return requester, {requester}

    async def _pad_failure(self, started: float) -> None:
        """A refused login or password stage answers no sooner than the floor after it began:
        Synapse checks a password only for a name that exists, so a quick refusal would tell."""
        remaining = LOGIN_FLOOR_S - (self._monotonic() - started)
        if remaining > 0:
            await self._sleep(remaining)

    async def _user_interactive_auth(self, request: web.Request, match: filters.Match,
                                     query: str) -> web.StreamResponse:
        body_bytes = await _read(request)
        body = _json(body_bytes)
        if body_bytes and body is None:
            return _not_json()
        target = _target(match.upstream_path, query)
        account = filters.password_stage_account(body)
        if account is None:
            return _reply(await self._exchange(request, target, body_bytes))
        return await self._password_stage(request, target, account, body_bytes)

    async def _password_stage(self, request: web.Request, target: str, account: str,
                              body_bytes: bytes) -> web.StreamResponse:
        """Synapse checks the password of whatever account a password stage names, and says whether it
        was right, on every request it guards with user-interactive auth: an unlimited guessing
        oracle, even without a session. Here a password is confirmed only by the signed-in owner of
        the account, counted in the same limits as logins, and every failure padded like a login's."""
        started = self._monotonic()
        requester = await self._requester(request)
        address = client_address(request, self._trusted_proxies)
        passed = False
        if requester is None or not account or account != filters.localpart(requester):
            answer = _Answer(403, [("Content-Type", "application/json")], _error_body(
                "M_FORBIDDEN", "A password can only be confirmed for the account you are signed in with."))
        elif not self._login_limits.login_attempt(account, address):
            answer = _Answer(429, [("Content-Type", "application/json")], _error_body(
                "M_LIMIT_EXCEEDED", "Too many wrong passwords for this account from here. Wait a few minutes."))
        else:
            answer = await self._exchange(request, target, body_bytes)
            passed = filters.stage_completed("m.login.password", answer.status, answer.json())
            if passed:
                self._login_limits.login_succeeded(account, address)
        if not passed:
            await self._pad_failure(started)
        return _reply(answer)

    async def _media(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        """A file is served only to its uploader, to those who share a room with her, and to the hub's
        accounts: what a member uploads in clear (or a picture sent outside encrypted rooms) never reaches
        strangers or other lines. The bot downloads pictures from Synapse directly, not through here."""
        requester = await self._requester(request)
        if requester is None:
            return _matrix_error(401, "M_MISSING_TOKEN", "Sign in to download files.")
        try:
            uploader = await self._homeserver.media_uploader(*match.media)
            hub_accounts = self._protected_names.current()[0].hub_accounts
            allowed = not uploader or requester == uploader or requester in hub_accounts or uploader in hub_accounts \
                or uploader in await self._peers.visible(requester, {uploader})
        except CrosslineError:
            return _matrix_error(503, "M_UNKNOWN", "The file cannot be checked just now. Try again in a minute.")
        if not allowed:
            # As Synapse answers for a file that does not exist: a stranger learns nothing about it.
            return _matrix_error(404, "M_NOT_FOUND", "Not found")
        return await self._stream(request, _target(match.upstream_path, query))

    async def _profile_field(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        return _matrix_error(403, "M_FORBIDDEN", "Crossline profiles hold a display name only: other profile "
                             "fields would show your free text to others unchecked. Nothing was changed.")

    async def _not_here(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        return _matrix_error(404, "M_UNRECOGNIZED", "Unrecognized request")

    async def _register(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        body_bytes = await _read(request)
        body = _json(body_bytes)
        target = _target(match.upstream_path, query)
        if body_bytes and body is None:
            return _not_json()
        account = filters.password_stage_account(body)
        if account is not None:  # no Crossline registration has one
            return await self._password_stage(request, target, account, body_bytes)
        if not isinstance(body, dict) or _has_token(request) or body.get("type") == "m.login.application_service":
            return _reply(await self._exchange(request, target, body_bytes))
        now = self._clock.now_ms()
        proven = False
        code = filters.registration_token(body)
        if code is not None:
            token = synapse_token(self._token_key, code)
            body = filters.with_registration_token(body, token)
            try:
                proven = await self._homeserver.registration_token_usable(token, now)
            except CrosslineError:
                proven = False
        session = filters.uia_session(body)
        verified_at = self._verified_sessions.get(session or "")
        if verified_at is not None and now - verified_at <= VERIFIED_SESSION_MS:
            proven = True
        if not proven:
            # Synapse checks a user name before any auth stage and says M_USER_IN_USE: only
            # someone with a usable invitation may learn that a name is taken.
            body.pop("username", None)
        elif isinstance(body.get("username"), str):
            refusal = names.check_account_name(body["username"], await self._protected())
            if refusal:
                return _matrix_error(400, "M_INVALID_USERNAME", refusal)
        answer = await self._exchange(request, target, json.dumps(body).encode())
        if code is not None and filters.stage_completed(filters.REGISTRATION_TOKEN_STAGE, answer.status, answer.json()):
            data = answer.json()
            session = session or (data.get("session") if isinstance(data, dict) else None)
            if isinstance(session, str):
                self._remember_session(session, now)
        return _reply(answer)

    def _remember_session(self, session: str, now: int) -> None:
        if len(self._verified_sessions) >= MAX_VERIFIED_SESSIONS:
            self._verified_sessions.pop(next(iter(self._verified_sessions)))
        self._verified_sessions[session] = now

    async def _register_available(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        # Asked as GET even for HEAD, so the answer can be read and changed.
        answer = await self._exchange(request, _target(match.upstream_path, query), b"", method="GET")
        data = answer.json()
        if answer.status == 400 and isinstance(data, dict) and data.get("errcode") == "M_USER_IN_USE":
            # Taken or free, the answer is the same; registration itself checks again after the
            # invitation code.
            return web.json_response({"available": True})
        return _reply(answer)

    async def _token_validity(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        pairs = [(name, synapse_token(self._token_key, value) if name == "token" else value)
                 for name, value in parse_qsl(query, keep_blank_values=True)]
        return _reply(await self._exchange(request, _target(match.upstream_path, urlencode(pairs)), b"", method="GET"))

    async def _login(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        started = self._monotonic()
        body = await _read(request)
        parsed = _json(body)
        if body and parsed is None:
            return _not_json()
        account = filters.login_account(parsed)
        address = client_address(request, self._trusted_proxies)
        if account is not None and not self._login_limits.login_attempt(account, address):
            answer = _Answer(429, [("Content-Type", "application/json")], _error_body(
                "M_LIMIT_EXCEEDED", "Too many failed sign-ins for this account from here. Wait a few minutes."))
        else:
            answer = await self._exchange(request, _target(match.upstream_path, query), body)
        if answer.status == 200 and account is not None:
            self._login_limits.login_succeeded(account, address)
        if answer.status != 200:
            await self._pad_failure(started)
        return _reply(answer)

    async def _room_report(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        body_bytes = await _read(request)
        answer = await self._exchange(request, _target(match.upstream_path, query), body_bytes)
        if answer.status == 200:
            body = _json(body_bytes)
            reason = body.get("reason") if isinstance(body, dict) else None
            try:
                reporter = await self._requester(request)
                if reporter:
                    await self._on_room_report(reporter, match.room_id, reason if isinstance(reason, str) else "")
            except Exception as error:  # noqa: BLE001 - the reporter still gets Synapse's answer
                logger.warning("A room report could not be handed to the moderation queue (%s)", type(error).__name__)
        return _reply(answer)

    async def _display_name(self, request: web.Request, match: filters.Match, query: str) -> web.StreamResponse:
        """Checked here because Synapse stores the global name before it writes the joins that our
        module checks: a refused join would leave the name in her profile, shown to others."""
        body_bytes = await _read(request)
        body = _json(body_bytes)
        if body_bytes and body is None:
            return _not_json()
        name = filters.display_name(body)
        if name:
            requester = await self._requester(request)
            if requester is None:  # an unknown token, or Synapse cannot say whose it is: never unchecked
                return _matrix_error(503, "M_UNKNOWN", "Your new display name could not be checked just now, "
                                     "so it was not saved. Try again in a minute.")
            refusal = names.check_name(name, requester, await self._protected())
            if refusal:
                return _matrix_error(403, "M_FORBIDDEN", refusal)
        return _reply(await self._exchange(request, _target(match.upstream_path, query), body_bytes))

    async def _protected(self) -> names.Protected:
        """The hub's protected names, with its staff's and bot's display names as they are now."""
        protected, staff = self._protected_names.current()
        return await with_staff_names(protected, staff, self._homeserver.display_name)

    async def _requester(self, request: web.Request) -> str | None:
        token = _access_token(request)
        if not token:
            return None
        return await self._peers.owner(token, lambda: self._whoami(request))

    async def _whoami(self, request: web.Request) -> str | None:
        """Whose token the request carries, asked as the client (same address pseudonym), so
        Synapse's `user_ips` never gets an address for her device that she did not use."""
        token = _access_token(request) or ""
        answer = await self._exchange(request, f"{CLIENT_PREFIX}/account/whoami", b"", method="GET",
                                      extra_headers={"Authorization": f"Bearer {token}"})
        data = answer.json()
        user_id = data.get("user_id") if answer.status == 200 and isinstance(data, dict) else None
        return user_id if isinstance(user_id, str) else None


_HANDLERS = {
    Route.KEYS_QUERY: Gateway._keys,
    Route.KEYS_CLAIM: Gateway._keys,
    Route.REGISTER: Gateway._register,
    Route.REGISTER_AVAILABLE: Gateway._register_available,
    Route.TOKEN_VALIDITY: Gateway._token_validity,
    Route.LOGIN: Gateway._login,
    Route.ROOM_REPORT: Gateway._room_report,
    Route.SEND_TO_DEVICE: Gateway._send_to_device,
    Route.ADMIN: Gateway._not_here,
    Route.TOKEN_FALLBACK: Gateway._not_here,
    Route.USER_INTERACTIVE_AUTH: Gateway._user_interactive_auth,
    Route.DISPLAY_NAME: Gateway._display_name,
    Route.PROFILE_FIELD: Gateway._profile_field,
    Route.MEDIA: Gateway._media,
}


def create_gateway(gateway: Gateway) -> web.Application:
    app = web.Application(client_max_size=MAX_FILTERED_BODY)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    return app


# -- Helpers -------------------------------------------------------------------------------------------


def _target(path: str, query: str) -> str:
    return path + ("?" + query if query else "")


async def _read(request: web.Request) -> bytes:
    return await request.read() if request.body_exists else b""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, RecursionError):  # invalid UTF-8 included; nesting too deep to parse
        return None


def _access_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    return request.query.get("access_token") or None


def _has_token(request: web.Request) -> bool:
    return _access_token(request) is not None


def _copy_headers(headers, response: web.StreamResponse) -> None:
    for name, value in headers:
        if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
            response.headers.add(name, value)


def _reply(answer: _Answer, body: bytes | None = None) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body if body is None else body)
    _copy_headers(answer.headers, response)
    return response


def _error_body(errcode: str, error: str) -> bytes:
    return json.dumps({"errcode": errcode, "error": error}).encode()


def _not_json() -> web.Response:
    """Answered here: Synapse logs a body it cannot parse whole, password or invitation code included."""
    return _matrix_error(400, "M_NOT_JSON", "The request body is not valid JSON.")


def _matrix_error(status: int, errcode: str, error: str) -> web.Response:
    return web.Response(status=status, body=_error_body(errcode, error), content_type="application/json")
