"""The composition root: `create_app(config)` builds the whole hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from crossline import secrets
from crossline.clock import Clock, SystemClock, TokenFactory, random_token
from crossline.config import Config
from crossline.errors import CrosslineError
from crossline.live.janus import Janus
from crossline.logs import scrub_client_addresses
from crossline.matrix.bot import HubBot
from crossline.matrix.homeserver import Homeserver, synapse_session
from crossline.services.hub import Hub
from crossline.services import audit_heads
from crossline.services import moderation as moderation_service
from crossline.services.housekeeping import forget_what_is_no_longer_needed
from crossline.services.pseudonym_pool import run_batches_forever
from crossline.services.onboarding import collect_registration_claims
from crossline.services.vote_batcher import VoteBatcher
from crossline.storage.db import create_database_engine, migrate
from crossline.web import contact as contact_pages
from crossline.web import (api, audit, consultations, join, live, moderation, participate, pseudonyms, ratelimit,
                           reporting, reports, staff)
from crossline.web.keys import BOT, HUB, JANUS, SESSION_CACHE, TEMPLATES, VOTES, WEB_SECRET
from crossline.web.render import template_environment
from crossline.web.security import MAX_UPLOAD_BYTES, MIDDLEWARES
from crossline_policies.rooms import load_room_templates

logger = logging.getLogger(__name__)

CLAIMS_POLL_SECONDS = 2.0
REPORT_INTAKE_INTERVAL_S = 3.0
HOUSEKEEPING_INTERVAL_S = 3600.0
# How often the audit log's new entries are checked and its head signed outside the database:
# entries removed from the end in between are the only ones no head shows.
AUDIT_HEAD_INTERVAL_S = 30.0


def create_app(
    config: Config, clock: Clock | None = None, new_token: TokenFactory = random_token, background: bool = True
) -> web.Application:
    scrub_client_addresses()
    secrets_dir = config.paths.secrets_dir
    secrets.check_secrets_present(secrets_dir)  # never made at run time: see `crossline init`
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=MAX_UPLOAD_BYTES)
    app[WEB_SECRET] = secrets.read_secret(secrets_dir, secrets.WEB_SECRET).encode()
    app[TEMPLATES] = template_environment()
    app[SESSION_CACHE] = {}
    engine = create_database_engine(config.database_url)
    migrate(engine)

    async def homeserver_ctx(app: web.Application) -> AsyncIterator[None]:
        session = synapse_session(config)
        admin_token_file = config.paths.secret(secrets.HUB_ADMIN_ACCESS_TOKEN)
        homeserver = Homeserver(
            config.homeserver_url,
            session,
            admin_token=secrets.read_secret(secrets_dir, secrets.HUB_ADMIN_ACCESS_TOKEN) if admin_token_file.exists() else "",
            as_token=secrets.read_secret(secrets_dir, secrets.APPSERVICE_AS_TOKEN),
        )
        app[HUB] = Hub(
            config=config,
            engine=engine,
            homeserver=homeserver,
            clock=clock or SystemClock(),
            new_token=new_token,
            room_templates=load_room_templates(),
        )
        app[HUB].publish_known_members()
        app[HUB].publish_protected_names()
        moderation_service.seal_clear_reasons(app[HUB])  # reasons written before migration 0015
        moderation_service.recover_interrupted(app[HUB])  # decisions a stop cut short wait again
        app[VOTES] = VoteBatcher(app[HUB])
        app[VOTES].start()
        yield
        await app[VOTES].stop()
        await session.close()
        engine.dispose()

    async def background_ctx(app: web.Application) -> AsyncIterator[None]:
        if not background:
            yield
            return
        hub = app[HUB]
        stop = asyncio.Event()
        bot = HubBot(hub, hub.homeserver.session)
        app[BOT] = bot
        tasks = [asyncio.create_task(_collect_claims_forever(hub)), asyncio.create_task(bot.run(stop)),
                 asyncio.create_task(_take_in_reports_forever(hub)), asyncio.create_task(_housekeeping_forever(hub)),
                 asyncio.create_task(run_batches_forever(hub)), asyncio.create_task(_keep_audit_head_forever(hub))]
        yield
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):  # the last entries' head, so a stopped hub's log ends where it did
            audit_heads.keep(hub, daily=False)
        await bot.close()

    async def live_engine_ctx(app: web.Application) -> AsyncIterator[None]:
        """The adapter to Janus (live sessions' media); it connects on first use."""
        app[JANUS] = Janus.from_config(config)
        yield
        await app[JANUS].close()

    app.cleanup_ctx.extend([*([live_engine_ctx] if config.live.enabled else []), homeserver_ctx, background_ctx])
    app.router.add_get("/_crossline/health", health)
    ratelimit.setup(app)
    staff.setup_routes(app)
    join.setup_routes(app)
    consultations.setup_routes(app)
    participate.setup_routes(app)
    contact_pages.setup_routes(app)
    api.setup_routes(app)
    reports.setup_routes(app)
    moderation.setup_routes(app)
    audit.setup_routes(app)
    reporting.setup_routes(app)
    pseudonyms.setup_routes(app)
    live.setup(app)  # after the cleanup contexts above: it uses the hub, the bot and the Janus adapter
    app.router.add_static("/static", join.static_dir(), show_index=False)
    return app


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _take_in_reports_forever(hub: Hub) -> None:
    """Element's reports reach the moderation queue within seconds."""
    while True:
        try:
            await moderation_service.take_in_matrix_reports(hub)
        except CrosslineError as error:
            logger.warning("Taking in reports failed: %s", error.message)
        except Exception:  # noqa: BLE001 - retried; only the type is logged
            logger.exception("Taking in reports failed")
        await asyncio.sleep(REPORT_INTAKE_INTERVAL_S)


async def _housekeeping_forever(hub: Hub) -> None:
    while True:
        try:
            forget_what_is_no_longer_needed(hub)
        except Exception:  # noqa: BLE001 - retried next hour; only the type is logged
            logger.exception("Housekeeping failed")
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)


async def _keep_audit_head_forever(hub: Hub) -> None:
    while True:
        try:
            await asyncio.to_thread(audit_heads.keep, hub)  # the first keep may check the whole log
        except Exception:  # noqa: BLE001 - retried; only the type is logged
            logger.exception("Keeping the audit log's signed head failed")
        await asyncio.sleep(AUDIT_HEAD_INTERVAL_S)


async def _collect_claims_forever(hub: Hub) -> None:
    """Accounts registered in Element with an invitation token become members within seconds."""
    while True:
        try:
            await collect_registration_claims(hub)
        except CrosslineError as error:
            logger.warning("Collecting registrations failed: %s", error.message)
        except Exception:
            logger.exception("Collecting registrations failed")
        await asyncio.sleep(CLAIMS_POLL_SECONDS)
