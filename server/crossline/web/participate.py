"""Taking part on the web without a Matrix app: read questions, send statements, vote, change votes.

Every form carries a fresh submission id, so a form sent twice (a retry after a network error,
a double tap) is applied once. After a post the browser is redirected, so reloading does not
resend it.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from crossline.domain.consultations import Phase, parse_vote
from crossline.errors import InvalidInput
from crossline.services import consultations as service
from crossline.services import onboarding
from crossline.web.forms import form_int
from crossline.web.keys import HUB, LIVE, MEMBER, VOTES
from crossline.web.render import render
from crossline.web.security import participant_member, start_session


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/join/{code}/web", join_on_web)
    app.router.add_get("/r/{token}", return_link)
    app.router.add_post("/r/{token}", return_link)
    app.router.add_get("/participate", index)
    app.router.add_get("/participate/{cid:\\d+}", consultation_page)
    app.router.add_post("/participate/{cid:\\d+}/statements", submit_statement)
    app.router.add_post("/participate/{cid:\\d+}/votes", cast_vote)


async def join_on_web(request: web.Request) -> web.Response:
    joined = await onboarding.join_on_web(request.app[HUB], request.match_info["code"])
    response = render(request, "web_joined.html", {"return_link": joined.return_link})
    start_session(request, response, joined.member)
    return response


async def return_link(request: web.Request) -> web.Response:
    """A personal link signs its person in. In a browser signed in as someone else it asks first,
    saying whose session would end, and goes on only by a CSRF-checked POST: a link opened by
    mistake, or sent to make her act under another name, never silently replaces her session."""
    member = onboarding.member_for_return_link(request.app[HUB], request.match_info["token"])
    current = request[MEMBER]
    if request.method != "POST" and current is not None and current.id != member.id:  # HEAD is a GET
        return render(request, "switch_session.html", {"current": current, "other": member, "action": request.path})
    response = web.HTTPSeeOther("/participate")
    start_session(request, response, member)
    raise response


async def index(request: web.Request) -> web.Response:
    member = participant_member(request)
    return render(request, "participate_index.html", {"consultations": service.consultations_for(request.app[HUB], member)})


def _open_consultation(request: web.Request, member):
    return service.open_to(request.app[HUB], member, int(request.match_info["cid"]))


async def consultation_page(request: web.Request) -> web.Response:
    found = service.participant_view(request.app[HUB], participant_member(request), int(request.match_info["cid"]))
    return render(request, "participate.html", {
        "consultation": found.consultation, "side": found.side, "ballot": found.ballot, "mine": found.mine,
        "reasons": found.reasons, "my_votes": found.my_votes, "submission_id": secrets.token_urlsafe(16),
        "Phase": Phase, "notice": _notices.get(request.query.get("done", "")),
        "pseudonyms_available": found.pseudonyms_available,
        "live_sessions": request.app[LIVE].sessions_open_to(participant_member(request), found.consultation.id),
    })


_notices = {
    "statement": "Thank you: your statement was received.",
    "vote": "Your vote is recorded. You can change it until voting closes.",
}


def _submission_id(form) -> str:
    value = str(form.get("submission_id", ""))
    if not 8 <= len(value) <= 64:
        raise InvalidInput("This form is out of date. Reload the page and try again.")
    return value


async def submit_statement(request: web.Request) -> web.Response:
    member = participant_member(request)
    consultation = _open_consultation(request, member)
    form = await request.post()
    question_id = form_int(form.get("question_id"), "The question")
    service.submit_statement(request.app[HUB], member, consultation.id, question_id, str(form.get("text", "")), "web",
                             _submission_id(form))
    raise web.HTTPSeeOther(f"/participate/{consultation.id}?done=statement")


async def cast_vote(request: web.Request) -> web.Response:
    member = participant_member(request)
    consultation = _open_consultation(request, member)
    form = await request.post()
    number = form_int(form.get("number"), "The statement")
    await request.app[VOTES].cast(member, consultation.id, [(number, parse_vote(str(form.get("value", ""))))],
                                  _submission_id(form))
    raise web.HTTPSeeOther(f"/participate/{consultation.id}?done=vote#s{number}")
