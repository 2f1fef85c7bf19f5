"""Report pages: the facilitator's draft, narrative and release; negotiators' list and downloads.

Downloads are the signed JSON (the exact released bytes) and renderings of it that show the hub
key's fingerprint and the JSON's SHA-256.
"""

from __future__ import annotations

from aiohttp import web

from crossline.reports.signing import verify_report
from crossline.services import reports as service
from crossline.web.keys import HUB
from crossline.web.render import render
from crossline.web.security import staff_member


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/consultations/{cid:\\d+}/report", page)
    app.router.add_post("/consultations/{cid:\\d+}/report", start)
    app.router.add_post("/reports/{rid:\\d+}/narrative", narrative)
    app.router.add_post("/reports/{rid:\\d+}/release", release)
    app.router.add_get("/reports", index)
    app.router.add_get("/reports/{rid:\\d+}", view)
    app.router.add_get("/reports/{rid:\\d+}/report.{fmt:json|md|html|pdf}", download)


async def page(request: web.Request) -> web.Response:
    found = service.draft_page(request.app[HUB], staff_member(request), int(request.match_info["cid"]))
    return render(request, "report_draft.html", {
        "consultation": found.consultation, "line": found.line, "versions": found.versions, "draft": found.draft,
        "report": found.content, "rooms": found.rooms, "fingerprint": found.fingerprint})


async def start(request: web.Request) -> web.Response:
    report = service.start_draft(request.app[HUB], staff_member(request), int(request.match_info["cid"]))
    raise web.HTTPSeeOther(f"/consultations/{report.consultation_id}/report")


async def narrative(request: web.Request) -> web.Response:
    form = await request.post()
    report = service.save_narrative(request.app[HUB], staff_member(request), int(request.match_info["rid"]),
                                    str(form.get("narrative", "")))
    raise web.HTTPSeeOther(f"/consultations/{report.consultation_id}/report")


async def release(request: web.Request) -> web.Response:
    form = await request.post()
    report = service.release(request.app[HUB], staff_member(request), int(request.match_info["rid"]),
                             str(form.get("room_id", "")).strip() or None)
    raise web.HTTPSeeOther(f"/reports/{report.id}")


async def index(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return render(request, "reports.html", {"releases": service.releases(hub, staff_member(request)),
                                            "fingerprint": service.hub_fingerprint(hub)})


def _released(request: web.Request):
    record, data = service.read_release(request.app[HUB], staff_member(request), int(request.match_info["rid"]))
    verified = verify_report(data)  # what we serve is what was signed
    return record, data, verified


async def view(request: web.Request) -> web.Response:
    record, _, verified = _released(request)
    return render(request, "report_view.html", {"record": record, "report": verified.report,
                                                "fingerprint": verified.fingerprint, "sha256": verified.sha256})


async def download(request: web.Request) -> web.Response:
    record, data, verified = _released(request)
    fmt = request.match_info["fmt"]
    name = f"crossline-report-{record.consultation_id}-v{record.version}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "json":
        return web.Response(body=data, content_type="application/json", headers=headers)
    # Every other copy carries the hub's signature over its own bytes (reports/copies.py).
    hub = request.app[HUB]
    if fmt == "md":
        return web.Response(body=service.signed_copy(hub, data, "markdown"), content_type="text/markdown",
                            charset="utf-8", headers=headers)
    if fmt == "pdf":
        return web.Response(body=service.signed_copy(hub, data, "pdf"), content_type="application/pdf", headers=headers)
    html = render(request, "report_document.html", {"report": verified.report, "fingerprint": verified.fingerprint,
                                                    "sha256": verified.sha256}).body
    return web.Response(body=service.signed_copy(hub, data, "html", html), content_type="text/html", charset="utf-8",
                        headers=headers)
