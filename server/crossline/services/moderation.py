"""Abuse reports: intake from every channel into one queue, moderators' decisions carried out on
the homeserver, and the audit log.

- Reasons, contacts and evidence are sealed with the hub's evidence key (XSalsa20-Poly1305,
  `secrets/evidence_key`) before they are stored, and opened only for a moderator's view.
- Every report, decision and action is appended to the hash-chained audit log in the same
  transaction; the log holds no report content.
- Reporters hear back through the channel they used: a Matrix reporter by server notice (which
  says only the case number and outcome), a web reporter on her status page.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, replace
from importlib import resources

from nacl.secret import SecretBox

from crossline import secrets
from crossline.clock import token_hash
from crossline.domain import moderation as rules
from crossline.domain import pictures
from crossline.domain.pseudonyms import person_tag
from crossline.domain.moderation import ACTION_LABELS, Action, CaseFacts, CaseStatus, Category, Moderator
from crossline.domain.records import Member
from crossline.errors import Conflict, HomeserverError, InvalidInput, NotAllowed, NotFound
from crossline.services import appeal_lift, audit_heads, member_rooms
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.storage import audit
from crossline.storage import bot as bot_state
from crossline.storage import members as member_store
from crossline.storage import moderation as store
from crossline.storage import pseudonyms as pseudonym_store
from crossline.storage import room_report_cases as room_report_store
from crossline.storage import rooms as room_store
from crossline.storage.moderation import Case

POLICY_ROOM = "policy_room_id"
REPORT_KINDS = ("event_reports", "user_reports")
MAX_TEXT = 5000
MAX_CONTACT = 200
MAX_IMAGES = 3
MAX_IMAGE_BYTES = 5 * 1024 * 1024
# A 50 megapixel phone photo fits (8160 x 6144 is 50.1: hence 52); rebuilding one takes about 400
# MB of memory for a moment (a WebP, limited to a third of the pixels, as much).
MAX_IMAGE_PIXELS = 52_000_000
# The admin API pages reports by offset; re-reading a few already seen costs nothing (they are
# deduplicated by id) and covers reports deleted by an admin meanwhile.
INTAKE_OVERLAP = 20


# -- Sealing ---------------------------------------------------------------------------------


def _box(hub: Hub) -> SecretBox:
    secret = secrets.read_secret(hub.config.paths.secrets_dir, secrets.EVIDENCE_KEY)
    return SecretBox(hashlib.sha256(secret.encode("utf-8")).digest())


def seal(hub: Hub, data: bytes | str) -> bytes:
    return bytes(_box(hub).encrypt(data.encode("utf-8") if isinstance(data, str) else data))


def unseal(hub: Hub, sealed: bytes | None) -> bytes | None:
    return None if sealed is None else _box(hub).decrypt(sealed)


def _opened(hub: Hub, decisions: list[store.Decision]) -> list[store.Decision]:
    """Decisions with their moderators' reasons opened (sealed since migration 0015)."""
    return [replace(d, reason=unseal(hub, d.reason_sealed).decode("utf-8")) if d.reason_sealed is not None else d
            for d in decisions]


def seal_clear_reasons(hub: Hub) -> int:
    """At the hub's start: seals moderators' reasons stored in clear, decisions' before migration
    0015 and unmasking requests' before 0016 (a migration cannot read the key), and empties them;
    SQLite's secure_delete overwrites what they held. Returns how many it sealed."""
    with hub.engine.begin() as conn:
        clear = store.clear_reasons(conn)
        for decision_id, reason in clear:
            store.seal_reason(conn, decision_id, seal(hub, reason))
        requests = pseudonym_store.clear_request_reasons(conn)
        for request_id, reason in requests:
            pseudonym_store.seal_request_reason(conn, request_id, seal(hub, reason))
    return len(clear) + len(requests)


INTERRUPTED = "interrupted"  # a decision's status: a stop cut it short, part of it may have taken effect


def recover_interrupted(hub: Hub) -> list[int]:
    """At the hub's start: decisions the hub was carrying out when it stopped are marked
    interrupted and their cases wait for a decision again, as after an action that failed, so that
    no case stays locked by a decision no one is carrying out. Part of one may have taken effect
    (a ban in 3 rooms of 10): the audit entry and the case page say so, for whoever decides next to
    check. Returns the cases."""
    now = hub.clock.now_ms()
    with hub.engine.begin() as conn:
        stuck = store.interrupted_decisions(conn)
        for decision in stuck:
            store.finish_decision(conn, decision.id, INTERRUPTED, now)
            _audit(conn, hub, "system", "action_failed", decision.case_id, action=decision.action.value,
                   interrupted=True, may_have_taken_effect=True)
        cases = list(dict.fromkeys(d.case_id for d in stuck))
        for case_id in cases:
            on_appeal = any(d.on_appeal for d in stuck if d.case_id == case_id)
            store.set_status(conn, case_id, CaseStatus.APPEALED if on_appeal else CaseStatus.OPEN, now)
    return cases


