"""Pseudonymous participation and accountable unmasking.

A member takes part in a consultation under a pseudonym: a separate Matrix account with an
opaque id and a name she chooses, plus a web handle. The hub stores the pseudonym as an ordinary
member of her side; who is behind it is sealed to the escrow key, which only k moderators
together can rebuild. Nothing the hub logs names the person: audit entries about a pseudonym say
"participant", not who.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nacl.utils import random as random_bytes

from crossline import secrets
from crossline.clock import token_hash
from crossline.domain import pseudonyms as rules
from crossline.domain.consultations import Phase
from crossline.domain.records import Member
from crossline.errors import Conflict, InvalidInput, NotAllowed, NotFound
from crossline.pseudonyms import escrow
from crossline.services import moderation
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.storage import audit
from crossline.storage import consultations as consultation_store
from crossline.storage import members as member_store
from crossline.storage import moderation as case_store
from crossline.storage import pseudonyms as store
from crossline.storage import rooms as room_store

ACTING_MS = 120_000
LOCALPART_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def _audit(conn, hub: Hub, actor: str, kind: str, case_id: int | None = None, **details) -> None:
    audit.append(conn, hub.clock.now_ms(), actor, kind, case_id, details)


# -- Moderators' keys and the escrow -------------------------------------------------------------


def set_moderator_key(hub: Hub, actor: Member, passphrase: str) -> None:
    require(actor, "moderator")
    try:
        public, salt, encrypted = escrow.protect(passphrase)
    except escrow.EscrowError as error:
        raise InvalidInput(str(error)) from None
    with hub.engine.begin() as conn:
        store.set_moderator_key(conn, actor.id, public, salt, encrypted, hub.clock.now_ms())
        _audit(conn, hub, f"member:{actor.id}", "moderator_key_set")


def set_up_escrow(hub: Hub, actor: Member, threshold: int, moderator_ids: list[int]) -> store.Escrow:
    """Makes the escrow key, splits it k-of-n among the moderators (each share sealed to her own
    key) and forgets it. Earlier pseudonyms stay sealed to the escrow they were made under."""
    require(actor, "admin")
    holders = sorted(set(moderator_ids))
    with hub.engine.begin() as conn:
        keys = {m: store.moderator_key(conn, m) for m in holders}
        missing = [m for m, key in keys.items() if key is None]
        if missing:
            raise InvalidInput("Every chosen moderator must first set her escrow passphrase (Moderation → Your key).")
        try:
            key = escrow.new_key_pair()
            shares = escrow.split(key, threshold, len(holders))
        except escrow.EscrowError as error:
            raise InvalidInput(str(error)) from None
        sealed = {member: escrow.share_for(keys[member][0], index, share)
                  for member, (index, share) in zip(holders, shares, strict=True)}
        escrow_id = store.add_escrow(conn, bytes(key.public_key), threshold, sealed, hub.clock.now_ms())
        del key, shares  # the whole private key exists nowhere from here on
        _audit(conn, hub, f"member:{actor.id}", "escrow_set_up", threshold=threshold, holders=holders)
        return store.get_escrow(conn, escrow_id)


def current_escrow(hub: Hub) -> store.Escrow | None:
    with hub.engine.connect() as conn:
        return store.current_escrow(conn)


# -- Pseudonyms -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPseudonym:
    user_id: str
    password: str  # shown to her once; the hub keeps no copy
    display_name: str
    personal_link: str


def _tag_secret(hub: Hub) -> bytes:
    return secrets.ensure_secret(hub.config.paths.secrets_dir, secrets.PSEUDONYM_TAG_KEY).encode("utf-8")


def _random_text(length: int) -> str:
    return "".join(LOCALPART_ALPHABET[b % len(LOCALPART_ALPHABET)] for b in random_bytes(length))


def not_counted(conn, hub: Hub, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of these (member, consultation) pairs, those that must not vote or write, so that everyone
    counts once: a person who takes part there under a pseudonym (not under her own name too),
    and a pseudonym anywhere but in its own consultation."""
    secret = _tag_secret(hub)
    tagged = {(c, rules.person_tag(secret, m, c)): (m, c) for m, c in pairs}
    masked = {tagged[key] for key in store.tags_taken(conn, list(tagged))}
    homes = store.consultations_of_pseudonyms(conn, {m for m, _ in pairs})
    return masked | {(m, c) for m, c in pairs if m in homes and homes[m] != c}


