"""The moderation record kept so that whoever holds the database cannot quietly change it.

- `record` appends an entry, authenticated with the hub's audit key (derived from its signing
  secret, never in the database), and, at every decision, queues the log's signed head to every
  moderators' room (template "moderation") in the same transaction: the bot posts it encrypted, so
  copies live on the moderators' devices. Like `keep`, it signs no head over a log that no longer
  extends the kept head.
- `keep` (every 30 s, and at shutdown) checks what was written since the head last kept in
  `DATA_DIR/audit-head.txt` (outside the database), then signs the new head there, and posts one
  to each moderators' room at least daily (to a new room within a keep). It never signs over a log
  that no longer extends the kept head: it tells the moderators instead. Its first run keys the
  entries written before keys (migration 0014), once.
- `verify` checks the whole log against the chain, the key and every head it is given or keeps.
- None of them calls a log good while the database holds a trigger, rule or row-security policy
  (the hub makes none): each could keep chosen entries or heads from ever being written.
What says when each room was last sent a head, and which problem was told, is kept outside the
database too (services/audit_state.py): whoever writes it could otherwise silence both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from crossline import secrets
from crossline.domain import audit as chain
from crossline.domain import audit_heads as heads
from crossline.reports.signing import fingerprint, signing_key_from_secret
from crossline.services import audit_state
from crossline.services.hub import Hub
from crossline.storage import audit
from crossline.storage import bot as bot_state
from crossline.storage import rooms as room_store

logger = logging.getLogger(__name__)

MODERATION_TEMPLATE = "moderation"
DAY_MS = 86_400_000
MAX_KEPT_FILE = 1_000_000  # the kept head file holds one head; a larger one was not written by the hub


def _signing_secret(hub: Hub) -> str:
    return secrets.read_secret(hub.config.paths.secrets_dir, secrets.REPORT_SIGNING_KEY)


def _signing_key(hub: Hub):
    return signing_key_from_secret(_signing_secret(hub))


def key(hub: Hub) -> bytes:
    return chain.audit_key(_signing_secret(hub))


def _sign(hub: Hub, seq: int, digest: str) -> heads.SignedHead:
    head = heads.Head(hub.config.synapse.server_name, seq, digest, hub.clock.now_ms())
    return heads.sign(head, _signing_key(hub))


def hub_fingerprint(hub: Hub) -> str:
    return fingerprint(bytes(_signing_key(hub).verify_key))


def moderators_rooms(conn) -> list[str]:
    return [room.room_id for room in room_store.list_rooms(conn) if room.template == MODERATION_TEMPLATE]


def record(conn, hub: Hub, actor: str, kind: str, case_id: int | None, details: dict,
           post: str | None = None) -> None:
    """Appends an entry in the caller's transaction (NotRecorded if the database did not store it
    as written: then the action is not taken). post: why the head goes to the moderators' rooms
    now (a decision), or None. A decision never fails on its check: a problem found, or a check
    that fails, is told to the rooms at every decision, and no head is signed."""
    seq, digest = audit.append(conn, key(hub), hub.clock.now_ms(), actor, kind, case_id, details)
    if post:
        # Never a head over a log that no longer extends the kept one: it would vouch for the change.
        kept, _newer, broken = _checked(conn, hub, savepoint=True)
        if broken:
            _alert(conn, hub, broken, again=True)
        else:
            _queue(conn, hub, _sign(hub, seq, digest), post)


def _queue(conn, hub: Hub, signed: heads.SignedHead, reason: str, rooms: list[str] | None = None) -> None:
    """To `rooms` (default: every moderators' room), each noted (outside the database) as posted to now."""
    rooms = moderators_rooms(conn) if rooms is None else rooms
    text = heads.message(signed, hub_fingerprint(hub), reason)
    for room_id in rooms:
        bot_state.queue_message(conn, room_id, f"audit-head-{signed.head.seq}-{signed.head.at_ms}-{room_id}",
                                {"msgtype": "m.notice", "body": text, "org.crossline.audit_head": signed.token},
                                "audit_head", hub.clock.now_ms())
    try:
        audit_state.posted(hub.config.paths.audit_state, rooms, signed.head.at_ms)
    except OSError as error:  # the rooms then get the daily head again sooner: nothing is lost
        logger.warning("Could not note the audit head as posted: %s", error.strerror)


# -- The head kept outside the database ----------------------------------------------------------


def mine(hub: Hub, good: list[heads.SignedHead], bad: list[str]) -> tuple[list[heads.SignedHead], list[str]]:
    """Of heads read (audit_heads.read), those signed with this hub's key, and what is wrong with the others."""
    own, name = bytes(_signing_key(hub).verify_key), hub.config.synapse.server_name
    bad = bad + [f"a head for entry {h.head.seq} is signed with another key ({fingerprint(h.public_key)}), not "
                 f"this hub's ({fingerprint(own)}): give a head from this hub's moderators' room" for h in good
                 if h.public_key != own]
    bad += [f"a head for entry {h.head.seq} names the hub {h.head.hub!r}, not this one ({name})" for h in good
            if h.public_key == own and h.head.hub != name]
    return [h for h in good if h.public_key == own and h.head.hub == name], bad


def own_heads(hub: Hub, text: str) -> tuple[list[heads.SignedHead], list[str]]:
    """The heads in a text signed with this hub's key, and what is wrong with the others."""
    return mine(hub, *heads.read(text))


def _kept_text(hub: Hub) -> str | None:
    """The kept head file's text, None if there is none; HeadError if it cannot be read (a decision
    must not fail on it: it is told instead)."""
    path = hub.config.paths.audit_head
    try:
        if not path.exists():
            return None
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEPT_FILE + 1)
    except OSError as error:
        raise heads.HeadError(f"the head the hub keeps in {path} cannot be read ({error.strerror}); an operator "
                              "makes it readable to the hub again") from None
    if len(data) > MAX_KEPT_FILE:
        raise heads.HeadError(f"the head the hub keeps in {path} is larger than any head the hub writes (the file "
                              "was changed); once the log is checked against the latest head from the moderators' "
                              "room, an operator moves that file aside")
    return data.decode("utf-8", errors="replace")


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


