"""Live sessions' service against a fake Janus: who gets in, keys and epochs, facilitation,
speaking time, the end. Times come from the fake clock."""

from __future__ import annotations

import asyncio
import base64

import pytest

from crossline.domain.consultations import Phase
from crossline.domain.live import LiveRefusal, LiveStatus
from crossline.errors import InvalidInput, NotAllowed, NotFound
from crossline.services import consultations
from crossline.services.live import LiveSessions
from crossline.storage import lines, live as live_store, members, rooms
from tests.fakes import FakeJanus, RecordingAnnouncer


class People:
    def __init__(self, hub):
        with hub.engine.begin() as conn:
            line = lines.get_line(conn, 1)
            self.left, self.right = line.sides
            other = lines.add_line(conn, "other", "Other", ["East", "West"], 0)
            east = lines.get_line(conn, other).sides[0]

            def add(user, side, roles=("participant",), line_id=1, handle=None):
                return members.get_member(conn, members.add_member(conn, user, line_id, side, frozenset(roles), None, 0,
                                                                   web_handle=handle))

            self.anna = add("@anna:crossline.local", self.left.id)
            self.bella = add(None, self.right.id, handle="bella-handle-secret")
            self.carla = add("@carla:crossline.local", self.left.id)
            self.dina = add("@dina:crossline.local", self.right.id)
            self.far = add("@far:crossline.local", east.id, line_id=other)
            self.sided_moderator = add("@mod:crossline.local", self.left.id, roles=("moderator",))
            self.interpreter = add("@interp:crossline.local", None, roles=("negotiator",), line_id=None)
        self.facilitator = hub.facilitator


@pytest.fixture
def world(hub):
    people = People(hub)
    made = consultations.create(hub, hub.facilitator, 1, "Water", [{"en": "What first?"}],
                                [people.left.id, people.right.id], premoderation=True)
    consultations.attach_room(hub, hub.facilitator, made.id, "!consultation:crossline.local")
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.COLLECTING)
    counter = iter(range(1, 10_000))

    async def sleep(seconds):  # a key rotation put off (EPOCH_MIN_INTERVAL_MS) runs on the fake clock
        hub.clock.now += int(seconds * 1000)

    service = LiveSessions(hub, FakeJanus(), RecordingAnnouncer(),
                           random_bytes=lambda n: next(counter).to_bytes(n, "big"), long_poll_s=60, sleep=sleep)
    return hub, people, made, service


async def media_up(service, lid, *joined):
    """What the adapter reports once a browser's media reaches Janus (webrtcup)."""
    from types import SimpleNamespace

    room_id = service.running[lid].room.room_id
    for j in joined:
        await service.handle_event(SimpleNamespace(room_id=room_id, feed_id=j["feed_id"], kind="published"))


async def open_session(world):
    hub, people, made, service = world
    return service.open_for_consultation(people.facilitator, made.id, None)


async def test_participants_of_the_consultation_join_with_a_key_and_nobody_else_gets_in(world):
    hub, people, made, service = world
    session = await open_session(world)
    joined = await service.join(people.anna, session.public_id, False, "listener", None)
    assert joined["display"] == "anna" and joined["side"] == "Left bank" and not joined["facilitator"]
    assert 0 < joined["feed_id"] < 2**52 and joined["key"]["epoch"] == 1
    assert len(base64.urlsafe_b64decode(joined["key"]["key"] + "==")) == 32
    web = await service.join(people.bella, session.public_id, False, "listener", None)
    assert "bella-handle-secret" not in web["display"] and web["key"] == joined["key"]
    assert (await service.join(people.facilitator, session.public_id, False, "listener", None))["facilitator"]
    # Janus never learns who someone is: the display it gets names the feed only.
    assert all("anna" not in str(call) for call in service.janus.calls)
    for outsider in (people.far, people.sided_moderator, None):
        with pytest.raises((NotFound, NotAllowed)):
            await service.join(outsider, session.public_id, False, "listener", None)
    with pytest.raises(NotFound):
        await service.join(people.anna, "no-such-session", False, "listener", None)
    with pytest.raises(NotAllowed, match="interpreters"):
        await service.join(people.carla, session.public_id, False, "interpreter", "ru")
    for bad in [(1, "listener"), (False, "speaker")]:
        with pytest.raises(InvalidInput):
            await service.join(people.carla, session.public_id, *bad, None)


