from __future__ import annotations

from sqlalchemy import Connection, insert, select

from crossline.domain.records import Line, Side
from crossline.storage.schema import lines, sides


def add_line(conn: Connection, slug: str, name: str, side_names: list[str], now_ms: int) -> int:
    line_id = conn.execute(insert(lines).values(slug=slug, name=name, created_at=now_ms)).inserted_primary_key[0]
    conn.execute(insert(sides), [{"line_id": line_id, "name": side} for side in side_names])
    return line_id


def slug_taken(conn: Connection, slug: str) -> bool:
    return conn.execute(select(lines.c.id).where(lines.c.slug == slug)).first() is not None


def list_lines(conn: Connection) -> list[Line]:
    side_rows = conn.execute(select(sides).order_by(sides.c.id)).all()
    by_line: dict[int, list[Side]] = {}
    for row in side_rows:
        by_line.setdefault(row.line_id, []).append(Side(id=row.id, line_id=row.line_id, name=row.name))
    return [
        Line(id=row.id, slug=row.slug, name=row.name, sides=tuple(by_line.get(row.id, ())))
        for row in conn.execute(select(lines).order_by(lines.c.name)).all()
    ]


def get_line(conn: Connection, line_id: int) -> Line | None:
    return next((line for line in list_lines(conn) if line.id == line_id), None)
