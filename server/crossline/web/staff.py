"""Staff pages: log in, lines and sides, members, invitations, rooms. Thin: parse, call a
service, render."""

from __future__ import annotations

from aiohttp import web

from crossline.errors import HomeserverError

from crossline.domain import rules
from crossline.domain.records import ROLES
from crossline.passwords import PasswordChecksBusy, verify_password
from crossline.services import lines as line_service
from crossline.services import onboarding, rooms as room_service
from crossline.storage import members
from crossline.web.forms import optional_form_int, read_form
from crossline.web.keys import HUB, LIVE, MEMBER
from crossline.web.ratelimit import LIMITS, LOGIN_FAILURE_ANSWER_MS, PASSWORD_CHECKS, client
from crossline.web.render import render
from crossline.web.security import end_session, staff_member, start_session

def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/lines", lines_page)
    app.router.add_post("/lines", create_line)
    app.router.add_get("/lines/{line_id:\\d+}", line_page)
    app.router.add_post("/lines/{line_id:\\d+}/invitations", issue_invitation)
    app.router.add_post("/lines/{line_id:\\d+}/rooms", create_room)


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(home_for(request[MEMBER]))


def home_for(member) -> str:
    """Each role's first page: the one its work starts from."""
    if member is None:
        return "/login"
    for role, page in (("facilitator", "/lines"), ("moderator", "/moderation"), ("negotiator", "/reports")):
        if member.has(role):
            return page
    return "/participate"


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html")


async def login(request: web.Request) -> web.Response:
    """Every failed login does the same work (one argon2 verification, against the account's hash
    or a dummy one; Synapse's check only for a participant with a Matrix account) and answers at the
    same moment after it began: neither the answer nor its time tells anyone who is on the hub.
    Attempts are limited per account and client address together, so nobody can lock anyone out."""
    hub, limits = request.app[HUB], request.app[LIMITS]
    began = hub.clock.now_ms()
    form = await read_form(request)
    username = str(form.get("username", "")).strip().lower().removeprefix("@").split(":")[0]
    password = str(form.get("password", ""))
    address = client(request)
    if not limits.login_attempt(username, address):
        return render(request, "login.html", {"error": "Too many failed attempts for this account from here. "
                                                       "Wait 15 minutes and try again."}, status=429)
    with hub.engine.connect() as conn:
        member = members.find_by_user_id(conn, f"@{username}:{hub.config.synapse.server_name}")
    try:
        matches = await request.app[PASSWORD_CHECKS].run(verify_password, member.web_password_hash if member else None,
                                                         password)
    except PasswordChecksBusy:
        # Not a guess: given back. Answered at the moment a failure is, so the time tells nothing.
        limits.login_succeeded(username, address)
        await limits.pacer.wait_until(began + LOGIN_FAILURE_ANSWER_MS)
        return render(request, "login.html", {"error": "Too many sign-ins at once. Try again in a minute."},
                      status=429)
    if not (matches or await _matrix_password_matches(hub, member, password)):
        await limits.pacer.wait_until(began + LOGIN_FAILURE_ANSWER_MS)
        return render(request, "login.html", {"error": "That user name and password do not match."}, status=401)
    limits.login_succeeded(username, address)
    response = web.HTTPSeeOther(home_for(member))
    start_session(request, response, member)
    raise response


async def _matrix_password_matches(hub, member, password: str) -> bool:
    """A participant with a Matrix account (and no hub password) signs in to the web pages with her
    Matrix password, checked by Synapse without leaving a trail: the device its login makes is
    deleted through the admin API, its token never used (see Homeserver.password_matches)."""
    if member is None or member.web_password_hash is not None or not member.matrix_user_id or not password:
        return False
    try:
        return await hub.homeserver.password_matches(member.matrix_user_id, password)
    except HomeserverError:
        return False


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    end_session(request, response)
    raise response


async def lines_page(request: web.Request) -> web.Response:
    found = line_service.overview(request.app[HUB], staff_member(request))
    return render(request, "lines.html", {"lines": found.lines, "staff": found.staff})


async def create_line(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await request.post()
    line = line_service.create_line(request.app[HUB], actor, str(form.get("name", "")), str(form.get("sides", "")))
    raise web.HTTPSeeOther(f"/lines/{line.id}")


def _line_context(request: web.Request, actor, line_id: int) -> dict:
    hub = request.app[HUB]
    found = line_service.details(hub, actor, line_id)
    return {"line": found.line, "members": found.members, "staff": found.staff, "rooms": found.rooms,
            "invitations": found.invitations, "consultations": found.consultations,
            "templates": hub.room_templates, "roles": ROLES, "now_ms": hub.clock.now_ms(),
            "live_sessions": request.app[LIVE].room_sessions_of_line(actor, line_id)}


async def line_page(request: web.Request) -> web.Response:
    return render(request, "line.html", _line_context(request, staff_member(request),
                                                      int(request.match_info["line_id"])))


async def issue_invitation(request: web.Request) -> web.Response:
    actor = staff_member(request)
    line_id = int(request.match_info["line_id"])
    form = await request.post()
    roles = rules.parse_roles(str(role) for role in form.getall("roles", []))
    side_id = optional_form_int(form.get("side_id"), "The side")
    issued = await onboarding.issue_invitation(request.app[HUB], actor, line_id, side_id, roles)
    context = _line_context(request, actor, line_id)
    return render(request, "invitation_issued.html", {**context, "issued": issued})


async def create_room(request: web.Request) -> web.Response:
    actor = staff_member(request)
    line_id = int(request.match_info["line_id"])
    form = await request.post()
    member_ids = [optional_form_int(value, "A chosen member") for value in form.getall("member_ids", [])]
    room = await room_service.create_room(
        request.app[HUB],
        actor,
        line_id,
        str(form.get("template", "")),
        str(form.get("name", "")),
        str(form.get("topic", "")),
        [member_id for member_id in member_ids if member_id is not None],
    )
    context = _line_context(request, actor, line_id)
    return render(request, "line.html", {**context, "notice": f"Room “{room.name}” created and invitations sent."})

