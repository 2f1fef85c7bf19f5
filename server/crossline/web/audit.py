"""The moderators' page of the audit log: whether it verifies, its entries in words (filtered and
paged as `crossline audit list`), and the latest signed head to download."""

from __future__ import annotations

import asyncio

from aiohttp import web

from crossline.errors import InvalidInput
from crossline.services import audit_listing as service
from crossline.web.keys import HUB
from crossline.web.render import render
from crossline.web.security import staff_member

FIELDS = ("case", "moderator", "since", "until")
PAGE_SIZE = 100


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/moderation/audit", audit_page)
    app.router.add_get("/moderation/audit/head", head)


async def audit_page(request: web.Request) -> web.Response:
    actor = staff_member(request)
    typed = {name: request.query.get(name, "") for name in FIELDS}
    try:  # verifying reads the whole log: off the event loop
        page = await asyncio.to_thread(service.page, request.app[HUB], actor,
                                       {**typed, "before": request.query.get("before")}, PAGE_SIZE)
    except InvalidInput as error:  # the form again, with what she typed and what to write instead
        return render(request, "moderation_audit.html", {"typed": typed, "error": error.message}, status=error.status)
    older = str(request.rel_url.update_query(before=page.listing.older)) if page.listing.older else None
    newest = str(request.rel_url.with_query(typed)) if "before" in request.query else None
    return render(request, "moderation_audit.html", {"typed": typed, "page": page, "older": older, "newest": newest})


async def head(request: web.Request) -> web.Response:
    text = await asyncio.to_thread(service.head_file, request.app[HUB], staff_member(request))
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="crossline-audit-head.txt"'})
