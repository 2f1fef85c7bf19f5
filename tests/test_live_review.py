"""What a hostile review of live sessions found, each as a test: feeds listed before Janus has
them, mute and removal outlived by a rejoin, epochs and Matrix key events forced by anyone, a
session ending during a join. Against the fake Janus (tests/fakes.py); times from the fake clock."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from crossline.errors import Conflict, NotAllowed
from crossline.storage import live as live_store
from tests.test_live_service import open_session, world  # noqa: F401 - the fixture


async def media_up(service, lid, *joined):
    """What the adapter reports once a browser's media reaches Janus (webrtcup)."""
    room_id = service.running[lid].room.room_id
    for j in joined:
        await service.handle_event(SimpleNamespace(room_id=room_id, feed_id=j["feed_id"], kind="published"))


def feeds_of(state):
    return [f["feed_id"] for f in state["feeds"]]


async def test_a_feed_is_listed_only_once_janus_has_it_and_until_it_stops(world):
    hub, people, made, service = world
    lid = (await open_session(world)).public_id
    await service.join(people.facilitator, lid, False, "listener", None)
    anna = await service.join(people.anna, lid, False, "listener", None)
    carla = await service.join(people.carla, lid, False, "listener", None)
    await service.publish(people.anna, lid, "v=0 offer", False)
    await service.publish(people.carla, lid, "v=0 offer", False)
    # Janus answered both offers, but only anna's media came up: carla's feed is not listed, so
    # nobody's subscription names a feed Janus does not have.
    await media_up(service, lid, anna)
    state = await service.state(people.dina, lid, None)
    dina = await service.join(people.dina, lid, False, "listener", None)
    state = await service.state(people.dina, lid, None)
    assert feeds_of(state) == [anna["feed_id"]]
    answer = await service.subscribe(people.dina, lid, [anna["feed_id"], carla["feed_id"]])
    assert service.janus.calls[-1][-1] == [anna["feed_id"]]
    assert answer["streams"] == {"0": anna["feed_id"]}  # mid -> feed, for the page
    await media_up(service, lid, carla)
    assert feeds_of(await service.state(people.dina, lid, None)) == [anna["feed_id"], carla["feed_id"]]
    room_id = service.running[lid].room.room_id
    await service.handle_event(SimpleNamespace(room_id=room_id, feed_id=anna["feed_id"], kind="unpublished"))
    assert feeds_of(await service.state(people.dina, lid, None)) == [carla["feed_id"]]
    with pytest.raises(Conflict):
        await service.subscribe(people.carla, lid, [anna["feed_id"], dina["feed_id"]])


def member_entries(service, lid, member):
    return [p for p in service.running[lid].present.values() if p.member_id == member.id]


async def test_a_mute_outlives_her_reload_and_mute_all_reaches_who_joins_later(world):
    hub, people, made, service = world
    lid = (await open_session(world)).public_id
    await service.join(people.facilitator, lid, False, "listener", None)
    anna = await service.join(people.anna, lid, False, "listener", None)
    await service.publish(people.anna, lid, "v=0 offer", False)
    await service.control(people.facilitator, lid, "mute", anna["participant_id"])
    again = await service.join(people.anna, lid, False, "listener", None)  # a reload
    assert (await service.state(people.anna, lid, None))["you"]["muted"]
    await service.publish(people.anna, lid, "v=0 offer", False)
    assert service.janus.muted[again["feed_id"]] is True  # Janus drops her new feed's audio too
    await service.control(people.facilitator, lid, "unmute", anna["participant_id"])  # the id she had first
    assert not (await service.state(people.anna, lid, None))["you"]["muted"]
    assert service.janus.muted[again["feed_id"]] is False
    await service.control(people.facilitator, lid, "mute_all", None)
    await service.join(people.anna, lid, False, "listener", None)
    await service.join(people.carla, lid, False, "listener", None)  # new after mute all
    for who in (people.anna, people.carla):
        assert (await service.state(who, lid, None))["you"]["muted"]
    assert not (await service.state(people.facilitator, lid, None))["you"]["muted"]
    await service.control(people.facilitator, lid, "unmute_all", None)
    await service.join(people.dina, lid, False, "listener", None)
    for who in (people.anna, people.carla, people.dina):
        assert not (await service.state(who, lid, None))["you"]["muted"]


