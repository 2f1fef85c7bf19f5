"""Live sessions: everything the pages and the JSON API do, each call checking who asks.

The hub is the only client of Janus: one Janus room per running session, one publisher handle and
one subscriber handle per participant, so every request goes through these checks and every room
event (talking, leaving) reaches `handle_event`.

Keys: one random 32-byte AES-GCM key per epoch, in this process's memory only (never stored,
logged or sent to Janus). A new epoch starts when the session starts running in this process (so
after a restart), and whenever someone leaves or is removed. For a session tied to a Matrix room
where the hub's bot is a member, each epoch's key also goes into that end-to-end-encrypted room,
until someone has been removed (then the page only).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from crossline import secrets
from crossline.domain import live as rules
from crossline.domain.live import NO_SIDE, HandQueue, LiveStatus, Owner, SpeakingTime
from crossline.domain.ratelimit import Ratelimiter
from crossline.domain.records import Member
from crossline.errors import Conflict, CrosslineError, HomeserverError, InvalidInput, NotAllowed, NotFound
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.storage import consultations as consultation_store
from crossline.storage import lines as line_store
from crossline.storage import live as store
from crossline.storage import members as member_store
from crossline.storage import pseudonyms as pseudonym_store

logger = logging.getLogger(__name__)

KEY_BYTES = 32
KEPT_EPOCHS = 3  # receivers keep the last three epochs' keys
LONG_POLL_S = 25.0
MAX_SDP = 64 * 1024
FEED_ID_LIMIT = 2**52  # feed ids stay exact in a JavaScript number
ROLES = ("listener", "interpreter")
ACTIONS = ("mute_all", "unmute_all", "mute", "unmute", "remove", "lock", "unlock", "end", "next_speaker")
# A departure's new epoch (and its key event in the Matrix room) comes at most this often: one
# rotation, after the interval, covers every departure meanwhile.
EPOCH_MIN_INTERVAL_MS = 5_000
JOINS_PER_MINUTE = 10  # per member: reloads and reconnections, not a way to flood the others
HANDS_PER_MINUTE = 12  # per member: raising and lowering wakes every page's long poll
LANGUAGE_CODE_MAX = 16
NOT_FOUND = "There is no such live session, or it is not open to you."


class TooFast(CrosslineError):
    status = 429


class Announcer(Protocol):
    """What the hub's bot does for a session tied to a Matrix room (see matrix/bot.py)."""

    async def send_live_key(self, room_id: str, content: dict) -> None: ...
    async def set_live_widget(self, room_id: str, state_key: str, content: dict) -> None: ...


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check_language(value: object) -> str:
    if not (isinstance(value, str) and 2 <= len(value) <= LANGUAGE_CODE_MAX
            and all(c.isascii() and (c.isalnum() or c == "-") for c in value)):
        raise InvalidInput('A language is a short code such as "ru", "ka" or "uk".')
    return value.lower()


def check_sdp(value: object) -> str:
    if not (isinstance(value, str) and value.startswith("v=0") and len(value) <= MAX_SDP):
        raise InvalidInput("Send the browser's session description (SDP) as text starting with v=0.")
    return value


@dataclass
class Present:
    """One person in a running session."""

    participant_id: str
    member_id: int
    feed_id: int
    display: str
    side: str | None
    role: str
    language: str | None
    facilitator: bool
    video: bool = False
    muted: bool = False
    answered: bool = False  # Janus answered her offer: her audio can be moderated
    published: bool = False  # Janus reported her media up (webrtcup): listed for the others
    publisher: int | None = None
    subscriber: int | None = None

    @property
    def counted_side(self) -> str:
        return self.side or NO_SIDE


@dataclass
class Running:
    """A session running in this process: its Janus room, keys and who is in it."""

    session_id: int
    room: Any  # live.janus.JanusRoom
    keys: list[tuple[int, bytes]] = field(default_factory=list)
    present: dict[str, Present] = field(default_factory=dict)
    hands: HandQueue = field(default_factory=HandQueue)
    speaking: SpeakingTime = field(default_factory=SpeakingTime)
    # Kept per member (the hub's member id, never shown) for the whole session, so a reload,
    # which makes a new participant id, neither unmutes her nor escapes a removal.
    participant_members: dict[str, int] = field(default_factory=dict)  # every participant id given -> member
    muted_members: set[int] = field(default_factory=set)
    all_muted: bool = False  # mute all: whoever joins later starts muted, until unmute all
    let_through: set[int] = field(default_factory=set)  # unmuted one by one since mute all
    epoch_started_ms: int = 0
    rotation_due: bool = False  # a departure waits for the next epoch (EPOCH_MIN_INTERVAL_MS)

    def by_member(self, member_id: int) -> Present | None:
        return next((p for p in self.present.values() if p.member_id == member_id), None)

    def by_feed(self, feed_id: int) -> Present | None:
        return next((p for p in self.present.values() if p.feed_id == feed_id), None)