def own_consultation(hub: Hub, member_id: int) -> int | None:
    """The one consultation a pseudonym belongs to, or None for anyone else."""
    with hub.engine.connect() as conn:
        return store.consultations_of_pseudonyms(conn, {member_id}).get(member_id)


async def _names_in_use(hub: Hub, conn) -> list[str]:
    names = store.display_names(conn)
    for member in member_store.list_members(conn):
        if member.matrix_user_id:
            names.append(member.matrix_user_id[1:].split(":")[0])
            info = await hub.homeserver.user_info(member.matrix_user_id)
            if info and info.get("displayname"):
                names.append(info["displayname"])
    return names


async def create_pseudonym(hub: Hub, person: Member, consultation_id: int, display_name: str) -> NewPseudonym:
    with hub.engine.connect() as conn:
        consultation = consultation_store.get_consultation(conn, consultation_id)
        if consultation is None:
            raise NotFound("There is no such consultation.")
        if consultation.phase is Phase.CLOSED:
            raise Conflict("This consultation is closed.")
        if person.side_id not in consultation.eligible_side_ids:
            raise NotAllowed("This consultation is not open to your side.")
        if store.pseudonym_of_member(conn, person.id) is not None:
            raise NotAllowed("A pseudonym cannot make another pseudonym.")
        current = store.current_escrow(conn)
        if current is None:
            raise Conflict("Pseudonyms are not available yet: the moderators' escrow is not set up.")
        tag = rules.person_tag(_tag_secret(hub), person.id, consultation_id)
        if store.tag_taken(conn, consultation_id, tag):
            raise Conflict("You already have a pseudonym in this consultation: take part with it.")
        if consultation_store.member_votes(conn, consultation_id, person.id) or any(
                s.author_member_id == person.id for s in consultation_store.list_statements(conn, consultation_id)):
            raise Conflict("You have already taken part in this consultation under your own name, so a pseudonym "
                           "now would count you twice.")
        name = rules.check_display_name(display_name, await _names_in_use(hub, conn))
        room_creator = room_store.creator_user_id(conn, consultation.room_id)

    localpart, password = f"p-{_random_text(14)}", _random_text(24)
    shared_secret = secrets.read_secret(hub.config.paths.secrets_dir, secrets.REGISTRATION_SHARED_SECRET)
    token = await hub.homeserver.register_with_shared_secret(shared_secret, localpart, password, admin=False)
    user_id = f"@{localpart}:{hub.config.synapse.server_name}"
    try:
        await hub.homeserver.set_displayname(token, user_id, name)
    finally:
        await hub.homeserver.logout(token)  # the hub keeps no device on her pseudonym

    access, handle, now = hub.new_token(), f"w-{_random_text(16)}", hub.clock.now_ms()
    link = escrow.seal(current.public_key, {"person": person.id, "person_user_id": person.matrix_user_id,
                                            "person_web_handle": person.web_handle, "pseudonym_user_id": user_id,
                                            "consultation": consultation_id})
    with hub.engine.begin() as conn:
        pseudonym_id = member_store.add_member(conn, user_id, consultation.line_id, person.side_id,
                                               frozenset({"participant"}), None, now, web_handle=handle)
        member_store.add_access_link(conn, token_hash(access), pseudonym_id, now)
        store.add_pseudonym(conn, pseudonym_id, consultation_id, tag, name, current.id, link, now)
        _audit(conn, hub, "participant", "pseudonym_created", consultation=consultation_id)
    hub.publish_known_members()
    if room_creator:
        async with hub.homeserver.acting_as(room_creator, ACTING_MS, hub.clock.now_ms()) as acting:
            await hub.homeserver.invite(acting, consultation.room_id, user_id)
    return NewPseudonym(user_id, password, name, f"{hub.config.hub_url}/r/{access}")


# -- Unmasking --------------------------------------------------------------------------------------


