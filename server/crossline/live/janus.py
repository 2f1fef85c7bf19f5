"""The hub's adapter to Janus's VideoRoom plugin, over Janus's WebSocket API on a UNIX socket.

WebSocket rather than Janus's plain UNIX-socket transport (pfunix), which drops any message over
8 KB: a browser's answer for a dozen feeds, or a video offer, is longer. Over a UNIX socket in
the 0700 Janus folder, so Janus has no TCP port at all.

One Janus session per adapter, kept alive; every handle (a control handle for rooms, and one
publisher and one subscriber handle per participant) is attached in it, so the adapter sees
every room event several times (once per handle in the room) and passes each on once. Janus
errors become `crossline.errors` errors whose message says what happened. If Janus restarts
(the socket closes), every feed the adapter knew is reported as left, and the next call makes
a new session; rooms and handles from before are gone and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets as _random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from crossline import secrets
from crossline.config import Config
from crossline.errors import Conflict, CrosslineError, InvalidInput, NotFound
from crossline.live.sdp import audio_mids, cap_opus_bitrate, without_video

logger = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
# Janus's ids are JSON numbers: below 2**52 they stay exact in every browser.
MAX_ID = 2**52
KEEPALIVE_S = 20.0  # Janus drops a session after 60 s without a request
REQUEST_TIMEOUT_S = 20.0
MAX_MESSAGE = 1 << 21  # Janus's offers for many feeds run long; the hub's own SDPs are at most 64 KB
PROTOCOL = "janus-protocol"  # the WebSocket subprotocol Janus requires


class JanusError(CrosslineError):
    """The media server failed or could not be reached: not the person's fault."""

    status = 502


@dataclass(frozen=True)
class JanusRoom:
    room_id: int
    secret: str
    pin: str


@dataclass(frozen=True)
class JanusEvent:
    room_id: int
    feed_id: int
    kind: str  # "joined" | "left" | "talking" | "stopped-talking" | "published" | "unpublished"


@dataclass
class _Handle:
    room: JanusRoom | None  # None: the control handle
    role: str  # "control" | "publisher" | "subscriber"
    feed_id: int = 0  # a publisher's own feed
    feeds: list[int] = field(default_factory=list)  # what a subscriber receives
    streams: dict[str, int] = field(default_factory=dict)  # a subscriber's offer: mid -> feed


@dataclass
class _Feed:
    published: bool = False
    talking: bool = False
    audio_mids: tuple[str, ...] = ()


UNREACHABLE = ("The live-session media server (Janus) is not running or cannot be reached, so live sessions "
               "cannot start or continue. The hub's operator can see why in `crossline status` and "
               "DATA_DIR/janus/janus.log.")
RESTARTED = "The live-session media server restarted, so this live session's media ended; join it again."

# VideoRoom's error codes (janus_videoroom.c) and the error each becomes.
_PLUGIN_ERRORS: dict[int, tuple[type[CrosslineError], str]] = {
    426: (NotFound, "This live session's media room no longer exists (the media server restarted or it ended)."),
    428: (NotFound, "That participant is not sending audio or video in this live session."),
    432: (Conflict, "This live session already has as many speakers as it can take."),
    434: (Conflict, "Audio is already being sent from this page; reload it to start again."),
    435: (Conflict, "Start sending audio before changing it."),
    436: (Conflict, "This participant is already in the live session."),
    427: (Conflict, "A media room with this number exists already; try again."),
    425: (Conflict, "This participant is already in the live session."),
    431: (InvalidInput, "The browser's session description is not an offer or answer as expected; reload the page."),
    437: (InvalidInput, "The browser's session description was refused by the media server; reload the page."),
}


