"""Typed application keys: what `create_app` puts in the app for handlers to use."""

from aiohttp import web
from jinja2 import Environment

from crossline.live.janus import Janus
from crossline.matrix.bot import HubBot
from crossline.services.hub import Hub
from crossline.services.live import LiveSessions
from crossline.services.vote_batcher import VoteBatcher

HUB = web.AppKey("hub", Hub)
WEB_SECRET = web.AppKey("web_secret", bytes)
TEMPLATES = web.AppKey("templates", Environment)
BOT = web.AppKey("bot", HubBot)
VOTES = web.AppKey("votes", VoteBatcher)
SESSION_CACHE = web.AppKey("session_cache", dict)
JANUS = web.AppKey("janus", Janus)  # only when [live] enabled
LIVE = web.AppKey("live", LiveSessions)

# Per-request values set by the middlewares.
MEMBER = web.RequestKey("member", object)  # crossline.domain.records.Member | None
CSRF_COOKIE_VALUE = web.RequestKey("csrf_cookie", str)