@dataclass(frozen=True)
class Access:
    """Who asks about which session, as the rules decided."""

    session: store.LiveSession
    owner: Owner
    member: Member
    facilitator: bool
    interpreter_language: str | None
    matrix_room: str | None  # where the widget and keys go (the bot is a member), else None


class LiveSessions:
    def __init__(self, hub: Hub, janus: Any = None, announcer: Announcer | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom, long_poll_s: float = LONG_POLL_S,
                 sleep: Callable[[float], Any] = asyncio.sleep):
        self.hub = hub
        self.janus = janus
        self.announcer = announcer
        self.random_bytes = random_bytes
        self.long_poll_s = long_poll_s
        self.running: dict[str, Running] = {}
        self.janus_rooms: dict[int, str] = {}  # Janus room id -> public id
        self.versions: dict[str, int] = {}
        self.changed: dict[str, asyncio.Event] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.background: set[asyncio.Task] = set()
        self.sleep = sleep
        self.rotations: set[asyncio.Task] = set()
        self.join_limits = Ratelimiter(hub.clock, JOINS_PER_MINUTE, 60_000)
        self.hand_limits = Ratelimiter(hub.clock, HANDS_PER_MINUTE, 60_000)

    # -- Who asks -------------------------------------------------------------------------------

    async def access(self, member: Member | None, public_id: str) -> Access:
        """The caller's standing in the session; one answer (404) for a session that does not
        exist and one she may not see, so the answer tells nothing about other lines' sessions."""
        if member is None:
            raise NotAllowed("Sign in to this hub first, then open the live session's link again.")
        with self.hub.engine.connect() as conn:
            session = store.get_session(conn, public_id)
            if session is None:
                raise NotFound(NOT_FOUND)
            interpreters = store.interpreters(conn, session.id)
            masked, owner_room, matrix_room, template = False, None, None, None
            if session.consultation_id is not None:
                consultation = consultation_store.get_consultation(conn, session.consultation_id)
                owner = Owner(session.line_id, consultation.id, consultation.eligible_side_ids)
                matrix_room = consultation.room_id
                masked = self._not_as_herself(conn, member, consultation.id)
            else:
                owner_room = store.room_by_row_id(conn, session.hub_room_id)
                owner = Owner(session.line_id)
                template = self.hub.room_templates.get(owner_room.template)
                matrix_room = owner_room.room_id if template and template.hub_bot_member else None
        if owner_room is not None and not rules.is_facilitator(member, owner) and member.id not in interpreters:
            owner = Owner(session.line_id, room_member=await self._joined(owner_room.room_id, member))
        if not rules.may_join(member, owner, member.id in interpreters, masked):
            raise NotFound(NOT_FOUND)
        return Access(session, owner, member, rules.is_facilitator(member, owner), interpreters.get(member.id),
                      matrix_room)

    def _not_as_herself(self, conn, member: Member, consultation_id: int) -> bool:
        from crossline.services import pseudonyms

        return bool(pseudonyms.not_counted(conn, self.hub, [(member.id, consultation_id)]))

    async def _joined(self, room_id: str, member: Member) -> bool:
        if not member.matrix_user_id:
            return False
        try:
            event = await self.hub.homeserver.member_event(room_id, member.matrix_user_id)
        except HomeserverError as error:
            raise Conflict("The homeserver could not say who is in this room just now. Try again in a minute.") \
                from error
        return bool(event) and (event.get("content") or {}).get("membership") == "join"

    async def control_access(self, member: Member | None, public_id: str) -> Access:
        found = await self.access(member, public_id)
        if not found.facilitator:
            raise NotAllowed("Only the session's facilitators can do this.")
        return found

    # -- Staff: open, schedule, start, interpreters ----------------------------------------------

    def open_for_consultation(self, actor: Member | None, consultation_id: int, scheduled_at: int | None,
                              title: str = "") -> store.LiveSession:
        require(actor, "facilitator")
        with self.hub.engine.begin() as conn:
            consultation = consultation_store.get_consultation(conn, consultation_id)
            if consultation is None or not rules.is_facilitator(actor, Owner(consultation.line_id)):
                raise NotFound("There is no such consultation.")
            return self._add(conn, actor, consultation.line_id, consultation.id, None,
                             title or consultation.title, scheduled_at, consultation.room_id)

    def open_for_room(self, actor: Member | None, hub_room_id: int, scheduled_at: int | None,
                      title: str = "") -> store.LiveSession:
        require(actor, "facilitator")
        with self.hub.engine.begin() as conn:
            room = store.room_by_row_id(conn, hub_room_id)
            if room is None or not rules.is_facilitator(actor, Owner(room.line_id)):
                raise NotFound("There is no such room.")
            template = self.hub.room_templates.get(room.template)
            matrix_room = room.room_id if template and template.hub_bot_member else None
            return self._add(conn, actor, room.line_id, None, room.id, title or room.name, scheduled_at, matrix_room)

    def _add(self, conn, actor: Member, line_id: int, consultation_id: int | None, hub_room_id: int | None,
             title: str, scheduled_at: int | None, matrix_room: str | None) -> store.LiveSession:
        title = " ".join(title.split())[:200] or "Live session"
        now = self.hub.clock.now_ms()
        if scheduled_at is not None and scheduled_at <= now:
            raise InvalidInput("Choose a time in the future to schedule a session, or open it now.")
        status = LiveStatus.OPEN if scheduled_at is None else LiveStatus.SCHEDULED
        session = store.add_session(conn, self.hub.new_token(), line_id, consultation_id, hub_room_id, title, status,
                                    scheduled_at, actor.id, now)
        if status is LiveStatus.OPEN:
            self._widget(matrix_room, session, present=True)
        return session

    async def start(self, actor: Member | None, public_id: str) -> store.LiveSession:
        """A scheduled session opened by its facilitator."""
        found = await self.control_access(actor, public_id)
        with self.hub.engine.begin() as conn:
            store.set_status(conn, found.session.id, rules.transition(found.session.status, LiveStatus.OPEN))
            session = store.get_session(conn, public_id)
        self._widget(found.matrix_room, session, present=True)
        self._bump(public_id)
        return session

    async def name_interpreter(self, actor: Member | None, public_id: str, member_id: int, language: object) -> None:
        found = await self.control_access(actor, public_id)
        language = check_language(language)
        if found.session.status is LiveStatus.ENDED:
            raise Conflict("This live session has ended.")
        with self.hub.engine.begin() as conn:
            named = member_store.get_member(conn, member_id)
            if named is None or named.line_id not in (None, found.session.line_id):
                raise InvalidInput("Choose a member of this line (or staff) as the interpreter.")
            store.set_interpreter(conn, found.session.id, member_id, language)
        self._bump(public_id)

    def sessions_for_consultation(self, actor: Member | None, consultation_id: int) -> list[store.LiveSession]:
        require(actor, "facilitator")
        with self.hub.engine.connect() as conn:
            return store.sessions_of(conn, consultation_id=consultation_id)

    def sessions_open_to(self, member: Member | None, consultation_id: int) -> list[store.LiveSession]:
        """A participant's consultation page: its live sessions that have not ended."""
        from crossline.services.consultations import open_to

        open_to(self.hub, member, consultation_id)
        with self.hub.engine.connect() as conn:
            return [s for s in store.sessions_of(conn, consultation_id=consultation_id)
                    if s.status is not LiveStatus.ENDED]

    def room_sessions_of_line(self, actor: Member | None, line_id: int) -> dict[int, list[store.LiveSession]]:
        """{hub room id: its sessions that have not ended}, for the line's page."""
        require(actor, "facilitator")
        found: dict[int, list[store.LiveSession]] = {}
        with self.hub.engine.connect() as conn:
            for session in store.sessions_of(conn, line_id=line_id):
                if session.status is not LiveStatus.ENDED:
                    found.setdefault(session.hub_room_id, []).append(session)
        return found

    # -- The page ----------------------------------------------------------------------------------

    async def page(self, member: Member | None, public_id: str) -> dict:
        """What the page shows before she joins."""
        found = await self.access(member, public_id)
        with self.hub.engine.connect() as conn:
            languages = sorted(set(store.interpreters(conn, found.session.id).values()))
            line = line_store.get_line(conn, found.session.line_id)
            candidates = member_store.list_members(conn, found.session.line_id) + \
                [m for m in member_store.list_members(conn) if m.line_id is None] if found.facilitator else []
        return {"live": found.session, "facilitator": found.facilitator, "languages": languages,
                "interpreter_language": found.interpreter_language, "line": line,
                "interpreter_candidates": candidates}

    # -- Joining and media ------------------------------------------------------------------------

    async def join(self, member: Member | None, public_id: str, video: object, role: object,
                   language: object) -> dict:
        found = await self.access(member, public_id)
        if role not in ROLES:
            raise InvalidInput('"role" is "listener" or "interpreter".')
        if not isinstance(video, bool):
            raise InvalidInput('"video" is true or false.')
        if role == "interpreter" and found.interpreter_language is None:
            raise NotAllowed("Only interpreters the facilitator named can join as interpreters.")
        if language is not None:
            check_language(language)
        self._limit(self.join_limits, found.member.id, "joined")
        # Every change of who is in the session happens under its lock, with its status and her
        # removal read under it: an end or a removal racing a join (a reload) wins.
        async with self._lock(public_id):
            with self.hub.engine.connect() as conn:
                session = store.get_session(conn, public_id)
                removed = store.is_removed(conn, found.session.id, found.member.id)
            rules.check_join(session.status, found.facilitator, removed)
            running = await self._running(found)
            earlier = running.by_member(found.member.id)
            if earlier is not None:  # a reload or a second tab: the earlier connection goes (same key)
                await self._drop(public_id, running, earlier, new_epoch=False)
            present = self._present(found, running, role)
            present.muted = self._starts_muted(running, found)
            present.publisher = await self._engine().join_publisher(running.room, present.feed_id,
                                                                    f"feed {present.feed_id}")
            running.present[present.participant_id] = present
            running.participant_members[present.participant_id] = found.member.id
            with self.hub.engine.begin() as conn:
                store.add_participant(conn, found.session.id, found.member.id)
        self._bump(public_id)
        epoch, key = running.keys[-1]
        with self.hub.engine.connect() as conn:
            languages = sorted(set(store.interpreters(conn, found.session.id).values()))
        return {"participant_id": present.participant_id, "feed_id": present.feed_id, "display": present.display,
                "side": present.side, "key": {"epoch": epoch, "key": b64url(key)}, "ice_servers": self._ice_servers(),
                "audio_bitrate": self.hub.config.live.audio_bitrate, "languages": languages,
                "facilitator": found.facilitator}

    def _limit(self, limiter: Ratelimiter, member_id: int, what: str) -> None:
        allowed, when = limiter.can_do_action(member_id)
        if not allowed:
            seconds = max(1, (when - self.hub.clock.now_ms() + 999) // 1000)
            raise TooFast(f"You have {what} too often just now: wait {seconds} s and try again.")

    @staticmethod
    def _starts_muted(running: Running, found: Access) -> bool:
        if found.facilitator:
            return False
        if running.all_muted and found.member.id not in running.let_through:
            running.muted_members.add(found.member.id)
        return found.member.id in running.muted_members

    def _present(self, found: Access, running: Running, role: str) -> Present:
        with self.hub.engine.connect() as conn:
            line = line_store.get_line(conn, found.session.line_id)
            pseudonym = pseudonym_store.pseudonym_of_member(conn, found.member.id)
        side = line.side(found.member.side_id) if found.member.side_id else None
        feed_id = self._feed_id(running)
        if pseudonym is not None:
            display = pseudonym.display_name
        elif found.member.matrix_user_id:
            display = found.member.matrix_user_id[1:].split(":")[0]
        else:  # a web participant's handle is a credential-like token: never shown to others
            display = f"{side.name if side else 'Participant'} {feed_id % 1000:03d}"
        interpreting = role == "interpreter"
        return Present(self.hub.new_token(), found.member.id, feed_id, display, side.name if side else None, role,
                       found.interpreter_language if interpreting else None, found.facilitator)

    def _feed_id(self, running: Running) -> int:
        while True:
            feed_id = int.from_bytes(self.random_bytes(7), "big") % FEED_ID_LIMIT
            if feed_id and running.by_feed(feed_id) is None:
                return feed_id

    def _ice_servers(self) -> list[dict]:
        from crossline.live.turn import ice_servers

        path = self.hub.config.paths.secret(secrets.TURN_SHARED_SECRET)
        if not path.exists():
            return []
        secret = secrets.read_secret(self.hub.config.paths.secrets_dir, secrets.TURN_SHARED_SECRET)
        return ice_servers(self.hub.config, secret, self.hub.clock.now_ms(), self.hub.new_token)

    async def publish(self, member: Member | None, public_id: str, sdp: object, video: object) -> dict:
        found, running, present = await self._in_session(member, public_id)
        sdp = check_sdp(sdp)
        if not isinstance(video, bool):
            raise InvalidInput('"video" is true or false.')
        answer = await self._engine().publish(present.publisher, sdp, audio_bitrate=self.hub.config.live.audio_bitrate,
                                              video=video, language=present.language)
        # Listed for the others only once Janus says her media is up (handle_event "published"):
        # a feed Janus does not have would make everyone's subscription fail.
        present.video, present.answered = video, True
        if present.muted:
            await self._engine().moderate(running.room, present.feed_id, True)
        self._bump(public_id)
        return {"sdp": answer}

    async def subscribe(self, member: Member | None, public_id: str, feeds: object) -> dict:
        found, running, present = await self._in_session(member, public_id)
        if not (isinstance(feeds, list) and len(feeds) <= 2 * self.hub.config.live.max_publishers
                and all(isinstance(f, int) and not isinstance(f, bool) for f in feeds)):
            raise InvalidInput('"feeds" is a list of feed ids from the state.')
        known = {p.feed_id for p in running.present.values() if p.published and p.feed_id != present.feed_id}
        wanted = [f for f in dict.fromkeys(feeds) if f in known]
        if not wanted:
            raise Conflict("None of those feeds is in the session now: ask for the state again.")
        handle, offer = await self._engine().subscribe(running.room, present.subscriber, wanted)
        present.subscriber = handle
        # Which feed each m-line carries (by mid), so the page can tell whose track is whose.
        return {"sdp": offer, "streams": self._engine().subscription_streams(handle)}

    async def subscribe_answer(self, member: Member | None, public_id: str, sdp: object) -> dict:
        found, running, present = await self._in_session(member, public_id)
        sdp = check_sdp(sdp)
        if present.subscriber is None:
            raise Conflict("Ask to subscribe first: there is no offer to answer.")
        await self._engine().start_subscription(present.subscriber, sdp)
        return {}

    async def _in_session(self, member: Member | None, public_id: str) -> tuple[Access, Running, Present]:
        found = await self.access(member, public_id)
        running = self.running.get(public_id)
        present = running.by_member(found.member.id) if running else None
        if present is None:
            raise NotAllowed("You are not in this live session: join it first.")
        return found, running, present

    # -- Hands, leaving ------------------------------------------------------------------------------

    async def hand(self, member: Member | None, public_id: str, raised: object) -> dict:
        found, running, present = await self._in_session(member, public_id)
        if not isinstance(raised, bool):
            raise InvalidInput('"raised" is true or false.')
        if raised == running.hands.is_raised(present.participant_id):
            return {}  # no change: nobody's page is woken
        self._limit(self.hand_limits, found.member.id, "raised or lowered your hand")
        if raised:
            running.hands.raise_hand(present.participant_id, present.counted_side, self.hub.clock.now_ms())
        else:
            running.hands.lower(present.participant_id)
        self._bump(public_id)
        return {}

    async def leave(self, member: Member | None, public_id: str) -> dict:
        """Also what the quick exit sends: answered at once for anyone who may see the session."""
        await self.access(member, public_id)
        async with self._lock(public_id):
            running = self.running.get(public_id)
            present = running.by_member(member.id) if running else None
            if present is not None:
                await self._drop(public_id, running, present)
        if present is not None:
            self._bump(public_id)
        return {}

    async def _drop(self, public_id: str, running: Running, present: Present, new_epoch: bool = True) -> None:
        running.present.pop(present.participant_id, None)
        running.hands.lower(present.participant_id)
        running.speaking.stopped(present.feed_id, self.hub.clock.now_ms())
        for handle in (present.publisher, present.subscriber):
            if handle is not None:
                with contextlib.suppress(CrosslineError):
                    await self._engine().detach(handle)
        if new_epoch and running.present:
            self._rotate(public_id, running)

    # -- Facilitators' controls ------------------------------------------------------------------------

    async def control(self, member: Member | None, public_id: str, action: object, participant_id: object) -> dict:
        found = await self.control_access(member, public_id)
        if action not in ACTIONS:
            raise InvalidInput(f'"action" is one of: {", ".join(ACTIONS)}.')
        if action in ("lock", "unlock"):
            target = LiveStatus.LOCKED if action == "lock" else LiveStatus.OPEN
            with self.hub.engine.begin() as conn:
                store.set_status(conn, found.session.id, rules.transition(found.session.status, target))
        elif action == "end":
            await self.end(found)
        else:
            running = self.running.get(public_id)
            if running is None:
                raise Conflict("Nobody is in this live session yet.")
            await getattr(self, f"_{action}")(found, running, participant_id)
        self._bump(public_id)
        return {}

    def _target(self, running: Running, participant_id: object) -> int:
        """The member behind any participant id she has had in this session (a reload gives her a
        new one; the facilitator may still be looking at the old)."""
        member_id = running.participant_members.get(participant_id) if isinstance(participant_id, str) else None
        if member_id is None:
            raise InvalidInput("That person is no longer in the session: the list has been refreshed.")
        return member_id

    async def _mute_all(self, found: Access, running: Running, _: object) -> None:
        running.all_muted, running.let_through = True, set()
        for present in list(running.present.values()):
            if not present.facilitator:
                await self._set_muted(running, present.member_id, True)

    async def _unmute_all(self, found: Access, running: Running, _: object) -> None:
        running.all_muted = False
        for member_id in list(running.muted_members):
            await self._set_muted(running, member_id, False)

    async def _mute(self, found: Access, running: Running, participant_id: object) -> None:
        await self._set_muted(running, self._target(running, participant_id), True)

    async def _unmute(self, found: Access, running: Running, participant_id: object) -> None:
        await self._set_muted(running, self._target(running, participant_id), False)

    async def _set_muted(self, running: Running, member_id: int, muted: bool) -> None:
        """For the whole session: whichever entry of hers is present now or joins later."""
        if muted:
            running.muted_members.add(member_id)
            running.let_through.discard(member_id)
        else:
            running.muted_members.discard(member_id)
            running.let_through.add(member_id)
        present = running.by_member(member_id)
        if present is None or present.muted == muted:
            return
        if present.answered:
            await self._engine().moderate(running.room, present.feed_id, muted)
        present.muted = muted
        if muted:
            running.speaking.stopped(present.feed_id, self.hub.clock.now_ms())

    async def _next_speaker(self, found: Access, running: Running, _: object) -> None:
        """Her hand is lowered and, if she was muted, her microphone let through."""
        hand = running.hands.next_speaker()
        present = running.present.get(hand.participant_id) if hand else None
        if present is not None and present.muted:
            await self._set_muted(running, present.member_id, False)

    async def _remove(self, found: Access, running: Running, participant_id: object) -> None:
        """Keyed by member, under the session's lock (so a join racing it is refused after it),
        and a new epoch at once, so whatever entry of hers is present goes and no key she holds
        stays current."""
        member_id = self._target(running, participant_id)
        if member_id == found.member.id:
            raise InvalidInput("To leave the session yourself, use Leave.")
        async with self._lock(found.session.public_id):
            with self.hub.engine.begin() as conn:
                store.mark_removed(conn, found.session.id, member_id)
                if found.matrix_room:
                    store.stop_keys_to_room(conn, found.session.id)
            present = running.by_member(member_id)
            if present is not None:
                with contextlib.suppress(CrosslineError):  # her media may not be up yet: she goes all the same
                    await self._engine().kick(running.room, present.feed_id)
                await self._drop(found.session.public_id, running, present, new_epoch=False)
            if self.running.get(found.session.public_id) is running:
                self._new_epoch(found.session.public_id, running)

    async def end(self, found: Access) -> None:
        """The Janus room is destroyed, everyone's handles go with it, and who took part is
        forgotten; each side's speaking seconds and head count stay for the report. Under the
        session's lock, so a join in progress either finishes first or finds the session ended."""
        async with self._lock(found.session.public_id):
            await self._end(found)

    async def _end(self, found: Access) -> None:
        with self.hub.engine.connect() as conn:
            session = store.get_session(conn, found.session.public_id)
        rules.transition(session.status, LiveStatus.ENDED)
        running = self.running.pop(session.public_id, None)
        now = self.hub.clock.now_ms()
        seconds: dict[str, int] = {}
        if running is not None:
            running.speaking.close_all(now)
            seconds = running.speaking.seconds(now)
            self.janus_rooms.pop(running.room.room_id, None)
            for present in running.present.values():
                for handle in (present.publisher, present.subscriber):
                    if handle is not None:
                        with contextlib.suppress(CrosslineError):
                            await self._engine().detach(handle)
            with contextlib.suppress(CrosslineError):
                await self._engine().destroy_room(running.room)
        with self.hub.engine.begin() as conn:
            line = line_store.get_line(conn, session.line_id)
            people: dict[str, int] = {}
            for member_id in store.participant_ids(conn, session.id):
                person = member_store.get_member(conn, member_id)
                side = line.side(person.side_id) if person and person.side_id else None
                name = side.name if side else NO_SIDE
                people[name] = people.get(name, 0) + 1
            totals = {side: (seconds.get(side, 0), people.get(side, 0)) for side in set(seconds) | set(people)}
            store.finish(conn, session.id, totals, now)
        self._widget(found.matrix_room, session, present=False)

    # -- State (long poll) ---------------------------------------------------------------------------------

    async def state(self, member: Member | None, public_id: str, since: int | None) -> dict:
        found = await self.access(member, public_id)
        signal = self._signal(public_id)
        if since is not None and self.versions[public_id] <= since:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), timeout=self.long_poll_s)
        return self._state(await self.access(member, public_id))

    def _state(self, found: Access) -> dict:
        public_id = found.session.public_id
        running = self.running.get(public_id)
        present = running.by_member(found.member.id) if running else None
        with self.hub.engine.connect() as conn:
            removed = store.is_removed(conn, found.session.id, found.member.id)
        answer: dict[str, Any] = {"version": self.versions[public_id], "status": found.session.status.value,
                                  "feeds": [], "key": None, "previous_keys": [], "hands": [], "you": None}
        if removed:
            answer["you"] = {"participant_id": None, "muted": True, "removed": True, "hand_raised": False}
        if present is None:
            return answer
        names = {p.participant_id: p.display for p in running.present.values()}
        (epoch, key), earlier = running.keys[-1], running.keys[:-1]
        answer.update(
            feeds=[{"feed_id": p.feed_id, "display": p.display, "side": p.side, "language": p.language,
                    "muted": p.muted} for p in running.present.values() if p.published],
            key={"epoch": epoch, "key": b64url(key)},
            previous_keys=[{"epoch": e, "key": b64url(k)} for e, k in earlier],
            hands=[names[h.participant_id] for h in running.hands.order() if h.participant_id in names],
            you={"participant_id": present.participant_id, "muted": present.muted, "removed": False,
                 "hand_raised": running.hands.is_raised(present.participant_id)},
        )
        if found.facilitator:  # who is who, for her controls
            for feed, p in zip(answer["feeds"], [p for p in running.present.values() if p.published]):
                feed["participant_id"] = p.participant_id
            answer["speaking_seconds_by_side"] = running.speaking.seconds(self.hub.clock.now_ms())
            answer["participants"] = [{"participant_id": p.participant_id, "display": p.display, "side": p.side,
                                       "muted": p.muted, "role": p.role} for p in running.present.values()]
        return answer

    def _signal(self, public_id: str) -> asyncio.Event:
        if public_id not in self.versions:
            self.versions[public_id] = self.hub.clock.now_ms()  # above any version before a restart
            self.changed[public_id] = asyncio.Event()
        return self.changed[public_id]

    def _bump(self, public_id: str) -> None:
        self._signal(public_id).set()
        self.versions[public_id] += 1
        self.changed[public_id] = asyncio.Event()

    # -- Janus's events ------------------------------------------------------------------------------------

    async def consume_events(self) -> None:
        """Runs for the hub's lifetime: talking, stopped talking and leaving, from every room."""
        async for event in self._engine().events():
            try:
                await self.handle_event(event)
            except Exception:  # noqa: BLE001 - one bad event must not stop the others; only the type is logged
                logger.exception("A live-session event could not be handled")

    async def handle_event(self, event: Any) -> None:
        public_id = self.janus_rooms.get(event.room_id)
        running = self.running.get(public_id) if public_id else None
        present = running.by_feed(event.feed_id) if running else None
        if present is None:
            return
        now = self.hub.clock.now_ms()
        if event.kind == "talking" and present.role == "listener" and not present.muted:
            running.speaking.talking(present.feed_id, present.counted_side, now)
        elif event.kind == "stopped-talking":
            running.speaking.stopped(present.feed_id, now)
        elif event.kind == "left":
            async with self._lock(public_id):
                await self._drop(public_id, running, present)
        elif event.kind == "published":
            present.published = True
        elif event.kind == "unpublished":
            present.published = False
            running.speaking.stopped(present.feed_id, now)
        else:
            return
        self._bump(public_id)

    # -- Running sessions, keys -----------------------------------------------------------------------------

    def _engine(self) -> Any:
        if self.janus is None:
            raise Conflict("Live sessions are not available on this hub right now (the media server is not "
                           "running). Ask the hub's operator.")
        return self.janus

    def _lock(self, public_id: str) -> asyncio.Lock:
        return self.locks.setdefault(public_id, asyncio.Lock())

    async def _running(self, found: Access) -> Running:
        public_id = found.session.public_id
        running = self.running.get(public_id)
        if running is not None:
            return running
        room = await self._engine().create_room("crossline live session", self.hub.config.live.max_publishers)
        with self.hub.engine.begin() as conn:
            store.set_engine_room(conn, found.session.id, room.room_id)
        running = Running(found.session.id, room)
        self.running[public_id] = running
        self.janus_rooms[room.room_id] = public_id
        self._new_epoch(public_id, running)
        return running

    def _rotate(self, public_id: str, running: Running) -> None:
        """A departure's new epoch: now, or if the last began under EPOCH_MIN_INTERVAL_MS ago, once
        that interval is over (one rotation then covers every departure meanwhile), so nobody can
        force a stream of key changes and key events by leaving and joining."""
        if running.rotation_due:
            return  # the pending rotation comes after this departure: it covers it
        wait_ms = running.epoch_started_ms + EPOCH_MIN_INTERVAL_MS - self.hub.clock.now_ms()
        if wait_ms <= 0:
            self._new_epoch(public_id, running)
            return
        running.rotation_due = True

        async def later() -> None:
            await self.sleep(wait_ms / 1000)
            async with self._lock(public_id):
                if running.rotation_due and self.running.get(public_id) is running:
                    self._new_epoch(public_id, running)

        task = asyncio.get_running_loop().create_task(later())
        self.rotations.add(task)
        task.add_done_callback(self.rotations.discard)

    def _new_epoch(self, public_id: str, running: Running) -> None:
        running.rotation_due, running.epoch_started_ms = False, self.hub.clock.now_ms()
        with self.hub.engine.begin() as conn:
            epoch = store.next_epoch(conn, running.session_id)
            session = store.get_session(conn, public_id)
        key = self.random_bytes(KEY_BYTES)
        running.keys = [*running.keys, (epoch, key)][-KEPT_EPOCHS:]
        self._bump(public_id)
        if session.keys_to_room:
            room_id = self._matrix_room_of(session)
            if room_id:
                self._announce("send_live_key", room_id, {"live_session": public_id, "epoch": epoch,
                                                          "key": b64url(key), "page": self.page_url(public_id)})

    def _matrix_room_of(self, session: store.LiveSession) -> str | None:
        with self.hub.engine.connect() as conn:
            if session.consultation_id is not None:
                return consultation_store.get_consultation(conn, session.consultation_id).room_id
            room = store.room_by_row_id(conn, session.hub_room_id)
        template = self.hub.room_templates.get(room.template)
        return room.room_id if template and template.hub_bot_member else None

    def page_url(self, public_id: str) -> str:
        return f"{self.hub.config.hub_url}/live/{public_id}"

    def _widget(self, room_id: str | None, session: store.LiveSession, present: bool) -> None:
        if room_id is None:
            return
        content = {"type": "m.custom", "url": self.page_url(session.public_id), "name": f"Live: {session.title}",
                   "data": {}} if present else {}
        self._announce("set_live_widget", room_id, f"crossline-live-{session.public_id}", content)

    def _announce(self, method: str, *arguments: Any) -> None:
        """Sent in the background, so no page waits on Matrix; a failure is logged by type only
        (a key is never logged)."""
        if self.announcer is None:
            return

        async def send() -> None:
            try:
                await getattr(self.announcer, method)(*arguments)
            except Exception as error:  # noqa: BLE001
                logger.warning("The bot could not post a live session's %s (%s)",
                               "key" if method == "send_live_key" else "widget", type(error).__name__)

        task = asyncio.get_running_loop().create_task(send())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def settle(self) -> None:
        """Waits for pending key rotations and what is being sent to Matrix (tests, shutting down)."""
        while self.background or self.rotations:
            await asyncio.gather(*self.rotations, *self.background, return_exceptions=True)

    async def close(self) -> None:
        """At shutdown: every running room destroyed (their keys die with this process)."""
        for task in list(self.rotations):
            task.cancel()
        for public_id, running in list(self.running.items()):
            with contextlib.suppress(CrosslineError):
                await self._engine().destroy_room(running.room)
            self.running.pop(public_id, None)
        await self.settle()


def parse_schedule(value: str) -> int | None:
    """A form's date and time (UTC, as the page says), or None for "now"."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    except ValueError as error:
        raise InvalidInput("Give the time as date and time (UTC), for example 2026-12-01T14:30, or leave it "
                           "empty to open the session now.") from error
    return int(moment.timestamp() * 1000)
