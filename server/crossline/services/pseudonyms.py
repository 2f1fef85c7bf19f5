"""Pseudonymous participation and accountable unmasking.

A member takes part in a consultation under a pseudonym: a separate Matrix account with an
opaque id and a name she chooses, plus a web handle. The hub stores the pseudonym as an ordinary
member of her side; who is behind it is sealed to the escrow key, and only k moderators together
can open that one link (threshold decryption, see pseudonyms/escrow.py). Nothing the hub keeps
names the person, and nothing it keeps places the pseudonym's making near her own activity in
time: the account comes from a pool made ahead (services/pseudonym_pool.py), its rows carry the
day only, and it is named and invited into the room later, in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl.utils import random as random_bytes
from sqlalchemy.exc import IntegrityError

from crossline import secrets
from crossline.clock import token_hash
from crossline.domain import pseudonyms as rules
from crossline.domain.consultations import Phase
from crossline.domain.records import Member
from crossline.errors import Conflict, HomeserverError, InvalidInput, NotAllowed, NotFound
from crossline.pseudonyms import escrow
from crossline.services import consultations, moderation  # consultations imports this module: used at call time only
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.services import audit_heads
from crossline.storage import consultations as consultation_store
from crossline.storage import members as member_store
from crossline.storage import moderation as case_store
from crossline.storage import pseudonyms as store
from crossline.storage import voices
from crossline_policies import names

LOCALPART_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
DAY_MS = 86_400_000
REQUEST_LIFETIME_MS = 7 * DAY_MS
OLD_SCHEME = ("This pseudonym was sealed under the escrow scheme used before threshold decryption, which the hub "
              "no longer opens (shares given for it were kept in clear). It cannot be unmasked.")


# Unmasking steps and the escrow's set-up are decisions: the log's signed head goes to the
# moderators' rooms with each (services/audit_heads.py).
_POSTED = {"escrow_set_up": "the pseudonym escrow's set-up", "unmasking_requested": "an unmasking request",
           "unmasking_approved": "an unmasking approval", "unmasked": "an unmasking",
           "unmasking_failed": "a failed unmasking"}


def _audit(conn, hub: Hub, actor: str, kind: str, case_id: int | None = None, **details) -> None:
    audit_heads.record(conn, hub, actor, kind, case_id, details, _POSTED.get(kind))


def day_of(now_ms: int) -> int:
    """The only time kept on a pseudonym's rows: midnight UTC of the day."""
    return now_ms - now_ms % DAY_MS


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
    """Makes the escrow secret, shares it k-of-n among the moderators (each share sealed to her own
    key, her verification key published) and forgets it. Earlier pseudonyms stay sealed to the
    escrow they were made under."""
    require(actor, "admin")
    chosen = sorted(set(moderator_ids))
    with hub.engine.begin() as conn:
        keys = {m: store.moderator_key(conn, m) for m in chosen}
        if any(key is None for key in keys.values()):
            raise InvalidInput("Every chosen moderator must first set her escrow passphrase (Moderation → Your key).")
        try:
            made = escrow.set_up(threshold, len(chosen))
        except escrow.EscrowError as error:
            raise InvalidInput(str(error)) from None
        holders = [store.Holder(member, index, escrow.seal(keys[member][0], made.shares[index]),
                                made.verification_keys[index]) for index, member in enumerate(chosen, start=1)]
        escrow_id = store.add_escrow(conn, made.public_key, threshold, holders, hub.clock.now_ms())
        del made  # the escrow secret existed only inside escrow.set_up; the shares now only sealed
        _audit(conn, hub, f"member:{actor.id}", "escrow_set_up", threshold=threshold, holders=chosen)
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
    return secrets.read_secret(hub.config.paths.secrets_dir, secrets.PSEUDONYM_TAG_KEY).encode("utf-8")


def random_text(length: int) -> str:
    return "".join(LOCALPART_ALPHABET[b % len(LOCALPART_ALPHABET)] for b in random_bytes(length))


