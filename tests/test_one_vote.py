"""One person, one vote under concurrency, on SQLite and on a real PostgreSQL server.

Each of many members tries every way of being counted at the same moment: votes as herself
through the web API, a vote as herself through the bot's path (a room message applied as the bot
applies a sync batch), and taking a pseudonym on the web page and voting with it. Whatever the
interleaving, she counts once: as herself or as her pseudonym, never both. What holds it is a
guard row the database keeps unique (storage/voices.py), not a check before writing: the
pseudonym page and the vote paths do check first, and those checks alone let both through."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import string

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from crossline.clock import token_hash
from crossline.config import DatabaseConfig
from crossline.domain.consultations import Phase, VoteValue
from crossline.domain.pseudonyms import person_tag
from crossline.services import consultations, pseudonyms
from crossline.services.hub import Hub
from crossline.services.room_events import RoomMessage, apply_room_messages_in
from crossline.setup import init_data_dir
from crossline.storage import bot as bot_store
from crossline.storage import lines, members, rooms, voices
from crossline.storage import pseudonyms as pseudonym_store
from crossline.storage.db import create_database_engine, migrate
from crossline.storage.schema import consultation_voices, pseudonyms as pseudonym_rows, votes
from crossline.web.app import create_app
from crossline.web.keys import HUB
from crossline_policies.rooms import load_room_templates
from tests.fakes import HOUR_MS, FakeClock, FakeHomeserver
from tests.postgres import PostgresServer

PEOPLE = 100  # four attempts each, all at once
ROOM = "!race:crossline.local"
COUNT_ONCE = "count once"
COUNTED_TWICE = "count you twice"


@pytest.fixture(scope="module")
def postgres_url():
    server = PostgresServer()
    url = server.start()
    yield url
    server.stop()


class YieldingHomeserver(FakeHomeserver):
    """Setting a pseudonym's password gives way to the event loop a random number of times (the
    real call waits on Synapse), so votes land between the pseudonym page's checks and its write."""

    def __init__(self, seed: int):
        super().__init__()
        self.random = random.Random(seed)

    async def set_password(self, user_id, password):
        await give_way(self.random.randrange(12))
        await super().set_password(user_id, password)


