"""Facilitator pages for consultations: design, phases, the room, moderation, live participation.
Thin: each handler authenticates, parses, calls a service that checks the actor, renders."""

from __future__ import annotations

from aiohttp import web

from crossline.domain.consultations import NEXT_PHASE, Phase, parse_questions_text
from crossline.services import consultations as service
from crossline.services import lines as line_service
from crossline.web.forms import form_int
from crossline.web.keys import HUB, LIVE
from crossline.web.render import render
from crossline.web.security import staff_member


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/lines/{line_id:\\d+}/consultations/new", new_page)
    app.router.add_post("/lines/{line_id:\\d+}/consultations", create)
    app.router.add_get("/consultations/{cid:\\d+}", page)
    app.router.add_get("/consultations/{cid:\\d+}/live", live)
    app.router.add_post("/consultations/{cid:\\d+}/phase", change_phase)
    app.router.add_post("/consultations/{cid:\\d+}/room", create_room)
    app.router.add_post("/consultations/{cid:\\d+}/statements", seed)
    app.router.add_post("/consultations/{cid:\\d+}/moderate", moderate)


async def new_page(request: web.Request) -> web.Response:
    line = line_service.line(request.app[HUB], staff_member(request), int(request.match_info["line_id"]))
    return render(request, "consultation_new.html", {"line": line})


async def create(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await request.post()
    side_ids = [form_int(value, "A side") for value in form.getall("side_ids", [])]
    consultation = service.create(
        request.app[HUB], actor, int(request.match_info["line_id"]), str(form.get("title", "")),
        parse_questions_text(str(form.get("questions", ""))), side_ids, premoderation=form.get("premoderation") == "on",
    )
    raise web.HTTPSeeOther(f"/consultations/{consultation.id}")


def _context(request: web.Request) -> dict:
    found = service.facilitator_view(request.app[HUB], staff_member(request), int(request.match_info["cid"]))
    return {"consultation": found.consultation, "line": found.line, "statements": found.statements,
            "reasons": found.reasons, "revisions": {s.id: service.text_revision(s.text) for s in found.statements},
            "next_phase": NEXT_PHASE.get(found.consultation.phase),
            "participation": found.participation,
            "live_sessions": request.app[LIVE].sessions_for_consultation(staff_member(request), found.consultation.id)}


async def page(request: web.Request) -> web.Response:
    return render(request, "consultation.html", _context(request))


async def live(request: web.Request) -> web.Response:
    return render(request, "consultation_live.html", _context(request))


async def change_phase(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await request.post()
    try:
        target = Phase(str(form.get("target", "")))
    except ValueError:
        target = Phase.DRAFT  # refused by the engine with a sentence that says what is possible
    consultation = service.change_phase(request.app[HUB], actor, int(request.match_info["cid"]), target)
    raise web.HTTPSeeOther(f"/consultations/{consultation.id}")


async def create_room(request: web.Request) -> web.Response:
    consultation = await service.create_room(request.app[HUB], staff_member(request), int(request.match_info["cid"]))
    raise web.HTTPSeeOther(f"/consultations/{consultation.id}")


async def seed(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await request.post()
    consultation_id = int(request.match_info["cid"])
    service.seed_statement(request.app[HUB], actor, consultation_id, form_int(form.get("question_id"), "The question"),
                           str(form.get("text", "")), str(form.get("submission_id", "")) or None)
    raise web.HTTPSeeOther(f"/consultations/{consultation_id}")


async def moderate(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await request.post()
    consultation_id = int(request.match_info["cid"])
    service.moderate(request.app[HUB], actor, consultation_id, form_int(form.get("number"), "The statement"),
                     form.get("decision") == "approve", str(form.get("reason", "")), str(form.get("seen", "")) or None)
    raise web.HTTPSeeOther(f"/consultations/{consultation_id}#statements")
