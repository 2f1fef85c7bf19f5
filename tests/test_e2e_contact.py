"""End to end, real Synapse and nio: no member can corner another (issue 26, items 3 and 4).

Each attack is sent as a hostile member's client sends it, next to the legitimate action that must
still work. Two lines (Nistru from the session's world, Ararat made here), two sides each; every
person here is new, so nobody else's rooms or limits decide what is seen.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from nio import AsyncClient, DownloadResponse, UploadResponse
from nio.crypto.attachments import decrypt_attachment
from PIL import Image

from tests.conftest import create_room, issue_invitation, member_ids_on_page
from tests.contact_support import choose_who_may_invite, hub_session, share_a_room
from tests.support import login, matrix, register_like_element, wait_for

pytestmark = pytest.mark.synapse

CLIENT = "/_matrix/client/v3"
NOT_NOW = "does not take invitations from you"


@dataclass(frozen=True)
class Person:
    localpart: str
    password: str
    user_id: str
    token: str


def _person(world, line_id: int, side_id: int, name: str) -> Person:
    localpart = f"{name}{secrets.token_hex(3)}"
    password = f"{localpart} own password 1"
    code = issue_invitation(world.admin, line_id, side_id).rsplit("/", 1)[1]
    status, data = register_like_element(world.stack.homeserver_url, localpart, password, code)
    assert status == 200, data
    user_id = world.stack.user_id(localpart)
    wait_for(lambda: user_id in member_ids_on_page(world.admin.get(f"/lines/{line_id}")[1]),
             what=f"{localpart} to become a member")
    return Person(localpart, password, user_id, login(world.stack.homeserver_url, localpart, password))


@pytest.fixture(scope="module")
def ararat(world) -> tuple[int, dict[str, int]]:
    """A second line, with its own two sides."""
    admin = world.admin
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/lines")[1]).group(1)
    status, page, url = admin.request("POST", "/lines", {"csrf_token": token, "name": f"Ararat {secrets.token_hex(2)}",
                                                         "sides": "North\nSouth"})
    assert status == 200, page
    sides = {name: int(value) for value, name in re.findall(r'<option value="(\d+)">([^<]+)</option>', page)}
    return int(url.rsplit("/", 1)[1]), sides


def nistru(world, name: str, side: str = "Left bank") -> Person:
    return _person(world, world.line_id, world.side_ids[side], name)


def _invite(world, inviter: Person, room_id: str, invitee: Person, **extra) -> tuple[int, dict]:
    return matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", inviter.token,
                  {"user_id": invitee.user_id, **extra})


def _room(world, person: Person, **body) -> str:
    status, data = matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/createRoom", person.token, body)
    assert status == 200, data
    return data["room_id"]


def _sync(world, person: Person) -> dict:
    """A fresh initial sync: Synapse keeps an identical one's answer for minutes, so each asks
    with a filter of its own (one that leaves nothing out)."""
    unused = quote(json.dumps({"account_data": {"not_types": [f"x.test.{secrets.token_hex(4)}"]}}))
    status, data = matrix(world.stack.homeserver_url, "GET", f"{CLIENT}/sync?timeout=0&filter={unused}", person.token)
    assert status == 200, data
    return data


def _invited_to(world, person: Person) -> dict[str, dict]:
    return _sync(world, person).get("rooms", {}).get("invite", {})


def test_a_member_cannot_invite_or_message_someone_of_another_line(world, ararat):
    nina, nora = nistru(world, "nina"), nistru(world, "nora", "Right bank")
    aram = _person(world, ararat[0], ararat[1]["North"], "aram")
    choose_who_may_invite(world, aram.localpart, aram.password, "line")  # even with her widest choice

    room_id = _room(world, nina, name="Tea")
    status, data = _invite(world, nina, room_id, aram)
    assert status == 403 and "not in your dialogue line" in data["error"], data
    # A direct chat, as Element opens one: the invitation is refused, so no room reaches her.
    status, data = matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/createRoom", nina.token,
                          {"preset": "trusted_private_chat", "is_direct": True, "invite": [aram.user_id]})
    assert status == 403 and "not in your dialogue line" in data["error"], data
    assert not _invited_to(world, aram)

    # The legitimate actions: the facilitator invites both banks of her line; then a member invites
    # someone she shares a room with.
    share_a_room(world, {nina.user_id: nina.token, nora.user_id: nora.token})
    assert _invite(world, nina, room_id, nora)[0] == 200
    assert room_id in _invited_to(world, nora)


def test_an_invitation_carries_none_of_the_inviters_words(world):
    nina, nora = nistru(world, "nina"), nistru(world, "nora", "Right bank")
    share_a_room(world, {nina.user_id: nina.token, nora.user_id: nora.token})
    words = f"We know who you talked to {secrets.token_hex(4)}"
    room_id = _room(world, nina, name=words, topic=words)

    status, data = _invite(world, nina, room_id, nora, reason=words)
    assert status == 403 and "reason" in data["error"], data
    assert _invite(world, nina, room_id, nora)[0] == 200

    invite = _invited_to(world, nora)[room_id]
    kinds = {event["type"] for event in invite["invite_state"]["events"]}
    assert kinds <= {"m.room.create", "m.room.join_rules", "m.room.encryption", "m.room.member"}, kinds
    assert words not in str(_sync(world, nora)), "her client shows the inviter's words before she joins"
    # Once she has joined, the room's name is hers to read.
    assert matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/join/{quote(room_id)}", nora.token, {})[0] == 200
    state = matrix(world.stack.homeserver_url, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.name/",
                   nora.token)[1]
    assert state == {"name": words}


def test_she_chooses_who_may_invite_her(world):
    nina, nell = nistru(world, "nina"), nistru(world, "nell", "Right bank")
    room_id = _room(world, nina)
    # The default: people she shares a room with. Nina shares none with Nell.
    status, data = _invite(world, nina, room_id, nell)
    assert status == 403 and NOT_NOW in data["error"], data

    page = choose_who_may_invite(world, nell.localpart, nell.password, "line")
    assert 'value="line" checked' in page
    assert _invite(world, nina, room_id, nell)[0] == 200

    choose_who_may_invite(world, nell.localpart, nell.password, "nobody")
    other = _room(world, nina)
    status, data = _invite(world, nina, other, nell)
    assert status == 403 and NOT_NOW in data["error"], data
    # Staff of her line still bring her into the line's rooms.
    status, page, hub_room = create_room(world, "cross-line-dialogue", f"Bridges {secrets.token_hex(2)}",
                                         [nell.user_id])
    assert status == 200 and hub_room and hub_room in _invited_to(world, nell), page

    # Hostile forms change nothing: another answer, or no CSRF token.
    session = hub_session(world, nell.localpart, nell.password)
    status, page = session.submit("/participate/who-may-invite", "/participate/who-may-invite", {"invites_from": "everyone"})
    assert status == 400 and "Choose one of the three answers" in page
    status, page, _ = session.request("POST", "/participate/who-may-invite", {"invites_from": "line"})
    assert status == 403
    assert 'value="nobody" checked' in session.get("/participate/who-may-invite")[1]


def test_after_she_declines_the_same_person_cannot_invite_her_again(world):
    dana, vera, olga = nistru(world, "dana"), nistru(world, "vera", "Right bank"), nistru(world, "olga")
    share_a_room(world, {dana.user_id: dana.token, vera.user_id: vera.token, olga.user_id: olga.token})
    first, second = _room(world, dana), _room(world, dana)
    assert _invite(world, dana, first, vera)[0] == 200
    assert matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/rooms/{quote(first)}/leave", vera.token, {})[0] == 200

    status, data = _invite(world, dana, first, vera)
    assert status == 403 and NOT_NOW in data["error"], data
    # Someone else she shares a room with still can.
    olgas = _room(world, olga)
    assert _invite(world, olga, olgas, vera)[0] == 200

    # As it was tried: 23 invitations in about a minute, into the same room and another. Each is
    # refused; Synapse's per-invitee limit (its default, 5 at once) soon answers first.
    answers = [_invite(world, dana, (first, second)[n % 2], vera) for n in range(23)]
    assert all((status == 403 and NOT_NOW in data["error"]) or status == 429 for status, data in answers), answers
    assert [room for room in _invited_to(world, vera)] == [olgas]
    # The hub's rooms are exempt from that limit (the hub acts for the facilitator with its admin's token).
    status, page, hub_room = create_room(world, "cross-line-dialogue", f"Crossings {secrets.token_hex(2)}",
                                         [vera.user_id])
    assert status == 200 and hub_room in _invited_to(world, vera), page

    # Synapse's own history says she declined: it holds after a restart.
    world.stack.stop()
    world.stack.restart()
    dana_token = login(world.stack.homeserver_url, dana.localpart, dana.password)
    status, data = matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/rooms/{quote(second)}/invite", dana_token,
                          {"user_id": vera.user_id})
    assert status == 403 and NOT_NOW in data["error"], data


def test_leaving_right_after_joining_from_an_invitation_is_a_decline_too(world):
    kai, lea = nistru(world, "kai"), nistru(world, "lea", "Right bank")
    share_a_room(world, {kai.user_id: kai.token, lea.user_id: lea.token})
    room_id, other = _room(world, kai), _room(world, kai)
    assert _invite(world, kai, room_id, lea)[0] == 200
    hs = world.stack.homeserver_url
    assert matrix(hs, "POST", f"{CLIENT}/join/{quote(room_id)}", lea.token, {})[0] == 200
    assert matrix(hs, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", lea.token, {})[0] == 200
    status, data = _invite(world, kai, other, lea)
    assert status == 403 and NOT_NOW in data["error"], data


def test_an_ignored_persons_invitation_never_reaches_her(world):
    ivo, iris, ilse = nistru(world, "ivo"), nistru(world, "iris", "Right bank"), nistru(world, "ilse")
    share_a_room(world, {ivo.user_id: ivo.token, iris.user_id: iris.token, ilse.user_id: ilse.token})
    status, data = matrix(world.stack.homeserver_url, "PUT",
                          f"{CLIENT}/user/{quote(iris.user_id)}/account_data/m.ignored_user_list", iris.token,
                          {"ignored_users": {ivo.user_id: {}}})
    assert status == 200, data
    room_id = _room(world, ivo)
    status, data = _invite(world, ivo, room_id, iris)
    assert status == 403 and NOT_NOW in data["error"], data
    status, data = matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/createRoom", ivo.token,
                          {"is_direct": True, "invite": [iris.user_id]})
    assert status == 403, data
    assert not _invited_to(world, iris)
    status, data = matrix(world.stack.homeserver_url, "GET", f"{CLIENT}/notifications", iris.token)
    assert status == 200 and not data["notifications"], data
    # Someone she does not ignore reaches her.
    ilses = _room(world, ilse)
    assert _invite(world, ilse, ilses, iris)[0] == 200
    assert ilses in _invited_to(world, iris)


def _upload(world, person: Person, data: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{world.stack.homeserver_url}/_matrix/media/v3/upload?filename=x", data=data,
                                     method="POST", headers={"Authorization": f"Bearer {person.token}",
                                                             "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_clear_media_is_refused_and_encrypted_attachments_still_work(world, ararat):
    """An encrypted attachment reaches a member she shares a room with; nobody outside her rooms (here a
    member of another line, and one of her own line) can download it, nor its thumbnail."""
    nina, nora, nadia = nistru(world, "nina"), nistru(world, "nora", "Right bank"), nistru(world, "nadia")
    ani = _person(world, ararat[0], ararat[1]["North"], "ani")
    share_a_room(world, {nina.user_id: nina.token, nora.user_id: nora.token})
    for data, content_type, kind in ((_png(), "image/png", "image"),
                                     (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "application/pdf", "PDF"),
                                     ("Мы знаем, с кем вы говорили.\n".encode() * 4, "text/plain", "text"),
                                     (_png(), "application/octet-stream", "image")):
        status, answer = _upload(world, nina, data, content_type)
        assert status in (400, 403) and f"readable {kind}" in answer.get("error", ""), (content_type, status, answer)

    picture = _png()

    async def encrypted_round_trip() -> bytes:
        sender = AsyncClient(world.stack.homeserver_url, nina.user_id)
        sender.access_token, sender.user_id = nina.token, nina.user_id
        reader = AsyncClient(world.stack.homeserver_url, nora.user_id)
        reader.access_token, reader.user_id = nora.token, nora.user_id
        try:
            uploaded, keys = await sender.upload(io.BytesIO(picture), content_type="image/png", filename="p.png",
                                                 encrypt=True, filesize=len(picture))
            assert isinstance(uploaded, UploadResponse), uploaded
            downloaded = await reader.download(uploaded.content_uri)
            assert isinstance(downloaded, DownloadResponse), downloaded
            media = uploaded.content_uri.removeprefix("mxc://")
            for stranger in (ani, nadia):
                for path in (f"/_matrix/client/v1/media/download/{media}", f"/_matrix/client/v1/media/thumbnail/{media}"
                             "?width=32&height=32", f"/_matrix/media/v3/download/{media}"):
                    request = urllib.request.Request(world.stack.homeserver_url + path,
                                                     headers={"Authorization": f"Bearer {stranger.token}"})
                    try:
                        with urllib.request.urlopen(request, timeout=60) as response:
                            status = response.status
                    except urllib.error.HTTPError as error:
                        status = error.code
                    assert status == 404, (stranger.localpart, path, status)
            return decrypt_attachment(downloaded.body, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"])
        finally:
            await sender.close()
            await reader.close()

    assert asyncio.run(encrypted_round_trip()) == picture


def test_pictures_for_profiles_and_rooms_are_refused(world):
    nina = nistru(world, "nina")
    hs = world.stack.homeserver_url
    picture = f"mxc://{world.stack.user_id('x').split(':', 1)[1]}/{secrets.token_hex(8)}"
    status, data = matrix(hs, "PUT", f"{CLIENT}/profile/{quote(nina.user_id)}/avatar_url", nina.token,
                          {"avatar_url": picture})
    assert status in (400, 403), data
    room_id = _room(world, nina)
    status, data = matrix(hs, "PUT", f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.avatar/", nina.token,
                          {"url": picture, "info": {"mimetype": "image/png", "size": 10, "w": 1, "h": 1}})
    assert status == 403 and "Pictures for profiles and rooms are not available" in data["error"], data
    status, data = matrix(hs, "POST", f"{CLIENT}/createRoom", nina.token, {"initial_state": [
        {"type": "m.room.avatar", "state_key": "", "content": {"url": picture}}]})
    assert status == 403 and "not available" in data["error"], data
    status, data = matrix(hs, "PUT", f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(nina.user_id)}",
                          nina.token, {"membership": "join", "avatar_url": picture})
    assert status == 403, data
    # The legitimate actions: she names herself, and a room picture can be removed.
    assert matrix(hs, "PUT", f"{CLIENT}/profile/{quote(nina.user_id)}/displayname", nina.token,
                  {"displayname": "Nina R"})[0] == 200
    assert matrix(hs, "PUT", f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.avatar/", nina.token, {})[0] == 200