@dataclass(frozen=True)
class Broken:
    problem: str  # told to the moderators
    about: str  # the same for as long as it is the same problem: told once by keep, however the log grows


def _rewriters(conn) -> Broken | None:
    found = audit.rewriters(conn)
    if not found:
        return None
    return Broken(f"the hub's database holds {', '.join(found)}. The hub makes none: each can keep entries or "
                  "heads from being written, or change them as they are, unseen by any check of what is stored. "
                  "An operator finds who added it, removes it, and the moderators compare the log with their "
                  "heads", "rewriters:" + ",".join(found))


def _since_kept(conn, hub: Hub) -> tuple[heads.SignedHead | None, list[chain.StoredEntry], Broken | None]:
    """The kept head, the entries written after it, and the first reason the log no longer
    extends it (None: it does). Reads only what came after the kept head, so it stays cheap."""
    try:
        kept = kept_head(hub)
    except heads.HeadError as error:
        return None, [], Broken(str(error), str(error))
    if rewriters := _rewriters(conn):
        return kept, [], rewriters
    after = kept.known() if kept else None
    newer = list(audit.entries(conn, after_seq=after.seq if after else 0))
    all_keyed = audit_state.load(hub.config.paths.audit_state).keyed_through is not None
    verdict = chain.check(newer, key(hub), [after] if after else [], after=after, all_keyed=all_keyed)
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
    if problem is None:
        return kept, newer, None
    return kept, newer, Broken(f"the audit log no longer extends the head the hub kept: {problem}",
                               kept.token if kept else problem)


def _checked(conn, hub: Hub, savepoint: bool) -> tuple[heads.SignedHead | None, list[chain.StoredEntry],
                                                      Broken | None]:
    """_since_kept, where a check that fails (on anything a database can hold) is itself the
    problem told: never a failed decision or keep, never a head. savepoint: so that a database
    error leaves the caller's transaction usable (a decision's)."""
    try:
        if not savepoint:
            return _since_kept(conn, hub)
        with conn.begin_nested():
            return _since_kept(conn, hub)
    except Exception as error:  # noqa: BLE001 - told to the moderators; only the type is logged
        logger.exception("Checking the audit log failed")
        problem = f"the audit log could not be checked ({type(error).__name__}): run `crossline audit verify`"
        return None, [], Broken(problem, problem)


@dataclass(frozen=True)
class Kept:
    head: heads.SignedHead | None  # the head now kept (None: the log is empty)
    problem: str | None  # the log no longer extends the kept head: nothing was signed


