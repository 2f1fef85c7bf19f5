"""The bot warns a member privately when a picture she sent in a room carries where it was taken
(issue 24 item 2), with fakes: a real aiohttp server stands in for Synapse's media repository, a
recording client for the bot's nio client. End to end: tests/test_e2e_picture_location.py."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from nio import RoomCreateResponse, RoomGetStateResponse
from nio.crypto import encrypt_attachment
from PIL import Image

from crossline.domain.pictures import location_in
from crossline.domain.room_messages import member_words
from crossline.domain.room_pictures import picture_in
from crossline.matrix.pictures import CHECKS_AT_ONCE, MAX_WAITING, PictureChecker
from crossline.services import direct_rooms
from crossline.services import picture_warnings as service
from crossline.services.picture_warnings import PICTURES_PER_MINUTE, PictureGate
from crossline.services.room_events import RoomMessage
from crossline.storage import bot as bot_store
from tests.pictures_support import jpeg_with_gps

SERVER = "crossline.local"
ANA = "@ana:crossline.local"
BOT = "@crossline-bot:crossline.local"
BEA = "@bea:crossline.local"
ROOM = "!consultation:crossline.local"
DM = "!ana-dm:crossline.local"
GPS_WORDS = ("48", "51", "21", "N ", "E ")  # the planted position: 48°51'30"N 2°21'6"E


def plain_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


class Media:
    """Synapse's authenticated media download, as far as the bot uses it: files by media id, the
    bytes it sent, how many downloads ran at once, and a gate tests can hold downloads at."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.pending: set[str] = set()  # media ids created (POST /_matrix/media/v1/create), never uploaded
        self.sent = 0
        self.running = self.most_at_once = 0
        self.tokens: list[str] = []
        self.open = asyncio.Event()
        self.open.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.tokens.append(request.headers.get("Authorization", ""))
        assert "access_token" not in request.query
        if request.match_info["media_id"] in self.pending:  # created, never uploaded: Synapse waits timeout_ms
            if request.query.get("timeout_ms") != "0":
                await asyncio.sleep(2)  # Synapse: 20 s by default
            return web.json_response({"errcode": "M_NOT_YET_UPLOADED"}, status=504)
        data = self.files.get(request.match_info["media_id"])
        if data is None:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.open.wait()
            response = web.StreamResponse()  # no Content-Length: the bot must count as it reads
            await response.prepare(request)
            for start in range(0, len(data), 65536):
                await response.write(data[start:start + 65536])
                self.sent += len(data[start:start + 65536])
                await asyncio.sleep(0.005)  # as a network would: a reader that stops is noticed
            await response.write_eof()
            return response
        except ConnectionError:  # the bot stopped reading and closed the connection
            return web.Response()
        finally:
            self.running -= 1


class Client:
    """The bot's nio client as the checker uses it: its token, its rooms, room creation and a
    room's state as Synapse gives it (what the creation request set, the bot joined, she invited)."""

    def __init__(self):
        self.user_id = BOT
        self.access_token = "bot-token"
        self.rooms = {ROOM: SimpleNamespace(display_name="Bridges consultation")}
        self.encrypted_rooms: set[str] = set()
        self.created: list[dict] = []

    async def room_create(self, **request):
        self.created.append(request)
        return RoomCreateResponse(f"!opened{len(self.created)}:crossline.local")

    async def room_get_state(self, room_id: str):
        request = self.created[-1]
        events = [{"type": "m.room.create", "state_key": "", "content": {"room_version": "11"}},
                  *request["initial_state"], member(BOT, "join"),
                  *(member(user, "invite") for user in request["invite"])]
        return RoomGetStateResponse.from_dict([{"sender": BOT, "event_id": f"$s{i}", "origin_server_ts": 1, **event}
                                               for i, event in enumerate(events)], room_id)


def member(user_id: str, membership: str) -> dict:
    return {"type": "m.room.member", "state_key": user_id, "content": {"membership": membership}}


@pytest.fixture
async def bot(hub):
    media = Media()
    app = web.Application()
    app.router.add_get("/_matrix/client/v1/media/download/{server}/{media_id}", media.handle)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        bot = SimpleNamespace(hub=hub, session=session, client=Client(), outbox_ready=asyncio.Event(), media=media)
        bot.pictures = PictureChecker(bot)
        bot.pictures.base_url = str(server.make_url("")).rstrip("/")
        yield bot
        await bot.pictures.close()
    await server.close()


