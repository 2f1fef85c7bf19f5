"""End to end: a facilitator makes a cross-line room from the template; two members from
opposite sides, onboarded through invitations, talk in it with real end-to-end encryption;
neither database holds what they said."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from nio import AsyncClient, AsyncClientConfig, JoinResponse, RoomMessageText

from tests.conftest import ALICE, BELLA, create_room
from tests.support import matrix

pytestmark = pytest.mark.synapse


async def encrypted_client(homeserver_url: str, user_id: str, password: str, store: Path) -> AsyncClient:
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(
        homeserver_url, user_id, store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True, pickle_key="test pickle key"),
    )
    response = await client.login(password, device_name="e2e test")
    assert client.access_token, response
    assert client.olm is not None, "no olm machine: messages would go out in plaintext"
    return client


async def settle(client: AsyncClient) -> None:
    """One round of what `sync_forever` does between syncs."""
    await client.sync(timeout=1000, full_state=True)
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    await client.send_to_device_messages()


async def receive_text(client: AsyncClient, room_id: str, body: str, timeout_s: float = 30) -> RoomMessageText:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        response = await client.sync(timeout=1000)
        room = response.rooms.join.get(room_id) if hasattr(response, "rooms") else None
        for event in room.timeline.events if room else []:
            if isinstance(event, RoomMessageText) and event.body == body:
                return event
        if client.should_query_keys:
            await client.keys_query()
    raise AssertionError(f"{client.user_id} never decrypted the message")


async def clients_in_a_new_room(world, tmp_path: Path, template: str, name: str,
                                people: list[tuple[str, str]], rounds: int = 2) -> tuple[str, list[AsyncClient]]:
    """A new room from `template` with these (localpart, password) members, each with an
    encrypted client that has joined and settled (keys exchanged)."""
    stack = world.stack
    status, page, room_id = create_room(world, template, name, [stack.user_id(localpart) for localpart, _ in people])
    assert status == 200 and room_id, page
    clients = [await encrypted_client(stack.homeserver_url, stack.user_id(localpart), password, tmp_path / localpart)
               for localpart, password in people]
    for client in clients:
        await client.sync(timeout=1000)
        assert room_id in client.invited_rooms, f"{client.user_id} was not invited"
        assert isinstance(await client.join(room_id), JoinResponse)
    for _ in range(rounds):
        for client in clients:
            await settle(client)
        await asyncio.sleep(0.3)  # the hub's bot, if it is there, learns the new devices
    return room_id, clients


async def alice_and_bella_in_a_room(world, tmp_path: Path, name: str) -> tuple[str, AsyncClient, AsyncClient]:
    room_id, (alice, bella) = await clients_in_a_new_room(world, tmp_path, "cross-line-dialogue", name, [ALICE, BELLA])
    return room_id, alice, bella


def database_bytes(*paths: Path) -> bytes:
    """A database file with its WAL and journal: recent writes may still sit in the WAL."""
    data = b""
    for path in paths:
        for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
            if candidate.exists():
                data += candidate.read_bytes()
    return data


async def test_cross_line_members_talk_encrypted_and_servers_keep_no_plaintext(world, tmp_path):
    stack = world.stack
    room_id, alice, bella = await alice_and_bella_in_a_room(world, tmp_path, "Left and right bank")
    try:
        room = alice.rooms[room_id]
        assert room.encrypted, "the room must be encrypted from its first events"
        assert stack.user_id("crossline-bot") not in room.users, "the hub bot must not be in a cross-line room"
        state = matrix(stack.homeserver_url, "GET", f"/_matrix/client/v3/rooms/{room_id}/state", alice.access_token)[1]
        by_type = {event["type"]: event["content"] for event in state}
        assert by_type["m.room.join_rules"]["join_rule"] == "invite"
        assert by_type["m.room.history_visibility"]["history_visibility"] == "joined"
        assert by_type["m.room.guest_access"]["guest_access"] == "forbidden"
        levels = by_type["m.room.power_levels"]
        assert levels["users"][stack.user_id("facilitator1")] == 100
        assert levels["users"][stack.user_id("alice")] == 0 and levels["kick"] == 50

        hello = f"Hello from the left bank {secrets.token_hex(8)}"
        reply = f"Greetings from the right bank {secrets.token_hex(8)}"
        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": hello},
                                     ignore_unverified_devices=True)
        assert getattr(sent, "event_id", None), sent
        assert (await receive_text(bella, room_id, hello)).sender == stack.user_id("alice")
        await bella.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": reply},
                              ignore_unverified_devices=True)
        assert (await receive_text(alice, room_id, reply)).sender == stack.user_id("bella")

        # What the server holds is ciphertext.
        event = matrix(stack.homeserver_url, "GET",
                       f"/_matrix/client/v3/rooms/{room_id}/event/{sent.event_id}", alice.access_token)[1]
        assert event["type"] == "m.room.encrypted" and "ciphertext" in event["content"]
    finally:
        await alice.close()
        await bella.close()

    paths = stack.data_dir
    stored = database_bytes(paths / "synapse" / "homeserver.db", paths / "hub.sqlite3")
    assert len(stored) > 100_000, "the databases were not where the test looked"
    for secret_text in (hello, reply):
        assert secret_text.encode() not in stored
        assert secret_text.encode("utf-16-le") not in stored
