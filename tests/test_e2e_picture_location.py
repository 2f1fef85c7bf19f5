"""A picture that carries where it was taken, end to end with real Synapse, the hub's bot and
end-to-end-encrypted nio clients (issue 24 item 2): a member sends encrypted m.image messages in a
room the bot serves, as Element does (the file encrypted and uploaded, `content.file`); the one
with a GPS position brings her a private warning from the bot, in a direct room it opens with her,
that never says the place; the one without brings nothing; nobody else is told anything."""

from __future__ import annotations

import asyncio
import io
import secrets

import pytest
from nio import JoinResponse, RoomMessageNotice, UploadResponse
from PIL import Image

from tests.pictures_support import jpeg_with_gps
from tests.support import matrix
from tests.test_e2e_cross_line_room import clients_in_a_new_room
from tests.test_e2e_gateway import _new_member

pytestmark = pytest.mark.synapse

GPS_WORDS = ("48", "51", "21")  # the planted position: 48°51'30"N 2°21'6"E


def plain_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (30, 120, 200)).save(out, "JPEG")
    return out.getvalue()


async def send_picture(client, room_id: str, data: bytes, name: str) -> str:
    """As Element sends a photo in an encrypted room: the file encrypted on the device and uploaded,
    its key in the (encrypted) message."""
    uploaded, keys = await client.upload(io.BytesIO(data), content_type="image/jpeg", filename=name, encrypt=True,
                                         filesize=len(data))
    assert isinstance(uploaded, UploadResponse) and keys, uploaded
    content = {"msgtype": "m.image", "body": name, "info": {"mimetype": "image/jpeg", "size": len(data)},
               "file": {**keys, "url": uploaded.content_uri, "mimetype": "image/jpeg"}}
    response = await client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
    assert getattr(response, "event_id", None), response
    return response.event_id


async def bot_notices(client, bot: str, until: str, timeout_s: float = 90) -> dict[str, list[RoomMessageNotice]]:
    """The bot's notices the client decrypts, by room, accepting each invitation on the way, until
    one matches `until`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    seen: dict[str, list[RoomMessageNotice]] = {}
    other: list[str] = []  # what else the bot sent, for the failure message
    while loop.time() < deadline:
        response = await client.sync(timeout=1000, sync_filter={"room": {"timeline": {"limit": 100}}})
        for room_id in list(client.invited_rooms):
            assert isinstance(await client.join(room_id), JoinResponse)
        for room_id, room in getattr(response, "rooms", None).join.items() if hasattr(response, "rooms") else []:
            seen.setdefault(room_id, []).extend(e for e in room.timeline.events
                                                if isinstance(e, RoomMessageNotice) and e.sender == bot)
            other += [type(e).__name__ for e in room.timeline.events
                      if e.sender == bot and not isinstance(e, RoomMessageNotice)]
        if client.should_query_keys:
            await client.keys_query()
        await client.send_to_device_messages()
        if any(until in notice.body for notices in seen.values() for notice in notices):
            return seen
    raise AssertionError(f"{client.user_id} never saw a bot notice with {until!r}; saw {seen}, {other}")


async def test_a_picture_with_a_place_brings_her_alone_a_private_warning(world, tmp_path):
    stack = world.stack
    bot = stack.user_id("crossline-bot")
    # New members: nobody has a direct room with the bot yet, so the bot opens one for the warning.
    people = [(f"eve{secrets.token_hex(3)}", "eve's own password 1"),
              (f"fay{secrets.token_hex(3)}", "fay's own password 1")]
    for localpart, password in people:
        _new_member(world, localpart, password)
    room_name = f"Pictures {secrets.token_hex(3)}"
    room_id, (eve, fay) = await clients_in_a_new_room(world, tmp_path, "consultation", room_name, people, rounds=3)
    try:
        await send_picture(eve, room_id, plain_jpeg(), "market.jpg")
        await send_picture(eve, room_id, jpeg_with_gps(), "bridge.jpg")

        # Her warning, then the welcome the bot queues after it in the room it opened: a later marker.
        seen = await bot_notices(eve, bot, until="Hello. In this private room")
        private = [r for r, notices in seen.items() if r != room_id and notices]
        assert len(private) == 1, seen
        dm = eve.rooms[private[0]]
        assert dm.encrypted and set(dm.users) == {eve.user_id, bot}
        warnings = [n for n in seen[private[0]] if "hidden in its file" in n.body]
        assert len(warnings) == 1, [n.body for n in seen[private[0]]]  # the plain picture brought none
        warning = warnings[0]
        assert warning.decrypted and warning.body.startswith("I opened this private room with you")
        assert "bridge.jpg" in warning.body.replace("\u2060", "") and "market.jpg" not in warning.body
        assert "the place where it was taken" in warning.body and "the phone or camera" in warning.body
        # The room's name is random hex, which may hold "21" by chance: only the rest must not.
        assert not any(word in warning.body.replace("\u2060", "").replace(room_name, "") for word in GPS_WORDS)
        status, history = matrix(stack.homeserver_url, "GET",
                                 f"/_matrix/client/v3/rooms/{private[0]}/messages?dir=b&limit=100", eve.access_token)
        invitation = [e for e in history["chunk"] if e["type"] == "m.room.member" and e["state_key"] == eve.user_id
                      and e["content"]["membership"] == "invite"]
        assert status == 200 and invitation[0]["sender"] == bot and invitation[0]["content"]["is_direct"] is True

        # Nobody else is told: Fay is in no room with the bot but the shared one and has no invitation,
        # and the shared room holds no message from the bot (a message event, encrypted or not).
        status, synced = matrix(stack.homeserver_url, "GET", "/_matrix/client/v3/sync?timeout=0", fay.access_token)
        assert status == 200 and set(synced["rooms"].get("join", {})) == {room_id}, synced["rooms"].keys()
        assert synced["rooms"].get("invite", {}) == {}
        status, page = matrix(stack.homeserver_url, "GET",
                              f"/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=100", fay.access_token)
        assert status == 200
        assert not [e for e in page["chunk"] if e["sender"] == bot and "state_key" not in e], page["chunk"]
    finally:
        await eve.close()
        await fay.close()