def image_event(media: Media, media_id: str, data: bytes, encrypted: bool = True, **changes) -> dict:
    """An m.image as Element sends it: the file encrypted (content.file), or in clear (content.url)."""
    content = {"msgtype": "m.image", "body": "IMG_2041.jpg", "info": {"mimetype": "image/jpeg", "size": len(data)}}
    url = f"mxc://{SERVER}/{media_id}"
    if encrypted:
        ciphertext, keys = encrypt_attachment(data)
        media.files[media_id] = ciphertext
        content["file"] = {**keys, "url": url, "mimetype": "image/jpeg"}
    else:
        media.files[media_id] = data
        content["url"] = url
    content.update(changes)
    return {"type": "m.room.message", "content": content}


def sent(event_id: str, event: dict, sender: str = ANA, room_id: str = ROOM) -> RoomMessage:
    return RoomMessage(event_id, room_id, sender, {**event, "event_id": event_id, "sender": sender}, sender)


async def run(bot, messages: list[RoomMessage]) -> list:
    """One sync batch as matrix/bot.py hands it over, then every check it started, to the end."""
    with bot.hub.engine.begin() as conn:
        checks = service.to_check_in(conn, bot.hub, messages, bot.pictures.gate)
    bot.pictures.check_later(checks)
    await asyncio.gather(*bot.pictures.tasks)
    return checks


def checked(checks: list) -> list[str]:
    """The event ids of the pictures these checks read."""
    return [sent.event_id for check in checks for sent in check.pictures]


def queued(hub) -> list[bot_store.OutgoingMessage]:
    with hub.engine.connect() as conn:
        return bot_store.waiting_messages(conn, 500)


def serve_direct_room(hub, user_id: str = ANA, room_id: str = DM) -> None:
    with hub.engine.begin() as conn:
        direct_rooms.joined_in(conn, hub, room_id, user_id)
        welcome = [m for m in bot_store.waiting_messages(conn, 500) if m.txn_id == f"dm-welcome-{room_id}"]
        bot_store.drop_message(conn, welcome[0].id)  # her welcome, long sent


def test_the_fixture_carries_a_place_and_a_phone_and_the_plain_one_nothing():
    assert location_in(jpeg_with_gps()).place and location_in(jpeg_with_gps()).device
    assert not location_in(plain_jpeg()).place


async def test_a_picture_with_a_place_is_told_to_her_alone_in_her_direct_room(bot):
    serve_direct_room(bot.hub)
    await run(bot, [sent("$gps", image_event(bot.media, "gps", jpeg_with_gps()))])
    (warning,) = queued(bot.hub)
    assert warning.room_id == DM and warning.content["msgtype"] == "m.notice"
    assert warning.content["m.mentions"] == {}
    body = warning.content["body"]
    # Her file name as she wrote it, but never a link (member_words).
    assert f"“Bridges consultation” ({member_words('IMG_2041.jpg')})" in body
    assert "the place where it was taken" in body
    assert "the phone or camera that took it" in body and "choose Remove" in body and "screenshot" in body
    assert service.GUIDE_SECTION in body
    assert not any(word in body for word in GPS_WORDS)
    assert bot.media.tokens == ["Bearer bot-token"] and bot.client.created == []