async def test_leaving_or_removal_starts_a_new_epoch_and_the_removed_cannot_return(world):
    hub, people, made, service = world
    session = await open_session(world)
    lid = session.public_id
    anna = await service.join(people.anna, lid, False, "listener", None)
    bella = await service.join(people.bella, lid, False, "listener", None)
    await service.join(people.carla, lid, False, "listener", None)
    await service.join(people.facilitator, lid, False, "listener", None)
    await service.publish(people.bella, lid, "v=0 offer", False)
    await service.leave(people.carla, lid)
    await service.settle()
    state = await service.state(people.anna, lid, None)
    assert state["key"]["epoch"] == 2 and state["key"]["key"] != anna["key"]["key"]
    assert [k["epoch"] for k in state["previous_keys"]] == [1]
    await service.control(people.facilitator, lid, "remove", bella["participant_id"])
    assert ("kick", bella["feed_id"]) in service.janus.calls
    state = await service.state(people.anna, lid, None)
    assert state["key"]["epoch"] == 3 and [k["epoch"] for k in state["previous_keys"]] == [1, 2]
    removed = await service.state(people.bella, lid, None)
    assert removed["you"]["removed"] and removed["key"] is None and removed["feeds"] == []
    with pytest.raises(NotAllowed, match="removed"):
        await service.join(people.bella, lid, False, "listener", None)
    await service.join(people.carla, lid, False, "listener", None)  # who left may come back
    # Only facilitators control; a bad action or person is a clear error.
    with pytest.raises(NotAllowed):
        await service.control(people.anna, lid, "mute_all", None)
    with pytest.raises(InvalidInput):
        await service.control(people.facilitator, lid, "explode", None)
    with pytest.raises(InvalidInput):
        await service.control(people.facilitator, lid, "mute", "nobody")


async def test_a_locked_session_takes_nobody_new_but_facilitators(world):
    hub, people, made, service = world
    lid = (await open_session(world)).public_id
    await service.control(people.facilitator, lid, "lock", None)
    with pytest.raises(NotAllowed, match="locked"):
        await service.join(people.anna, lid, False, "listener", None)
    await service.join(people.facilitator, lid, False, "listener", None)
    await service.control(people.facilitator, lid, "unlock", None)
    await service.join(people.anna, lid, False, "listener", None)


async def test_a_scheduled_session_opens_when_its_facilitator_starts_it(world):
    hub, people, made, service = world
    session = service.open_for_consultation(people.facilitator, made.id, hub.clock.now_ms() + 3600_000)
    assert session.status is LiveStatus.SCHEDULED
    with pytest.raises(NotAllowed, match="not started"):
        await service.join(people.anna, session.public_id, False, "listener", None)
    with pytest.raises(NotAllowed):
        await service.start(people.anna, session.public_id)
    await service.start(people.facilitator, session.public_id)
    await service.join(people.anna, session.public_id, False, "listener", None)
    with pytest.raises(InvalidInput):
        service.open_for_consultation(people.facilitator, made.id, hub.clock.now_ms() - 1)


