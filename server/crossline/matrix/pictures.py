"""The bot's Matrix side of picture warnings (issue 24): fetching a member's picture from the
homeserver's media repository, decrypting it, asking domain/pictures.location_in what it reveals,
and opening a private room with her when she has none. What is checked and said is decided in
services/picture_warnings.py.

- Authenticated media (`/_matrix/client/v1/media/download`, Synapse 1.163 refuses the old
  unauthenticated one), the bot's token in a header, never in the URL (nio's `download` puts it
  in the query string and reads the whole body whatever its size).
- At most MAX_PICTURE_BYTES downloaded (said or not by Content-Length: counted while reading); a
  bigger file is dropped unread and she is not warned. At most CHECKS_AT_ONCE checks run, and at
  most MAX_WAITING wait; more are dropped. Each download has a deadline. The checks run beside the
  sync loop, so a slow or hostile picture never delays anyone's command.
- The file lives in memory only while it is checked; it, its key and what it reveals are never
  logged or stored (failures are logged by their type only).
- An encrypted file is checked against its SHA-256 before it is decrypted (nio's
  `decrypt_attachment`); a mismatch, a wrong key or bytes that are no picture reveal nothing.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import aiohttp
from nio import Event, MatrixRoom, RoomCreateResponse, RoomGetStateResponse, RoomMemberEvent, RoomPreset
from nio.crypto import decrypt_attachment

from crossline.domain.pictures import Revealed, location_in
from crossline.domain.room_pictures import PictureFile
from crossline.services import picture_warnings as service
from crossline.services.picture_warnings import PictureCheck, PictureGate

logger = logging.getLogger(__name__)

MEDIA = "/_matrix/client/v1/media/download"
MAX_PICTURE_BYTES = 20 * 1024 * 1024  # Synapse's max_upload_size in the hardened config
CHECKS_AT_ONCE = 2
MAX_WAITING = 32
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK = 64 * 1024
MEGOLM = "m.megolm.v1.aes-sha2"


class TooLarge(Exception):
    pass


async def download(session: aiohttp.ClientSession, base_url: str, token: str, picture: PictureFile,
                   max_bytes: int = MAX_PICTURE_BYTES, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> bytes | None:
    """The file's bytes as stored (ciphertext for an encrypted file); None if the homeserver does
    not give it. Raises TooLarge past `max_bytes`, without reading further."""
    path = f"{MEDIA}/{quote(picture.server_name, safe='')}/{quote(picture.media_id, safe='')}"
    # timeout_ms=0: a file created (POST /_matrix/media/v1/create) but never uploaded is answered at
    # once (504), not after Synapse's default 20 s wait, so no one can hold the checks with them.
    async with session.get(base_url + path, params={"timeout_ms": "0"}, headers={"Authorization": f"Bearer {token}"},
                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
        if response.status != 200:
            return None
        if (response.content_length or 0) > max_bytes:
            raise TooLarge()
        data = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            data += chunk
            if len(data) > max_bytes:
                raise TooLarge()
        return bytes(data)


def revealed_by(stored: bytes, picture: PictureFile) -> Revealed:
    """What the picture reveals: decrypted first if it is encrypted (hash checked). Bytes that fail
    the hash, do not decrypt or are no picture reveal nothing. Blocking: run it in a thread."""
    try:
        data = stored
        if picture.encryption is not None:
            crypt = picture.encryption
            data = decrypt_attachment(stored, crypt.key, crypt.sha256, crypt.iv)
        return location_in(data)
    except Exception as error:  # noqa: BLE001 - a hostile file may fail anywhere: it reveals nothing here
        logger.info("A picture could not be read (%s); it is not checked", type(error).__name__)
        return Revealed()


class PictureChecker:
    def __init__(self, bot):
        self.bot = bot  # matrix/bot.py's HubBot: its client, session and hub
        self.base_url = bot.hub.config.homeserver_url
        self.max_bytes = MAX_PICTURE_BYTES
        self.gate = PictureGate(bot.hub.clock)
        self.running = asyncio.Semaphore(CHECKS_AT_ONCE)
        self.tasks: set[asyncio.Task] = set()
        self.waiting: dict[str, list[asyncio.Task]] = {}  # by sender: checks not started yet, oldest first
        self.warning = asyncio.Lock()  # one warning at a time: never two rooms opened for one member

    def check_later(self, checks: list[PictureCheck]) -> None:
        """Starts these checks beside the sync loop. At most MAX_WAITING wait: past it, the newest
        check of whoever has the most waiting is dropped (the newcomer's own if nobody has more than
        she would), so a few accounts sending many pictures cannot push out someone else's."""
        dropped = 0
        for check in checks:
            mine = self.waiting.get(check.sender, [])
            if sum(map(len, self.waiting.values())) >= MAX_WAITING:
                # Of those with the most waiting, the last to arrive: the first to arrive keep their turn.
                most = max(reversed(self.waiting.values()), key=len)
                dropped += 1
                if len(most) <= len(mine):
                    continue
                most.pop().cancel()
            task = asyncio.create_task(self._check(check))
            self.waiting.setdefault(check.sender, []).append(task)
            self.tasks.add(task)
            task.add_done_callback(self._done(check.sender))
        if dropped:
            logger.warning("%d members' pictures were not checked: too many were waiting", dropped)

    def _done(self, sender: str):
        def forget(task: asyncio.Task) -> None:
            self.tasks.discard(task)
            self._started(sender, task)
        return forget

    def _started(self, sender: str, task: asyncio.Task) -> None:
        waiting = self.waiting.get(sender, [])
        if task in waiting:
            waiting.remove(task)
        if not waiting:
            self.waiting.pop(sender, None)

    async def _check(self, check: PictureCheck) -> None:
        try:
            found = []
            async with self.running:
                self._started(check.sender, asyncio.current_task())
                for sent in check.pictures:
                    revealed = await self._read(sent)
                    if revealed:
                        room = self.bot.client.rooms.get(sent.room_id)
                        found.append(service.Found(sent, revealed, room.display_name if room is not None else ""))
            if found:
                async with self.warning:
                    await self._warn(check, found)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - one picture must never stop the bot
            logger.info("A picture was not checked (%s)", type(error).__name__)

    async def _read(self, sent: service.SentPicture) -> Revealed:
        try:
            stored = await download(self.bot.session, self.base_url, self.bot.client.access_token, sent.picture,
                                    self.max_bytes)
        except (TooLarge, aiohttp.ClientError, asyncio.TimeoutError) as error:
            logger.info("A picture was not checked (%s)", type(error).__name__)
            return Revealed()
        if stored is None:
            return Revealed()
        return await asyncio.to_thread(revealed_by, stored, sent.picture)

    async def _warn(self, check: PictureCheck, found: list[service.Found]) -> None:
        hub = self.bot.hub
        with hub.engine.begin() as conn:
            if service.warn_in(conn, hub, check, found):
                self.bot.outbox_ready.set()
                return
            if not service.may_open_room(conn, hub, check.sender):
                return  # she declined the last room the bot opened for this
        room_id = await self._open_room(check.sender)
        if room_id is None:
            return
        with hub.engine.begin() as conn:
            service.warn_in_opened(conn, hub, room_id, check, found)
        self.bot.outbox_ready.set()

    async def _open_room(self, user_id: str) -> str | None:
        """A new encrypted room with her alone, marked direct as her client's own direct chats are;
        history visible from her invitation, so she reads the warning when she accepts it."""
        response = await self.bot.client.room_create(
            is_direct=True, invite=[user_id], preset=RoomPreset.trusted_private_chat,
            initial_state=[
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}},
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
                {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
                {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "invited"}},
            ])
        if not isinstance(response, RoomCreateResponse):
            logger.warning("The bot could not open a private room for a picture warning: %s",
                           getattr(response, "status_code", response))
            return None
        state = await self.bot.client.room_get_state(response.room_id)
        if not isinstance(state, RoomGetStateResponse) or not self._learn(response.room_id, state.events):
            logger.warning("The bot could not read the private room it opened; no warning is sent there")
            return None
        return response.room_id

    def _learn(self, room_id: str, events: list[dict]) -> bool:
        """Tells the bot's client the room's state, which its sync never shows: the sync filter leaves
        out the bot's own events, and every event of a room it made is its own. Without this the
        client would take the room for unencrypted (and send in clear) and know no one to share the
        room key with. True once the client knows the room is encrypted."""
        client = self.bot.client
        room = client.rooms.setdefault(room_id, MatrixRoom(room_id, client.user_id))
        for source in events:
            event = Event.parse_event(source)
            if isinstance(event, RoomMemberEvent):
                room.handle_membership(event)
            elif isinstance(event, Event):
                room.handle_event(event)
        if room.encrypted:
            client.encrypted_rooms.add(room_id)
            if getattr(client, "store", None) is not None:
                client.store.save_encrypted_rooms([room_id])  # still known encrypted after a restart
            if getattr(client, "olm", None) is not None:
                client.olm.update_tracked_users(room)  # her devices' keys are fetched if not known yet
        return room.encrypted

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