async def test_without_a_served_room_the_bot_opens_a_private_direct_room_and_says_why_first(bot):
    await run(bot, [sent("$gps", image_event(bot.media, "gps", jpeg_with_gps()), sender=BEA)])
    (request,) = bot.client.created
    assert request["invite"] == [BEA] and request["is_direct"] is True
    state = {event["type"]: event["content"] for event in request["initial_state"]}
    assert state["m.room.encryption"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert state["m.room.history_visibility"] == {"history_visibility": "invited"}  # she reads it on joining
    # Its client knows the room as Synapse has it (its sync leaves out the bot's own events): encrypted,
    # so the warning is never sent in clear, and she is invited, so the room key is shared with her.
    opened = bot.client.rooms["!opened1:crossline.local"]
    assert opened.encrypted and "!opened1:crossline.local" in bot.client.encrypted_rooms
    assert set(opened.users) == {BOT, BEA} and set(opened.invited_users) == {BEA}
    warning, welcome = queued(bot.hub)
    assert warning.room_id == welcome.room_id == "!opened1:crossline.local"
    assert warning.content["body"].startswith("I opened this private room with you")
    assert welcome.content["body"].startswith("Hello.")
    with bot.hub.engine.connect() as conn:
        assert direct_rooms.served_room_of(conn, BEA) == "!opened1:crossline.local"
    # Her next picture goes to that room: no second room.
    await run(bot, [sent("$gps2", image_event(bot.media, "gps2", jpeg_with_gps()), sender=BEA)])
    assert len(bot.client.created) == 1 and [m.room_id for m in queued(bot.hub)][-1] == "!opened1:crossline.local"


async def test_pictures_without_a_place_or_unreadable_or_oversized_bring_nothing(bot):
    serve_direct_room(bot.hub)
    media = bot.media
    wrong_hash = image_event(media, "hash", jpeg_with_gps())
    wrong_hash["content"]["file"]["hashes"]["sha256"] = "A" * 43
    wrong_key = image_event(media, "key", jpeg_with_gps())
    wrong_key["content"]["file"]["key"]["k"] = "B" * 43  # the hash holds (it is of the ciphertext): no picture
    bot.pictures.max_bytes = 200_000
    bot.pictures.gate = PictureGate(bot.hub.clock, per_minute=10)  # six pictures at once, all checked
    big = jpeg_with_gps() + b"\0" * 1_000_000  # a place, but over the limit: skipped, never warned about
    checks = await run(bot, [
        sent("$plain", image_event(media, "plain", plain_jpeg())),
        sent("$hash", wrong_hash),
        sent("$key", wrong_key),
        sent("$big", image_event(media, "big", big)),
        sent("$text", image_event(media, "text", b"not a picture at all, only words")),
        sent("$missing", {"type": "m.room.message", "content": {"msgtype": "m.image", "url": f"mxc://{SERVER}/no"}}),
    ])
    assert len(checked(checks)) == 6 and queued(bot.hub) == []
    assert media.sent < 200_000 + 10 * 65536  # the oversized file was not read to its end


def test_which_events_are_pictures():
    enc = {"url": f"mxc://{SERVER}/abc", "key": {"alg": "A256CTR", "k": "a" * 43}, "iv": "b" * 22,
           "hashes": {"sha256": "c" * 43}, "v": "v2"}

    def event(**content):
        return {"type": "m.room.message", "content": content}

    assert picture_in(event(msgtype="m.image", body="p.jpg", file=enc), SERVER).encryption.key == "a" * 43
    assert picture_in(event(msgtype="m.image", url=f"mxc://{SERVER}/abc"), SERVER).encryption is None
    assert picture_in(event(msgtype="m.file", info={"mimetype": "image/jpeg"}, file=enc), SERVER) is not None
    edited = event(msgtype="m.image", body="* p", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$a"},
                                                      "m.new_content": {"msgtype": "m.image", "file": enc}})
    assert picture_in(edited, SERVER).url == f"mxc://{SERVER}/abc"
    for not_checked in (
        event(msgtype="m.file", info={"mimetype": "application/pdf"}, file=enc),
        {"type": "m.sticker", "content": {"url": f"mxc://{SERVER}/abc"}},
        event(msgtype="m.image", url=f"mxc://elsewhere.example/abc"),  # the hub would fetch it from afar
        event(msgtype="m.image", url="mxc://crossline.local/../../admin"),
        event(msgtype="m.image", info={"thumbnail_file": enc}),
        event(msgtype="m.image", file={**enc, "key": "k"}),
        event(msgtype="m.image", file={**enc, "iv": 7}),
        event(msgtype="m.image", file={**enc, "key": {"alg": "A128CBC", "k": "a"}}),
        event(msgtype="m.image", file=[]),
        event(msgtype="m.image", url=None),
        {"type": "m.room.message", "content": None},
        None, "text", [], {"type": "m.room.message", "content": {"msgtype": "m.image", "m.relates_to": {
            "rel_type": "m.replace"}, "m.new_content": "x"}},
    ):
        assert picture_in(not_checked, SERVER) is None, not_checked