async def test_interpreters_named_by_the_facilitator_publish_in_their_language(world):
    hub, people, made, service = world
    lid = (await open_session(world)).public_id
    with pytest.raises(NotAllowed):
        await service.name_interpreter(people.anna, lid, people.interpreter.id, "ru")
    with pytest.raises(InvalidInput):
        await service.name_interpreter(people.facilitator, lid, people.interpreter.id, "r u<")
    await service.name_interpreter(people.facilitator, lid, people.interpreter.id, "ru")
    joined = await service.join(people.interpreter, lid, False, "interpreter", None)
    assert joined["languages"] == ["ru"]
    await service.publish(people.interpreter, lid, "v=0 offer", False)
    assert service.janus.calls[-1][-1] == "ru"
    await media_up(service, lid, joined)
    anna = await service.join(people.anna, lid, False, "listener", None)
    await service.subscribe(people.anna, lid, [joined["feed_id"], 123])
    assert service.janus.calls[-1][-1] == [joined["feed_id"]]
    state = await service.state(people.anna, lid, None)
    assert [(f["feed_id"], f["language"]) for f in state["feeds"]] == [(joined["feed_id"], "ru")]
    assert anna["languages"] == ["ru"]


async def test_hands_alternate_sides_and_the_next_speaker_is_let_through(world):
    hub, people, made, service = world
    lid = (await open_session(world)).public_id
    await service.join(people.facilitator, lid, False, "listener", None)
    joined = {}
    for who in ("anna", "carla", "bella", "dina"):
        joined[who] = await service.join(getattr(people, who), lid, False, "listener", None)
        await service.publish(getattr(people, who), lid, "v=0 offer", False)
    await media_up(service, lid, *joined.values())
    for who in ("anna", "carla", "bella", "dina"):
        hub.clock.now += 1000
        await service.hand(getattr(people, who), lid, True)
    await service.control(people.facilitator, lid, "mute_all", None)
    assert all(service.janus.muted[joined[w]["feed_id"]] for w in joined)
    state = await service.state(people.facilitator, lid, None)
    assert {f["feed_id"]: f["participant_id"] for f in state["feeds"]} == {
        j["feed_id"]: j["participant_id"] for j in joined.values()}
    assert all("participant_id" not in f for f in (await service.state(people.anna, lid, None))["feeds"])
    web_name = joined["bella"]["display"]
    assert state["hands"] == ["anna", web_name, "carla", "dina"]
    await service.control(people.facilitator, lid, "next_speaker", None)
    assert service.janus.muted[joined["anna"]["feed_id"]] is False  # her turn: unmuted
    assert (await service.state(people.anna, lid, None))["you"]["hand_raised"] is False
    assert (await service.state(people.anna, lid, None))["hands"] == [web_name, "carla", "dina"]
    # Someone who is not a facilitator never sees the speaking time.
    assert "speaking_seconds_by_side" not in await service.state(people.anna, lid, None)


async def test_speaking_time_is_counted_per_side_and_kept_as_counts_when_the_session_ends(world):
    from types import SimpleNamespace

    hub, people, made, service = world
    session = await open_session(world)
    lid = session.public_id
    await service.join(people.facilitator, lid, False, "listener", None)
    anna = await service.join(people.anna, lid, False, "listener", None)
    dina = await service.join(people.dina, lid, False, "listener", None)
    room_id = service.running[lid].room.room_id

    async def event(feed, kind, after_ms=0):
        hub.clock.now += after_ms
        await service.handle_event(SimpleNamespace(room_id=room_id, feed_id=feed, kind=kind))

    await event(anna["feed_id"], "talking")
    await event(anna["feed_id"], "stopped-talking", 12_000)
    await event(dina["feed_id"], "talking", 1_000)
    await event(anna["feed_id"], "talking", 4_000)  # dina still talking: both count
    state = await service.state(people.facilitator, lid, None)
    assert state["speaking_seconds_by_side"] == {"Left bank": 12, "Right bank": 4}
    await event(anna["feed_id"], "left", 3_000)  # a turn without a stop ends when she leaves
    await service.settle()
    assert (await service.state(people.dina, lid, None))["key"]["epoch"] == 2
    hub.clock.now += 2_000
    await service.control(people.facilitator, lid, "end", None)
    assert ("destroy_room", room_id) in service.janus.calls and lid not in service.running
    with hub.engine.connect() as conn:
        assert live_store.side_totals(conn, session.id) == {"Left bank": (15, 1), "Right bank": (9, 1),
                                                            "no side": (0, 1)}
        assert live_store.participant_ids(conn, session.id) == []
    with pytest.raises(NotAllowed, match="ended"):
        await service.join(people.anna, lid, False, "listener", None)
    with pytest.raises(LiveRefusal):
        await service.control(people.facilitator, lid, "end", None)