def not_counted(conn, hub: Hub, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of these (member, consultation) pairs, those that must not vote or write, so that everyone
    counts once: a person who takes part there under a pseudonym (not under her own name too),
    and a pseudonym anywhere but in its own consultation. A check only: what writes a vote or a
    statement uses claim_voices."""
    return _not_counted(conn, hub, pairs, claim=False)


def claim_voices(conn, hub: Hub, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """As not_counted, after claiming each person's own voice in the caller's transaction: from
    here until it ends, a pseudonym of hers there cannot be made (its take of the same guard row
    fails), and a pseudonym made a moment before is seen. Call it after every other check, just
    before writing, so that a refused vote claims nothing."""
    return _not_counted(conn, hub, pairs, claim=True)


def _not_counted(conn, hub: Hub, pairs: list[tuple[int, int]], claim: bool) -> set[tuple[int, int]]:
    secret = _tag_secret(hub)
    homes = store.consultations_of_pseudonyms(conn, {m for m, _ in pairs})
    tagged = {(c, rules.person_tag(secret, m, c)): (m, c) for m, c in pairs}
    if claim:  # a pseudonym's own voice is its row in pseudonyms: nothing to claim for it
        voices.claim(conn, [key for key, (m, _) in tagged.items() if m not in homes])
    masked = {tagged[key] for key in store.tags_taken(conn, list(tagged))}
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


def _took_part_herself() -> Conflict:
    return Conflict("You have already taken part in this consultation under your own name, so a pseudonym now "
                    "would count you twice.")


async def create_pseudonym(hub: Hub, person: Member, consultation_id: int, display_name: str) -> NewPseudonym:
    require(person, "participant")
    # One answer for a draft, another line's consultation and a number that does not exist, as on
    # the participant's pages: the answer must not tell which consultations exist.
    consultation = consultations.open_to(hub, person, consultation_id)
    if consultation.phase is Phase.CLOSED:
        raise Conflict("This consultation is closed.")
    with hub.engine.connect() as conn:
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
            raise _took_part_herself()
        name = rules.check_display_name(display_name, await _names_in_use(hub, conn))
    # The rules every Matrix display name obeys (our Synapse module would refuse her joins): no
    # hidden characters, one alphabet, no reserved word such as "Moderator".
    refusal = names.check_name(name, "", names.Protected(), "pseudonym")
    if refusal:
        raise InvalidInput(refusal)

    password = random_text(24)
    with hub.engine.begin() as conn:
        user_id = store.take_from_pool(conn)
    if user_id is None:
        raise Conflict("No pseudonym is ready right now: new ones are prepared every little while. Try again in an "
                       "hour.")
    try:
        await hub.homeserver.set_password(user_id, password)  # through the admin API: no login, no device
    except HomeserverError:
        with hub.engine.begin() as conn:
            store.add_to_pool(conn, user_id, ready=True)
        raise

    access, handle, day = hub.new_token(), f"w-{random_text(16)}", day_of(hub.clock.now_ms())
    link = escrow.seal_link(current.public_key, {"person": person.id, "person_user_id": person.matrix_user_id,
                                                 "person_web_handle": person.web_handle, "pseudonym_user_id": user_id,
                                                 "consultation": consultation_id})
    try:
        with hub.engine.begin() as conn:
            voices.take(conn, consultation_id, tag)  # first: her own vote at this moment cannot count too
            pseudonym_id = member_store.add_member(conn, user_id, consultation.line_id, person.side_id,
                                                   frozenset({"participant"}), None, day, web_handle=handle)
            member_store.add_access_link(conn, token_hash(access), pseudonym_id, day)
            store.add_pseudonym(conn, pseudonym_id, consultation_id, tag, name, current.id, link, day)
    except IntegrityError:  # she took part at this moment, here or as herself: the account goes back, unused
        with hub.engine.begin() as conn:
            store.add_to_pool(conn, user_id, ready=True)
            has_one = store.tag_taken(conn, consultation_id, tag)
        raise (Conflict("You already have a pseudonym in this consultation: take part with it.") if has_one
               else _took_part_herself()) from None
    # Named, made known to Synapse and invited later, in a batch (services/pseudonym_pool.py).
    return NewPseudonym(user_id, password, name, f"{hub.config.hub_url}/r/{access}")


# -- Unmasking --------------------------------------------------------------------------------------


def request_unmasking(hub: Hub, actor: Member, case_id: int, pseudonym_user_id: str, reason: str) -> int:
    """Opens a request with a fresh sharing of zero: each holder's blind is sealed to her own key,
    so approvals given for this request are useless for any other (see pseudonyms/escrow.py)."""
    require(actor, "moderator")
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("Write why this pseudonym must be unmasked: every moderator who approves reads it.")
    now = hub.clock.now_ms()
    try:
        with hub.engine.begin() as conn:
            moderation.case_for(conn, hub, actor, case_id)  # not to the person the case is about
            pseudonym = store.pseudonym_by_user_id(conn, pseudonym_user_id.strip())
            if pseudonym is None:
                raise InvalidInput("That account is not a pseudonym of this hub.")
            held = store.get_escrow(conn, pseudonym.escrow_id)
            if not held.current_scheme:
                raise Conflict(OLD_SCHEME)
            _expire(conn, hub, now, pseudonym.member_id)
            if store.open_request_for(conn, pseudonym.member_id) is not None:
                raise Conflict("This pseudonym already has an open unmasking request: approve that one, or let it "
                               "end first.")
            holders = store.holders(conn, held.id)
            blinds = escrow.request_blinds(held.threshold, [h.index for h in holders])
            keys = {h.member_id: store.moderator_key(conn, h.member_id) for h in holders}
            sealed = {h.member_id: (h.index, escrow.seal(keys[h.member_id][0], blinds[h.index]),
                                    escrow.blind_key(blinds[h.index])) for h in holders if keys[h.member_id]}
            del blinds  # the sharing of zero exists nowhere from here on
            request_id = store.add_request(conn, case_id, pseudonym.member_id, moderation.seal(hub, reason),
                                           actor.id, now, now + REQUEST_LIFETIME_MS, sealed)
            _audit(conn, hub, f"member:{actor.id}", "unmasking_requested", case_id, request=request_id)
            return request_id
    except IntegrityError:  # another moderator opened one at the same moment
        raise Conflict("This pseudonym already has an open unmasking request: approve that one.") from None


def _expire(conn, hub: Hub, now: int, pseudonym_member_id: int | None = None) -> list[int]:
    ended = store.open_requests_ended_by(conn, now, pseudonym_member_id)
    for request_id in ended:
        store.finish_request(conn, request_id, "expired")
        case_id = store.get_request(conn, request_id).case_id
        _audit(conn, hub, "hub", "unmasking_expired", case_id, request=request_id)
    return ended


def expire_unmasking_requests(hub: Hub) -> list[int]:
    """Ends requests past their time and deletes their partials (run with every invitation batch)."""
    with hub.engine.begin() as conn:
        return _expire(conn, hub, hub.clock.now_ms())


@dataclass(frozen=True)
class UnmaskingRequest:
    id: int
    pseudonym: str
    reason: str
    status: str


def unmasking_requests(hub: Hub, actor: Member, case_id: int) -> list[UnmaskingRequest]:
    now = hub.clock.now_ms()
    with hub.engine.connect() as conn:
        moderation.case_for(conn, hub, actor, case_id)
        return [UnmaskingRequest(r.id, member_store.get_member(conn, r.pseudonym_member_id).matrix_user_id,
                                 moderation.unseal(hub, r.reason_sealed).decode("utf-8") if r.reason_sealed else r.reason,
                                 "expired" if r.status == "open" and r.expires_at <= now else r.status)
                for r in store.requests_for_case(conn, case_id)]


@dataclass(frozen=True)
class UnmaskingStep:
    approvals: int
    threshold: int
    unmasked_user_id: str | None  # set once the quorum is reached


def approve_unmasking(hub: Hub, actor: Member, request_id: int, passphrase: str) -> UnmaskingStep:
    """Her passphrase opens her key, her key opens her share and her blind for this request, and
    the hub turns them into her partial decryption of this one link. At the quorum the partials
    are checked and combined, the link opens, the result is sealed into the case, and the
    request's partials are deleted. Every step, a refused passphrase included, is audited."""
    require(actor, "moderator")
    now, actor_name = hub.clock.now_ms(), f"member:{actor.id}"
    with hub.engine.connect() as conn:
        request = store.get_request(conn, request_id)
        if request is None:
            raise NotFound("There is no such unmasking request.")
        moderation.case_for(conn, hub, actor, request.case_id)  # not to the person the case is about
        pseudonym = store.pseudonym_of_member(conn, request.pseudonym_member_id)
        held = store.get_escrow(conn, pseudonym.escrow_id)
        mine = store.holder(conn, held.id, actor.id)
        slot = store.holder_slot(conn, request_id, actor.id)
        key = store.moderator_key(conn, actor.id)
    if request.status == "open" and request.expires_at <= now:
        expire_unmasking_requests(hub)
        raise Conflict("This unmasking request has expired and its approvals are deleted. Open a new one.")
    if request.status != "open":
        raise Conflict(f"This unmasking request is already finished ({request.status}).")
    if mine is None or slot is None or key is None:
        raise NotAllowed("You hold no share of the escrow this pseudonym was sealed under.")
    if slot.partial is not None:
        raise Conflict("You have already approved this request.")
    try:
        private = escrow.unlock(passphrase, key[1], key[2])
        share, blind = escrow.open_sealed(private, mine.sealed_share), escrow.open_sealed(private, slot.sealed_blind)
    except escrow.EscrowError as error:
        with hub.engine.begin() as conn:
            _audit(conn, hub, actor_name, "unmasking_passphrase_refused", request.case_id, request=request_id)
        raise NotAllowed(str(error)) from None
    if not escrow.share_matches(share, mine.verification_key):
        raise Conflict("Your share does not match the key the escrow published for you: ask the admin to set the "
                       "escrow up again.")
    given = escrow.partial(share, blind, pseudonym.sealed_link)
    del private, share, blind
    with hub.engine.begin() as conn:
        if not store.add_partial(conn, request_id, actor.id, given.point, given.proof):
            raise Conflict("You have already approved this request.")
        _audit(conn, hub, actor_name, "unmasking_approved", request.case_id, request=request_id)
        approvals = store.partials(conn, request_id)
        if len(approvals) < held.threshold:
            return UnmaskingStep(len(approvals), held.threshold, None)
        outcome = _open(conn, hub, held, pseudonym.sealed_link, approvals)
        if isinstance(outcome, str):
            store.finish_request(conn, request_id, "failed")
            _audit(conn, hub, "quorum", "unmasking_failed", request.case_id, request=request_id)
        else:
            person = outcome.get("person_user_id") or f"web participant {outcome.get('person_web_handle')}"
            store.finish_request(conn, request_id, "unmasked")
            case_store.add_evidence(conn, request.case_id, "unmasking_result", "text/plain",
                                    moderation.seal(hub, f"{outcome['pseudonym_user_id']} is {person}"), now)
            _audit(conn, hub, "quorum", "unmasked", request.case_id, request=request_id, approvals=len(approvals))
    if isinstance(outcome, str):
        raise Conflict(f"{outcome} The request is closed and its approvals deleted; open a new one.")
    return UnmaskingStep(len(approvals), held.threshold, person)


def _open(conn, hub: Hub, held: store.Escrow, sealed_link: bytes, approvals: list) -> dict | str:
    """The link, or what went wrong, naming whose approval did not verify."""
    keys = {h.member_id: h.verification_key for h in store.holders(conn, held.id)}
    bad = [a.member_id for a in approvals if not escrow.partial_is_valid(
        keys[a.member_id], a.blind_key, sealed_link, escrow.Partial(a.partial, a.proof))]
    if bad:
        names = ", ".join(member_store.get_member(conn, m).matrix_user_id or f"member {m}" for m in bad)
        return f"The approval of {names} does not verify against the escrow's published keys."
    try:
        return escrow.open_link(held.public_key, sealed_link, {a.share_index: a.partial for a in approvals})
    except escrow.EscrowError:
        return "The approvals did not open the sealed link."


async def tell_unmasked_member(hub: Hub, user_id: str | None) -> None:
    if user_id and hub.config.moderation.tell_member_when_unmasked:
        await hub.homeserver.server_notice(
            user_id, "Crossline's moderators, a quorum of them together, have learned who is behind one of your "
                     "pseudonyms, because of a moderation case. You may ask them why.")