async def test_each_picture_is_checked_once_per_sender_even_after_a_restart(bot):
    serve_direct_room(bot.hub)
    event = image_event(bot.media, "gps", jpeg_with_gps())
    assert checked(await run(bot, [sent("$gps", event)])) == ["$gps"]
    # The same event again (a batch replayed), and the same file in another event (sent again, a
    # caption edited): not checked again, by this bot or by one restarted (a new gate, the same marks).
    assert await run(bot, [sent("$gps", event), sent("$again", event)]) == []
    bot.pictures.gate = PictureGate(bot.hub.clock)
    assert await run(bot, [sent("$gps", event)]) == []
    assert len(queued(bot.hub)) == 1
    # Someone else who forwards it is told too: it is her message now.
    serve_direct_room(bot.hub, BEA, "!bea-dm:crossline.local")
    assert checked(await run(bot, [sent("$fwd", event, sender=BEA)])) == ["$fwd"]
    assert [m.room_id for m in queued(bot.hub)] == [DM, "!bea-dm:crossline.local"]


async def test_what_is_never_checked_the_bots_own_her_direct_room_and_a_picture_deleted_at_once(bot):
    serve_direct_room(bot.hub)
    media = bot.media
    deletion = {"type": "m.room.redaction", "content": {"redacts": "$deleted"}}
    checks = await run(bot, [
        sent("$bot", image_event(media, "a", jpeg_with_gps()), sender=bot.hub.config.bot_user_id),
        sent("$dm", image_event(media, "b", jpeg_with_gps()), room_id=DM),
        sent("$deleted", image_event(media, "c", jpeg_with_gps())),
        sent("$redaction", deletion),
    ])
    assert checks == [] and media.tokens == [] and queued(bot.hub) == []


async def test_a_flood_of_pictures_is_bounded_work(bot):
    media = bot.media
    media.open.clear()  # downloads hang until released
    flood = [sent(f"$f{i}", image_event(media, f"f{i}", jpeg_with_gps())) for i in range(100)]
    with bot.hub.engine.begin() as conn:
        checks = service.to_check_in(conn, bot.hub, flood, bot.pictures.gate)
    # One member: a few a minute are read, the others only counted (her warning says how many).
    assert len(checked(checks)) == PICTURES_PER_MINUTE and checks[0].unchecked == 100 - PICTURES_PER_MINUTE
    others = [sent(f"$o{i}", image_event(media, f"o{i}", jpeg_with_gps()), sender=f"@m{i}:crossline.local")
              for i in range(MAX_WAITING * 2)]
    with bot.hub.engine.begin() as conn:
        checks += service.to_check_in(conn, bot.hub, others, bot.pictures.gate)
    bot.pictures.check_later(checks)  # returns at once: the sync loop goes on while they wait

    async def downloads_started():
        while media.running < CHECKS_AT_ONCE:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(downloads_started(), timeout=30)
    assert len(bot.pictures.tasks) == MAX_WAITING  # the others were dropped
    assert media.running == CHECKS_AT_ONCE  # the others wait their turn, none is refused for it
    media.open.set()
    await asyncio.gather(*bot.pictures.tasks)
    # Hers (the first to come: five pictures) and 31 others' were read.
    assert media.most_at_once == CHECKS_AT_ONCE and len(media.tokens) == PICTURES_PER_MINUTE + MAX_WAITING - 1
    # A minute later she may send pictures again.
    bot.hub.clock.now += 60_000
    with bot.hub.engine.begin() as conn:
        later = service.to_check_in(conn, bot.hub, [sent("$later", image_event(media, "later", jpeg_with_gps()))],
                                    bot.pictures.gate)
    assert checked(later) == ["$later"]


async def test_no_warning_goes_to_an_opened_room_its_client_does_not_know_encrypted(bot):
    """nio sends in clear in a room it does not know to be encrypted: the warning is then not queued."""
    read = bot.client.room_get_state

    async def without_encryption(room_id):
        state = await read(room_id)
        return RoomGetStateResponse([e for e in state.events if e["type"] != "m.room.encryption"], room_id)

    bot.client.room_get_state = without_encryption
    await run(bot, [sent("$gps", image_event(bot.media, "gps", jpeg_with_gps()), sender=BEA)])
    assert len(bot.client.created) == 1 and queued(bot.hub) == []
    with bot.hub.engine.connect() as conn:
        assert direct_rooms.served_room_of(conn, BEA) is None


def test_the_guide_section_the_warning_names_exists():
    guide = (Path(__file__).parent.parent / "docs" / "participants.md").read_text(encoding="utf-8")
    assert f"\n## {service.GUIDE_SECTION}\n" in guide


