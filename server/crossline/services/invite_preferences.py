"""Whom a member takes Matrix invitations from: her choice, stored by the hub and published to its
Synapse module (crossline_policies.contact applies it before an invitation is stored)."""

from __future__ import annotations

from crossline.domain.records import Member
from crossline.errors import CrosslineError, InvalidInput, NotFound
from crossline.services.hub import Hub
from crossline.storage import invite_preferences as store
from crossline_policies.contact import DEFAULT_INVITES_FROM, INVITES_FROM


class NotApplied(CrosslineError):
    """Stored, but Synapse's module could not be told: undone, and she is asked to try again."""

    status = 503


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
        previous = store.get(conn, member.id)
        store.set_preference(conn, member.id, invites_from, hub.clock.now_ms())
    try:
        hub.publish_known_members()  # takes effect with the next invitation anyone sends her
    except OSError as error:
        # Not applied, so not kept: what she sees saved is what Synapse's module applies.
        with hub.engine.begin() as conn:
            if previous is None:
                store.clear(conn, member.id)
            else:
                store.set_preference(conn, member.id, previous, hub.clock.now_ms())
        raise NotApplied("Your choice could not be applied just now, so nothing was changed. Try again in a "
                         "minute; if it keeps failing, tell the hub's administrator.") from error
    return invites_from
