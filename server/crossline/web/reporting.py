"""Reporting abuse without an account: the anonymous form, the reporter's status page, and the
reported person's appeal page. No login.

A flood cannot close the form: past the limits per client address and overall
(`web/ratelimit.py`), a report is not refused but held for review, kept like any other and shown
to moderators apart, so a genuine report sent during a flood is never lost.

What a reporter typed is given back to her form when something is refused, so nothing is lost.

Screenshots fill a disk, words barely: a held report keeps its words but not its screenshots, an
addition through a status link past its limits too, and no screenshot is kept past the hour's
byte budget, below the free-disk floor, or when rebuilding them (domain/pictures.clean) would wait
too long for a turn. Each time she is told, and told she can add them later.
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
# (so other people's requests go on), at most two at a time (so a flood of uploads cannot exhaust
# memory). Only the rebuilding waits for a turn, never her words: past PICTURE_WAIT_S seconds of
# waiting, her report is kept without its screenshots and she is told to add them later.
PICTURE_WORK = web.AppKey("picture_work", asyncio.Semaphore)
PICTURE_WAIT_S = 20.0


async def _rebuilt(request: web.Request, kept: list[bytes], not_kept: str | None):
    """(kept, rebuilt, not_kept): the uploads kept with their rebuilt pictures (service.check_images),
    or none if no turn came in time, with why, their bytes given back to the budget."""
    if not kept:
        return kept, service.Checked(), not_kept
    work = request.app[PICTURE_WORK]
    try:
        await asyncio.wait_for(work.acquire(), PICTURE_WAIT_S)
    except TimeoutError:
        request.app[LIMITS].screenshots_not_stored(sum(map(len, kept)))
        return [], service.Checked(), BUSY_SCREENSHOTS
    try:
        return kept, await asyncio.to_thread(service.check_images, kept), not_kept
    finally:
        work.release()


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
BUSY_SCREENSHOTS = ("Your screenshots were not kept this time, because many pictures are being received right now "
                    "(everything you wrote was). You can add them on your status page later: keep its link.")
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
        kept, checked, not_kept = await _rebuilt(request, kept, not_kept)
        new = service.report_from_web(request.app[HUB], entered["category"], entered["text"], entered["contact"],
                                      checked, held=held)
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
        service.case_for_reporter(request.app[HUB], token)  # a wrong link costs no rebuilding
        kept, checked, not_kept = await _rebuilt(request, kept, not_kept)
        service.add_from_reporter(request.app[HUB], token, text, checked, {"yes": True, "no": False}.get(choice))
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