async def slow_janus_joins(service):
    """Janus takes a moment to join a publisher: other requests run meanwhile."""
    started, release = asyncio.Event(), asyncio.Event()
    join_publisher = service.janus.join_publisher

    async def slow(room, feed_id, display):
        started.set()
        await release.wait()
        return await join_publisher(room, feed_id, display)

    service.janus.join_publisher = slow
    return started, release


async def test_a_removal_racing_her_reload_keeps_her_out_and_any_id_of_hers_removes_her(world):
    hub, people, made, service = world
    lid = (await open_session(world)).public_id
    await service.join(people.facilitator, lid, False, "listener", None)
    anna = await service.join(people.anna, lid, False, "listener", None)
    await service.join(people.anna, lid, False, "listener", None)  # a reload: a new participant id
    started, release = await slow_janus_joins(service)
    dina = asyncio.create_task(service.join(people.dina, lid, False, "listener", None))  # holds the lock
    await started.wait()
    reload = asyncio.create_task(service.join(people.anna, lid, False, "listener", None))
    removal = asyncio.create_task(service.control(people.facilitator, lid, "remove", anna["participant_id"]))
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(dina, reload, removal, return_exceptions=True)
    # Whichever of her reload and the removal comes first, she ends up out.
    assert results[2] == {} and (isinstance(results[1], NotAllowed) or "participant_id" in results[1])
    assert member_entries(service, lid, people.anna) == []
    state = await service.state(people.anna, lid, None)
    assert state["you"]["removed"] and state["key"] is None
    with pytest.raises(NotAllowed, match="removed"):
        await service.join(people.anna, lid, False, "listener", None)


async def test_a_reload_keeps_the_key_and_departures_rotate_it_at_most_once_per_interval(world):
    hub, people, made, service = world
    session = await open_session(world)
    lid = session.public_id
    await service.join(people.facilitator, lid, False, "listener", None)
    first = await service.join(people.anna, lid, False, "listener", None)
    for _ in range(5):
        again = await service.join(people.anna, lid, False, "listener", None)
        assert again["key"] == first["key"]
    for who in (people.carla, people.dina):
        await service.join(who, lid, False, "listener", None)
        await service.leave(who, lid)
    # Both departures are covered by one new epoch once the interval is over, not one each.
    assert (await service.state(people.anna, lid, None))["key"]["epoch"] == 1
    await service.settle()
    assert (await service.state(people.anna, lid, None))["key"]["epoch"] == 2
    assert [content["epoch"] for _, content in service.announcer.keys] == [1, 2]
    with pytest.raises(Exception, match="too often"):
        for _ in range(20):
            await service.join(people.anna, lid, False, "listener", None)
    with pytest.raises(Exception, match="too often"):
        for raised in [True, False] * 20:
            await service.hand(people.facilitator, lid, raised)
    hub.clock.now += 60_000
    await service.join(people.anna, lid, False, "listener", None)  # the limit drains
    version = (await service.state(people.anna, lid, None))["version"]
    await service.hand(people.facilitator, lid, False)  # lowered already: nobody's page is woken
    assert (await service.state(people.anna, lid, None))["version"] == version


async def test_a_session_ending_during_a_join_keeps_nobody(world):
    hub, people, made, service = world
    session = await open_session(world)
    lid = session.public_id
    await service.join(people.facilitator, lid, False, "listener", None)
    started, release = await slow_janus_joins(service)
    joining = asyncio.create_task(service.join(people.anna, lid, False, "listener", None))
    await started.wait()
    ending = asyncio.create_task(service.control(people.facilitator, lid, "end", None))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(joining, ending, return_exceptions=True)
    with hub.engine.connect() as conn:
        assert live_store.participant_ids(conn, session.id) == []
    assert lid not in service.running