def keep(hub: Hub, daily: bool = True) -> Kept:
    """Signs the log's new head into the file, after checking that everything written since the
    kept head extends it; and, if `daily`, queues a head to each moderators' room that had none in
    the last day or none yet (the same head again if nothing was written: the log still ends there).
    One keep at a time (the keeper and a head download may run at once): the file never goes back."""
    paths = hub.config.paths
    with audit_state.locked(paths.audit_head):
        with hub.engine.connect() as conn:  # reading only: decisions are not held up meanwhile
            previous, newer, broken = _checked(conn, hub, savepoint=False)
        if broken:
            with hub.engine.begin() as conn:
                _alert(conn, hub, broken, again=False)
            return Kept(previous, broken.problem)
        state = audit_state.load(paths.audit_state)
        if state.alerted:  # resolved (the log restored): a new problem is told again
            audit_state.update(paths.audit_state, lambda s: replace(s, alerted=None))
        if state.keyed_through is None:
            _key_old_entries(hub, newer[-1].seq if newer else previous.head.seq if previous else 0)
        current = previous
        if newer:
            current = _sign(hub, newer[-1].seq, newer[-1].hash)
            secrets.write_private_file(paths.audit_head, _head_file(hub, current))
    if daily and current is not None:
        now, posted = hub.clock.now_ms(), audit_state.load(paths.audit_state).posted
        with hub.engine.begin() as conn:
            # Per room: a room made since the last head gets the current one now, not a day later. A
            # time to come (a clock set back, a changed file) is due too.
            due = [room for room in moderators_rooms(conn) if not 0 <= now - posted.get(room, now - DAY_MS) < DAY_MS]
            if due:
                _queue(conn, hub, _sign(hub, current.head.seq, current.head.hash), "the daily head", due)
    return Kept(current, None)


def _key_old_entries(hub: Hub, through: int) -> None:
    """Once, after the check that the log extends the kept head: MACs the entries written before
    keys, and notes outside the database that it was done, so that from then on an entry without a
    MAC is one that lost it (checked entries only: up to `through`)."""
    with hub.engine.begin() as conn:
        keyed = audit.add_macs(conn, key(hub), through)
    audit_state.update(hub.config.paths.audit_state, lambda s: replace(s, keyed_through=keyed))
    if keyed:
        logger.info("Audit log: entries 1 to %d, written before entries were keyed, now carry a MAC", keyed)


def _head_file(hub: Hub, signed: heads.SignedHead) -> str:
    return heads.message(signed, hub_fingerprint(hub), "the latest head") + "\n"


def download(hub: Hub) -> str | None:
    """The kept head as a file moderators can save (and give to `crossline audit verify --head`)."""
    kept = keep(hub, daily=False).head
    return _head_file(hub, kept) if kept else None


def _alert(conn, hub: Hub, broken: Broken, again: bool) -> None:
    """Tells the moderators' rooms, in the caller's transaction: at every decision (`again`), and
    otherwise once for each problem (nothing is signed until the log extends the kept head again,
    however it changes meanwhile). What was told is kept outside the database."""
    path = hub.config.paths.audit_state
    told = audit_state.load(path).alerted == broken.about
    if not told:
        logger.error("The audit log's head is not signed: %s. Run `crossline audit verify`.", broken.problem)
    if told and not again:
        return
    text = (f"Moderation record: {broken.problem}. No new head will be signed until this is resolved. Run "
            "`crossline audit verify --head FILE` with the latest head from this room to see every change. "
            "If the database was restored from a backup on purpose, the operator moves the hub's audit-head.txt "
            "aside once the moderators have checked the log.")
    for room_id in moderators_rooms(conn):
        bot_state.queue_message(conn, room_id, f"audit-alert-{hub.clock.now_ms()}-{room_id}",
                                {"msgtype": "m.notice", "body": text}, "audit_head", hub.clock.now_ms())
    try:
        audit_state.update(path, lambda s: replace(s, alerted=broken.about))
    except OSError as error:  # then it is told again at the next keep: nothing is lost
        logger.warning("Could not note the audit alert as told: %s", error.strerror)


# -- Verification -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    verdict: chain.Verdict
    unusable: list[str]  # heads given that could not be used, and why


def verify(hub: Hub, given: list[heads.SignedHead] = (), not_used: list[str] = ()) -> Checked:
    """The whole log against the chain, the key, the kept head and every head `given` (read with
    `mine`; `not_used`: what was wrong with the others)."""
    found, unusable = list(given), list(not_used)
    try:
        kept = _kept_text(hub)
    except heads.HeadError as error:
        kept, unusable = None, [*unusable, str(error)]
    if kept is not None:
        good, bad = own_heads(hub, kept)
        found += good
        unusable += [f"the head kept in {hub.config.paths.audit_head}: {why}" for why in bad]
    with hub.engine.connect() as conn:
        rewriters = _rewriters(conn)
        stored = list(audit.entries(conn))
    known = list({h.token: h.known() for h in found}.values())
    all_keyed = audit_state.load(hub.config.paths.audit_state).keyed_through is not None
    verdict = chain.check(stored, key(hub), known, all_keyed=all_keyed)
    if rewriters:
        verdict = replace(verdict, problems=[rewriters.problem, *verdict.problems])
    return Checked(verdict, unusable)
