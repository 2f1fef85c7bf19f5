"""Plain records passed between storage, services and pages."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("participant", "facilitator", "moderator", "negotiator", "admin")
STAFF_ROLES = frozenset({"facilitator", "moderator", "negotiator", "admin"})


@dataclass(frozen=True)
class Side:
    id: int
    line_id: int
    name: str


@dataclass(frozen=True)
class Line:
    id: int
    slug: str
    name: str
    sides: tuple[Side, ...]

    def side(self, side_id: int) -> Side | None:
        return next((side for side in self.sides if side.id == side_id), None)


@dataclass(frozen=True)
class Member:
    id: int
    matrix_user_id: str
    line_id: int | None
    side_id: int | None
    roles: frozenset[str]
    web_password_hash: str | None
    created_at: int

    def has(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles


@dataclass(frozen=True)
class Invitation:
    id: int
    line_id: int
    side_id: int | None
    roles: frozenset[str]
    created_by: int
    created_at: int
    expires_at: int
    used_at: int | None
    member_id: int | None


@dataclass(frozen=True)
class Room:
    id: int
    room_id: str
    line_id: int
    template: str
    name: str
    created_by: int
    created_at: int
