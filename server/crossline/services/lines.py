"""Conflict lines and their sides."""

from __future__ import annotations

from crossline.domain import rules
from crossline.domain.records import Line, Member
from crossline.errors import Conflict
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.storage import lines


def create_line(hub: Hub, actor: Member, name: str, sides_text: str) -> Line:
    require(actor, "admin")
    name = rules.clean_name(name, "The line's name")
    side_names = rules.parse_sides(sides_text)
    slug = rules.slugify(name)
    with hub.engine.begin() as conn:
        if lines.slug_taken(conn, slug):
            raise Conflict(f"A line called {name!r} already exists.")
        line_id = lines.add_line(conn, slug, name, side_names, hub.clock.now_ms())
        line = lines.get_line(conn, line_id)
    assert line is not None
    return line
