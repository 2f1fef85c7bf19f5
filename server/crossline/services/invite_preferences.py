"""Whom a member takes Matrix invitations from: her choice, stored by the hub and published to its
Synapse module (crossline_policies.contact applies it before an invitation is stored)."""

from __future__ import annotations

from crossline.domain.records import Member
from crossline.errors import InvalidInput, NotFound
from crossline.services.hub import Hub
from crossline.storage import invite_preferences as store
from crossline_policies.contact import DEFAULT_INVITES_FROM, INVITES_FROM


def _matrix_member(member: Member) -> Member:
    if not member.matrix_user_id:
        raise NotFound("You take part on the web only, without a Matrix account: nobody can invite you to a "
                       "Matrix room, so there is nothing to choose here.")
    return member


def current(hub: Hub, member: Member) -> str:
    with hub.engine.connect() as conn:
        return store.get(conn, _matrix_member(member).id) or DEFAULT_INVITES_FROM


def choose(hub: Hub, member: Member, invites_from: str) -> str:
    _matrix_member(member)
    if invites_from not in INVITES_FROM:
        raise InvalidInput("Choose one of the three answers: nobody, people you share a room with, or "
                           "people of your dialogue line. Nothing was changed.")
    with hub.engine.begin() as conn:
        store.set_preference(conn, member.id, invites_from, hub.clock.now_ms())
    hub.publish_known_members()  # takes effect with the next invitation anyone sends her
    return invites_from