def _audit(conn, hub: Hub, actor: str, kind: str, case_id: int | None, post: str | None = None,
           **details) -> None:
    """post: why the log's signed head goes to the moderators' rooms with this entry (a decision)."""
    audit_heads.record(conn, hub, actor, kind, case_id, details, post)


def support_services(hub: Hub, country: str | None = None) -> list[dict]:
    """The hub's own list (DATA_DIR/support_services.toml) if there is one, else the default."""
    own = hub.config.data_dir / "support_services.toml"
    text = own.read_text("utf-8") if own.exists() else \
        resources.files("crossline_policies").joinpath("support_services.toml").read_text("utf-8")
    services = tomllib.loads(text)
    return [*services.get((country or "").upper(), []), *services.get("any", [])]


class Checked(list):
    """Pictures `check_images` rebuilt, as (MIME type, bytes): the web rebuilds them beside its
    event loop, then hands them to the intake below, which keeps them as they are."""


def check_images(images: list[bytes]) -> Checked:
    """(MIME type, bytes) to store for each picture: rebuilt from its pixels alone, so no location,
    phone model or other metadata of an upload is ever kept. All are checked before anything is
    stored: one refused picture refuses them all. Seconds of CPU for a large photo."""
    if isinstance(images, Checked):
        return images
    if len(images) > MAX_IMAGES:
        raise InvalidInput(f"At most {MAX_IMAGES} screenshots, please.")
    return Checked(pictures.clean(data, max_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_IMAGE_PIXELS) for data in images)


def _digests(checked: list[tuple[str, bytes]]) -> list[str]:
    """SHA-256 of each picture as stored (re-encoded), for the audit log: what moderators see can
    be shown to be what was received, and the log still holds no content."""
    return [hashlib.sha256(data).hexdigest() for _mime, data in checked]


# -- Intake ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewCase:
    case_id: int
    status_token: str | None


async def take_in_matrix_reports(hub: Hub) -> list[int]:
    """Reads Element's reports (event and user reports) from Synapse's admin API. Each becomes
    one case however often it is read: the Synapse report id is unique in the queue."""
    created: list[int] = []
    for kind in REPORT_KINDS:
        with hub.engine.connect() as conn:
            offset = int(bot_state.get_state(conn, f"intake_{kind}") or 0)
        start = max(0, offset - INTAKE_OVERLAP)
        reports = await hub.homeserver.reports(kind, start)
        new_cases = []
        with hub.engine.begin() as conn:
            for report in reports:
                token = hub.new_token()
                case_id = _matrix_case(conn, hub, kind, report, token)
                if case_id is not None:
                    new_cases.append((case_id, report.get("user_id"), token))
            bot_state.set_state(conn, f"intake_{kind}", str(max(offset, start + len(reports))))
        for case_id, reporter, token in new_cases:
            created.append(case_id)
            await _notify_reporter(hub, reporter, case_id, "was received. Moderators will look at it; you will hear "
                                                           "what they decide here. " + _status_invitation(hub, token))
    return created


def _status_invitation(hub: Hub, token: str) -> str:
    return ("In an encrypted room the server cannot read the message you reported: to add what you saw or "
            "screenshots, and to choose whether moderators should act, use your private link: "
            f"{hub.config.hub_url}/report/status/{token}")


def _matrix_case(conn, hub: Hub, kind: str, report: dict, status_token: str) -> int | None:
    reporter = report.get("user_id")
    member = member_store.find_by_user_id(conn, reporter) if reporter else None
    reason = report.get("reason") or ""
    if kind == "event_reports":
        source, room_id, event_id, reported = "matrix_event", report.get("room_id"), report.get("event_id"), report.get("sender")
    else:
        source, room_id, event_id, reported = "matrix_user", None, None, report.get("target_user_id")
    category = Category.OTHER  # Element sends free text only; a moderator sets the kind at triage
    case_id = store.add_case(
        conn, source=source, category=category, urgent=False, now_ms=hub.clock.now_ms(),
        synapse_report=f"{kind}:{report['id']}", room_id=room_id, event_id=event_id, reported_user=reported,
        reporter_member_id=member.id if member else None, reporter_user_id=reporter,
        reason_sealed=seal(hub, reason) if reason else None, status_token_hash=token_hash(status_token))
    if case_id is not None:
        _audit(conn, hub, "matrix", "report_received", case_id, source=source)
    return case_id


def report_from_room(conn, hub: Hub, reporter: Member, room_id: str, event_id: str, reported_user: str,
                     seen_text: str, reason: str, status_token: str) -> int:
    """A reply-to-report command in a room where the bot is: the bot attaches what it decrypted."""
    case_id = store.add_case(
        conn, source="room_bot", category=Category.OTHER, urgent=False, now_ms=hub.clock.now_ms(),
        room_id=room_id, event_id=event_id, reported_user=reported_user, reporter_member_id=reporter.id,
        reporter_user_id=reporter.matrix_user_id, reason_sealed=seal(hub, reason) if reason else None,
        status_token_hash=token_hash(status_token))
    store.add_evidence(conn, case_id, "bot_verified", "text/plain", seal(hub, seen_text), hub.clock.now_ms())
    _audit(conn, hub, "bot", "report_received", case_id, source="room_bot")
    return case_id


