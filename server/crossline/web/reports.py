"""Report pages: the facilitator's draft, narrative and release; negotiators' list and downloads.

Downloads are the signed JSON (the exact released bytes) and renderings of it that show the hub
key's fingerprint and the JSON's SHA-256. The check page gives a reader the verdict of
`crossline verify` on a file she uploads. Pages show a report's text neutralised
(reports/neutral.py): no member's words can reorder the page around them.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiohttp import web

from crossline.reports.neutral import neutral, neutral_tree
from crossline.reports.signing import verify_report
from crossline.reports.verdict import day
from crossline.services import reports as service
from crossline.web.keys import HUB
from crossline.web.forms import read_form
from crossline.web.render import render
from crossline.web.security import staff_member


# Checking an uploaded PDF takes up to a third of a second of CPU and tens of MB: at most two at a
# time, so that parallel uploads cannot exhaust the hub's memory (the others wait their turn).
REPORT_CHECKS = web.AppKey("report_checks", asyncio.Semaphore)


def setup_routes(app: web.Application) -> None:
    app[REPORT_CHECKS] = asyncio.Semaphore(2)
    app.router.add_get("/consultations/{cid:\\d+}/report", page)
    app.router.add_post("/consultations/{cid:\\d+}/report", start)
    app.router.add_post("/reports/{rid:\\d+}/narrative", narrative)
    app.router.add_post("/reports/{rid:\\d+}/release", release)
    app.router.add_get("/reports", index)
    app.router.add_get("/reports/check", check_page)
    app.router.add_post("/reports/check", check_upload)
    app.router.add_get("/reports/{rid:\\d+}", view)
    app.router.add_get("/reports/{rid:\\d+}/report.{fmt:json|md|html|pdf}", download)


async def page(request: web.Request) -> web.Response:
    found = service.draft_page(request.app[HUB], staff_member(request), int(request.match_info["cid"]))
    return render(request, "report_draft.html", {
        "consultation": found.consultation, "title": neutral(found.consultation.title), "line_name": neutral(found.line.name),
        "versions": found.versions, "draft": found.draft,
        "report": found.content and neutral_tree(found.content), "rooms": found.rooms, "fingerprint": found.fingerprint,
        "day": day})


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
    # Titles and line names neutralised like every other report text: none can reorder the list.
    rows = [replace(row, title=neutral(row.title), line=neutral(row.line))
            for row in service.releases(hub, staff_member(request))]
    return render(request, "reports.html", {"releases": rows,
                                            "fingerprint": service.hub_fingerprint(hub),
                                            "pdf_certificate": service.pdf_certificate_fingerprint(hub), "day": day})


# A report's PDF is well under this; the limit answers larger uploads with 413 before reading them.
MAX_CHECK_BYTES = 1024 * 1024


async def check_page(request: web.Request) -> web.Response:
    service.require_reader(staff_member(request))
    return render(request, "report_check.html", {"verdict": None, "max_kb": MAX_CHECK_BYTES // 1024})


def _uploaded(field) -> bytes | None:
    """A chosen file's bytes (maybe none: an empty file is checked too); None when none was chosen."""
    return field.file.read() if isinstance(field, web.FileField) and field.filename else None


async def check_upload(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await read_form(request)
    data, signature = _uploaded(form.get("report")), _uploaded(form.get("signature"))
    context = {"verdict": None, "max_kb": MAX_CHECK_BYTES // 1024}
    if data is None:
        service.require_reader(actor)
        context["missing"] = True
    else:
        # Checking a PDF's signature takes CPU: beside the event loop, so other people's pages go on.
        async with request.app[REPORT_CHECKS]:
            context["verdict"] = await asyncio.to_thread(service.check_file, request.app[HUB], actor, data, signature)
    return render(request, "report_check.html", context)


check_upload.max_body_bytes = MAX_CHECK_BYTES  # type: ignore[attr-defined]


def _released(request: web.Request):
    record, data = service.read_release(request.app[HUB], staff_member(request), int(request.match_info["rid"]))
    verified = verify_report(data)  # what we serve is what was signed
    # What pages show: the same report with every text neutralised (the signed bytes stay as they are).
    return record, data, replace(verified, report=neutral_tree(verified.report))


async def view(request: web.Request) -> web.Response:
    record, _, verified = _released(request)
    return render(request, "report_view.html", {
        "record": record, "report": verified.report, "fingerprint": verified.fingerprint, "sha256": verified.sha256,
        "released_on": day(verified.report["released_at"]), "closed_on": day(verified.report["consultation"]["closed_at"]),
        "newer": service.superseded_by(request.app[HUB], record), "day": day,
        "pdf_certificate": service.pdf_certificate_fingerprint(request.app[HUB])})


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
        # Rendering and signing a PDF takes a third of a second of CPU: beside the event loop.
        pdf = await asyncio.to_thread(service.signed_copy, hub, data, "pdf")
        return web.Response(body=pdf, content_type="application/pdf", headers=headers)
    html = render(request, "report_document.html", {"report": verified.report, "fingerprint": verified.fingerprint,
                                                    "sha256": verified.sha256}).body
    return web.Response(body=service.signed_copy(hub, data, "html", html), content_type="text/html", charset="utf-8",
                        headers=headers)
