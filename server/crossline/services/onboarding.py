"""Invitations, registration (on the hub page or in any Matrix client) and first-admin set-up."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from crossline.clock import token_hash
from crossline.domain import rules
from crossline.domain.records import STAFF_ROLES, Invitation, Line, Member
from crossline.errors import Conflict, InvalidInput, NotAllowed, NotFound
from crossline.gateway.tokens import synapse_token, token_key
from crossline.passwords import hash_password
from crossline.services.hub import Hub
from crossline.storage import invitations, lines, members, sessions
from crossline_policies import names

logger = logging.getLogger(__name__)

SETUP_LINK_LIFETIME_MS = 24 * 3600 * 1000
# Roles only an admin may hand out: they can see and act on other people's data.
ADMIN_GRANTED_ROLES = frozenset({"admin", "facilitator", "moderator"})


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    code: str
    link: str


def require(member: Member | None, role: str) -> Member:
    if member is None or not member.has(role):
        raise NotAllowed(f"Only a {role} can do this.")
    return member


async def issue_invitation(
    hub: Hub, issuer: Member, line_id: int, side_id: int | None, roles: frozenset[str]
) -> IssuedInvitation:
    require(issuer, "facilitator")
    if roles & ADMIN_GRANTED_ROLES and not issuer.has("admin"):
        raise NotAllowed("Only an admin can invite facilitators, moderators or admins.")
    with hub.engine.connect() as conn:
        line = lines.get_line(conn, line_id)
    if line is None:
        raise NotFound("That line does not exist.")
    if side_id is not None and line.side(side_id) is None:
        raise InvalidInput(f"That side is not one of the sides of {line.name}.")
    if side_id is None and not roles & STAFF_ROLES:
        raise InvalidInput(f"Choose the side of {line.name} this person belongs to.")
    code = hub.new_token()
    now = hub.clock.now_ms()
    expires_at = now + hub.config.invitations.lifetime_hours * 3600 * 1000
    # Synapse holds a single-use registration token derived from the code, expiring with it.
    await hub.homeserver.create_registration_token(registration_token(hub, code), expires_at)
    with hub.engine.begin() as conn:
        invitation_id = invitations.add_invitation(
            conn, invitation_hash(hub, code), line_id, side_id, roles, issuer.id, now, expires_at
        )
        invitation = next(i for i in invitations.list_invitations(conn, line_id) if i.id == invitation_id)
    return IssuedInvitation(invitation, code, f"{hub.config.hub_url}/join/{code}")


def registration_token(hub: Hub, code: str) -> str:
    """The registration token Synapse holds for an invitation code: never the code itself, so a
    copy of Synapse's database or log lets nobody register (see `crossline.gateway.tokens`)."""
    return synapse_token(token_key(hub.config.paths.secrets_dir), code)


def invitation_hash(hub: Hub, code: str) -> str:
    """How the hub stores an invitation, and how our Synapse module names its registration
    claim: the SHA-256 of the token Synapse saw."""
    return token_hash(registration_token(hub, code))


async def invitation_for_code(hub: Hub, code: str) -> tuple[Invitation, Line]:
    # Someone may have just used the code in a Matrix client: settle that first.
    await collect_registration_claim(hub, invitation_hash(hub, code))
    with hub.engine.connect() as conn:
        invitation = rules.check_invitation_usable(
            invitations.find_by_token_hash(conn, invitation_hash(hub, code)), hub.clock.now_ms()
        )
        line = lines.get_line(conn, invitation.line_id)
    assert line is not None  # foreign key
    return invitation, line


async def register_on_hub(hub: Hub, code: str, localpart: str, password: str) -> Member:
    """The hub page registers the Matrix account for her with the invitation's token."""
    invitation, _ = await invitation_for_code(hub, code)
    localpart = rules.check_localpart(localpart)
    refusal = names.check_account_name(localpart, await hub.protected_names_now())
    if refusal:
        raise InvalidInput(refusal)
    rules.check_password(password)
    user_id = await hub.homeserver.register_with_token(localpart, password, registration_token(hub, code))
    # argon2 (64 MiB, ~0.2 s) off the event loop, so nobody else's request waits for it.
    web_hash = await asyncio.to_thread(hash_password, password) if invitation.roles & STAFF_ROLES else None
    member = bind_registration(hub, invitation_hash(hub, code), user_id, web_hash)
    (hub.config.paths.registration_claims_dir / invitation_hash(hub, code)).unlink(missing_ok=True)
    return member


def bind_registration(hub: Hub, invitation_hash: str, user_id: str, web_password_hash: str | None) -> Member:
    """Make the account a member under its invitation. Safe to call twice for the same pair."""
    now = hub.clock.now_ms()
    try:
        with hub.engine.begin() as conn:
            invitation = invitations.find_by_token_hash(conn, invitation_hash)
            if invitation is None:
                raise NotFound("No invitation matches that registration.")
            existing = members.find_by_user_id(conn, user_id)
            if invitation.used_at is not None:
                if existing is not None and existing.id == invitation.member_id:
                    return existing
                raise Conflict("This invitation has already been used by another account.")
            if existing is not None:
                raise Conflict(f"{user_id} is already a member.")
            member_id = members.add_member(
                conn, user_id, invitation.line_id, invitation.side_id, invitation.roles, web_password_hash, now
            )
            if not invitations.mark_used(conn, invitation.id, member_id, now):
                raise Conflict("This invitation has just been used by another account.")
            member = members.get_member(conn, member_id)
    except IntegrityError as error:
        raise Conflict(f"{user_id} is already a member.") from error
    hub.publish_known_members()
    hub.publish_protected_names()
    return member


