"""A small JSON API for participants' clients (and the benchmark): votes.

Authenticated by the participant's session cookie; CSRF-protected by the `X-CSRF-Token` header,
which a page of this hub can read from its own forms and another site cannot.
"""

from __future__ import annotations

from aiohttp import web

from crossline.domain.consultations import VoteValue, parse_vote
from crossline.errors import InvalidInput
from crossline.web.forms import bounded_int, read_json
from crossline.web.keys import VOTES
from crossline.web.security import participant_member

MAX_VOTES_PER_REQUEST = 50


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/consultations/{cid:\\d+}/votes", cast_votes)
    app.router.add_get("/api/csrf", csrf_token)


async def csrf_token(request: web.Request) -> web.Response:
    from crossline.web.render import csrf_token_for

    participant_member(request)
    return web.json_response({"csrf_token": csrf_token_for(request)})


async def cast_votes(request: web.Request) -> web.Response:
    member = participant_member(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput('Send a JSON object: {"votes": [[3, "agree"]], "submission_id": "..."}')
    pairs = body.get("votes", [[body.get("number"), body.get("value")]])
    if not isinstance(pairs, list) or not 1 <= len(pairs) <= MAX_VOTES_PER_REQUEST:
        raise InvalidInput(f"Send between 1 and {MAX_VOTES_PER_REQUEST} votes.")
    choices = [_vote(pair) for pair in pairs]
    submission_id = body.get("submission_id")
    if submission_id is not None and not (isinstance(submission_id, str) and 8 <= len(submission_id) <= 64):
        raise InvalidInput("submission_id must be a string of 8 to 64 characters.")
    recorded = await request.app[VOTES].cast(member, int(request.match_info["cid"]), choices, submission_id)
    return web.json_response({"recorded": recorded})


def _vote(pair: object) -> tuple[int, VoteValue]:
    if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int) and isinstance(pair[1], str):
        number = bounded_int(pair[0])  # None for JSON true/false (a bool is an int) and past 64 bits
        if number is not None:
            return number, parse_vote(pair[1])
    raise InvalidInput('Each vote is [statement number, "agree" | "disagree" | "pass"].')
