"""The JSON vote API and its group commit, through `aiohttp_client(create_app(config))`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from crossline.clock import token_hash
from crossline.domain.consultations import Phase, VoteValue
from crossline.services import consultations as service
from crossline.storage import consultations as store
from crossline.storage import lines, members
from crossline.web.app import create_app


@pytest.fixture
def voting(hub):
    """A consultation in the voting phase with three approved statements and 30 web voters."""
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
    consultation = service.create(hub, hub.facilitator, 1, "Votes", [{"en": "Q"}], [left.id, right.id], True)
    service.change_phase(hub, hub.facilitator, consultation.id, Phase.COLLECTING)
    for text in ("one", "two", "three"):
        service.submit_statement(hub, hub.facilitator, consultation.id, consultation.questions[0].id, text, "seed")
    service.change_phase(hub, hub.facilitator, consultation.id, Phase.VOTING)
    links = []
    with hub.engine.begin() as conn:
        for i in range(30):
            side = left if i % 2 else right
            member_id = members.add_member(conn, None, 1, side.id, frozenset({"participant"}), None, 0, web_handle=f"h{i}")
            members.add_access_link(conn, token_hash(f"link{i}"), member_id, 0)
            links.append(f"link{i}")
    hub.consultation_id, hub.links = consultation.id, links
    return hub


async def voter(aiohttp_client, server, link: str):
    client = await aiohttp_client(server)
    assert (await client.get(f"/r/{link}", allow_redirects=False)).status == 303
    token = (await (await client.get("/api/csrf")).json())["csrf_token"]
    return client, {"X-CSRF-Token": token}


async def test_concurrent_votes_are_all_recorded_and_retries_count_once(aiohttp_client, aiohttp_server, voting):
    server = await aiohttp_server(create_app(voting.config, background=False))
    clients = [await voter(aiohttp_client, server, link) for link in voting.links]
    path = f"/api/consultations/{voting.consultation_id}/votes"

    async def vote(client, headers, number, value, submission):
        response = await client.post(path, json={"votes": [[number, value]], "submission_id": submission}, headers=headers)
        return response.status, await response.json()

    answers = await asyncio.gather(*[
        vote(client, headers, 1 + i % 3, ("agree", "disagree", "pass")[i % 3], f"first-{i:04d}")
        for i, (client, headers) in enumerate(clients)
    ])
    assert all(status == 200 for status, _ in answers), answers
    # Everybody changes her vote on statement 1; half of them send the same request twice.
    again = await asyncio.gather(*[
        vote(client, headers, 1, "agree", f"second-{i // 2 * 2:04d}" if i % 2 else f"second-{i:04d}")
        for i, (client, headers) in enumerate(clients)
    ] + [vote(client, headers, 1, "agree", f"second-{i:04d}") for i, (client, headers) in enumerate(clients[:5])])
    assert all(status == 200 for status, _ in again)
    with voting.engine.connect() as conn:
        tallies = store.tallies_by_side(conn, voting.consultation_id)
        one = store.statement_by_number(conn, voting.consultation_id, 1)
    assert sum(tallies[one.id][side][VoteValue.AGREE] for side in tallies[one.id]) == 30
    assert sum(sum(counts.values()) for by_side in tallies.values() for counts in by_side.values()) == 30 + 20


async def test_api_refusals_are_json_and_change_nothing(aiohttp_client, aiohttp_server, voting):
    server = await aiohttp_server(create_app(voting.config, background=False))
    client, headers = await voter(aiohttp_client, server, voting.links[0])
    path = f"/api/consultations/{voting.consultation_id}/votes"
    response = await client.post(path, json={"votes": [[1, "agree"]]})
    assert response.status == 403 and "X-CSRF-Token" in (await response.json())["error"]
    response = await client.post(path, data="not json", headers={**headers, "Content-Type": "application/json"})
    assert response.status == 400 and "must be JSON" in (await response.json())["error"]
    response = await client.post(path, json={"votes": [[1, "agree"], [9, "agree"]]}, headers=headers)
    assert response.status == 409 and "no statement 9" in (await response.json())["error"]
    response = await client.post(path, json={"votes": [["1", "agree"]]}, headers=headers)
    assert response.status == 400 and "statement number" in (await response.json())["error"]
    with voting.engine.connect() as conn:
        assert store.tallies_by_side(conn, voting.consultation_id) == {}
    anonymous = await aiohttp_client(server)
    response = await anonymous.post(path, json={"votes": [[1, "agree"]]})
    assert response.status == 403


async def test_a_closed_consultation_refuses_votes(aiohttp_client, aiohttp_server, voting):
    service.change_phase(voting, voting.facilitator, voting.consultation_id, Phase.CLOSED)
    server = await aiohttp_server(create_app(voting.config, background=False))
    client, headers = await voter(aiohttp_client, server, voting.links[0])
    response = await client.post(f"/api/consultations/{voting.consultation_id}/votes",
                                 json={"number": 1, "value": "agree"}, headers=headers)
    assert response.status == 409 and "Voting has closed" in (await response.json())["error"]


async def test_one_request_that_breaks_its_batch_fails_alone(voting):
    """A request the database cannot take (an id past 64 bits, slipped past the web layer) used to
    fail every vote committed with it; now the batch is split until it fails on its own."""
    from crossline.services.vote_batcher import VoteBatcher

    batcher = VoteBatcher(voting)
    batcher.start()
    with voting.engine.connect() as conn:
        voters = [members.member_for_access_link(conn, token_hash(link)) for link in voting.links]
    try:
        good = [batcher.cast(voter, voting.consultation_id, [(1 + i % 3, VoteValue.AGREE)], f"good-{i:04d}")
                for i, voter in enumerate(voters)]
        bad = batcher.cast(voters[0], 99999999999999999999, [(1, VoteValue.AGREE)], "bad-00001")
        answers = await asyncio.gather(*good[:15], bad, *good[15:], return_exceptions=True)
    finally:
        await batcher.stop()
    assert isinstance(answers[15], Exception)
    assert [a for i, a in enumerate(answers) if i != 15] == [[1 + i % 3] for i in range(30)]
    with voting.engine.connect() as conn:
        tallies = store.tallies_by_side(conn, voting.consultation_id)
    assert sum(sum(counts.values()) for by_side in tallies.values() for counts in by_side.values()) == 30


async def test_numbers_that_are_not_statements_are_refused_with_a_sentence(aiohttp_client, aiohttp_server, voting):
    server = await aiohttp_server(create_app(voting.config, background=False))
    client, headers = await voter(aiohttp_client, server, voting.links[0])
    path = f"/api/consultations/{voting.consultation_id}/votes"
    for body in ('{"votes": [[true, "agree"]]}', '{"number": false, "value": "agree"}',
                 '{"votes": [[99999999999999999999, "agree"]]}', '{"votes": [[' + "9" * 5000 + ', "agree"]]}',
                 '{"votes": [[1.0, "agree"]]}', "[" * 20_000 + "]" * 20_000, b'{"votes": [[1, "\xff"]]}'):
        response = await client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})
        assert response.status == 400, (body[:40], response.status)
        assert "statement number" in (error := (await response.json())["error"]) or "JSON" in error
    for cid in ("99999999999999999999", "9" * 5000):
        response = await client.post(f"/api/consultations/{cid}/votes", json={"votes": [[1, "agree"]]}, headers=headers)
        assert response.status == 404 and "no such page" in (await response.json())["error"]
    with voting.engine.connect() as conn:
        assert store.tallies_by_side(conn, voting.consultation_id) == {}


class RecordingExecutor(concurrent.futures.ThreadPoolExecutor):
    def __init__(self):
        super().__init__(1)
        self.submitted = []

    def submit(self, fn, /, *args, **kwargs):
        self.submitted.append(fn)
        return super().submit(fn, *args, **kwargs)


async def test_votes_run_on_the_batchers_own_thread_never_behind_other_work(voting):
    """A login flood filled asyncio's default executor with argon2 checks and votes waited behind
    them (11 s): votes now never go through the default executor (nor the password threads)."""
    from crossline.services.vote_batcher import VoteBatcher

    default = RecordingExecutor()
    asyncio.get_running_loop().set_default_executor(default)
    batcher = VoteBatcher(voting)
    applied_on = []
    apply = batcher._apply
    batcher._apply = lambda requests: applied_on.append(threading.current_thread().name) or apply(requests)
    batcher.start()
    with voting.engine.connect() as conn:
        voter = members.member_for_access_link(conn, token_hash(voting.links[0]))
    try:
        assert await batcher.cast(voter, voting.consultation_id, [(1, VoteValue.AGREE)], "own-thread") == [1]
    finally:
        await batcher.stop()
    assert default.submitted == [] and applied_on == ["crossline-votes_0"]
