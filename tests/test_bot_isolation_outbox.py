"""The bot's outbox against a recording client: answers fit the homeserver's limit, permanent
refusals end the retries, other failures back off with jitter and never hold back other rooms."""

from __future__ import annotations

import asyncio
import json
import random
from types import SimpleNamespace

import pytest
from nio import AsyncClientConfig, RoomMessageText, RoomSendError, RoomSendResponse

from crossline.domain.room_messages import MAX_CONTENT_BYTES, notice
from crossline.matrix.bot import (
    GuardedClient, HubBot, UnreadableEvent, _counts, outgoing_content, send_failure_is_permanent,
)
from crossline.storage import bot as bot_store
from tests.fakes import make_unit_hub


class RecordingClient:
    """room_send as nio's: a response per call, decided by `answer(txn_id, attempt)`."""

    def __init__(self, rooms, answer):
        self.rooms = {room: SimpleNamespace(encrypted=True) for room in rooms}
        self.answer = answer
        self.sent: list[tuple[str, str]] = []
        self.attempts: dict[str, int] = {}

    async def room_send(self, room_id, event_type, content, tx_id, ignore_unverified_devices):
        self.attempts[tx_id] = self.attempts.get(tx_id, 0) + 1
        self.sent.append((room_id, tx_id))
        status, errcode = self.answer(tx_id, self.attempts[tx_id])
        if status == 200:
            return RoomSendResponse(f"$sent{len(self.sent)}", room_id)
        error = RoomSendError.from_dict({"errcode": errcode, "error": "refused"}, room_id)
        error.transport_response = SimpleNamespace(status=status)
        return error


@pytest.fixture
def hub(tmp_path):
    return make_unit_hub(tmp_path)


def bot_with(hub, client, seed=1) -> HubBot:
    bot = HubBot(hub, session=None, rng=random.Random(seed))
    bot.client = client
    bot.synced_once.set()
    return bot


def queue(hub, room_id, txn_id, body="✓ Vote recorded", purpose="reply"):
    with hub.engine.begin() as conn:
        bot_store.queue_message(conn, room_id, txn_id, notice(body), purpose, hub.clock.now_ms())


async def flush(bot: HubBot) -> None:
    await bot.flush_outbox()
    while bot.sending:
        await asyncio.gather(*list(bot.sending.values()))


def waiting(hub) -> list[str]:
    with hub.engine.connect() as conn:
        return [m.txn_id for m in bot_store.waiting_messages(conn, 1000)]


@pytest.mark.parametrize("status, errcode, permanent", [
    (413, "M_TOO_LARGE", True), (403, "M_FORBIDDEN", True), (400, "M_UNKNOWN", True), (404, "M_NOT_FOUND", True),
    (429, "M_LIMIT_EXCEEDED", False), (500, "M_UNKNOWN", False), (502, None, False), (None, None, False),
    (None, "M_TOO_LARGE", True),
])
def test_which_refusals_are_permanent(status, errcode, permanent):
    assert send_failure_is_permanent(status, errcode) is permanent


def test_what_is_sent_carries_mentions_and_fits_once_encrypted():
    huge = outgoing_content({"msgtype": "m.notice", "body": "é\"" * 60_000})
    assert huge["m.mentions"] == {} and huge["body"].endswith("…")
    assert len(json.dumps(huge, ensure_ascii=False).encode()) <= MAX_CONTENT_BYTES
    # Megolm ciphertext is base64 of the plaintext event plus a few hundred bytes of envelope.
    assert MAX_CONTENT_BYTES * 4 / 3 + 2000 < 65_536
    assert outgoing_content({"msgtype": "m.notice", "body": "hi", "m.mentions": "x"})["m.mentions"] == {}
    assert outgoing_content({"msgtype": "m.file", "url": "mxc://x"}) == {"msgtype": "m.file", "url": "mxc://x"}


async def test_a_permanent_refusal_ends_the_retries_and_is_logged_without_content(hub, caplog):
    client = RecordingClient(["!a"], lambda txn_id, attempt: (413, "M_TOO_LARGE"))
    bot = bot_with(hub, client)
    queue(hub, "!a", "reply-$big", body="secret words")
    for _ in range(5):
        await flush(bot)
    assert client.attempts == {"reply-$big": 1} and waiting(hub) == []
    assert "M_TOO_LARGE" in caplog.text and "secret" not in caplog.text


