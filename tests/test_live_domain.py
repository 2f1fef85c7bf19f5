"""The live-session rules: transitions, who may join, the alternating queue, speaking time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossline.domain import live
from crossline.domain.live import HandQueue, LiveRefusal, LiveStatus, Owner, SpeakingTime
from crossline.domain.records import Member
from crossline.errors import NotAllowed


def person(roles, line_id=1, side_id=10) -> Member:
    return Member(1, "@p:x", line_id, side_id, frozenset(roles), None, 0)


@pytest.mark.parametrize(("current", "target", "allowed"), [
    (LiveStatus.SCHEDULED, LiveStatus.OPEN, True), (LiveStatus.SCHEDULED, LiveStatus.LOCKED, False),
    (LiveStatus.OPEN, LiveStatus.LOCKED, True), (LiveStatus.LOCKED, LiveStatus.OPEN, True),
    (LiveStatus.OPEN, LiveStatus.ENDED, True), (LiveStatus.ENDED, LiveStatus.OPEN, False),
    (LiveStatus.ENDED, LiveStatus.ENDED, False), (LiveStatus.OPEN, LiveStatus.SCHEDULED, False),
])
def test_transitions(current, target, allowed):
    if allowed:
        assert live.transition(current, target) is target
    else:
        with pytest.raises(LiveRefusal):
            live.transition(current, target)


CONSULTATION = Owner(line_id=1, consultation_id=7, eligible_side_ids=frozenset({10, 11}))


@pytest.mark.parametrize(("member", "owner", "interpreter", "masked", "expected"), [
    (person({"participant"}), CONSULTATION, False, False, True),
    (person({"participant"}, side_id=12), CONSULTATION, False, False, False),  # side not included
    (person({"participant"}), CONSULTATION, False, True, False),  # took a pseudonym here
    (person({"moderator"}), CONSULTATION, False, False, False),  # staff on a side, not a participant
    (person({"facilitator"}, line_id=None, side_id=None), CONSULTATION, False, False, True),
    (person({"facilitator"}, line_id=2, side_id=None), CONSULTATION, False, False, False),  # another line
    (person({"admin"}, line_id=None, side_id=None), CONSULTATION, False, False, True),
    (person({"negotiator"}, line_id=None, side_id=None), CONSULTATION, True, False, True),  # named interpreter
    (person({"participant"}), Owner(line_id=1, room_member=True), False, False, True),
    (person({"participant"}), Owner(line_id=1, room_member=False), False, False, False),
    (None, CONSULTATION, False, False, False),
])
def test_who_may_join(member, owner, interpreter, masked, expected):
    assert live.may_join(member, owner, interpreter, masked) is expected


def test_join_refusals_say_why():
    live.check_join(LiveStatus.OPEN, facilitator=False, removed=False)
    live.check_join(LiveStatus.LOCKED, facilitator=True, removed=False)
    for status, facilitator, removed, words in [
        (LiveStatus.LOCKED, False, False, "locked"), (LiveStatus.ENDED, True, False, "ended"),
        (LiveStatus.SCHEDULED, False, False, "not started"), (LiveStatus.OPEN, True, True, "removed"),
    ]:
        with pytest.raises(NotAllowed, match=words):
            live.check_join(status, facilitator, removed)


def test_the_queue_alternates_sides():
    queue = HandQueue()
    for pid, side, at in [("a1", "A", 1), ("a2", "A", 2), ("a3", "A", 3), ("b1", "B", 4), ("b2", "B", 5)]:
        queue.raise_hand(pid, side, at)
    assert [h.participant_id for h in queue.order()] == ["a1", "b1", "a2", "b2", "a3"]
    assert queue.next_speaker().participant_id == "a1"
    queue.raise_hand("a4", "A", 6)
    assert queue.next_speaker().participant_id == "b1"
    assert queue.next_speaker().participant_id == "a2"
    assert queue.next_speaker().participant_id == "b2"
    assert [queue.next_speaker().participant_id for _ in range(2)] == ["a3", "a4"]  # nobody of B waits
    assert queue.next_speaker() is None


def test_a_hand_is_raised_once_and_can_be_lowered():
    queue = HandQueue()
    queue.raise_hand("a", "A", 1)
    queue.raise_hand("a", "A", 5)
    assert [h.raised_at for h in queue.hands] == [1]
    queue.lower("a")
    assert not queue.is_raised("a")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 1000)), max_size=30))
def test_queue_properties(raised):
    """Everyone who raised a hand is called exactly once; consecutive speakers are of different
    sides whenever someone of another side was waiting; each side is served in waiting order."""
    queue = HandQueue()
    for i, (side, at) in enumerate(raised):
        queue.raise_hand(f"p{i}", side, at)
    called = []
    while (hand := queue.next_speaker()) is not None:
        waiting_other = [h for h in queue.hands + [hand] if called and h.side != called[-1].side]
        if called and waiting_other:
            assert hand.side != called[-1].side
        called.append(hand)
    assert sorted(h.participant_id for h in called) == sorted(f"p{i}" for i in range(len(raised)))
    for side in "ABC":
        times = [h.raised_at for h in called if h.side == side]
        assert times == sorted(times)


def test_speaking_time_per_side():
    time = SpeakingTime()
    time.talking(1, "A", 1_000)
    time.talking(1, "A", 2_000)  # a repeated talking event does not restart the turn
    time.talking(2, "B", 1_500)
    time.stopped(1, 4_000)
    time.stopped(3, 4_000)  # a stop without a start counts nothing
    assert time.seconds(5_500) == {"A": 3, "B": 4}  # B's turn still open: counted up to now
    time.close_all(6_500)
    assert time.seconds(100_000) == {"A": 3, "B": 5}
    assert time.open_turns == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.booleans(), st.integers(0, 50)), max_size=40))
def test_speaking_time_never_exceeds_the_time_each_side_could_have_spoken(events):
    time, now, feeds = SpeakingTime(), 0, {1: "A", 2: "A", 3: "B"}
    for feed, talking, step in events:
        now += step
        if talking:
            time.talking(feed, feeds[feed], now)
        else:
            time.stopped(feed, now)
    time.close_all(now)
    totals = time.seconds(now)
    assert all(seconds >= 0 for seconds in totals.values())
    assert totals.get("B", 0) <= round(now / 1000) + 1 and totals.get("A", 0) <= 2 * round(now / 1000) + 1


def test_small_sides_are_not_shown_by_themselves():
    shown = live.shown_by_side({"A": 120, "B": 30}, {"A": 5, "B": 4}, 5)
    assert shown == {"A": 120, "B": None}
    assert live.shown_by_side({}, {"A": 6}, 5) == {"A": 0}
