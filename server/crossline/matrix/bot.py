"""The hub's bot: the one place that owns the matrix-nio client.

- An ordinary end-to-end-encrypted device of `@crossline-bot`, an account in the appservice's
  exclusive namespace (Synapse refuses /sync for the appservice's own sender), logged in once
  through the appservice and restored from its session file afterwards; its Olm/Megolm store is
  a folder in the data directory, pickled with a real key (a secret file).
- Its device is cross-signed by its own account (see `cross_signing`).
- The sync loop keeps its own position in the hub database and saves it in the same commit as
  the effects of the events it covers; every event is applied once (`room_events`). A sync
  that skipped events (a `limited` timeline) is completed from /messages first.
- Messages to rooms are queued in the outbox by the services and sent here with a stable
  transaction id, so a resend after a crash lands once.

Message content is never logged.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
from dataclasses import dataclass, field

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RedactionEvent,
    RoomGetEventResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPutStateResponse,
    RoomSendResponse,
    SyncError,
    SyncResponse,
    UploadResponse,
)
from nio.exceptions import EncryptionError, LocalProtocolError
from sqlalchemy import Connection

from crossline import secrets
from crossline.config import BOT_LOCALPART
from crossline.matrix import cross_signing
from crossline.matrix.direct_rooms import DirectRooms
from crossline.matrix.homeserver import synapse_session
from crossline.matrix.pictures import PictureChecker
from crossline.secrets import write_private_file
from crossline.domain import room_commands, room_messages
from crossline.domain.room_events_parser import Message, clean_text, parse_event
from crossline.services import moderation, picture_warnings, reports
from crossline.services.hub import Hub
from crossline.services.room_events import RoomMessage, apply_room_messages_in
from crossline.storage import bot as bot_store

logger = logging.getLogger(__name__)
# nio reports every message it cannot decrypt yet and every device it has no session with yet as a
# warning; for the bot these are routine (it keeps such events and retries), so only errors show.
logging.getLogger("nio").setLevel(logging.ERROR)

SYNC_TIMEOUT_MS = 30_000
OUTBOX_POLL_S = 0.25
# Answers under way at once: Synapse persists concurrent sends to a room together, so a burst
# of answers costs it a few transactions instead of one each.
CONCURRENT_SENDS = 16
SYNC_TIMELINE_LIMIT = 200
GAP_PAGE = 100
MAX_BACKOFF_S = 60.0
# An answer that could not be sent waits before its next try: doubling from SEND_RETRY_FIRST_S up
# to SEND_RETRY_MAX_S, times a random factor between 0.5 and 1.5 so that retries do not align.
SEND_RETRY_FIRST_S = 1.0
SEND_RETRY_MAX_S = 300.0
# Refusals that a retry cannot change: the message is dropped (logged by its error code only).
PERMANENT_SEND_ERRORS = frozenset({"M_TOO_LARGE", "M_FORBIDDEN", "M_BAD_JSON", "M_NOT_JSON", "M_UNKNOWN_TOKEN"})
OUTBOX_PAGE = 200
# Events the bot cannot decrypt yet are kept for a while (services/housekeeping drops them after a
# day), at most this many per room and per sender in a room, the oldest dropped first.
PENDING_PER_ROOM = 500
PENDING_PER_SENDER = 50
NEXT_BATCH = "next_batch"
LIVE_KEY_EVENT = "org.crossline.live.key"
WIDGET_EVENT = "im.vector.modular.widgets"
LIVE_WAIT_S = 60.0  # for the first sync after a start


class BotError(Exception):
    pass


@dataclass
class UnreadableEvent:
    """A timeline event that the bot's client failed on: handled as a failure, answered neutrally."""

    event_id: str
    sender: str
    source: dict = field(default_factory=dict)


class GuardedClient(AsyncClient):
    """nio decrypts and parses timeline events inside `sync()`. An event whose decrypted content its
    parser does not expect (a message without a msgtype raises KeyError there) would make every
    sync raise and stop the bot in every room, for good. Here such an event becomes an
    UnreadableEvent and the rest of the sync goes on."""

    def _handle_timeline_event(self, event, room_id, room, encrypted_rooms):
        try:
            return super()._handle_timeline_event(event, room_id, room, encrypted_rooms)
        except Exception as error:  # noqa: BLE001 - one event must not stop the sync
            logger.warning("The bot's client failed on an event (%s); it is skipped", type(error).__name__)
            return UnreadableEvent(str(getattr(event, "event_id", "")), str(getattr(event, "sender", "")))


