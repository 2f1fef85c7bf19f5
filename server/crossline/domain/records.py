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
    matrix_user_id: str | None  # None: takes part on the web only
    line_id: int | None
    side_id: int | None
    roles: frozenset[str]
    web_password_hash: str | None
    created_at: int
    web_handle: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    @property
    def shown_as(self) -> str:
        return self.matrix_user_id or f"web participant {self.web_handle}"


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
