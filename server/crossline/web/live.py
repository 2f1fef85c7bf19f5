"""Live sessions on the web: the page, its JSON API, and the staff forms that open, schedule and
start a session and name its interpreters. Thin: each handler parses and calls the service, which
decides who may do what. JSON errors say what to fix, and never come as a 5xx (a media server
failure is answered 409 with its sentence)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from crossline.errors import Conflict, CrosslineError, InvalidInput
from crossline.services.live import LiveSessions, parse_schedule
from crossline.web.forms import bounded_int, form_int, read_form, read_json
from crossline.web.keys import BOT, HUB, JANUS, LIVE, MEMBER
from crossline.web.render import render
from crossline.web.security import participant_member, staff_member

LID = "{lid:[A-Za-z0-9_-]+}"


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_live_ctx)
    app.router.add_get(f"/live/{LID}", page)
    app.router.add_post(f"/live/{LID}/start", start)
    app.router.add_post(f"/live/{LID}/interpreters", name_interpreter)
    app.router.add_post("/consultations/{cid:\\d+}/live-sessions", open_for_consultation)
    app.router.add_post("/rooms/{room:\\d+}/live-sessions", open_for_room)
    api = f"/api/live/{LID}"
    app.router.add_post(f"{api}/join", join)
    app.router.add_post(f"{api}/publish", publish)
    app.router.add_post(f"{api}/subscribe", subscribe)
    app.router.add_post(f"{api}/subscribe/answer", subscribe_answer)
    app.router.add_get(f"{api}/state", state)
    app.router.add_post(f"{api}/hand", hand)
    app.router.add_post(f"{api}/leave", leave)
    app.router.add_post(f"{api}/control", control)


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    """The service, with the Janus adapter and the bot when the app has them (the bot posts the
    widget and keys); Janus's events are consumed for the app's lifetime."""
    janus = app[JANUS] if JANUS in app else None  # none when [live] is off
    app[LIVE] = LiveSessions(app[HUB], janus, app[BOT] if BOT in app else None)
    consumer = asyncio.create_task(app[LIVE].consume_events()) if janus is not None else None
    yield
    if consumer is not None:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError, CrosslineError):
            await consumer
    await app[LIVE].close()


def _no_server_errors(handler):
    """The media server's failures reach the page as a 409 with their sentence."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except CrosslineError as error:
            if error.status >= 500:
                raise Conflict(error.message) from error
            raise

    return wrapped


# -- The page ---------------------------------------------------------------------------------------


async def page(request: web.Request) -> web.Response:
    lid = request.match_info["lid"]
    if request[MEMBER] is None:
        # A link followed from Element arrives without the SameSite=Strict session cookie; one
        # reload from this page itself sends it. Still nobody signed in: say how to sign in.
        return render(request, "live_signin.html", {"reload": request.query.get("checked") != "1", "lid": lid},
                      status=403)
    context = await request.app[LIVE].page(request[MEMBER], lid)
    scheduled = context["live"].scheduled_at
    starts = datetime.fromtimestamp(scheduled / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M") if scheduled else ""
    return render(request, "live_session.html", {**context, "api_base": f"/api/live/{lid}", "starts": starts})


# -- Staff forms --------------------------------------------------------------------------------------


async def open_for_consultation(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await read_form(request)
    session = request.app[LIVE].open_for_consultation(actor, int(request.match_info["cid"]),
                                                      parse_schedule(str(form.get("starts_at", ""))),
                                                      str(form.get("title", "")))
    raise web.HTTPSeeOther(f"/live/{session.public_id}")


async def open_for_room(request: web.Request) -> web.Response:
    actor = staff_member(request)
    form = await read_form(request)
    session = request.app[LIVE].open_for_room(actor, int(request.match_info["room"]),
                                              parse_schedule(str(form.get("starts_at", ""))),
                                              str(form.get("title", "")))
    raise web.HTTPSeeOther(f"/live/{session.public_id}")


async def start(request: web.Request) -> web.Response:
    lid = request.match_info["lid"]
    await request.app[LIVE].start(staff_member(request), lid)
    raise web.HTTPSeeOther(f"/live/{lid}")


async def name_interpreter(request: web.Request) -> web.Response:
    actor = staff_member(request)
    lid = request.match_info["lid"]
    form = await read_form(request)
    await request.app[LIVE].name_interpreter(actor, lid, form_int(form.get("member_id"), "The interpreter"),
                                             str(form.get("language", "")))
    raise web.HTTPSeeOther(f"/live/{lid}")


# -- The JSON API ---------------------------------------------------------------------------------------


async def _body(request: web.Request) -> dict:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("Send a JSON object.")
    return body


@_no_server_errors
async def join(request: web.Request) -> web.Response:
    member, body = participant_member(request), await _body(request)
    return web.json_response(await request.app[LIVE].join(
        member, request.match_info["lid"], body.get("video", False), body.get("role", "listener"),
        body.get("language")))


@_no_server_errors
async def publish(request: web.Request) -> web.Response:
    member, body = participant_member(request), await _body(request)
    return web.json_response(await request.app[LIVE].publish(member, request.match_info["lid"], body.get("sdp"),
                                                             body.get("video", False)))


@_no_server_errors
async def subscribe(request: web.Request) -> web.Response:
    member, body = participant_member(request), await _body(request)
    return web.json_response(await request.app[LIVE].subscribe(member, request.match_info["lid"], body.get("feeds")))


@_no_server_errors
async def subscribe_answer(request: web.Request) -> web.Response:
    member, body = participant_member(request), await _body(request)
    return web.json_response(await request.app[LIVE].subscribe_answer(member, request.match_info["lid"],
                                                                      body.get("sdp")))


@_no_server_errors
async def state(request: web.Request) -> web.Response:
    member = participant_member(request)
    since = request.query.get("since")
    since_number = bounded_int(since) if since is not None else None
    if since is not None and since_number is None:
        raise InvalidInput("since is the version number of the last state you received.")
    return web.json_response(await request.app[LIVE].state(member, request.match_info["lid"], since_number))


@_no_server_errors
async def hand(request: web.Request) -> web.Response:
    member, body = participant_member(request), await _body(request)
    return web.json_response(await request.app[LIVE].hand(member, request.match_info["lid"], body.get("raised")))


@_no_server_errors
async def leave(request: web.Request) -> web.Response:
    member = participant_member(request)
    return web.json_response(await request.app[LIVE].leave(member, request.match_info["lid"]))


@_no_server_errors
async def control(request: web.Request) -> web.Response:
    member, body = participant_member(request), await _body(request)
    return web.json_response(await request.app[LIVE].control(member, request.match_info["lid"], body.get("action"),
                                                             body.get("participant_id")))
