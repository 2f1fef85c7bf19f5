"""Pages for pseudonyms: a participant takes one for a consultation; moderators set their escrow
key; an admin sets up the escrow; moderators request and approve unmasking on a case."""

from __future__ import annotations

from aiohttp import web

from crossline.services import pseudonyms as service
from crossline.services.escrow_view import escrow_view
from crossline.web.forms import form_int
from crossline.web.keys import HUB
from crossline.web.render import render
from crossline.web.security import participant_member, staff_member


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/participate/{cid:\\d+}/pseudonym", take_pseudonym)
    app.router.add_get("/moderation/escrow", escrow_page)
    app.router.add_post("/moderation/escrow/key", set_key)
    app.router.add_post("/moderation/escrow", set_up)
    app.router.add_post("/moderation/cases/{case_id:\\d+}/unmask", request_unmasking)
    app.router.add_post("/moderation/unmask/{request_id:\\d+}/approve", approve)


async def take_pseudonym(request: web.Request) -> web.Response:
    person = participant_member(request)
    form = await request.post()
    new = await service.create_pseudonym(request.app[HUB], person, int(request.match_info["cid"]),
                                         str(form.get("display_name", "")))
    config = request.app[HUB].config
    return render(request, "pseudonym_created.html", {
        "new": new, "homeserver_url": config.homeserver_public_url,
        "invited_within_minutes": -(-4 * config.pseudonyms.decoupling_seconds // 60)})


def _escrow_context(request: web.Request, notice: str | None = None) -> dict:
    actor = staff_member(request)
    found = escrow_view(request.app[HUB], actor)
    return {"actor": actor, "escrow": found.escrow, "moderators": found.moderators, "with_keys": found.with_keys,
            "notice": notice}


async def escrow_page(request: web.Request) -> web.Response:
    return render(request, "escrow.html", _escrow_context(request))


async def set_key(request: web.Request) -> web.Response:
    form = await request.post()
    service.set_moderator_key(request.app[HUB], staff_member(request), str(form.get("passphrase", "")))
    return render(request, "escrow.html", _escrow_context(request, "Your escrow key is set. Remember the passphrase: "
                                                                   "nobody can recover it."))


async def set_up(request: web.Request) -> web.Response:
    form = await request.post()
    escrow = service.set_up_escrow(request.app[HUB], staff_member(request), form_int(form.get("threshold"), "The quorum"),
                                   [form_int(v, "A moderator") for v in form.getall("moderator_ids", [])])
    return render(request, "escrow.html", _escrow_context(
        request, f"The escrow is set up: {escrow.threshold} of {len(escrow.holders)} moderators together can unmask."))


async def request_unmasking(request: web.Request) -> web.Response:
    form = await request.post()
    case_id = int(request.match_info["case_id"])
    service.request_unmasking(request.app[HUB], staff_member(request), case_id, str(form.get("pseudonym", "")),
                              str(form.get("reason", "")))
    raise web.HTTPSeeOther(f"/moderation/cases/{case_id}")


async def approve(request: web.Request) -> web.Response:
    form = await request.post()
    hub = request.app[HUB]
    step = service.approve_unmasking(hub, staff_member(request), int(request.match_info["request_id"]),
                                     str(form.get("passphrase", "")))
    if step.unmasked_user_id:
        await service.tell_unmasked_member(hub, step.unmasked_user_id if step.unmasked_user_id.startswith("@") else None)
        text = f"Unmasked by the quorum: {step.unmasked_user_id}. This is recorded in the case and the audit log."
    else:
        text = f"Approved: {step.approvals} of {step.threshold} approvals."
    return render(request, "notice.html", {"message": text, "back": "/moderation"})