async def acknowledge_room_report(hub: Hub, case_id: int, reporter_user_id: str, status_token: str) -> None:
    await _notify_reporter(hub, reporter_user_id, case_id, (
        "was received, with the message the hub's bot saw. Your command was removed from the room so that nobody "
        "else knows you reported. You will hear the outcome here. To add screenshots or details, or to choose "
        f"whether moderators should act: {hub.config.hub_url}/report/status/{status_token}"))


def report_from_web(hub: Hub, category: str, text: str, contact: str, images: list[bytes] | Checked,
                    held: bool = False) -> NewCase:
    """The anonymous form: no login, nothing about the reporter but what she chooses to give.
    `images`: as uploaded, or as `check_images` already rebuilt them.
    `held`: sent past the form's flood limits, kept like any other, shown to moderators apart and
    not made urgent by the sender's choice of category."""
    kind = rules.parse_category(category)
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput("Write what happened: a few words are enough.")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"The description is too long ({len(text)} characters; at most {MAX_TEXT}). "
                           "Shorten it; you can add more on the status page afterwards.")
    contact = contact.strip()
    if len(contact) > MAX_CONTACT:
        raise InvalidInput(f"The contact is too long (at most {MAX_CONTACT} characters).")
    checked = check_images(images)
    token = hub.new_token()
    now = hub.clock.now_ms()
    with hub.engine.begin() as conn:
        case_id = store.add_case(conn, source="web_held" if held else "web", category=kind,
                                 urgent=kind in rules.URGENT_BY_DEFAULT and not held, now_ms=now,
                                 contact_sealed=seal(hub, contact) if contact else None,
                                 status_token_hash=token_hash(token))
        store.add_evidence(conn, case_id, "reporter_supplied", "text/plain", seal(hub, text), now)
        for mime, data in checked:
            store.add_evidence(conn, case_id, "reporter_supplied", mime, seal(hub, data), now)
        _audit(conn, hub, "reporter", "report_received", case_id, source="web", images=_digests(checked))
    return NewCase(case_id, token)


def case_for_reporter(hub: Hub, token: str) -> Case:
    with hub.engine.connect() as conn:
        case = store.case_for_status_token(conn, token_hash(token))
    if case is None:
        raise NotFound("This status link is not valid (or the case was deleted under the retention policy).")
    return case


def add_from_reporter(hub: Hub, token: str, text: str, images: list[bytes] | Checked,
                      wants_action: bool | None) -> Case:
    case = case_for_reporter(hub, token)
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"That is too long ({len(text)} characters; at most {MAX_TEXT}).")
    checked = check_images(images)
    now = hub.clock.now_ms()
    with hub.engine.begin() as conn:
        if text:
            store.add_evidence(conn, case.id, "reporter_supplied", "text/plain", seal(hub, text), now)
        for mime, data in checked:
            store.add_evidence(conn, case.id, "reporter_supplied", mime, seal(hub, data), now)
        if wants_action is not None:
            store.set_reporter_choice(conn, case.id, wants_action, now)
        _audit(conn, hub, "reporter", "reporter_added", case.id, text=bool(text), images=_digests(checked),
               wants_action=wants_action)
    return case_for_reporter(hub, token)


# -- Moderators ----------------------------------------------------------------------------------


def _moderator(member: Member) -> Moderator:
    require(member, "moderator")
    return _as_moderator(member)


def _as_moderator(member: Member) -> Moderator:
    return Moderator(member.id, member.side_id, member.shown_as)


def _facts(conn, hub: Hub, case: Case, actor: Member | None = None) -> CaseFacts:
    """deciders: everyone who proposed or agreed to a decision not on appeal, carried out or not,
    so that no one decides the appeal of a decision she took part in. The reporter is the acting
    moderator when she reported through one of her pseudonyms (the case stores the pseudonym's
    member row); that is looked at for her alone, so that no list of who may act, shown to others,
    leaves her out and tells them who is behind the pseudonym."""
    first = [d for d in store.list_decisions(conn, case.id) if not d.on_appeal]
    deciders = frozenset(d.proposed_by for d in first) | frozenset(d.agreed_by for d in first if d.agreed_by)
    reporter = case.reporter_member_id
    if actor is not None and _is_hers(conn, hub, actor, case.reporter_user_id):
        reporter = actor.id
    return CaseFacts(case.status, case.room_id, case.event_id, case.reported_user, deciders, reporter,
                     case.reporter_wants_action)


