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
