"""Facilitator pages for consultations: design, phases, the room, moderation, live participation."""

from __future__ import annotations

from aiohttp import web

from crossline.domain.consultations import NEXT_PHASE, Phase, parse_questions_text
from crossline.services import consultations as service
from crossline.services import pseudonyms as pseudonym_service
from crossline.services import rooms as room_service
from crossline.storage import consultations as store
from crossline.storage import lines, members
from crossline.web.forms import form_int
from crossline.web.keys import HUB
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


def _line(request: web.Request, line_id: int):
    with request.app[HUB].engine.connect() as conn:
        line = lines.get_line(conn, line_id)
    if line is None:
        raise web.HTTPNotFound(text="No such line.")
    return line


async def new_page(request: web.Request) -> web.Response:
    staff_member(request)
    return render(request, "consultation_new.html", {"line": _line(request, int(request.match_info["line_id"]))})


async def create(request: web.Request) -> web.Response:
    actor = staff_member(request)
    line = _line(request, int(request.match_info["line_id"]))
    form = await request.post()
    side_ids = [form_int(value, "A side") for value in form.getall("side_ids", [])]
    consultation = service.create(
        request.app[HUB], actor, line.id, str(form.get("title", "")), parse_questions_text(str(form.get("questions", ""))),
        side_ids, premoderation=form.get("premoderation") == "on",
    )
    raise web.HTTPSeeOther(f"/consultations/{consultation.id}")


def _context(request: web.Request, consultation_id: int) -> dict:
    hub = request.app[HUB]
    actor = staff_member(request)
    with hub.engine.connect() as conn:
        consultation = service.get(conn, consultation_id)
        line = lines.get_line(conn, consultation.line_id)
        statements = store.list_statements(conn, consultation_id)
        reasons = store.moderation_reasons(conn, consultation_id)
    return {
        "consultation": consultation,
        "line": line,
        "statements": statements,
        "reasons": reasons,
        "next_phase": NEXT_PHASE.get(consultation.phase),
        "participation": service.participation(hub, actor, consultation_id),
    }


async def page(request: web.Request) -> web.Response:
    return render(request, "consultation.html", _context(request, int(request.match_info["cid"])))


async def live(request: web.Request) -> web.Response:
    return render(request, "consultation_live.html", _context(request, int(request.match_info["cid"])))


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
    """The consultation's encrypted room, with every member of its sides who has a Matrix account."""
    actor = staff_member(request)
    hub = request.app[HUB]
    consultation_id = int(request.match_info["cid"])
    with hub.engine.connect() as conn:
        consultation = service.get(conn, consultation_id)
        invitees = [m.id for m in members.list_members(conn, consultation.line_id)
                    if m.matrix_user_id and m.side_id in consultation.eligible_side_ids]
    # Pseudonyms belong to one consultation each: only this one's are invited.
    invitees = [i for i in invitees if pseudonym_service.own_consultation(hub, i) in (None, consultation_id)]
    if consultation.room_id is None:
        room = await room_service.create_room(hub, actor, consultation.line_id, "consultation", consultation.title,
                                              "", invitees)
        service.attach_room(hub, actor, consultation_id, room.room_id)
    raise web.HTTPSeeOther(f"/consultations/{consultation_id}")


async def seed(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await request.post()
    consultation_id = int(request.match_info["cid"])
    service.submit_statement(request.app[HUB], actor, consultation_id, form_int(form.get("question_id"), "The question"),
                             str(form.get("text", "")), "seed", str(form.get("submission_id", "")) or None)
    raise web.HTTPSeeOther(f"/consultations/{consultation_id}")


async def moderate(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await request.post()
    consultation_id = int(request.match_info["cid"])
    service.moderate(request.app[HUB], actor, consultation_id, form_int(form.get("number"), "The statement"),
                     form.get("decision") == "approve", str(form.get("reason", "")))
    raise web.HTTPSeeOther(f"/consultations/{consultation_id}#statements")