async def test_a_change_wakes_a_waiting_state_request(world):
    hub, people, made, service = world
    lid = (await open_session(world)).public_id
    await service.join(people.anna, lid, False, "listener", None)
    first = await service.state(people.anna, lid, None)
    waiting = asyncio.create_task(service.state(people.anna, lid, first["version"]))
    await asyncio.sleep(0)
    assert not waiting.done()
    await service.hand(people.anna, lid, True)
    woken = await waiting
    assert woken["version"] > first["version"] and woken["you"]["hand_raised"]
    assert (await service.state(people.anna, lid, first["version"] - 1))["version"] == woken["version"]


async def test_the_bot_gets_the_widget_and_each_epoch_key_until_someone_is_removed(world):
    hub, people, made, service = world
    session = await open_session(world)
    lid, announcer = session.public_id, service.announcer
    anna = await service.join(people.anna, lid, False, "listener", None)
    await service.join(people.carla, lid, False, "listener", None)
    await service.join(people.dina, lid, False, "listener", None)
    await service.settle()
    room = "!consultation:crossline.local"
    assert announcer.widgets == [(room, f"crossline-live-{lid}", {
        "type": "m.custom", "url": f"{hub.config.hub_url}/live/{lid}", "name": "Live: Water", "data": {}})]
    assert announcer.keys == [(room, {"live_session": lid, "epoch": 1, "key": anna["key"]["key"],
                                      "page": f"{hub.config.hub_url}/live/{lid}"})]
    await service.leave(people.carla, lid)
    await service.settle()
    state = await service.state(people.anna, lid, None)
    assert announcer.keys[-1][1]["epoch"] == 2 and announcer.keys[-1][1]["key"] == state["key"]["key"]
    dina = next(p for p in service.running[lid].present.values() if p.member_id == people.dina.id)
    await service.control(people.facilitator, lid, "remove", dina.participant_id)
    await service.settle()
    assert (await service.state(people.anna, lid, None))["key"]["epoch"] == 3
    assert [k[1]["epoch"] for k in announcer.keys] == [1, 2]  # page only from now on
    await service.control(people.facilitator, lid, "end", None)
    await service.settle()
    assert announcer.widgets[-1] == (room, f"crossline-live-{lid}", {})


async def test_a_room_session_is_for_the_rooms_joined_members(world):
    hub, people, made, service = world
    with hub.engine.begin() as conn:
        hub_room = rooms.add_room(conn, "!dialogue:crossline.local", 1, "cross-line-dialogue", "Talk",
                                  people.facilitator.id, 0)
    hub.homeserver.member_events = {("!dialogue:crossline.local", "@anna:crossline.local"):
                                    {"content": {"membership": "join"}},
                                    ("!dialogue:crossline.local", "@carla:crossline.local"):
                                    {"content": {"membership": "leave"}}}
    session = service.open_for_room(people.facilitator, hub_room, None)
    await service.join(people.anna, session.public_id, False, "listener", None)
    for outsider in (people.carla, people.bella, people.far):
        with pytest.raises(NotFound):
            await service.join(outsider, session.public_id, False, "listener", None)
    await service.settle()
    assert service.announcer.widgets == [] and service.announcer.keys == []  # the bot is not in that room
    with pytest.raises(NotAllowed):
        service.open_for_room(people.anna, hub_room, None)