def _moderators(conn, hub: Hub, case: Case) -> tuple[Moderator, ...]:
    """Every moderator the case can be shown to (not one it concerns)."""
    return tuple(_as_moderator(m) for m in member_store.list_members(conn)
                 if m.has("moderator") and not concerns(conn, hub, m, case))


def concerns(conn, hub: Hub, member: Member, case: Case) -> bool:
    """Whether the case is about this member."""
    return _is_hers(conn, hub, member, case.reported_user)


def _is_hers(conn, hub: Hub, member: Member, user_id: str | None) -> bool:
    """Whether the account is this member's: her own, or one of her pseudonyms (known by the keyed
    tag that keeps one pseudonym per person per consultation, without unmasking)."""
    if user_id is None:
        return False
    if user_id == member.matrix_user_id:
        return True
    pseudonym = pseudonym_store.pseudonym_by_user_id(conn, user_id)
    if pseudonym is None:
        return False
    secret = secrets.read_secret(hub.config.paths.secrets_dir, secrets.PSEUDONYM_TAG_KEY).encode("utf-8")
    return pseudonym.person_tag == person_tag(secret, member.id, pseudonym.consultation_id)


def case_for(conn, hub: Hub, actor: Member, case_id: int) -> Case:
    """The case, for a moderator it is not about. To the person it concerns, a case about her does
    not exist (the same answer as a wrong number): she can neither see nor decide it, its appeal,
    or an unmasking on it."""
    _moderator(actor)
    case = store.get_case(conn, case_id)
    if case is None or concerns(conn, hub, actor, case):
        raise NotFound("There is no such case.")
    return case


def queue(hub: Hub, actor: Member) -> list[Case]:
    _moderator(actor)
    with hub.engine.connect() as conn:
        return [case for case in store.queue(conn) if not concerns(conn, hub, actor, case)]


@dataclass(frozen=True)
class CaseView:
    case: Case
    reason: str | None
    contact: str | None
    evidence: list[tuple[int, str, str, bytes | None, int]]  # id, kind, mime, opened text or None for images
    decisions: list
    audit: list


def view(hub: Hub, actor: Member, case_id: int) -> CaseView:
    with hub.engine.begin() as conn:
        case = case_for(conn, hub, actor, case_id)
        items = [(i, kind, mime, unseal(hub, sealed) if mime == "text/plain" else None, at)
                 for i, kind, mime, sealed, at in store.list_evidence(conn, case_id)]
        decisions = _opened(hub, store.list_decisions(conn, case_id))
        _audit(conn, hub, f"member:{actor.id}", "case_viewed", case_id)
        trail = [stored.entry for stored in audit.entries(conn, case_id)]
    return CaseView(case, (unseal(hub, case.reason_sealed) or b"").decode() or None,
                    (unseal(hub, case.contact_sealed) or b"").decode() or None, items, decisions, trail)


def evidence_image(hub: Hub, actor: Member, case_id: int, evidence_id: int) -> tuple[str, bytes]:
    with hub.engine.connect() as conn:
        case_for(conn, hub, actor, case_id)
        for i, _, mime, sealed, _ in store.list_evidence(conn, case_id):
            if i == evidence_id and mime != "text/plain":
                return _shown(mime, unseal(hub, sealed))
    raise NotFound("There is no such image in this case.")


def _shown(mime: str, data: bytes) -> tuple[str, bytes]:
    """A stored picture as moderators may see it. Pictures stored before the hub rebuilt every
    upload (commit e40ff72) may still carry where they were taken: those are rebuilt here, each time
    they are shown (what is stored stays the evidence received); all others are shown as stored."""
    if pictures.pixels_only(data):
        return mime, data
    try:
        return pictures.clean(data, max_bytes=len(data), max_pixels=MAX_IMAGE_PIXELS)
    except InvalidInput:
        raise InvalidInput("This picture was stored before the hub removed what pictures reveal, and it cannot "
                           "be rebuilt to hide where it was taken, so it is not shown.") from None


def triage(hub: Hub, actor: Member, case_id: int, category: str, urgent: bool) -> None:
    _moderator(actor)
    kind = rules.parse_category(category)
    with hub.engine.begin() as conn:
        case_for(conn, hub, actor, case_id)
        store.triage(conn, case_id, kind, urgent, actor.id, hub.clock.now_ms())
        _audit(conn, hub, f"member:{actor.id}", "triaged", case_id, category=kind.value, urgent=urgent)


