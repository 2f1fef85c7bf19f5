"""A member's own page: whom she takes Matrix invitations from."""

from __future__ import annotations

from aiohttp import web

from crossline.services import invite_preferences as service
from crossline.web.forms import read_form
from crossline.web.keys import HUB
from crossline.web.render import render
from crossline.web.security import participant_member

PATH = "/participate/who-may-invite"


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, page)
    app.router.add_post(PATH, choose)


async def page(request: web.Request) -> web.Response:
    chosen = service.current(request.app[HUB], participant_member(request))
    return render(request, "invitations_from.html", {"chosen": chosen, "saved": request.query.get("saved") == "1"})


async def choose(request: web.Request) -> web.Response:
    form = await read_form(request)
    service.choose(request.app[HUB], participant_member(request), str(form.get("invites_from", "")))
    raise web.HTTPSeeOther(f"{PATH}?saved=1")
