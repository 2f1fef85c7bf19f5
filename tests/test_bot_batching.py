"""How the bot batches its work: gaps in a limited sync are fetched, long lists are split. (The whole path runs against Synapse in test_e2e_consultation.)"""

from types import SimpleNamespace

import pytest
from nio import RoomMessagesError, RoomMessagesResponse

from crossline.matrix.bot import BotError, whole_timeline
from crossline.domain.room_messages import MAX_CHARS, MAX_LINES, answer_entry, chunked


class PagingClient:
    """Serves /messages pages backwards, as Synapse does: newest first, `end` for the next page."""

    def __init__(self, pages: dict[str, tuple[list[str], str | None]]):
        self.pages = pages
        self.requests: list[tuple[str, str]] = []

    async def room_messages(self, room_id, start, end, limit):
        self.requests.append((start, end))
        if start not in self.pages:
            return RoomMessagesError("unknown token")
        chunk, next_token = self.pages[start]
        return RoomMessagesResponse(room_id, chunk, start, next_token)


def timeline(events, limited, prev_batch="t3"):
    return SimpleNamespace(events=events, limited=limited, prev_batch=prev_batch)


async def test_a_limited_sync_is_completed_from_the_gap_in_order():
    client = PagingClient({"t3": (["e3", "e2"], "t1"), "t1": (["e1"], "t0"), "t0": ([], None)})
    events = await whole_timeline(client, "!r", timeline(["e4", "e5"], limited=True), since="s0")
    assert events == ["e1", "e2", "e3", "e4", "e5"]
    assert all(end == "s0" for _, end in client.requests)


async def test_an_unlimited_sync_needs_no_extra_request():
    client = PagingClient({})
    assert await whole_timeline(client, "!r", timeline(["e1"], limited=False), since="s0") == ["e1"]
    assert await whole_timeline(client, "!r", timeline(["e1"], limited=True), since=None) == ["e1"]
    assert client.requests == []


async def test_a_gap_that_cannot_be_fetched_stops_the_batch():
    # Raising keeps the sync position where it was, so the batch is fetched again later.
    with pytest.raises(BotError):
        await whole_timeline(PagingClient({}), "!r", timeline(["e4"], limited=True), since="s0")


def test_long_lists_are_split_by_entries_and_by_size_and_keep_every_entry():
    short = [f"Statement {n}: short" for n in range(1, 61)]
    assert [len(g) for g in chunked(short)] == [MAX_LINES, MAX_LINES, 60 - 2 * MAX_LINES]
    long = [f"Statement {n}: " + "x" * 1500 for n in range(1, 6)]
    groups = chunked(long)
    assert len(groups) == 3 and all(len("\n".join(g)) <= MAX_CHARS for g in groups)
    assert [entry for g in chunked(short + long) for entry in g] == short + long


def test_an_answer_entry_names_the_person_on_one_line_and_indents_the_rest():
    assert answer_entry("  Ana\n M. ", "Thank you.\nStatement 3: Open it") == "• Ana M.: Thank you.\n  Statement 3: Open it"
    assert answer_entry("", "✓").startswith("• someone: ")
