"""The moderation record kept so that whoever holds the database cannot quietly change it.

- `record` appends an entry, authenticated with the hub's audit key (derived from its signing
  secret, never in the database), and, at every decision, queues the log's signed head to every
  moderators' room (template "moderation") in the same transaction: the bot posts it encrypted, so
  copies live on the moderators' devices. Like `keep`, it signs no head over a log that no longer
  extends the kept head.
- `keep` (every 30 s, and at shutdown) checks what was written since the head last kept in
  `DATA_DIR/audit-head.txt` (outside the database), then signs the new head there, and posts one
  to each moderators' room at least daily (to a new room within a keep). It never signs over a log
  that no longer extends the kept head: it tells the moderators instead.
- `verify` checks the whole log against the chain, the key and every head it is given or keeps.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from crossline import secrets
from crossline.domain import audit as chain
from crossline.domain import audit_heads as heads
from crossline.reports.signing import fingerprint, signing_key_from_secret
from crossline.services.hub import Hub
from crossline.storage import audit
from crossline.storage import bot as bot_state
from crossline.storage import rooms as room_store

logger = logging.getLogger(__name__)

MODERATION_TEMPLATE = "moderation"
DAY_MS = 86_400_000
POSTED = "audit_head_posted"  # bot_state: {room id: when it was last sent a head}
ALERTED = "audit_head_alert"  # bot_state: the problem the moderators were last told of


def _signing_secret(hub: Hub) -> str:
    return secrets.read_secret(hub.config.paths.secrets_dir, secrets.REPORT_SIGNING_KEY)


def key(hub: Hub) -> bytes:
    return chain.audit_key(_signing_secret(hub))


def _sign(hub: Hub, seq: int, digest: str) -> heads.SignedHead:
    head = heads.Head(hub.config.synapse.server_name, seq, digest, hub.clock.now_ms())
    return heads.sign(head, signing_key_from_secret(_signing_secret(hub)))


def hub_fingerprint(hub: Hub) -> str:
    return fingerprint(bytes(signing_key_from_secret(_signing_secret(hub)).verify_key))


def moderators_rooms(conn) -> list[str]:
    return [room.room_id for room in room_store.list_rooms(conn) if room.template == MODERATION_TEMPLATE]


def record(conn, hub: Hub, actor: str, kind: str, case_id: int | None, details: dict,
           post: str | None = None) -> None:
    """Appends an entry in the caller's transaction. post: why the head goes to the moderators'
    rooms now (a decision), or None."""
    seq, digest = audit.append(conn, key(hub), hub.clock.now_ms(), actor, kind, case_id, details)
    if post:
        # Never a head over a log that no longer extends the kept one: it would vouch for the change.
        kept, _newer, problem = _since_kept(conn, hub)
        if problem:
            _alert(conn, hub, problem, kept)
        else:
            _queue(conn, hub, _sign(hub, seq, digest), post)


def _queue(conn, hub: Hub, signed: heads.SignedHead, reason: str, rooms: list[str] | None = None) -> None:
    """To `rooms` (default: every moderators' room), each noted as posted to now."""
    rooms = moderators_rooms(conn) if rooms is None else rooms
    text = heads.message(signed, hub_fingerprint(hub), reason)
    for room_id in rooms:
        bot_state.queue_message(conn, room_id, f"audit-head-{signed.head.seq}-{signed.head.at_ms}-{room_id}",
                                {"msgtype": "m.notice", "body": text, "org.crossline.audit_head": signed.token},
                                "audit_head", hub.clock.now_ms())
    bot_state.set_state(conn, POSTED, json.dumps({**_posted(conn), **dict.fromkeys(rooms, signed.head.at_ms)}))


def _posted(conn) -> dict[str, int]:
    """When each moderators' room was last sent a head."""
    return json.loads(bot_state.get_state(conn, POSTED) or "{}")


# -- The head kept outside the database ----------------------------------------------------------


def own_heads(hub: Hub, text: str) -> tuple[list[heads.SignedHead], list[str]]:
    """The heads in a text signed with this hub's key, and what is wrong with the others."""
    good, bad = heads.read(text)
    mine, name = bytes(signing_key_from_secret(_signing_secret(hub)).verify_key), hub.config.synapse.server_name
    bad += [f"a head for entry {h.head.seq} is signed with another key ({fingerprint(h.public_key)}), not this "
            f"hub's ({fingerprint(mine)}): give a head from this hub's moderators' room" for h in good
            if h.public_key != mine]
    bad += [f"a head for entry {h.head.seq} names the hub {h.head.hub!r}, not this one ({name})" for h in good
            if h.public_key == mine and h.head.hub != name]
    return [h for h in good if h.public_key == mine and h.head.hub == name], bad


def _kept_text(hub: Hub) -> str | None:
    """The kept head file's text, None if there is none; HeadError if it cannot be read (a decision
    must not fail on it: it is told instead)."""
    path = hub.config.paths.audit_head
    try:
        return path.read_text("utf-8", errors="replace") if path.exists() else None
    except OSError as error:
        raise heads.HeadError(f"the head the hub keeps in {path} cannot be read ({error.strerror}); an operator "
                              "makes it readable to the hub again") from None


def kept_head(hub: Hub) -> heads.SignedHead | None:
    """The head kept in the file; None if there is none. HeadError if the file holds no head of
    this hub: then nothing is signed over the log until an operator looks (see _since_kept)."""
    text = _kept_text(hub)
    if text is None:
        return None
    path = hub.config.paths.audit_head
    found, _bad = own_heads(hub, text)
    if not found:
        raise heads.HeadError(f"the head the hub keeps in {path} is no head signed by this hub (the file or the "
                              "hub's key was changed); once the log is checked against the latest head from this "
                              "room, an operator moves that file aside")
    return max(found, key=lambda h: h.head.seq)


def _since_kept(conn, hub: Hub) -> tuple[heads.SignedHead | None, list[chain.StoredEntry], str | None]:
    """The kept head, the entries written after it, and the first reason the log no longer
    extends it (None: it does). Reads only what came after the kept head, so it stays cheap."""
    try:
        kept = kept_head(hub)
    except heads.HeadError as error:
        return None, [], str(error)
    after = kept.known() if kept else None
    newer = list(audit.entries(conn, after_seq=after.seq if after else 0))
    verdict = chain.check(newer, key(hub), [after] if after else [], after=after)
    if verdict.problems or after is None:
        problem = verdict.problems[0] if verdict.problems else None
    elif (at_kept := audit.hash_at(conn, after.seq)) is None:
        last = audit.last(conn)
        ending = "" if last and last[0] > after.seq else \
            f", and the log ends at entry {last[0]}" if last else ", and the log holds no entries"
        problem = f"entry {after.seq} is missing: {after.label} names it{ending}"
    else:
        problem = None if at_kept == after.hash else \
            f"entry {after.seq} is not the one in {after.label}: the log up to it was rewritten"
    return kept, newer, problem and f"the audit log no longer extends the head the hub kept: {problem}"


@dataclass(frozen=True)
class Kept:
    head: heads.SignedHead | None  # the head now kept (None: the log is empty)
    problem: str | None  # the log no longer extends the kept head: nothing was signed


def keep(hub: Hub, daily: bool = True) -> Kept:
    """Signs the log's new head into the file, after checking that everything written since the
    kept head extends it; and, if `daily`, queues a head to each moderators' room that had none in
    the last day or none yet (the same head again if nothing was written: the log still ends there)."""
    with hub.engine.begin() as conn:
        previous, newer, problem = _since_kept(conn, hub)
        if problem:
            _alert(conn, hub, problem, previous)
            return Kept(previous, problem)
        if bot_state.get_state(conn, ALERTED):  # resolved (the log restored): a new problem is told again
            bot_state.set_state(conn, ALERTED, "")
    current = previous
    if newer:
        current = _sign(hub, newer[-1].seq, newer[-1].hash)
        secrets.write_private_file(hub.config.paths.audit_head, _head_file(hub, current))
    if daily and current is not None:
        with hub.engine.begin() as conn:
            # Per room: a room made since the last head gets the current one now, not a day later.
            posted = _posted(conn)
            due = [room for room in moderators_rooms(conn) if hub.clock.now_ms() - posted.get(room, 0) >= DAY_MS]
            if due:
                _queue(conn, hub, _sign(hub, current.head.seq, current.head.hash), "the daily head", due)
    return Kept(current, None)


def _head_file(hub: Hub, signed: heads.SignedHead) -> str:
    return heads.message(signed, hub_fingerprint(hub), "the latest head") + "\n"


def download(hub: Hub) -> str | None:
    """The kept head as a file moderators can save (and give to `crossline audit verify --head`)."""
    kept = keep(hub, daily=False).head
    return _head_file(hub, kept) if kept else None


def _alert(conn, hub: Hub, problem: str, kept: heads.SignedHead | None) -> None:
    """Tells the moderators' rooms, in the caller's transaction, once for each kept head the log no
    longer extends (nothing is signed until it does again, however the log changes meanwhile)."""
    logger.error("The audit log's head is not signed: %s. Run `crossline audit verify`.", problem)
    about = kept.token if kept else problem
    if bot_state.get_state(conn, ALERTED) == about:
        return
    bot_state.set_state(conn, ALERTED, about)
    text = (f"Moderation record: {problem}. No new head will be signed until this is resolved. Run "
            "`crossline audit verify --head FILE` with the latest head from this room to see every change. "
            "If the database was restored from a backup on purpose, the operator moves the hub's audit-head.txt "
            "aside once the moderators have checked the log.")
    for room_id in moderators_rooms(conn):
        bot_state.queue_message(conn, room_id, f"audit-alert-{hub.clock.now_ms()}-{room_id}",
                                {"msgtype": "m.notice", "body": text}, "audit_head", hub.clock.now_ms())


# -- Verification -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    verdict: chain.Verdict
    unusable: list[str]  # heads given that could not be used, and why


def verify(hub: Hub, given: list[str] = ()) -> Checked:
    """The whole log against the chain, the key, the kept head and every head in `given` texts."""
    found, unusable = [], []
    texts = [("", text) for text in given]
    try:
        kept = _kept_text(hub)
    except heads.HeadError as error:
        kept, unusable = None, [str(error)]
    if kept is not None:
        texts.append((f"the head kept in {hub.config.paths.audit_head}: ", kept))
    for source, text in texts:
        good, bad = own_heads(hub, text)
        found += good
        unusable += [source + why for why in bad]
    with hub.engine.connect() as conn:
        stored = list(audit.entries(conn))
    known = list({h.token: h.known() for h in found}.values())
    return Checked(chain.check(stored, key(hub), known), unusable)
