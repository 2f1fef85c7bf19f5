"""Pages for people arriving with a link: an invitation, or the first administrator's set-up."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from importlib import resources

from crossline.errors import InvalidInput, NotAllowed
from crossline.services import onboarding
from crossline.web.keys import HUB
from crossline.web.render import render
from crossline.web.security import start_session


def static_dir() -> Path:
    return Path(str(resources.files("crossline_web").joinpath("static")))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/join/{code}", join_page)
    app.router.add_post("/join/{code}", join_register)
    app.router.add_get("/setup/{code}", setup_page)
    app.router.add_post("/setup/{code}", setup_submit)


async def join_page(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    code = request.match_info["code"]
    invitation, line = await onboarding.invitation_for_code(hub, code)
    return render(request, "join.html", _join_context(hub, code, invitation, line))


def _join_context(hub, code, invitation, line) -> dict:
    return {
        "code": code,
        "line": line,
        "side": line.side(invitation.side_id) if invitation.side_id else None,
        "homeserver_url": hub.config.homeserver_public_url,
        "expires_at": invitation.expires_at,
    }


async def join_register(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    code = request.match_info["code"]
    invitation, line = await onboarding.invitation_for_code(hub, code)
    form = await request.post()
    username = str(form.get("username", ""))
    password = str(form.get("password", ""))
    if password != str(form.get("password_again", "")):
        context = _join_context(hub, code, invitation, line)
        return render(request, "join.html", {**context, "error": "The two passwords differ.", "username": username}, status=400)
    try:
        member = await onboarding.register_on_hub(hub, code, username, password)
    except InvalidInput as error:
        context = _join_context(hub, code, invitation, line)
        return render(request, "join.html", {**context, "error": error.message, "username": username}, status=400)
    return render(
        request, "joined.html",
        {"user_id": member.matrix_user_id, "homeserver_url": hub.config.homeserver_public_url},
    )


async def setup_page(request: web.Request) -> web.Response:
    if not onboarding.setup_code_valid(request.app[HUB], request.match_info["code"]):
        raise NotAllowed("This set-up link has been used or has expired. Run `crossline setup-link` for a new one.")
    return render(request, "setup.html", {"code": request.match_info["code"]})


async def setup_submit(request: web.Request) -> web.Response:
    form = await request.post()
    code = request.match_info["code"]
    password = str(form.get("password", ""))
    if password != str(form.get("password_again", "")):
        return render(request, "setup.html", {"code": code, "error": "The two passwords differ."}, status=400)
    try:
        member = await onboarding.create_first_admin(request.app[HUB], code, str(form.get("username", "")), password)
    except InvalidInput as error:
        return render(request, "setup.html", {"code": code, "error": error.message}, status=400)
    response = web.HTTPSeeOther("/lines")
    start_session(request, response, member)
    raise response
