"""Reporting abuse without an account: the anonymous form, the reporter's status page, and the
reported person's appeal page. No login.

A flood cannot close the form: past the limits per client address and overall
(`web/ratelimit.py`), a report is not refused but held for review, kept like any other and shown
to moderators apart, so a genuine report sent during a flood is never lost.

What a reporter typed is given back to her form when something is refused, so nothing is lost.

Screenshots fill a disk, words barely: a held report keeps its words but not its screenshots, an
addition through a status link past its limits too, and no screenshot is kept past the hour's
byte budget or below the free-disk floor. Each time she is told, and told she can add them later.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from crossline.domain.moderation import ACTION_LABELS, CATEGORY_LABELS, Category
from crossline.errors import CrosslineError
from crossline.services import moderation as service
from crossline.storage import moderation as store
from crossline.web.forms import read_form
from crossline.web.keys import HUB, MEMBER
from crossline.web.ratelimit import LIMITS, client
from crossline.web.render import render
from crossline.web.security import accepts_uploads


# Rebuilding a large picture takes seconds of CPU and hundreds of MB: it runs beside the event loop
# (so other people's requests go on), at most two at a time (so a flood of uploads cannot exhaust memory).
PICTURE_WORK = web.AppKey("picture_work", asyncio.Semaphore)


async def _beside_the_loop(request: web.Request, call, *args, **kwargs):
    async with request.app[PICTURE_WORK]:
        return await asyncio.to_thread(call, *args, **kwargs)


def setup_routes(app: web.Application) -> None:
    app[PICTURE_WORK] = asyncio.Semaphore(2)
    app.router.add_get("/report", form_page)
    app.router.add_post("/report", submit)
    app.router.add_get("/report/status/{token}", status_page)
    app.router.add_post("/report/status/{token}", add_more)
    app.router.add_get("/appeal/{token}", appeal_page)
    app.router.add_post("/appeal/{token}", appeal)


def _categories() -> list[tuple[str, str]]:
    return [(c.value, CATEGORY_LABELS[c]) for c in Category]


async def _images(form) -> list[bytes]:
    images = []
    for item in form.getall("screenshots", []):
        if isinstance(item, web.FileField):
            data = item.file.read()
            if data:
                images.append(data)
    return images


# Why screenshots were not kept, told to her. Her words always are.
HELD_SCREENSHOTS = ("Your screenshots were not kept this time, because so many reports are arriving right now "
                    "(everything you wrote was). You can add them on your status page later: keep its link.")
BUSY_LINK_SCREENSHOTS = ("Your screenshots were not kept, because a lot has been added to this report (or from "
                         "here) in the last hour. Add them again in an hour.")
NO_ROOM_SCREENSHOTS = ("Your screenshots were not kept, because the hub is short of room for them right now. "
                       "You can add them on your status page later.")


def _screenshots_to_keep(request: web.Request, images: list[bytes], refused: str | None) -> tuple[list, str | None]:
    """The screenshots to keep, and why the others were not."""
    if not images:
        return [], None
    if refused is None and not request.app[LIMITS].screenshots_fit(sum(map(len, images))):
        refused = NO_ROOM_SCREENSHOTS
    return ([], refused) if refused else (images, None)


async def form_page(request: web.Request) -> web.Response:
    return render(request, "report_form.html", {"categories": _categories(), "entered": {}})


@accepts_uploads
async def submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    entered = {key: str(form.get(key, "")) for key in ("category", "text", "contact", "country")}
    limits = request.app[LIMITS]
    held = limits.report_must_be_held(client(request))
    kept, not_kept = _screenshots_to_keep(request, await _images(form), HELD_SCREENSHOTS if held else None)
    try:
        new = await _beside_the_loop(request, service.report_from_web, request.app[HUB], entered["category"],
                                     entered["text"], entered["contact"], kept, held=held)
    except CrosslineError as error:
        limits.screenshots_not_stored(sum(map(len, kept)))
        return render(request, "report_form.html", {"categories": _categories(), "entered": entered,
                                                    "error": error.message}, status=error.status)
    return render(request, "report_sent.html", {
        "case_id": new.case_id, "held": held, "screenshots_not_kept": not_kept,
        "status_url": f"{request.app[HUB].config.hub_url}/report/status/{new.status_token}",
        "services": service.support_services(request.app[HUB], entered["country"])})


async def status_page(request: web.Request, notice: str | None = None, error: str | None = None,
                      status: int = 200) -> web.Response:
    hub = request.app[HUB]
    case = service.case_for_reporter(hub, request.match_info["token"])
    with hub.engine.connect() as conn:
        decisions = [d for d in store.list_decisions(conn, case.id) if d.status == "done"]
    return render(request, "report_status.html", {
        "case": case, "outcome": ACTION_LABELS[decisions[-1].action] if decisions else None,
        "services": service.support_services(hub), "notice": notice, "error": error}, status=status)


@accepts_uploads
async def add_more(request: web.Request) -> web.Response:
    """Past the limits per link and per address, words are still kept (a genuine reporter's words
    are never lost), screenshots are not; an addition with no words is refused until later."""
    form = await read_form(request)
    limits, token = request.app[LIMITS], request.match_info["token"]
    text, choice = str(form.get("text", "")), str(form.get("wants_action", ""))
    allowed = limits.status_addition_allowed(token, client(request))
    if not allowed and not text.strip():
        return await status_page(request, error="A lot has been added to this report (or from here) in the last "
                                                "hour. Try again in an hour.", status=429)
    kept, not_kept = _screenshots_to_keep(request, await _images(form), None if allowed else BUSY_LINK_SCREENSHOTS)
    try:
        await _beside_the_loop(request, service.add_from_reporter, request.app[HUB], token, text, kept,
                               {"yes": True, "no": False}.get(choice))
    except CrosslineError as error:
        limits.screenshots_not_stored(sum(map(len, kept)))
        return await status_page(request, error=error.message, status=error.status)
    if not_kept:
        return await status_page(request, notice="Your words were added. Thank you." if text.strip() else None,
                                 error=not_kept)
    return await status_page(request, notice="Added. Thank you.")


async def appeal_page(request: web.Request) -> web.Response:
    view = service.decision_view(request.app[HUB], request[MEMBER], request.match_info["token"])
    return render(request, "appeal.html", {"token": request.match_info["token"], "view": view})


async def appeal(request: web.Request) -> web.Response:
    form = await read_form(request)
    case = service.appeal(request.app[HUB], request[MEMBER], request.match_info["token"], str(form.get("text", "")))
    return render(request, "appeal.html", {"token": request.match_info["token"], "sent": case.id})