async def test_failures_back_off_with_jitter_and_other_rooms_go_on(hub):
    # Room !a's first message fails (500) three times; everything else goes.
    client = RecordingClient(["!a", "!b"], lambda txn_id, attempt: (500, "M_UNKNOWN")
                             if txn_id == "notice-a1" and attempt <= 3 else (200, None))
    bot = bot_with(hub, client)
    queue(hub, "!a", "notice-a1", purpose="notice")
    queue(hub, "!a", "notice-a2", purpose="notice")  # must keep its order behind a1
    queue(hub, "!b", "notice-b1", purpose="notice")
    queue(hub, "!b", "reply-b2")
    delays = []
    await flush(bot)
    # a2 waits behind a1 (its room's order); room !b's messages went, answers in any order.
    assert client.attempts == {"notice-a1": 1, "notice-b1": 1, "reply-b2": 1}
    await flush(bot)
    assert client.attempts == {"notice-a1": 1, "notice-b1": 1, "reply-b2": 1}  # a1 waits its backoff
    queue(hub, "!b", "notice-b3", purpose="notice")
    await flush(bot)
    assert client.attempts["notice-b3"] == 1  # never held back by room !a
    for _ in range(3):
        tries, not_before = bot.retry[next(iter(bot.retry))]
        delays.append(not_before - hub.clock.now_ms())
        hub.clock.now = not_before
        await flush(bot)
        await flush(bot)
    assert waiting(hub) == [] and not bot.retry
    assert [txn_id for room, txn_id in client.sent if room == "!a"] == ["notice-a1"] * 4 + ["notice-a2"]
    # Doubling, each by a random factor in [0.5, 1.5): never two the same, never past the cap.
    assert 500 <= delays[0] < 1500 and 1000 <= delays[1] < 3000 and 2000 <= delays[2] < 6000
    assert len(set(delays)) == 3


async def test_the_same_seed_gives_the_same_delays(hub):
    def delays(seed):
        bot = bot_with(hub, RecordingClient([], None), seed)
        message = bot_store.OutgoingMessage(1, "!a", "t", {}, "reply", None, None)
        result = []
        for _ in range(12):
            bot._retry_later(message)
            result.append(bot.retry[1][1] - hub.clock.now_ms())
        return result

    assert delays(7) == delays(7) != delays(8)
    assert max(delays(7)) <= 300_000 * 1.5


def test_an_event_the_client_library_fails_on_becomes_unreadable_not_a_stopped_sync(tmp_path):
    class BrokenRoom:
        def handle_event(self, event):
            raise KeyError("msgtype")  # as nio's own parser does on a content it does not expect

    client = GuardedClient("http://unused", "@crossline-bot:x", store_path=str(tmp_path),
                           config=AsyncClientConfig(encryption_enabled=False))
    event = RoomMessageText.from_dict({"event_id": "$e", "sender": "@ana:x", "origin_server_ts": 1, "type": "m.room.message",
                                       "content": {"msgtype": "m.text", "body": "!agree 1"}})
    unreadable = client._handle_timeline_event(event, "!r", BrokenRoom(), set())
    assert unreadable == UnreadableEvent("$e", "@ana:x") and _counts(unreadable)


async def test_one_rooms_backlog_never_holds_back_another_rooms_answer(hub):
    # 300 announcements queued in room !a (they go one at a time, in order), then one answer in !b.
    client = RecordingClient(["!a", "!b"], lambda txn_id, attempt: (200, None))
    bot = bot_with(hub, client)
    for i in range(300):
        queue(hub, "!a", f"notice-a{i}", purpose="notice")
    queue(hub, "!a", "reply-a")
    queue(hub, "!b", "reply-b")
    await flush(bot)
    assert set(client.attempts) == {"notice-a0", "reply-a", "reply-b"}
    await flush(bot)
    assert "notice-a1" in client.attempts and [t for _, t in client.sent if t.startswith("notice")] == \
        ["notice-a0", "notice-a1"]


async def test_a_failing_pass_does_not_stop_the_sender(hub, caplog):
    client = RecordingClient(["!a"], lambda txn_id, attempt: (200, None))
    bot = bot_with(hub, client)
    real_flush, failures = bot.flush_outbox, []

    async def flush_failing_once():
        if not failures:
            failures.append(1)
            raise RuntimeError("secret words")
        await real_flush()

    bot.flush_outbox = flush_failing_once
    stop = asyncio.Event()
    sender = asyncio.create_task(bot._send_forever(stop))
    queue(hub, "!a", "reply-a")
    while "reply-a" not in client.attempts:
        assert not sender.done(), "the sender stopped"
        await asyncio.sleep(0.01)
    stop.set()
    await sender
    assert "RuntimeError" in caplog.text and "secret" not in caplog.text


async def test_nothing_is_sent_to_a_room_not_known_to_be_encrypted(hub):
    """nio would send in clear to a room whose encryption state it has not seen: the message waits."""
    client = RecordingClient(["!clear:h", "!known:h"], lambda txn_id, attempt: (200, None))
    client.rooms["!clear:h"].encrypted = False
    bot = bot_with(hub, client)
    queue(hub, "!clear:h", "t-clear")
    queue(hub, "!known:h", "t-known")
    await flush(bot)
    assert client.sent == [("!known:h", "t-known")]
    assert waiting(hub) == ["t-clear"]