async def decide(hub: Hub, actor: Member, case_id: int, action_names: list[str], reason: str) -> str:
    """Carries the chosen actions out, in order (say, remove the message, then ban from the room).
    If one of them is heavy, all of them wait for a second moderator."""
    moderator = _moderator(actor)
    actions = [rules.parse_action(name) for name in dict.fromkeys(action_names)]
    if not actions:
        raise InvalidInput("Choose at least one action (or “No action”).")
    reason = rules.check_reason(reason)
    now = hub.clock.now_ms()
    sides = hub.config.moderation.second_moderator_from_other_side
    with hub.engine.begin() as conn:
        store.lock_case(conn, case_id)
        case = case_for(conn, hub, actor, case_id)
        if any(d.status == "pending" for d in store.list_decisions(conn, case_id)) \
                and case.status is not CaseStatus.AWAITING_SECOND:
            raise Conflict("Another moderator's decision on this case is being carried out: reload the page.")
        facts, others = _facts(conn, hub, case, actor), _moderators(conn, hub, case)
        for action in actions:
            rules.check_decision(facts, action, moderator, others, sides)
        on_appeal = case.status is CaseStatus.APPEALED
        # An appeal is always decided by two: this moderator proposes, another agrees.
        heavy = on_appeal or any(action in rules.HEAVY_ACTIONS for action in actions)
        sealed = seal(hub, reason)
        decision_ids = [store.add_decision(conn, case_id, action, sealed, actor.id, "pending", on_appeal, now)
                        for action in actions]
        if heavy:
            store.set_status(conn, case_id, CaseStatus.AWAITING_SECOND, now)
        _audit(conn, hub, f"member:{actor.id}", "proposed" if heavy else "decided", case_id,
               post="a proposal" if heavy else None, actions=[a.value for a in actions],
               on_appeal=on_appeal)
    if heavy:
        who = "who took no part in the decision under appeal " if on_appeal else ""
        return f"{', '.join(ACTION_LABELS[a] for a in actions)}: waiting for a second moderator {who}to agree."
    return await _carry_out(hub, case, list(zip(decision_ids, actions, strict=True)), actor)


async def agree(hub: Hub, actor: Member, case_id: int) -> str:
    second = _moderator(actor)
    with hub.engine.begin() as conn:
        store.lock_case(conn, case_id)
        case = case_for(conn, hub, actor, case_id)
        pending = [d for d in store.list_decisions(conn, case_id) if d.status == "pending"]
        if not pending:
            raise Conflict("No action in this case is waiting for a second moderator.")
        if any(d.agreed_by is not None for d in pending):
            raise Conflict("Another moderator agreed a moment ago: the actions are being carried out.")
        proposer = member_store.get_member(conn, pending[0].proposed_by)
        withdrawn = _proposer_gone(proposer, hub.config.moderation.second_moderator_from_other_side)
        if withdrawn:
            _withdraw(conn, hub, case_id, pending, withdrawn)
        else:
            rules.check_second(_facts(conn, hub, case, actor), _as_moderator(proposer), second,
                               hub.config.moderation.second_moderator_from_other_side, pending[0].on_appeal,
                               _moderators(conn, hub, case))
            store.claim_agreement(conn, case_id, actor.id)  # a second agreement, even at the same moment, finds it
            _audit(conn, hub, f"member:{actor.id}", "agreed", case_id, actions=[d.action.value for d in pending])
    if withdrawn:  # raised once the withdrawal is stored
        raise Conflict(f"The moderator who proposed this {withdrawn}, so her proposal was withdrawn and nothing "
                       "was carried out: propose the decision again if it is still right (another moderator must "
                       "then agree).")
    if pending[0].on_appeal:
        case = replace(case, status=CaseStatus.APPEALED)
    return await _carry_out(hub, case, [(d.id, d.action) for d in pending], actor,
                            agreed_by=actor.id)


def _proposer_gone(proposer: Member | None, different_sides: bool) -> str | None:
    """Why a pending proposal can no longer be carried out on another moderator's agreement, or None."""
    if proposer is None or not proposer.has("moderator"):
        return "is no longer a moderator"
    if different_sides and proposer.side_id is None:
        return "belongs to no side of the line, and the policy asks two moderators from two sides"
    return None


def _withdraw(conn, hub: Hub, case_id: int, pending: list[store.Decision], why: str) -> None:
    """A proposal whose proposer can no longer carry it is not carried out on another's agreement:
    it is marked withdrawn (audited, as an action not carried out) and the case waits for a
    decision again."""
    now = hub.clock.now_ms()
    for decision in pending:
        store.finish_decision(conn, decision.id, "withdrawn", now)
        _audit(conn, hub, "system", "action_failed", case_id, action=decision.action.value,
               withdrawn=f"the proposer {why}")
    store.set_status(conn, case_id, CaseStatus.APPEALED if pending[0].on_appeal else CaseStatus.OPEN, now)