async def collect_registration_claims(hub: Hub) -> int:
    """Bind accounts registered in a Matrix client (Element, FluffyChat) with an invitation
    token. Returns how many were bound."""
    with hub.engine.connect() as conn:
        pending = invitations.pending_token_hashes(conn, hub.clock.now_ms())
    return sum([await collect_registration_claim(hub, invitation_hash) for invitation_hash in pending])


async def collect_registration_claim(hub: Hub, invitation_hash: str) -> bool:
    """Our Synapse module leaves a claim file named by the token's hash when someone registers
    with it; the account is checked on the homeserver before it becomes a member."""
    claim = hub.config.paths.registration_claims_dir / invitation_hash
    if not claim.exists():
        return False
    localpart = json.loads(claim.read_text(encoding="utf-8"))["localpart"]
    user_id = f"@{localpart}:{hub.config.synapse.server_name}"
    account = await hub.homeserver.user_info(user_id)
    if account is None:
        return False  # registration still under way, or it failed; look again next round
    with hub.engine.connect() as conn:
        invitation = invitations.find_by_token_hash(conn, invitation_hash)
    # The module records the claim just before Synapse creates the account. Only an account
    # created after the invitation, and not a server admin, can be the one that used it: an
    # older account with that name means the registration failed and the claim is stale.
    fresh = invitation is not None and account.get("creation_ts", 0) * 1000 >= invitation.created_at - 1000
    try:
        if fresh and not account.get("admin"):
            bind_registration(hub, invitation_hash, user_id, None)
        else:
            logger.warning("A registration claim named an account that existed before the invitation; ignored")
    except (Conflict, NotFound) as error:
        logger.warning("A registration claim could not be bound: %s", error.message)
    claim.unlink(missing_ok=True)
    return True


def issue_setup_link(hub: Hub) -> str | None:
    """A one-time link to create the first administrator, while there is none."""
    with hub.engine.begin() as conn:
        if members.count_admins(conn):
            return None
        code = hub.new_token()
        now = hub.clock.now_ms()
        sessions.add_setup_token(conn, token_hash(code), now, now + SETUP_LINK_LIFETIME_MS)
    return f"{hub.config.hub_url}/setup/{code}"


def setup_code_valid(hub: Hub, code: str) -> bool:
    with hub.engine.connect() as conn:
        return sessions.setup_token_valid(conn, token_hash(code), hub.clock.now_ms()) and not members.count_admins(conn)


async def create_first_admin(hub: Hub, code: str, localpart: str, password: str) -> Member:
    if not setup_code_valid(hub, code):
        raise NotAllowed("This set-up link has been used or has expired. Run `crossline setup-link` for a new one.")
    localpart = rules.check_localpart(localpart)
    rules.check_password(password)
    registration_token = hub.new_token()
    await hub.homeserver.create_registration_token(registration_token, hub.clock.now_ms() + 600_000)
    user_id = await hub.homeserver.register_with_token(localpart, password, registration_token)
    (hub.config.paths.registration_claims_dir / token_hash(registration_token)).unlink(missing_ok=True)
    web_hash = await asyncio.to_thread(hash_password, password)
    now = hub.clock.now_ms()
    with hub.engine.begin() as conn:
        if not sessions.use_setup_token(conn, token_hash(code), now):
            raise NotAllowed("This set-up link has just been used.")
        member_id = members.add_member(
            conn, user_id, None, None, frozenset({"admin", "facilitator", "moderator"}), web_hash, now
        )
        member = members.get_member(conn, member_id)
    hub.publish_known_members()
    hub.publish_protected_names()
    return member


@dataclass(frozen=True)
class WebParticipant:
    member: Member
    return_link: str


async def join_on_web(hub: Hub, code: str) -> WebParticipant:
    """Take part on the web only: no Matrix account, an opaque handle, and a personal link to come
    back with (shown once; stored only as a hash)."""
    invitation, _ = await invitation_for_code(hub, code)
    if invitation.roles & STAFF_ROLES:
        raise NotAllowed("Staff need a Matrix account: create one with the form on this page.")
    now = hub.clock.now_ms()
    handle = hub.new_token()[:10].lower()
    access = hub.new_token()
    with hub.engine.begin() as conn:
        member_id = members.add_member(conn, None, invitation.line_id, invitation.side_id, invitation.roles, None, now,
                                       web_handle=handle)
        if not invitations.mark_used(conn, invitation.id, member_id, now):
            raise Conflict("This invitation has just been used.")
        members.add_access_link(conn, token_hash(access), member_id, now)
        member = members.get_member(conn, member_id)
    await hub.homeserver.delete_registration_token(registration_token(hub, code))
    return WebParticipant(member, f"{hub.config.hub_url}/r/{access}")


def member_for_return_link(hub: Hub, token: str) -> Member:
    with hub.engine.connect() as conn:
        member = members.member_for_access_link(conn, token_hash(token))
    if member is None:
        raise NotFound("This personal link is not valid. Check that you copied all of it, or ask your facilitator.")
    return member
