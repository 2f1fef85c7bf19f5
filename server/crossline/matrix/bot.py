"""The hub's bot: the one place that owns the matrix-nio client.

- An ordinary end-to-end-encrypted device of the appservice's sender (`@crossline`), logged in
  once through the appservice and restored from its session file afterwards; its Olm/Megolm
  store is a folder in the data directory, pickled with a real key (a secret file).
- Its device is cross-signed by its own account (see `cross_signing`).
- The sync loop keeps its own position in the hub database and saves it only after the effects
  of the events it covers are committed; every event is applied once (`room_events`).
- Messages to rooms are queued in the outbox by the services and sent here with a stable
  transaction id, so a resend after a crash lands once.

Message content is never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncError,
    SyncResponse,
)
from nio.exceptions import EncryptionError, LocalProtocolError

from crossline import secrets
from crossline.config import BOT_LOCALPART
from crossline.matrix import cross_signing
from crossline.secrets import write_private_file
from crossline.services.hub import Hub
from crossline.services.room_events import RoomMessage, apply_room_message
from crossline.storage import bot as bot_store

logger = logging.getLogger(__name__)
# nio reports every message it cannot decrypt yet and every device it has no session with yet as a
# warning; for the bot these are routine (it keeps such events and retries), so only errors show.
logging.getLogger("nio").setLevel(logging.ERROR)

SYNC_TIMEOUT_MS = 30_000
OUTBOX_POLL_S = 0.25
MAX_BACKOFF_S = 60.0
NEXT_BATCH = "next_batch"


class BotError(Exception):
    pass


class HubBot:
    def __init__(self, hub: Hub, session: aiohttp.ClientSession):
        self.hub = hub
        self.session = session
        config = hub.config
        self.store_dir = config.data_dir / "bot" / "store"
        self.session_file = config.paths.secret(secrets.BOT_SESSION)
        self.cross_signing_file = config.paths.secret(secrets.BOT_CROSS_SIGNING_KEYS)
        self.client: AsyncClient | None = None
        self.synced_once = asyncio.Event()

    # -- Start-up -----------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.hub.config
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.session_file.exists():
            await self._appservice_login()
        saved = json.loads(self.session_file.read_text(encoding="utf-8"))
        pickle_key = secrets.read_secret(config.paths.secrets_dir, secrets.BOT_PICKLE_KEY)
        client = AsyncClient(
            config.homeserver_url, saved["user_id"], device_id=saved["device_id"], store_path=str(self.store_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, pickle_key=pickle_key),
        )
        client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
        if client.olm is None:
            raise BotError("The bot has no encryption store: refusing to run (it would send plaintext).")
        self.client = client
        if client.should_upload_keys:
            await client.keys_upload()
        await self._ensure_cross_signed()

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
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def sync_once(self, full_state: bool = False) -> None:
        client = self.client
        with self.hub.engine.connect() as conn:
            since = bot_store.get_state(conn, NEXT_BATCH)
        # full_state after a start: nio keeps room state in memory only, and needs the members
        # of each room to know whom to encrypt for.
        response = await client.sync(timeout=0 if full_state else SYNC_TIMEOUT_MS, since=since, full_state=full_state)
        if isinstance(response, SyncError):
            raise BotError(f"sync failed: {response.status_code}")
        assert isinstance(response, SyncResponse)
        await self._keys_housekeeping()
        for room_id, room in response.rooms.join.items():
            for event in room.timeline.events:
                await self._handle(room_id, event)
        await self._retry_pending()
        with self.hub.engine.begin() as conn:
            bot_store.set_state(conn, NEXT_BATCH, response.next_batch)
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

    async def _handle(self, room_id: str, event) -> None:
        if isinstance(event, RoomMessageText):
            # Only messages that arrived encrypted count: our Synapse module refuses plaintext,
            # and this refuses anything that slipped past it.
            if getattr(event, "decrypted", False):
                self._apply(room_id, event)
        elif isinstance(event, MegolmEvent):
            with self.hub.engine.begin() as conn:
                bot_store.keep_pending(conn, event.event_id, room_id, event.source, self.hub.clock.now_ms())
            try:
                await self.client.request_room_key(event)
            except LocalProtocolError:
                pass  # already requested

    def _apply(self, room_id: str, event: RoomMessageText) -> None:
        relates = event.source.get("content", {}).get("m.relates_to") or {}
        reply_to = (relates.get("m.in_reply_to") or {}).get("event_id")
        apply_room_message(self.hub, RoomMessage(event.event_id, room_id, event.sender, event.body, reply_to))

    async def _retry_pending(self) -> None:
        with self.hub.engine.connect() as conn:
            waiting = bot_store.pending(conn)
        for event_id, room_id, source in waiting:
            encrypted = MegolmEvent.from_dict(source)
            encrypted.room_id = room_id
            try:
                decrypted = self.client.decrypt_event(encrypted)
            except EncryptionError:
                continue
            if isinstance(decrypted, RoomMessageText):
                self._apply(room_id, decrypted)
            with self.hub.engine.begin() as conn:
                bot_store.drop_pending(conn, event_id)

    async def _send_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.flush_outbox()
            await asyncio.sleep(OUTBOX_POLL_S)

    async def flush_outbox(self) -> None:
        client = self.client
        if not self.synced_once.is_set():
            return  # room membership is not known yet: nothing could be encrypted for it
        with self.hub.engine.connect() as conn:
            waiting = bot_store.waiting_messages(conn)
        for message in waiting:
            if message.room_id not in client.rooms:
                continue
            response = await client.room_send(message.room_id, "m.room.message", message.content,
                                              tx_id=message.txn_id, ignore_unverified_devices=True)
            if isinstance(response, RoomSendResponse):
                with self.hub.engine.begin() as conn:
                    bot_store.message_sent(conn, message, response.event_id)
            else:
                logger.warning("The bot could not send a message: %s", getattr(response, "status_code", response))
                return

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