async def _carry_out(hub: Hub, case: Case, decisions: list[tuple[int, Action]], actor: Member,
                     agreed_by: int | None = None) -> str:
    outcomes, failed = [], False
    now = hub.clock.now_ms()
    for number, (decision_id, action) in enumerate(decisions, start=1):
        if failed:
            status, done = "failed", "not tried after an earlier action failed"
        else:
            try:
                done, status = await _on_homeserver(hub, case, action), "done"
            except HomeserverError as error:
                done, status, failed = f"it could not be carried out: {error.message}", "failed", True
        with hub.engine.begin() as conn:
            store.finish_decision(conn, decision_id, status, now, agreed_by)
            _audit(conn, hub, f"member:{actor.id}", "action_" + status, case.id,
                   post="a decision" if number == len(decisions) else None, action=action.value)
        outcomes.append(f"{ACTION_LABELS[action]}: {done}")
    appealed = case.status is CaseStatus.APPEALED
    acted = [a for _, a in decisions if a is not Action.DISMISS]
    # Her link to the decision: the moderators' reason is read there, signed in as herself, never
    # put in the notice (server-notice rooms are stored in clear by Synapse). Before an appeal the
    # same link lets her appeal; after her appeal, it shows why it was decided as it was.
    decision_token = hub.new_token() if not failed and (acted or appealed) and case.reported_user else None
    with hub.engine.begin() as conn:
        if failed:
            store.set_status(conn, case.id, CaseStatus.APPEALED if appealed else CaseStatus.OPEN, now)
        else:
            store.set_status(conn, case.id, CaseStatus.CLOSED if appealed else CaseStatus.DECIDED, now)
        if decision_token:
            store.set_appeal_token(conn, case.id, token_hash(decision_token))
    if not failed:
        labels = ", ".join(ACTION_LABELS[a] for _, a in decisions)
        await _notify_reporter(hub, case.reporter_user_id, case.id, f"has been decided: {labels}.")
        if decision_token:
            what, then = (("who took no part in the first decision decided your appeal", "") if appealed else
                          ("decided", ", and appeal if you disagree (moderators who did not decide will look again)"))
            told = labels if acted else "the decision stands"  # "No action" on appeal changes nothing
            await _notify(hub, case.reported_user,
                          f"Crossline moderators {what} about a report concerning you: {told}. Read their "
                          f"reason{then}: {hub.config.hub_url}/appeal/{decision_token}")
    return "; ".join(outcomes) + "."


async def _on_homeserver(hub: Hub, case: Case, action: Action) -> str:
    """Nothing the moderators wrote goes to Synapse: rooms and server notices are stored there in
    clear. The warning itself reaches her with the decision notice."""
    server = hub.homeserver
    if action is Action.DISMISS:
        return "no action taken"
    if action is Action.WARN:
        return "the person will be told, with a link to the reason"
    if action in (Action.REDACT, Action.KICK, Action.BAN_ROOM):
        async with _as_room_admin(hub, case.room_id) as token:
            if action is Action.REDACT:
                await server.redact(token, case.room_id, case.event_id, f"crossline-case-{case.id}")
                return "the message was removed"
            await server.remove_from_room(token, case.room_id, case.reported_user, ban=action is Action.BAN_ROOM)
        if action is Action.BAN_ROOM:
            await _publish_rule(hub, case)
        return "done in the room"
    if action is Action.BAN_ALL:
        with hub.engine.connect() as conn:
            room_ids = [room.room_id for room in room_store.list_rooms(conn)]
        for room_id in room_ids:
            async with _as_room_admin(hub, room_id) as token:
                await server.remove_from_room(token, room_id, case.reported_user, ban=True)
        # Rooms members made too: the hub learns them from Synapse (it did not create them).
        banned, closed = await member_rooms.ban_from_member_rooms(hub, case.reported_user, set(room_ids))
        await _publish_rule(hub, case)
        return f"banned from {len(room_ids)} hub rooms" + (
            f" and {banned} rooms members made" if banned else "") + (
            f"; {closed} rooms the person made were closed" if closed else "")
    if action is Action.SUSPEND:
        await server.suspend(case.reported_user)
        return "the account is suspended"
    if action is Action.SHADOW_BAN:
        await server.shadow_ban(case.reported_user)
        return "the account is shadow-banned"
    if action is Action.LIFT:
        with hub.engine.connect() as conn:
            rule_room = bot_state.get_state(conn, POLICY_ROOM)
        return await appeal_lift.lift(hub, case, rule_room)
    await server.deactivate(case.reported_user)
    await _publish_rule(hub, case)
    return "the account is deactivated"


def _as_room_admin(hub: Hub, room_id: str | None):
    """Room actions are taken by a hub room's creator, or in a room a member made by the hub's
    admin account (`member_rooms.room_admin_token`)."""
    return member_rooms.room_admin_token(hub, room_id)


def known_policy_room(hub: Hub, actor: Member) -> str | None:
    _moderator(actor)
    with hub.engine.connect() as conn:
        return bot_state.get_state(conn, POLICY_ROOM)


async def policy_room(hub: Hub) -> str:
    """The hub's moderation policy list (m.policy.rule.* state events), made on first use by the
    hub's admin account. Draupnir or Mjolnir can be invited to follow it."""
    with hub.engine.connect() as conn:
        room_id = bot_state.get_state(conn, POLICY_ROOM)
    if room_id:
        return room_id
    room_id = await hub.homeserver.create_room(hub.homeserver.admin_token, {
        "name": "Crossline moderation policy list", "preset": "private_chat",
        "topic": "Bans decided by Crossline's moderators, as m.policy.rule events. Follow with Draupnir or Mjolnir."})
    with hub.engine.begin() as conn:
        bot_state.set_state(conn, POLICY_ROOM, room_id)
    return room_id


