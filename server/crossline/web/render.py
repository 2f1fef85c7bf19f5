"""Server-rendered pages from `crossline_web`'s jinja2 templates (autoescaped)."""

from __future__ import annotations

import hmac
from hashlib import sha256
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from crossline.web.keys import CSRF_COOKIE_VALUE, HUB, MEMBER, TEMPLATES, WEB_SECRET


def template_environment() -> Environment:
    return Environment(
        loader=PackageLoader("crossline_web", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def csrf_token_for(request: web.Request) -> str:
    """The form token: an HMAC of this browser's CSRF cookie under the hub's secret."""
    return hmac.new(request.app[WEB_SECRET], request[CSRF_COOKIE_VALUE].encode(), sha256).hexdigest()


def render(request: web.Request, name: str, context: dict[str, Any] | None = None, status: int = 200) -> web.Response:
    hub = request.app[HUB]
    page = request.app[TEMPLATES].get_template(name).render(
        {
            "member": request.get(MEMBER),
            "csrf_token": csrf_token_for(request) if request.get(CSRF_COOKIE_VALUE) else "",
            "quick_exit_url": hub.config.hub.quick_exit_url,
            "server_name": hub.config.synapse.server_name,
            **(context or {}),
        }
    )
    return web.Response(text=page, content_type="text/html", charset="utf-8", status=status)