class Janus:
    def __init__(self, socket_path: Path, api_secret: str, admin_key: str,
                 new_id: Callable[[], int] = lambda: _random.randbelow(MAX_ID - 1) + 1,
                 new_secret: Callable[[], str] = lambda: _random.token_urlsafe(24)):
        self._socket_path = socket_path
        self._api_secret = api_secret
        self._admin_key = admin_key
        self._new_id, self._new_secret = new_id, new_secret
        self._http: aiohttp.ClientSession | None = None
        self._sock: aiohttp.ClientWebSocketResponse | None = None
        self._session: int | None = None
        self._control: int | None = None
        self._tasks: list[asyncio.Task] = []
        self._pending: dict[str, tuple[asyncio.Future, bool]] = {}
        self._send_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        self._handles: dict[int, _Handle] = {}
        self._feeds: dict[tuple[int, int], _Feed] = {}  # (room, feed) -> what is known of it
        # Feeds that left: Janus's notices about them can arrive late (another handle's
        # "joining" after the hub already detached her) and must not bring them back.
        self._gone: set[tuple[int, int]] = set()
        self._events: asyncio.Queue[JanusEvent] = asyncio.Queue()
        self._closed = False
        self._closing: set[asyncio.Task] = set()

    @classmethod
    def from_config(cls, config: Config) -> "Janus":
        secrets_dir = config.paths.secrets_dir
        return cls(config.paths.janus_socket, secrets.read_secret(secrets_dir, secrets.JANUS_API_SECRET),
                   secrets.read_secret(secrets_dir, secrets.JANUS_ADMIN_SECRET))

    # --- rooms -----------------------------------------------------------------------------------

    async def create_room(self, description: str, max_publishers: int) -> JanusRoom:
        room = JanusRoom(self._new_id(), self._new_secret(), self._new_secret())
        await self._message(await self._control_handle(), {
            "request": "create", "admin_key": self._admin_key, "room": room.room_id,
            "description": description[:100], "secret": room.secret, "pin": room.pin, "is_private": True,
            "permanent": False, "publishers": max_publishers, "require_e2ee": True, "record": False,
            "lock_record": True, "audiolevel_ext": True, "audiolevel_event": True, "audio_active_packets": 50,
            "audio_level_average": 25,
            "notify_joining": True, "audiocodec": "opus", "videocodec": "vp8", "opus_fec": True,
        })
        return room

    async def destroy_room(self, room: JanusRoom) -> None:
        try:
            await self._message(await self._control_handle(),
                                {"request": "destroy", "room": room.room_id, "secret": room.secret})
        except NotFound:
            pass  # already gone (Janus restarted): nothing left to destroy
        self._forget_room(room.room_id)
        for handle_id, handle in list(self._handles.items()):
            if handle.room is not None and handle.room.room_id == room.room_id:
                await self.detach(handle_id)

    # --- publishing ------------------------------------------------------------------------------

    async def join_publisher(self, room: JanusRoom, feed_id: int, display: str) -> int:
        self._gone.discard((room.room_id, feed_id))
        handle = await self._attach(_Handle(room, "publisher", feed_id=feed_id))
        try:
            data, _ = await self._message(handle, {"request": "join", "ptype": "publisher", "room": room.room_id,
                                                   "pin": room.pin, "id": feed_id, "display": display[:100]})
        except BaseException:
            await self._detach_quietly(handle)
            raise
        self._room_data(room.room_id, data)
        self._feed_event(room.room_id, feed_id, "joined")
        return handle

    async def publish(self, handle: int, offer_sdp: str, *, audio_bitrate: int, video: bool,
                      language: str | None) -> str:
        known = self._handle(handle, "publisher")
        offer = offer_sdp if video else without_video(offer_sdp)
        # Opus is capped in the answer (below): VideoRoom's own "bitrate" is a REMB cap on video.
        body: dict[str, Any] = {"request": "publish", "audiocodec": "opus"}
        mids = audio_mids(offer)
        if language and mids:
            body["descriptions"] = [{"mid": mid, "description": f"lang:{language}"} for mid in mids]
        # e2ee in the JSEP (as janus.js sends it): the room refuses publishers without it.
        _, jsep = await self._message(handle, body, {"type": "offer", "sdp": offer, "trickle": False, "e2ee": True})
        if not jsep or jsep.get("type") != "answer":
            raise JanusError("The media server did not answer the browser's offer.")
        assert known.room is not None
        self._feed(known.room.room_id, known.feed_id).audio_mids = tuple(audio_mids(jsep["sdp"]))
        return cap_opus_bitrate(jsep["sdp"], audio_bitrate)

    # --- subscribing -----------------------------------------------------------------------------

    async def subscribe(self, room: JanusRoom, handle: int | None, feed_ids: list[int]) -> tuple[int, str]:
        """Feeds Janus does not have (not up yet, or just gone) are left out rather than failing
        the whole request (Janus refuses a subscription naming any feed it lacks); if Janus still
        refuses one (it went between), the request is made once more with what is left."""
        try:
            return await self._subscribe(room, handle, feed_ids)
        except NotFound:
            if handle is not None and handle not in self._handles:
                raise
            return await self._subscribe(room, handle, feed_ids)

    async def _subscribe(self, room: JanusRoom, handle: int | None, feed_ids: list[int]) -> tuple[int, str]:
        wanted = [feed for feed in dict.fromkeys(feed_ids)
                  if (known_feed := self._feeds.get((room.room_id, feed))) is not None and known_feed.published]
        if handle is None:
            if not wanted:
                raise Conflict("None of those participants is sending audio now: ask for the state again.")
            handle = await self._attach(_Handle(room, "subscriber"))
            try:
                data, jsep = await self._message(handle, {
                    "request": "join", "ptype": "subscriber", "room": room.room_id, "pin": room.pin,
                    # No offer of Janus's own when a publisher leaves: the hub would drop it and the
                    # handle would wait for its answer, holding back the page's next update.
                    "autoupdate": False, "streams": [{"feed": feed} for feed in wanted]})
            except BaseException:
                await self._detach_quietly(handle)
                raise
        else:
            known = self._handle(handle, "subscriber")
            added = [feed for feed in wanted if feed not in known.feeds]
            # A feed that left is already out of the subscription (Janus removed its streams).
            removed = [feed for feed in known.feeds if feed not in wanted and (room.room_id, feed) in self._feeds]
            data, jsep = {}, None
            if added or removed:
                body: dict[str, Any] = {"request": "update"}
                if added:
                    body["subscribe"] = [{"feed": feed} for feed in added]
                if removed:
                    body["unsubscribe"] = [{"feed": feed} for feed in removed]
                data, jsep = await self._message(handle, body)
            if not jsep:  # nothing Janus counts as a change: a fresh offer for what she has
                data, jsep = await self._message(handle, {"request": "configure", "update": True})
        if not jsep or jsep.get("type") != "offer":
            raise JanusError("The media server did not make an offer for these participants.")
        self._handles[handle].feeds = wanted
        if "streams" in data or not self._handles[handle].streams:
            self._handles[handle].streams = {str(stream["mid"]): stream["feed_id"] for stream in data.get("streams") or []
                                             if stream.get("active", True) and isinstance(stream.get("feed_id"), int)}
        return handle, jsep["sdp"]

    def subscription_streams(self, handle: int) -> dict[str, int]:
        """Which feed each m-line (by mid) of the subscriber's last offer carries, so a page can tell
        whose audio a track is (Janus's msid names only the mid)."""
        known = self._handle(handle, "subscriber")
        assert known.room is not None
        return {mid: feed for mid, feed in known.streams.items() if (known.room.room_id, feed) in self._feeds}

    async def start_subscription(self, handle: int, answer_sdp: str) -> None:
        self._handle(handle, "subscriber")
        await self._message(handle, {"request": "start"},
                            {"type": "answer", "sdp": answer_sdp, "trickle": False, "e2ee": True})

    # --- facilitation ----------------------------------------------------------------------------

    async def moderate(self, room: JanusRoom, feed_id: int, muted: bool) -> None:
        mids = self._feeds.get((room.room_id, feed_id), _Feed()).audio_mids
        if not mids:
            raise Conflict("That participant is not sending audio yet, so there is nothing to mute.")
        for mid in mids:
            await self._message(await self._control_handle(), {
                "request": "moderate", "room": room.room_id, "secret": room.secret, "id": feed_id,
                "mid": mid, "mute": muted})

    async def kick(self, room: JanusRoom, feed_id: int) -> None:
        await self._message(await self._control_handle(),
                            {"request": "kick", "room": room.room_id, "secret": room.secret, "id": feed_id})
        self._feed_event(room.room_id, feed_id, "left")

    async def detach(self, handle: int) -> None:
        known = self._handles.get(handle)
        if known is None:
            return
        if known.role == "publisher" and known.room is not None:
            self._feed_event(known.room.room_id, known.feed_id, "left")
        await self._detach_quietly(handle)

    # --- events and lifetime ---------------------------------------------------------------------

    async def events(self) -> AsyncIterator[JanusEvent]:
        """Each room event once. One consumer: the hub's live-session service."""
        while True:
            yield await self._events.get()

    async def close(self) -> None:
        self._closed = True
        if self._session is not None and self._sock is not None:
            with contextlib.suppress(CrosslineError, OSError, TimeoutError):
                await asyncio.wait_for(self._core("destroy"), 3)
        self._disconnect("closed")
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # --- internals: room state -------------------------------------------------------------------

    def _feed(self, room_id: int, feed_id: int) -> _Feed:
        return self._feeds.setdefault((room_id, feed_id), _Feed())

    def _feed_event(self, room_id: int, feed_id: int, kind: str) -> None:
        """Pass a room event on unless it changes nothing known (another handle told it already)."""
        key = (room_id, feed_id)
        known = self._feeds.get(key)
        if key in self._gone:
            return
        if kind == "joined":
            if known is not None:
                return
            self._feed(room_id, feed_id)
        elif kind == "left":
            if known is None:
                return
            del self._feeds[key]
            self._gone.add(key)
        else:
            feed = self._feed(room_id, feed_id) if known is None else known
            if known is None:
                self._events.put_nowait(JanusEvent(room_id, feed_id, "joined"))
            attribute, value = {"published": ("published", True), "unpublished": ("published", False),
                                "talking": ("talking", True), "stopped-talking": ("talking", False)}[kind]
            if getattr(feed, attribute) == value:
                return
            setattr(feed, attribute, value)
        self._events.put_nowait(JanusEvent(room_id, feed_id, kind))

    def _forget_room(self, room_id: int) -> None:
        for (room, feed) in [key for key in self._feeds if key[0] == room_id]:
            self._feed_event(room, feed, "left")
        self._gone = {key for key in self._gone if key[0] != room_id}

    def _room_data(self, room_id: int, data: dict[str, Any]) -> None:
        """What a VideoRoom event says about the room's participants."""
        for publisher in data.get("publishers") or []:
            feed = publisher.get("id")
            if isinstance(feed, int):
                mids = [s["mid"] for s in publisher.get("streams") or [] if s.get("type") == "audio" and "mid" in s]
                self._feed_event(room_id, feed, "published")
                if mids:
                    self._feed(room_id, feed).audio_mids = tuple(mids)
        joining = data.get("joining")
        if isinstance(joining, dict) and isinstance(joining.get("id"), int):
            self._feed_event(room_id, joining["id"], "joined")
        for key, kind in (("leaving", "left"), ("kicked", "left"), ("unpublished", "unpublished")):
            if isinstance(data.get(key), int):
                self._feed_event(room_id, data[key], kind)
        if data.get("videoroom") in ("talking", "stopped-talking") and isinstance(data.get("id"), int):
            self._feed_event(room_id, data["id"], data["videoroom"])
        if data.get("videoroom") == "destroyed":
            self._forget_room(room_id)

    def _on_event(self, message: dict[str, Any]) -> None:
        handle = self._handles.get(message.get("sender", 0))
        if handle is None or handle.room is None:
            return
        room_id, kind = handle.room.room_id, message.get("janus")
        if kind == "event":
            data = (message.get("plugindata") or {}).get("data") or {}
            self._room_data(room_id, data)
            if handle.role == "publisher" and data.get("leaving") == "ok":
                self._feed_event(room_id, handle.feed_id, "left")
            if handle.role == "publisher" and data.get("unpublished") == "ok":
                self._feed_event(room_id, handle.feed_id, "unpublished")
        elif handle.role == "publisher" and kind == "webrtcup":
            self._feed_event(room_id, handle.feed_id, "published")
        elif handle.role == "publisher" and kind == "hangup":
            self._feed_event(room_id, handle.feed_id, "unpublished")

    # --- internals: the API ----------------------------------------------------------------------

    def _handle(self, handle: int, role: str) -> _Handle:
        known = self._handles.get(handle)
        if known is None:
            raise NotFound(RESTARTED)
        if known.role != role:
            raise InvalidInput(f"This connection is not a {role}'s.")
        return known

    async def _control_handle(self) -> int:
        await self._connect()
        assert self._control is not None
        return self._control

    async def _attach(self, handle: _Handle) -> int:
        await self._connect()
        reply = await self._core("attach", plugin=PLUGIN)
        handle_id = reply["data"]["id"]
        self._handles[handle_id] = handle
        return handle_id

    async def _detach_quietly(self, handle: int) -> None:
        self._handles.pop(handle, None)
        if self._session is not None:
            with contextlib.suppress(CrosslineError):
                await self._core("detach", handle_id=handle)

    async def _message(self, handle: int, body: dict[str, Any],
                       jsep: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        reply = await self._core("message", handle_id=handle, body=body, **({"jsep": jsep} if jsep else {}))
        data = (reply.get("plugindata") or {}).get("data") or {}
        if "error_code" in data:
            kind, text = _PLUGIN_ERRORS.get(data["error_code"], (JanusError, ""))
            logger.warning("Janus refused a %s request: %s (%s)", body.get("request"), data.get("error"), data["error_code"])
            raise kind(text or f"The live-session media server refused this: {data.get('error', 'unknown error')}.")
        return data, reply.get("jsep")

    async def _core(self, verb: str, **fields: Any) -> dict[str, Any]:
        if self._session is None:
            raise NotFound(RESTARTED)
        return await self._send({"janus": verb, "session_id": self._session, **fields})

    async def _send(self, request: dict[str, Any]) -> dict[str, Any]:
        sock = self._sock
        if sock is None:
            raise JanusError(UNREACHABLE)
        transaction = _random.token_hex(12)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        # A keepalive is answered by its ack; a plugin message by its event, after an ack.
        self._pending[transaction] = (future, request["janus"] == "keepalive")
        try:
            payload = json.dumps({**request, "transaction": transaction, "apisecret": self._api_secret})
            async with self._send_lock:
                await sock.send_str(payload)
            reply = await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        except TimeoutError as error:
            raise JanusError(f"The live-session media server did not answer within {REQUEST_TIMEOUT_S:.0f} s.") from error
        except (OSError, aiohttp.ClientError) as error:
            self._disconnect("send failed")
            raise JanusError(UNREACHABLE) from error
        finally:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            code, reason = reply["error"].get("code"), reply["error"].get("reason", "")
            if code in (458, 459):  # no such session / handle: Janus restarted or dropped them
                raise NotFound(RESTARTED)
            if code in (464, 465):  # the JSEP's type or SDP is not valid
                raise InvalidInput(_PLUGIN_ERRORS[437][1])
            logger.warning("Janus refused a %s request: %s (%s)", request["janus"], reason, code)
            raise JanusError(f"The live-session media server refused this ({reason}).")
        return reply

    async def _connect(self) -> None:
        if self._closed:
            raise JanusError("The live-session media server connection is closed (the hub is stopping).")
        async with self._connect_lock:
            if self._session is not None:
                return
            http = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self._socket_path)))
            try:
                sock = await http.ws_connect("ws://janus/", protocols=(PROTOCOL,), max_msg_size=MAX_MESSAGE,
                                             autoping=True, timeout=aiohttp.ClientWSTimeout(ws_close=3))
            except (OSError, aiohttp.ClientError, TimeoutError) as error:
                await http.close()
                raise JanusError(UNREACHABLE) from error
            self._http, self._sock = http, sock
            self._tasks = [asyncio.create_task(self._receive(sock))]
            try:
                self._session = (await self._send({"janus": "create"}))["data"]["id"]
                self._control = (await self._core("attach", plugin=PLUGIN))["data"]["id"]
                self._handles[self._control] = _Handle(None, "control")
            except BaseException:
                self._disconnect("session not created")
                raise
            self._tasks.append(asyncio.create_task(self._keepalive()))

    def _disconnect(self, why: str) -> None:
        """Forget the session and everything in it: what Janus had is gone or unreachable."""
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        if self._http is not None:  # closed in the background: this runs from sync code too
            closing = asyncio.get_running_loop().create_task(_close_quietly(self._sock, self._http))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self._http = None
        if self._session is not None and not self._closed:
            logger.warning("Lost the Janus session (%s): live sessions' media restart when people rejoin.", why)
        self._sock = self._session = self._control = None
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(JanusError(UNREACHABLE))
        self._pending.clear()
        self._handles.clear()
        for room_id, feed_id in list(self._feeds):
            self._feed_event(room_id, feed_id, "left")

    async def _receive(self, sock: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for frame in sock:
                if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break  # closed, or an error (a message over MAX_MESSAGE)
                try:
                    message = json.loads(frame.data)
                except ValueError:
                    logger.warning("Janus sent a message that is not JSON (%d bytes); ignored.", len(frame.data))
                    continue
                self._dispatch(message)
        except (OSError, aiohttp.ClientError):
            pass
        if self._sock is sock:
            self._disconnect("Janus closed the connection")

    def _dispatch(self, message: dict[str, Any]) -> None:
        pending = self._pending.get(message.get("transaction", ""))
        if pending is not None:
            future, ack_answers = pending
            if (message.get("janus") != "ack" or ack_answers) and not future.done():
                future.set_result(message)
        if message.get("janus") == "timeout":
            self._disconnect("Janus timed the session out")
            return
        try:
            self._on_event(message)
        except (KeyError, TypeError, ValueError):
            logger.warning("An event from Janus was not understood; ignored.")

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            try:
                await self._core("keepalive")
            except CrosslineError as error:
                logger.warning("Janus keepalive failed: %s", error.message)


async def _close_quietly(sock: aiohttp.ClientWebSocketResponse | None, http: aiohttp.ClientSession) -> None:
    with contextlib.suppress(OSError, aiohttp.ClientError, TimeoutError):
        if sock is not None:
            await sock.close()
    await http.close()