async def _publish_rule(hub: Hub, case: Case) -> None:
    room_id = await policy_room(hub)
    # The moderators' reason stays sealed in the hub: the rule is stored in clear in Synapse.
    await hub.homeserver.send_state(hub.homeserver.admin_token, room_id, "m.policy.rule.user",
                                    f"crossline-case-{case.id}",
                                    {"entity": case.reported_user, "recommendation": "m.ban",
                                     "reason": f"Crossline moderation, case {case.id}"})


async def _notify(hub: Hub, user_id: str | None, text: str) -> None:
    if user_id:
        try:
            await hub.homeserver.server_notice(user_id, text)
        except HomeserverError:
            pass  # the decision stands; the audit log has it and the status page shows it


async def _notify_reporter(hub: Hub, user_id: str | None, case_id: int, what: str) -> None:
    await _notify(hub, user_id, f"Your report (case {case_id}) {what}")


# -- Appeals and retention ------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionView:
    case_id: int
    signed_in_as_her: bool
    decisions: list[tuple[str, str]]  # (what was done, the moderators' reason): only for her
    may_appeal: bool


@dataclass(frozen=True)
class AppealDeciders:
    """Who may take the next step of an appeal, for the case page."""
    step: str  # "propose" or "agree"
    took_part: tuple[str, ...]  # in the decision under appeal: they may take neither step
    may: tuple[str, ...]  # empty: too few moderators are left to decide it
    different_sides: bool


def appeal_deciders(hub: Hub, actor: Member, case_id: int) -> AppealDeciders | None:
    """None when the case is not on appeal."""
    sides = hub.config.moderation.second_moderator_from_other_side
    with hub.engine.connect() as conn:
        case = case_for(conn, hub, actor, case_id)
        pending = [d for d in store.list_decisions(conn, case_id) if d.status == "pending"]
        on_appeal = case.status is CaseStatus.APPEALED or (
            case.status is CaseStatus.AWAITING_SECOND and pending and pending[0].on_appeal)
        if not on_appeal:
            return None
        facts, moderators = _facts(conn, hub, case, actor), _moderators(conn, hub, case)
        proposer = _as_moderator(member_store.get_member(conn, pending[0].proposed_by)) if pending else None
        took_part = tuple(m.shown_as for m in member_store.list_members(conn) if m.id in facts.deciders)
    may = tuple(m.name for m in rules.who_may(facts, moderators, proposer, sides))
    return AppealDeciders("agree" if proposer else "propose", took_part, may, sides)


def decision_view(hub: Hub, viewer: Member | None, token: str) -> DecisionView:
    """What her decision link shows. The link travels in a server notice, which Synapse stores in
    clear, so the link alone shows no reason: she reads it signed in as the account it concerns."""
    with hub.engine.connect() as conn:
        case = store.case_for_appeal_token(conn, token_hash(token))
        if case is None:
            raise NotFound("This link is not valid.")
        hers = viewer is not None and viewer.matrix_user_id is not None and viewer.matrix_user_id == case.reported_user
        done = [(ACTION_LABELS[d.action], d.reason) for d in _opened(hub, store.list_decisions(conn, case.id))
                if d.status == "done"] if hers else []
    return DecisionView(case.id, hers, done, case.status is CaseStatus.DECIDED)


def appeal(hub: Hub, appellant: Member | None, token: str, text: str) -> Case:
    """Only she can appeal, signed in as the account the decision concerns: her link travels in a
    server notice, which Synapse stores in clear, so the link alone must not spend her one appeal."""
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise InvalidInput(f"Write why the decision should change (at most {MAX_TEXT} characters).")
    with hub.engine.begin() as conn:
        case = store.case_for_appeal_token(conn, token_hash(token))
        if case is None:
            raise NotFound("This appeal link is not valid.")
        if appellant is None or appellant.matrix_user_id is None:
            raise NotAllowed("Sign in to the hub with the account the decision concerns (your Matrix user name "
                             "and password), then open this link again to appeal.")
        rules.check_appeal(_facts(conn, hub, case), appellant.matrix_user_id)
        store.add_evidence(conn, case.id, "appeal", "text/plain", seal(hub, text), hub.clock.now_ms())
        store.set_status(conn, case.id, CaseStatus.APPEALED, hub.clock.now_ms())
        _audit(conn, hub, "reported_person", "appealed", case.id, post="an appeal")
        return store.get_case(conn, case.id)