def request_unmasking(hub: Hub, actor: Member, case_id: int, pseudonym_user_id: str, reason: str) -> int:
    require(actor, "moderator")
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("Write why this pseudonym must be unmasked: every moderator who approves reads it.")
    with hub.engine.begin() as conn:
        if case_store.get_case(conn, case_id) is None:
            raise NotFound("There is no such case.")
        pseudonym = store.pseudonym_by_user_id(conn, pseudonym_user_id.strip())
        if pseudonym is None:
            raise InvalidInput("That account is not a pseudonym of this hub.")
        request_id = store.add_request(conn, case_id, pseudonym.member_id, reason, actor.id, hub.clock.now_ms())
        _audit(conn, hub, f"member:{actor.id}", "unmasking_requested", case_id, request=request_id)
        return request_id


@dataclass(frozen=True)
class UnmaskingRequest:
    id: int
    pseudonym: str
    reason: str
    status: str


def unmasking_requests(hub: Hub, case_id: int) -> list[UnmaskingRequest]:
    with hub.engine.connect() as conn:
        return [UnmaskingRequest(r.id, member_store.get_member(conn, r.pseudonym_member_id).matrix_user_id, r.reason,
                                 r.status) for r in store.requests_for_case(conn, case_id)]


@dataclass(frozen=True)
class UnmaskingStep:
    approvals: int
    threshold: int
    unmasked_user_id: str | None  # set once the quorum is reached


def approve_unmasking(hub: Hub, actor: Member, request_id: int, passphrase: str) -> UnmaskingStep:
    """Her passphrase opens her key, her key opens her share; at the quorum the shares rebuild the
    escrow key for this one link, the result is sealed into the case, and the shares are deleted.
    Every step, a refused passphrase included, is in the audit log."""
    require(actor, "moderator")
    with hub.engine.connect() as conn:
        request = store.get_request(conn, request_id)
        if request is None:
            raise NotFound("There is no such unmasking request.")
        pseudonym = store.pseudonym_of_member(conn, request.pseudonym_member_id)
        held = store.get_escrow(conn, pseudonym.escrow_id)
        sealed_share = store.sealed_share(conn, held.id, actor.id)
        key = store.moderator_key(conn, actor.id)
    if request.status != "open":
        raise Conflict("This unmasking request is already finished.")
    if sealed_share is None or key is None:
        raise NotAllowed("You hold no share of the escrow this pseudonym was sealed under.")
    actor_name = f"member:{actor.id}"
    try:
        index, share = escrow.open_share(escrow.unlock(passphrase, key[1], key[2]), sealed_share)
    except escrow.EscrowError as error:
        with hub.engine.begin() as conn:
            _audit(conn, hub, actor_name, "unmasking_passphrase_refused", request.case_id, request=request_id)
        raise NotAllowed(str(error)) from None
    with hub.engine.begin() as conn:
        if not store.add_share(conn, request_id, actor.id, index, share):
            raise Conflict("You have already approved this request.")
        _audit(conn, hub, actor_name, "unmasking_approved", request.case_id, request=request_id)
        approvals = store.share_count(conn, request_id)
        if approvals < held.threshold:
            return UnmaskingStep(approvals, held.threshold, None)
        shares = store.shares(conn, request_id)
    try:
        link = json.loads(escrow.open_sealed(escrow.combine(shares), pseudonym.sealed_link))
    except escrow.EscrowError:
        with hub.engine.begin() as conn:
            store.finish_request(conn, request_id, "failed")
            _audit(conn, hub, "quorum", "unmasking_failed", request.case_id, request=request_id)
        raise Conflict("The shares did not open the link. The request is closed; open a new one.") from None
    person = link.get("person_user_id") or f"web participant {link.get('person_web_handle')}"
    with hub.engine.begin() as conn:
        store.finish_request(conn, request_id, "unmasked")
        case_store.add_evidence(conn, request.case_id, "unmasking_result", "text/plain",
                                moderation.seal(hub, f"{link['pseudonym_user_id']} is {person}"), hub.clock.now_ms())
        _audit(conn, hub, "quorum", "unmasked", request.case_id, request=request_id, approvals=approvals)
    return UnmaskingStep(approvals, held.threshold, person)


async def tell_unmasked_member(hub: Hub, user_id: str | None) -> None:
    if user_id and hub.config.moderation.tell_member_when_unmasked:
        await hub.homeserver.server_notice(
            user_id, "Crossline's moderators, a quorum of them together, have learned who is behind one of your "
                     "pseudonyms, because of a moderation case. You may ask them why.")