async def test_a_photo_sent_as_a_file_is_checked_too(bot):
    """Element's "send as file" keeps every byte the camera wrote: an m.file declared an image."""
    serve_direct_room(bot.hub)
    event = image_event(bot.media, "asfile", jpeg_with_gps(), msgtype="m.file")
    await run(bot, [sent("$file", event)])
    (warning,) = queued(bot.hub)
    assert warning.room_id == DM and "the place where it was taken" in warning.content["body"]


async def test_an_album_is_told_in_one_warning_naming_each_picture_and_counting_those_not_read(bot):
    """Eight photos at once, all with a place: one warning names the five read and counts the three
    past her limit (they were named by five warnings, and three never mentioned)."""
    serve_direct_room(bot.hub)
    album = [sent(f"$p{i}", image_event(bot.media, f"p{i}", jpeg_with_gps(), body=f"IMG_{i}.jpg")) for i in range(8)]
    album.insert(2, sent("$plain", image_event(bot.media, "plain", plain_jpeg(), body="IMG_plain.jpg")))
    bot.pictures.gate = PictureGate(bot.hub.clock, per_minute=6)
    await run(bot, album)
    (warning,) = queued(bot.hub)
    body = warning.content["body"]
    assert body.startswith("5 pictures you sent carry") and "3 more pictures" in body
    for i in range(5):
        assert f"{member_words(f'IMG_{i}.jpg')} in “Bridges consultation”" in body
    assert "IMG_plain" not in body and "IMG_5" not in body and service.GUIDE_SECTION in body


async def test_pictures_created_but_never_uploaded_hold_no_one_elses_warning(bot):
    """Seven accounts send pictures whose files were created and never uploaded (Synapse would wait
    20 s on each download): asked with timeout_ms=0, they are answered at once, and her warning comes."""
    serve_direct_room(bot.hub)
    flood = []
    for account in range(7):
        for i in range(PICTURES_PER_MINUTE):
            event = image_event(bot.media, f"pending{account}-{i}", b"x")
            bot.media.pending.add(f"pending{account}-{i}")
            flood.append(sent(f"$h{account}-{i}", event, sender=f"@hostile{account}:crossline.local"))
    flood.append(sent("$ana", image_event(bot.media, "ana", jpeg_with_gps())))
    await run(bot, flood)
    (warning,) = queued(bot.hub)
    assert warning.room_id == DM


async def test_when_too_many_wait_the_sender_with_the_most_waiting_loses_one_not_a_newcomer(bot):
    bot.media.open.clear()  # downloads hang until released
    serve_direct_room(bot.hub)
    batches = [[sent(f"$h{b}-{i}", image_event(bot.media, f"h{b}-{i}", plain_jpeg()), sender=f"@h{i}:crossline.local")
                for i in range(4)] for b in range(MAX_WAITING // 4 + 2)]
    for batch in batches:  # four accounts, a batch each after another: eight checks waiting each
        with bot.hub.engine.begin() as conn:
            bot.pictures.check_later(service.to_check_in(conn, bot.hub, batch, PictureGate(bot.hub.clock)))
    assert len(bot.pictures.tasks) == MAX_WAITING
    with bot.hub.engine.begin() as conn:
        hers = service.to_check_in(conn, bot.hub, [sent("$ana", image_event(bot.media, "ana", jpeg_with_gps()))],
                                   bot.pictures.gate)
    bot.pictures.check_later(hers)
    assert ANA in bot.pictures.waiting and len(bot.pictures.tasks) == MAX_WAITING + 1  # one of theirs cancelled
    bot.media.open.set()
    await asyncio.gather(*bot.pictures.tasks, return_exceptions=True)
    (warning,) = queued(bot.hub)
    assert warning.room_id == DM


async def test_a_declined_warning_room_is_not_opened_again_for_a_week(bot):
    """She rejects the room the bot opened (the bot leaves it): her next pictures with a place
    brought a new room and invitation each; now none for a week, then one again."""
    for i in range(4):
        await run(bot, [sent(f"$gps{i}", image_event(bot.media, f"gps{i}", jpeg_with_gps()), sender=BEA)])
        with bot.hub.engine.begin() as conn:  # she rejected the invitation; the bot left (matrix/direct_rooms)
            direct_rooms.left_in(conn, f"!opened{len(bot.client.created)}:crossline.local")
    assert len(bot.client.created) == 1
    bot.hub.clock.now += service.DECLINE_PAUSE_MS
    await run(bot, [sent("$later", image_event(bot.media, "later", jpeg_with_gps()), sender=BEA)])
    assert len(bot.client.created) == 2
