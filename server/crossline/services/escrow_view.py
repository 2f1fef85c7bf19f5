"""What the escrow page shows, by role: a moderator her own key and the escrow's quorum; an admin,
who sets the escrow up, also which moderators have a key."""

from __future__ import annotations

from dataclasses import dataclass

from crossline.domain.records import Member
from crossline.errors import NotAllowed
from crossline.services.hub import Hub
from crossline.storage import members as member_store
from crossline.storage import pseudonyms as store


@dataclass(frozen=True)
class EscrowView:
    escrow: store.Escrow | None
    moderators: list[Member]  # empty unless the actor is an admin
    with_keys: set[int]  # an admin: every moderator with a key; a moderator: herself, if she has one


def escrow_view(hub: Hub, actor: Member | None) -> EscrowView:
    if actor is None or not actor.has("moderator"):
        raise NotAllowed("Only moderators and admins can open the pseudonym escrow.")
    with hub.engine.connect() as conn:
        escrow = store.current_escrow(conn)
        with_keys = set(store.members_with_keys(conn))
        if not actor.has("admin"):
            return EscrowView(escrow, [], with_keys & {actor.id})
        moderators = [m for m in member_store.list_members(conn) if m.has("moderator") and m.matrix_user_id]
    return EscrowView(escrow, moderators, with_keys)
