"""The moderators' pages: the queue, a case with its evidence (opened only here), triage, the
decision and a second moderator's agreement; on appeal, who may decide it and the lift."""

from __future__ import annotations

from aiohttp import web

from crossline.domain.moderation import ACTION_LABELS, CATEGORY_LABELS, Action, Category
from crossline.services import moderation as service
from crossline.services import pseudonyms as pseudonym_service
from crossline.web.keys import HUB
from crossline.web.render import render
from crossline.web.security import staff_member


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/moderation", queue)
    app.router.add_get("/moderation/cases/{case_id:\\d+}", case_page)
    app.router.add_get("/moderation/cases/{case_id:\\d+}/evidence/{evidence_id:\\d+}", image)
    app.router.add_post("/moderation/cases/{case_id:\\d+}/triage", triage)
    app.router.add_post("/moderation/cases/{case_id:\\d+}/decide", decide)
    app.router.add_post("/moderation/cases/{case_id:\\d+}/agree", agree)


async def queue(request: web.Request) -> web.Response:
    actor = staff_member(request)
    cases = service.queue(request.app[HUB], actor)
    return render(request, "moderation_queue.html", {"cases": cases, "labels": CATEGORY_LABELS,
                                                     "policy_room": service.known_policy_room(request.app[HUB], actor)})


async def case_page(request: web.Request, notice: str | None = None) -> web.Response:
    actor = staff_member(request)
    view = service.view(request.app[HUB], actor, int(request.match_info["case_id"]))
    appeal = service.appeal_deciders(request.app[HUB], actor, view.case.id)
    return render(request, "moderation_case.html", {
        "view": view, "case": view.case, "unmask_requests": pseudonym_service.unmasking_requests(
            request.app[HUB], actor, view.case.id), "labels": CATEGORY_LABELS, "categories": list(Category),
        "actions": [(a.value, ACTION_LABELS[a]) for a in Action if appeal or a is not Action.LIFT],
        "action_labels": ACTION_LABELS, "notice": notice, "appeal": appeal})


async def image(request: web.Request) -> web.Response:
    mime, data = service.evidence_image(request.app[HUB], staff_member(request), int(request.match_info["case_id"]),
                                        int(request.match_info["evidence_id"]))
    return web.Response(body=data, content_type=mime)


async def triage(request: web.Request) -> web.Response:
    form = await request.post()
    case_id = int(request.match_info["case_id"])
    service.triage(request.app[HUB], staff_member(request), case_id, str(form.get("category", "")),
                   form.get("urgent") == "on")
    raise web.HTTPSeeOther(f"/moderation/cases/{case_id}")


async def decide(request: web.Request) -> web.Response:
    form = await request.post()
    outcome = await service.decide(request.app[HUB], staff_member(request), int(request.match_info["case_id"]),
                                   [str(a) for a in form.getall("action", [])], str(form.get("reason", "")))
    return await case_page(request, notice=outcome)


async def agree(request: web.Request) -> web.Response:
    outcome = await service.agree(request.app[HUB], staff_member(request), int(request.match_info["case_id"]))
    return await case_page(request, notice=outcome)