def send_failure_is_permanent(http_status: int | None, errcode: str | None) -> bool:
    """A refusal that sending again cannot change: too large, forbidden, any other 4xx but 429."""
    if errcode in PERMANENT_SEND_ERRORS:
        return True
    return http_status is not None and 400 <= http_status < 500 and http_status != 429 \
        and errcode != "M_LIMIT_EXCEEDED"


def outgoing_content(content: dict) -> dict:
    """What the bot sends in a room: `m.mentions` always set (empty unless the message names
    someone on purpose), and the whole content small enough for the homeserver once encrypted."""
    if "body" not in content:
        return content
    mentions = content.get("m.mentions")
    return room_messages.fit({**content, "m.mentions": mentions if isinstance(mentions, dict) else {}})


class HubBot:
    def __init__(self, hub: Hub, session: aiohttp.ClientSession, rng: random.Random | None = None):
        self.hub = hub
        self.session = session
        self.rng = rng or random.SystemRandom()
        self.retry: dict[int, tuple[int, int]] = {}  # outbox id -> (failed tries, not before, ms)
        config = hub.config
        self.store_dir = config.data_dir / "bot" / "store"
        self.session_file = config.paths.secret(secrets.BOT_SESSION)
        self.cross_signing_file = config.paths.secret(secrets.BOT_CROSS_SIGNING_KEYS)
        self.client: AsyncClient | None = None
        self.synced_once = asyncio.Event()
        self.outbox_ready = asyncio.Event()
        self.sending: dict[int, asyncio.Task] = {}  # outbox id -> its send under way
        self.direct_rooms = DirectRooms(self)
        self.pictures = PictureChecker(self)
        self.sending_messages: dict[int, bot_store.OutgoingMessage] = {}
        self.retry_messages: dict[int, bot_store.OutgoingMessage] = {}
        # The bot's own messages are left out (nothing to apply); a generous limit makes gaps rare.
        self.sync_filter = {"room": {"timeline": {"limit": SYNC_TIMELINE_LIMIT, "not_senders": [config.bot_user_id]}}}

    # -- Start-up -----------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.hub.config
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.session_file.exists():
            await self._appservice_login()
        saved = json.loads(self.session_file.read_text(encoding="utf-8"))
        pickle_key = secrets.read_secret(config.paths.secrets_dir, secrets.BOT_PICKLE_KEY)
        client = GuardedClient(
            config.homeserver_url, saved["user_id"], device_id=saved["device_id"], store_path=str(self.store_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, pickle_key=pickle_key),
        )
        client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
        # Synapse listens only on its socket; nio would otherwise open a TCP session of its own.
        client.client_session = synapse_session(config, timeout=aiohttp.ClientTimeout(total=client.config.request_timeout))
        if client.olm is None:
            raise BotError("The bot has no encryption store: refusing to run (it would send plaintext).")
        self.client = client
        if client.should_upload_keys:
            await client.keys_upload()
        await self._ensure_cross_signed()
        # The bot reads everything and needs no notifications: with its master push rule on,
        # Synapse stops counting unread notifications for it on every message in every room.
        await self._api("PUT", "/pushrules/global/override/.m.rule.master/enabled", {"enabled": True})

    async def _appservice_login(self) -> None:
        config = self.hub.config
        as_token = secrets.read_secret(config.paths.secrets_dir, secrets.APPSERVICE_AS_TOKEN)
        await self.hub.homeserver.register_appservice_user(BOT_LOCALPART)
        body = {
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": BOT_LOCALPART},
            "initial_device_display_name": "Crossline hub bot",
        }
        async with self.session.post(f"{config.homeserver_url}/_matrix/client/v3/login", json=body,
                                     headers={"Authorization": f"Bearer {as_token}"}) as response:
            data = await response.json(content_type=None)
            if response.status != 200:
                raise BotError(f"The bot could not log in: {data.get('error', response.status)}")
        write_private_file(self.session_file, json.dumps(
            {"user_id": data["user_id"], "device_id": data["device_id"], "access_token": data["access_token"]}))

    async def _api(self, method: str, path: str, body: dict) -> dict:
        assert self.client is not None
        async with self.session.request(
            method, f"{self.hub.config.homeserver_url}/_matrix/client/v3{path}", json=body,
            headers={"Authorization": f"Bearer {self.client.access_token}"},
        ) as response:
            data = await response.json(content_type=None)
            if response.status != 200:
                raise BotError(f"{path} was refused: {data.get('error', response.status)}")
            return data

    async def _ensure_cross_signed(self) -> None:
        client = self.client
        query = await self._api("POST", "/keys/query", {"device_keys": {client.user_id: [client.device_id]}})
        if cross_signing.device_is_cross_signed(client.user_id, query, client.device_id):
            return
        if self.cross_signing_file.exists():
            keys = cross_signing.CrossSigningKeys.from_json(self.cross_signing_file.read_text(encoding="utf-8"))
        else:
            keys = cross_signing.CrossSigningKeys.generate()
            write_private_file(self.cross_signing_file, keys.to_json())
        await self._api("POST", "/keys/device_signing/upload", cross_signing.device_signing_upload(client.user_id, keys))
        device = query["device_keys"][client.user_id][client.device_id]
        await self._api("POST", "/keys/signatures/upload", cross_signing.signed_device_keys(client.user_id, device, keys))
        logger.info("The bot's device is now cross-signed by its own account")

    # -- Running --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start, sync and send until `stop` is set; server errors and outages are retried with
        exponential backoff, so a restarting homeserver does not stop the bot."""
        backoff = 1.0
        while not stop.is_set():
            try:
                if self.client is None:
                    await self.start()
                sender = asyncio.create_task(self._send_forever(stop))
                try:
                    first = True
                    while not stop.is_set():
                        await self.sync_once(full_state=first)
                        first = False
                        backoff = 1.0
                finally:
                    sender.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure is retried; only its type is logged
                logger.warning("The bot's sync failed (%s); retrying in %.0f s", type(error).__name__, backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def sync_once(self, full_state: bool = False) -> None:
        client = self.client
        with self.hub.engine.connect() as conn:
            since = bot_store.get_state(conn, NEXT_BATCH)
        # full_state after a start: nio keeps room state in memory only, and needs the members
        # of each room to know whom to encrypt for.
        response = await client.sync(timeout=0 if full_state else SYNC_TIMEOUT_MS, since=since, full_state=full_state,
                                     sync_filter=self.sync_filter)
        if isinstance(response, SyncError):
            raise BotError(f"sync failed: {response.status_code}")
        assert isinstance(response, SyncResponse)
        await self._keys_housekeeping()
        undecrypted: list[MegolmEvent] = []
        kept_rooms: set[str] = set()
        # One transaction for the whole batch and the position after it: one commit (one fsync)
        # however many messages arrived, and the position can never get ahead of the effects.
        timelines = {room_id: await whole_timeline(client, room_id, room.timeline, since)
                     for room_id, room in response.rooms.join.items()}
        replied = await self._reported_messages(timelines)
        with self.hub.engine.begin() as conn:
            messages = self._decrypted_from_earlier(conn)
            for room_id, events in timelines.items():
                for event in events:
                    if isinstance(event, MegolmEvent):
                        bot_store.keep_pending(conn, event.event_id, room_id, event.source, self.hub.clock.now_ms())
                        undecrypted.append(event)
                        kept_rooms.add(room_id)
                    elif _counts(event):
                        messages.append(self._room_message(room_id, event, replied.get(event.event_id)))
            bot_store.cap_pending(conn, kept_rooms, PENDING_PER_ROOM, PENDING_PER_SENDER)
            pictures = picture_warnings.to_check_in(conn, self.hub, messages, self.pictures.gate)
            applied = apply_room_messages_in(conn, self.hub, self.direct_rooms.apply_in(conn, messages))
            bot_store.set_state(conn, NEXT_BATCH, response.next_batch)
        self.outbox_ready.set()
        self.pictures.check_later(pictures)  # beside the sync loop: a picture never delays a command
        await self.direct_rooms.after_sync(response.rooms.invite, set(response.rooms.join))
        for report in applied.reports:
            # Nobody else in the room should see who reported: her command goes (with no reason, which
            # everyone would see), she is told privately.
            await client.room_redact(report.message.room_id, report.message.event_id)
            await moderation.acknowledge_room_report(self.hub, report.case_id, report.message.sender,
                                                     report.status_token)
        for message in applied.hidden:
            # She counts under her pseudonym here: her command as herself would tell the room so.
            await client.room_redact(message.room_id, message.event_id)
        for event in undecrypted:
            try:
                await client.request_room_key(event)
            except LocalProtocolError:
                pass  # already requested
        self.synced_once.set()

    async def _keys_housekeeping(self) -> None:
        client = self.client
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    def _room_message(self, room_id: str, event, replied: tuple[str, str] | None = None) -> RoomMessage:
        if isinstance(event, UnreadableEvent):
            return RoomMessage(event.event_id, room_id, event.sender, None)
        room = self.client.rooms.get(room_id)
        try:
            name = room.user_name(event.sender) if room else None
        except Exception:  # noqa: BLE001 - a display name is only for show
            name = None
        return RoomMessage(event.event_id, room_id, event.sender, event.source, name or event.sender, replied)

    async def _reported_messages(self, timelines: dict) -> dict[str, tuple[str, str]]:
        """For each "!report" reply in the batch: the reported message as the bot decrypts it now
        (sender, text), which becomes the case's verified evidence."""
        found = {}
        for room_id, events in timelines.items():
            for event in events:
                parsed = parse_event(event.source) if _counts(event) else None
                if isinstance(parsed, Message) and isinstance(parsed.command, room_commands.Report) and parsed.reply_to:
                    seen = await self._decrypted_event(room_id, parsed.reply_to)
                    if seen:
                        found[event.event_id] = seen
        return found

    async def _decrypted_event(self, room_id: str, event_id: str) -> tuple[str, str] | None:
        response = await self.client.room_get_event(room_id, event_id)
        if not isinstance(response, RoomGetEventResponse):
            return None
        event = response.event
        if isinstance(event, MegolmEvent):
            event.room_id = room_id
            try:
                event = self.client.decrypt_event(event)
            except Exception:  # noqa: BLE001 - undecryptable or unparseable: no evidence to attach
                return None
        if not isinstance(event, RoomMessageText) or not isinstance(event.body, str):
            return None
        return event.sender, clean_text(event.body)

    def _decrypted_from_earlier(self, conn: Connection) -> list[RoomMessage]:
        """Kept events whose keys have arrived since, decrypted now (and no longer kept)."""
        messages = []
        for event_id, room_id, source in bot_store.pending(conn):
            if not self._session_arrived(room_id, source.get("content")):
                continue  # its key has not arrived yet: not worth a decryption attempt
            try:
                encrypted = MegolmEvent.from_dict(source)
                encrypted.room_id = room_id
                decrypted = self.client.decrypt_event(encrypted)
            except EncryptionError:
                continue  # its key has not arrived yet
            except Exception as error:  # noqa: BLE001 - answered as a failure below
                logger.warning("The bot's client failed on a kept event (%s); it is skipped", type(error).__name__)
                decrypted = UnreadableEvent(event_id, str(source.get("sender", "")))
            if _counts(decrypted):
                messages.append(self._room_message(room_id, decrypted))
            bot_store.drop_pending(conn, event_id)
        return messages

    def _session_arrived(self, room_id: str, content) -> bool:
        """False only when the event names its Megolm session and the client has no such session:
        made-up session ids then cost a lookup per sync, not a decryption attempt."""
        olm = getattr(self.client, "olm", None)
        if olm is None or not isinstance(content, dict):
            return True
        sender_key, session_id = content.get("sender_key"), content.get("session_id")
        if not (isinstance(sender_key, str) and isinstance(session_id, str)):
            return True  # tried (and answered as unreadable) as before
        return olm.inbound_group_store.get(room_id, sender_key, session_id) is not None

    async def _send_forever(self, stop: asyncio.Event) -> None:
        # Woken by the sync loop as soon as a batch is committed and whenever a send finishes;
        # the timeout picks up messages the web pages queue (questions, phase changes).
        try:
            backoff = OUTBOX_POLL_S
            while not stop.is_set():
                self.outbox_ready.clear()
                try:
                    await self.flush_outbox()
                    backoff = OUTBOX_POLL_S
                except Exception as error:  # noqa: BLE001 - answers must not stop until a restart
                    logger.warning("The bot's sender failed (%s); going on in %.0f s", type(error).__name__, backoff)
                    await _wait(stop, backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                await _wait(self.outbox_ready, OUTBOX_POLL_S)
        finally:
            for task in self.sending.values():
                task.cancel()  # a cancelled send is retried with the same transaction id

    async def flush_outbox(self) -> None:
        """Starts sending what waits in the outbox, up to CONCURRENT_SENDS at once: under load each
        send waits on the homeserver, and one at a time the bot would fall behind. Answers go out
        in any order; anything else (questions, announcements) keeps its order in its room: it
        waits for what is under way or waiting to be retried in that room, never for other rooms
        (the outbox is read per room, so one room's backlog never hides another room's messages)."""
        client = self.client
        if not self.synced_once.is_set():
            return  # room membership is not known yet: nothing could be encrypted for it
        now = self.hub.clock.now_ms()
        with self.hub.engine.connect() as conn:
            waiting = bot_store.next_per_room(conn, CONCURRENT_SENDS, OUTBOX_PAGE, rooms=list(client.rooms),
                                              skip_ids=[*self.sending, *self.retry])
        busy_rooms = {m.room_id for m in self.sending_messages.values() if m.purpose != "reply"}
        for message_id, (_, not_before) in list(self.retry.items()):
            retried = self.retry_messages[message_id]
            if retried.room_id not in client.rooms:
                continue  # the bot is no longer in that room: it waits, as on the first try
            if not_before <= now:
                waiting.append(retried)
            elif retried.purpose != "reply":
                busy_rooms.add(retried.room_id)
        for message in sorted(waiting, key=lambda m: m.id):
            if len(self.sending) >= CONCURRENT_SENDS:
                return
            if message.purpose != "reply":
                if message.room_id in busy_rooms or any(m.room_id == message.room_id
                                                        for m in self.sending_messages.values()):
                    busy_rooms.add(message.room_id)
                    continue
                busy_rooms.add(message.room_id)
            self.sending_messages[message.id] = message
            self.sending[message.id] = asyncio.create_task(self._send(message))

    async def _report_file(self, report_id: int) -> dict:
        """A released report, uploaded encrypted (the homeserver stores ciphertext only), as the
        content of an m.file message. A retry may upload again; the message itself lands once."""
        record, data = reports.released_document(self.hub, report_id)
        name = f"crossline-report-{record.consultation_id}-v{record.version}.json"
        uploaded, keys = await self.client.upload(io.BytesIO(data), content_type="application/json", filename=name,
                                                  encrypt=True, filesize=len(data))
        if not isinstance(uploaded, UploadResponse) or keys is None:
            raise BotError(f"the report could not be uploaded: {getattr(uploaded, 'status_code', uploaded)}")
        return {"msgtype": "m.file", "body": name, "filename": name,
                "info": {"mimetype": "application/json", "size": len(data)},
                "file": {**keys, "url": uploaded.content_uri, "mimetype": "application/json"}}

    async def _send(self, message: bot_store.OutgoingMessage) -> bool:
        try:
            room = self.client.rooms.get(message.room_id)
            if room is None or not getattr(room, "encrypted", False):
                # nio sends in clear to a room it does not know to be encrypted; every room the bot
                # speaks in is encrypted, so its state is not synced yet: wait, never send in clear.
                logger.warning("The bot holds a message for a room it does not yet know to be encrypted")
                self._retry_later(message)
                return False
            try:
                content = message.content
                if message.purpose == "report":
                    content = await self._report_file(message.content["report_id"])
                response = await self.client.room_send(message.room_id, "m.room.message", outgoing_content(content),
                                                       tx_id=message.txn_id, ignore_unverified_devices=True)
            except Exception as error:  # noqa: BLE001 - the message stays queued and is retried
                logger.warning("The bot could not send a message (%s)", type(error).__name__)
                self._retry_later(message)
                return False
            if not isinstance(response, RoomSendResponse):
                errcode = getattr(response, "status_code", None)
                transport = getattr(response, "transport_response", None)
                if send_failure_is_permanent(getattr(transport, "status", None), errcode):
                    logger.warning("The homeserver refused a bot message (%s); it is dropped", errcode)
                    with self.hub.engine.begin() as conn:
                        bot_store.drop_message(conn, message.id)
                    self._forget_retry(message.id)
                    return False
                logger.warning("The bot could not send a message (%s); it will try again", errcode)
                self._retry_later(message)
                return False
            with self.hub.engine.begin() as conn:
                bot_store.message_sent(conn, message, response.event_id)
            self._forget_retry(message.id)
            return True
        finally:
            self.sending.pop(message.id, None)
            self.sending_messages.pop(message.id, None)
            self.outbox_ready.set()

    def _retry_later(self, message: bot_store.OutgoingMessage) -> None:
        tries = self.retry.get(message.id, (0, 0))[0] + 1
        delay_s = min(SEND_RETRY_MAX_S, SEND_RETRY_FIRST_S * 2 ** (tries - 1)) * (0.5 + self.rng.random())
        self.retry[message.id] = (tries, self.hub.clock.now_ms() + int(delay_s * 1000))
        self.retry_messages[message.id] = message

    def _forget_retry(self, message_id: int) -> None:
        self.retry.pop(message_id, None)
        self.retry_messages.pop(message_id, None)

    # -- Live sessions (services/live.py) -------------------------------------------------------

    async def _encrypted_room(self, room_id: str):
        """The room as the bot's client knows it, once synced: a key must never go to a room the
        client does not know to be encrypted (nio would send it in clear)."""
        await asyncio.wait_for(self.synced_once.wait(), timeout=LIVE_WAIT_S)
        room = self.client.rooms.get(room_id)
        if room is None or not room.encrypted:
            raise BotError("the bot is not in that encrypted room")
        return room

    async def send_live_key(self, room_id: str, content: dict) -> None:
        """One epoch's media key, as an event only the room's members' devices can decrypt."""
        await self._encrypted_room(room_id)
        response = await self.client.room_send(room_id, LIVE_KEY_EVENT, content, ignore_unverified_devices=True)
        if not isinstance(response, RoomSendResponse):
            raise BotError(f"the key was not sent: {getattr(response, 'status_code', response)}")

    async def set_live_widget(self, room_id: str, state_key: str, content: dict) -> None:
        """The live session's widget (empty content: removed)."""
        await self._encrypted_room(room_id)
        response = await self.client.room_put_state(room_id, WIDGET_EVENT, content, state_key=state_key)
        if not isinstance(response, RoomPutStateResponse):
            raise BotError(f"the widget was not set: {getattr(response, 'status_code', response)}")

    async def close(self) -> None:
        await self.pictures.close()
        if self.client is not None:
            await self.client.close()


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=timeout_s)
    except TimeoutError:
        pass


async def whole_timeline(client: AsyncClient, room_id: str, timeline, since: str | None) -> list:
    """The events of a room since the last sync. A sync returns at most the filter's limit per
    room and says `limited` when more arrived; the gap is fetched backwards from the timeline's
    start to the previous position, so a burst of votes is never skipped."""
    if not (timeline.limited and since):
        return list(timeline.events)
    gap: list = []
    start = timeline.prev_batch
    while start:
        page = await client.room_messages(room_id, start=start, end=since, limit=GAP_PAGE)
        if not isinstance(page, RoomMessagesResponse):
            raise BotError(f"could not fetch missed events: {getattr(page, 'status_code', page)}")
        gap.extend(page.chunk)
        start = page.end if page.chunk and page.end != start else None
    return list(reversed(gap)) + list(timeline.events)


def _counts(event) -> bool:
    """Events the bot reads: what arrived encrypted and was decrypted (our Synapse module refuses
    plaintext messages, and this refuses anything that slipped past it), what its client could not
    read (answered as a failure), and deletions (never encrypted; the server vouches for them)."""
    return getattr(event, "decrypted", False) or isinstance(event, (UnreadableEvent, RedactionEvent))