async def give_way(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


def make_hub(tmp_path, database_url: str | None) -> Hub:
    config = init_data_dir(tmp_path / "data", hub_port=18111, synapse_port=18112)[0]
    if database_url:
        config = dataclasses.replace(config, database=DatabaseConfig(database_url))
    engine = create_database_engine(config.database_url)
    if database_url:
        with engine.begin() as conn:  # a clean schema for each test
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate(engine)
    counter = iter(range(10_000))
    hub = Hub(config, engine, YieldingHomeserver(7), FakeClock(1_000 * HOUR_MS), lambda: f"code{next(counter)}",
              load_room_templates())
    with engine.begin() as conn:
        line = lines.add_line(conn, "nistru", "Nistru", ["Left bank", "Right bank"], 0)
        hub.sides = [s.id for s in lines.get_line(conn, line).sides]
        staff = {role: members.add_member(conn, f"@{role}:crossline.local", None, None, frozenset({role}), None, 0)
                 for role in ("admin", "facilitator")}
        mods = [members.add_member(conn, f"@mod{i}:crossline.local", line, hub.sides[i % 2],
                                   frozenset({"moderator"}), None, 0) for i in range(3)]
        hub.admin, hub.facilitator = (members.get_member(conn, staff[r]) for r in ("admin", "facilitator"))
        mods = [members.get_member(conn, m) for m in mods]
        rooms.add_room(conn, ROOM, line, "consultation", "Race", hub.facilitator.id, 0)
    for moderator in mods:
        pseudonyms.set_moderator_key(hub, moderator, "a long passphrase for tests")
    pseudonyms.set_up_escrow(hub, hub.admin, 2, [m.id for m in mods])
    return hub


@pytest.fixture(params=["sqlite", "postgresql"])
def race(request, tmp_path):
    """A consultation in voting with three statements; PEOPLE members, each with a Matrix account
    and a web link; as many pseudonym accounts ready in the pool."""
    hub = make_hub(tmp_path, request.getfixturevalue("postgres_url") if request.param == "postgresql" else None)
    consultation = consultations.create(hub, hub.facilitator, 1, "Race", [{"en": "Q"}], hub.sides, False)
    consultations.attach_room(hub, hub.facilitator, consultation.id, ROOM)
    consultations.change_phase(hub, hub.facilitator, consultation.id, Phase.COLLECTING)
    for statement in ("one", "two", "three"):
        consultations.submit_statement(hub, hub.facilitator, consultation.id, consultation.questions[0].id, statement,
                                       "seed")
    consultations.change_phase(hub, hub.facilitator, consultation.id, Phase.VOTING)
    names = random.Random(3)
    hub.people = []
    with hub.engine.begin() as conn:
        for i in range(PEOPLE):
            user_id = f"@woman{i}:crossline.local"
            member_id = members.add_member(conn, user_id, 1, hub.sides[i % 2], frozenset({"participant"}), None, 0,
                                           web_handle=f"web{i}")
            members.add_access_link(conn, token_hash(f"link{i}"), member_id, 0)
            pool_account = f"@p-race{i}:crossline.local"
            pseudonym_store.add_to_pool(conn, pool_account, ready=True)
            hub.homeserver.accounts[pool_account] = {"name": pool_account}
            hub.people.append((member_id, user_id, f"link{i}",
                               "".join(names.choice(string.ascii_lowercase) for _ in range(12)).capitalize()))
    hub.consultation = consultation
    yield hub
    hub.engine.dispose()


async def signed_in(aiohttp_client, server, link_path: str):
    client = await aiohttp_client(server)
    assert (await client.get(link_path, allow_redirects=False)).status == 303
    return client, (await (await client.get("/api/csrf")).json())["csrf_token"]


NOT_ANSWERED_IN_THE_ROOM = "(removed, not answered in the room)"


def bot_vote(hub: Hub, i: int, user_id: str) -> str:
    """Her vote as the bot applies it from a sync batch; the bot's answer to her in the room, or
    NOT_ANSWERED_IN_THE_ROOM when the bot hides it (she counts under her pseudonym: saying so in the
    room would tell everyone she has one)."""
    event_id = f"$race{i}"
    with hub.engine.begin() as conn:
        batch = apply_room_messages_in(conn, hub, [RoomMessage.text(event_id, ROOM, user_id, "!agree 3")])
    with hub.engine.connect() as conn:
        answers = [m.content["body"] for m in bot_store.waiting_messages(conn, limit=10 * PEOPLE)
                   if event_id in m.content.get("crossline.answered", [])]
    hidden = [m for m in batch.hidden if m.event_id == event_id]
    assert len(answers) + len(hidden) == 1, (answers, hidden)
    return answers[0] if answers else NOT_ANSWERED_IN_THE_ROOM


async def test_a_vote_and_a_pseudonym_at_the_same_moment_count_once(aiohttp_client, aiohttp_server, race):
    app = create_app(race.config, clock=race.clock, background=False)
    server = await aiohttp_server(app)
    app[HUB].homeserver = race.homeserver  # pseudonym accounts in the pool are the fake's
    cid = race.consultation.id
    sessions = [await signed_in(aiohttp_client, server, f"/r/{link}") for _, _, link, _ in race.people]

    async def vote_as_herself(i, delay=0):
        await give_way(delay)
        client, token = sessions[i]
        response = await client.post(f"/api/consultations/{cid}/votes", json={"votes": [[1, "agree"], [2, "pass"]]},
                                     headers={"X-CSRF-Token": token})
        return response.status, (await response.json()).get("error", "")

    async def pseudonym_and_its_vote(i):
        client, token = sessions[i]
        response = await client.post(f"/participate/{cid}/pseudonym",
                                     data={"display_name": race.people[i][3], "csrf_token": token})
        page = await response.text()
        if response.status != 200:
            return response.status, page, None
        link = re.search(r'id="pseudonym-link" readonly value="[^"]*?(/r/[^"]+)"', page).group(1)
        as_pseudonym, pseudonym_token = await signed_in(aiohttp_client, server, link)
        voted = await as_pseudonym.post(f"/api/consultations/{cid}/votes", json={"votes": [[1, "disagree"]]},
                                        headers={"X-CSRF-Token": pseudonym_token})
        return response.status, page, (voted.status, await voted.json())

    async def bot_vote_later(i, user_id, delay):
        await give_way(delay)
        return await asyncio.to_thread(bot_vote, race, i, user_id)

    # Her own votes start a random number of event-loop turns after her pseudonym request, so that
    # across the crowd every interleaving occurs: before its checks, between them and its write, after.
    delays = random.Random(11)
    attempts = []
    for i, (_, user_id, _, _) in enumerate(race.people):
        attempts += [vote_as_herself(i, delays.randrange(60)), bot_vote_later(i, user_id, delays.randrange(60)),
                     pseudonym_and_its_vote(i)]
    await asyncio.gather(*attempts)  # each coroutine is started here, all at once
    outcomes = await asyncio.gather(*[asyncio.gather(vote_as_herself(i), asyncio.to_thread(bot_vote, race, 10**6 + i,
                                                                                            user_id))
                                      for i, (_, user_id, _, _) in enumerate(race.people)])
    # (A second round: by now each person's voice is settled, and every path says the same.)

    with race.engine.connect() as conn:
        voters = {member: statement for statement, member in conn.execute(select(votes.c.statement_id, votes.c.member_id))}
        pseudonym_of = {}
        for row in conn.execute(select(pseudonym_rows)):
            pseudonym_of[row.person_tag] = row.member_id
        voice_rows = conn.execute(select(consultation_voices)).all()
    secret = pseudonyms._tag_secret(race)
    as_pseudonym = as_herself = 0
    for i, (member_id, _, _, _) in enumerate(race.people):
        pseudonym = pseudonym_of.get(person_tag(secret, member_id, cid))
        herself_counted = member_id in voters
        pseudonym_counted = pseudonym is not None and pseudonym in voters
        assert herself_counted != pseudonym_counted, (i, herself_counted, pseudonym_counted)  # once, never twice
        as_pseudonym += pseudonym_counted
        as_herself += herself_counted
        (web_status, web_error), bot_answer = outcomes[i]
        if pseudonym_counted:
            assert web_status == 403 and COUNT_ONCE in web_error and bot_answer == NOT_ANSWERED_IN_THE_ROOM
        else:
            assert web_status == 200 and "Vote recorded" in bot_answer, (web_status, web_error, bot_answer)
    assert as_herself + as_pseudonym == PEOPLE
    assert as_herself and as_pseudonym, (as_herself, as_pseudonym)  # the race went both ways
    assert len(voice_rows) == PEOPLE + 1  # one voice each, whichever it is (and the facilitator's, who seeded)


async def test_every_attempt_gets_a_clear_answer_in_the_race(aiohttp_client, aiohttp_server, race):
    """The refused side of each race is told why, with no error page; nothing half-made is left."""
    app = create_app(race.config, clock=race.clock, background=False)
    server = await aiohttp_server(app)
    app[HUB].homeserver = race.homeserver
    cid = race.consultation.id
    sessions = [await signed_in(aiohttp_client, server, f"/r/{link}") for _, _, link, _ in race.people[:40]]

    async def web_vote(i):
        client, token = sessions[i]
        response = await client.post(f"/api/consultations/{cid}/votes", json={"votes": [[1, "agree"]]},
                                     headers={"X-CSRF-Token": token})
        return response.status, await response.text()

    async def take(i):
        client, token = sessions[i]
        response = await client.post(f"/participate/{cid}/pseudonym",
                                     data={"display_name": race.people[i][3], "csrf_token": token})
        return response.status, await response.text()

    results = await asyncio.gather(*[part for i in range(40) for part in (web_vote(i), take(i))])
    for i in range(40):
        (vote_status, vote_body), (take_status, take_body) = results[2 * i], results[2 * i + 1]
        assert vote_status in (200, 403) and take_status in (200, 409), (vote_status, take_status)
        assert (vote_status == 200) != (take_status == 200)
        if vote_status == 403:
            assert COUNT_ONCE in vote_body
        else:
            assert COUNTED_TWICE in take_body or "own name" in take_body
    with race.engine.connect() as conn:
        made = conn.execute(select(pseudonym_rows.c.member_id)).all()
        pooled = pseudonym_store.pool_size(conn)
    assert len(made) + pooled == PEOPLE  # a refused pseudonym's account went back to the pool


def test_the_guard_rows_name_nobody(race):
    """Anyone reading the tables sees one opaque tag per voice: no member id, no time, and no tag
    that can be matched to a member without the hub's tag key."""
    columns = {c["name"] for c in inspect(race.engine).get_columns("consultation_voices")}
    assert columns == {"consultation_id", "person_tag"}
    member_id, user_id, _, _ = race.people[0]
    consultations.cast_votes(race, members_get(race, member_id), race.consultation.id, [(1, VoteValue.AGREE)])
    with race.engine.connect() as conn:
        (row,) = conn.execute(select(consultation_voices).where(
            consultation_voices.c.person_tag == person_tag(pseudonyms._tag_secret(race), member_id, race.consultation.id)))
    assert row.consultation_id == race.consultation.id and len(row.person_tag) == 64
    assert row.person_tag not in (str(member_id), user_id, f"{member_id}:{race.consultation.id}")


def test_a_voice_is_claimed_many_times_but_taken_once(race):
    """The storage contract on both databases: a claim after a claim or a take is a no-op; a take
    after either fails."""
    cid = race.consultation.id
    with race.engine.begin() as conn:
        voices.claim(conn, [(cid, "a" * 64), (cid, "a" * 64)])
        voices.claim(conn, [(cid, "a" * 64)])
    with pytest.raises(IntegrityError), race.engine.begin() as conn:
        voices.take(conn, cid, "a" * 64)
    with race.engine.begin() as conn:
        voices.take(conn, cid, "b" * 64)
        voices.claim(conn, [(cid, "b" * 64)])
    with pytest.raises(IntegrityError), race.engine.begin() as conn:
        voices.take(conn, cid, "b" * 64)
    with race.engine.connect() as conn:
        assert conn.execute(select(consultation_voices.c.person_tag).where(
            consultation_voices.c.person_tag.in_(["a" * 64, "b" * 64]))).scalars().all() == ["a" * 64, "b" * 64]


def members_get(hub: Hub, member_id: int):
    with hub.engine.connect() as conn:
        return members.get_member(conn, member_id)