def apply_retention(hub: Hub) -> list[int]:
    before = hub.clock.now_ms() - hub.config.moderation.report_retention_days * 86_400_000
    with hub.engine.begin() as conn:
        deleted = store.delete_closed_before(conn, before)
        for case_id in deleted:
            _audit(conn, hub, "system", "deleted_by_retention", case_id)
    return deleted


def verify_audit(hub: Hub) -> tuple[int, str | None]:
    """(entries checked, the first problem found, or None): against the chain, the hub's key and
    the head kept outside the database (services/audit_heads.py)."""
    verdict = audit_heads.verify(hub).verdict
    return verdict.entries, verdict.problems[0] if verdict.problems else None


# -- Room reports (Element's "Report room" and "Decline and report") ------------------------------


async def take_in_room_report(hub: Hub, reporter_user_id: str, room_id: str, reason: str) -> int | None:
    """A room report Synapse accepted, handed over by the client-API gateway (Synapse keeps room
    reports where no admin API lists them, and gives them no id). While her case about the room
    is unfinished, a new report adds its reason to it as sealed evidence (up to
    `MAX_ROOM_REPORT_ADDITIONS`); once decided or closed, a new report opens a new case. She is
    told either way, as for other Matrix reports. Returns the case the report went to.

    Reported while she is only invited (Element's "Decline and report"), the case names the
    account that invited her."""
    try:
        membership = await hub.homeserver.member_event(room_id, reporter_user_id)
    except HomeserverError:
        membership = None
    invited_by = None
    if membership and membership.get("content", {}).get("membership") == "invite":
        invited_by = membership.get("sender")
    # Another process filing a report at the same moment may take the new case's key: then
    # the second attempt finds that case and joins it.
    for _ in range(2):
        with hub.engine.begin() as conn:
            filed = _file_room_report(conn, hub, reporter_user_id, room_id, reason[:MAX_TEXT], invited_by)
        if filed is not None:
            case_id, what = filed
            await _notify_reporter(hub, reporter_user_id, case_id, what)
            return case_id
    return None


MAX_ROOM_REPORT_ADDITIONS = 20  # repeated reports one case takes in: nothing else limits them
NO_REASON = "(no reason given)"
_FINISHED = (CaseStatus.DECIDED.value, CaseStatus.CLOSED.value)


def _file_room_report(conn, hub: Hub, reporter_user_id: str, room_id: str, reason: str,
                      invited_by: str | None) -> tuple[int, str] | None:
    """(case, what to tell her), or None when another report took the new case's key first."""
    latest = room_report_store.latest_case(conn, reporter_user_id, room_id)
    if latest and latest[1] not in _FINISHED:
        return latest[0], _add_room_report(conn, hub, latest[0], reason)
    # The key is unique per case: the first for this reporter and room, then one per finished
    # case it follows, so that two reports at once cannot both open a case.
    key = "room_reports:" + hashlib.sha256(f"{reporter_user_id}\0{room_id}".encode()).hexdigest()[:40]
    token = hub.new_token()
    member = member_store.find_by_user_id(conn, reporter_user_id)
    case_id = store.add_case(
        conn, source=room_report_store.SOURCE, category=Category.OTHER, urgent=False, now_ms=hub.clock.now_ms(),
        synapse_report=key if latest is None else f"{key}:{latest[0]}", room_id=room_id, reported_user=invited_by,
        reporter_member_id=member.id if member else None, reporter_user_id=reporter_user_id,
        reason_sealed=seal(hub, reason) if reason else None, status_token_hash=token_hash(token))
    if case_id is None:
        return None
    _audit(conn, hub, "matrix", "report_received", case_id, source=room_report_store.SOURCE)
    return case_id, ("about a room was received. Moderators will look at it; you will hear what they decide "
                     "here. " + _status_invitation(hub, token))


def _add_room_report(conn, hub: Hub, case_id: int, reason: str) -> str:
    """A repeated report on her unfinished case: its reason as sealed evidence, with an audit
    entry. The same words again (a second click) add nothing."""
    text = (reason or NO_REASON).encode()
    added = [unseal(hub, sealed) for sealed in room_report_store.sealed_evidence(conn, case_id, "room_report")]
    if text in added or text == (unseal(hub, store.get_case(conn, case_id).reason_sealed) or NO_REASON.encode()):
        _audit(conn, hub, "matrix", "report_repeated", case_id, source=room_report_store.SOURCE)
        return "about this room is still open, and already holds what you reported."
    if len(added) >= MAX_ROOM_REPORT_ADDITIONS:
        _audit(conn, hub, "matrix", "report_not_added", case_id, source=room_report_store.SOURCE)
        return ("about this room already holds as many further reports as it can: this one was not added. "
                "Add what you need through the status link you were sent.")
    store.add_evidence(conn, case_id, "room_report", "text/plain", seal(hub, text), hub.clock.now_ms())
    _audit(conn, hub, "matrix", "report_added", case_id, source=room_report_store.SOURCE, text=bool(reason))
    return "about this room is still open: your new report was added to it for the moderators."
