"""How long a vote takes while failed logins flood the hub (issue 10, review B).

    .venv/bin/python -m bench.login_flood_votes [--logins 60] [--votes 20]

The hub runs in this process with the real clock, pacing and argon2. --logins wrong passwords
are sent at once, each for a different name from a different address (as a botnet would, so the
rate limits do not answer instead); while they are under way, --votes votes are cast one after
another through the vote batcher and timed. Prints the median and worst vote latency, quiet and
during the flood, and the logins' answers. The tests check the cause structurally
(tests/test_vote_api.py, tests/test_ratelimit.py); this shows it in time.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from crossline.clock import SystemClock
from crossline.domain.consultations import Phase, VoteValue
from crossline.services import consultations as service
from crossline.storage import lines, members
from crossline.web.app import create_app
from crossline.web.keys import HUB, VOTES
from tests.fakes import make_unit_hub


async def measure(logins: int, votes: int) -> tuple[list[float], list[float], list[int]]:
    hub = make_unit_hub(Path(tempfile.mkdtemp()))
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
    consultation = service.create(hub, hub.facilitator, 1, "Votes", [{"en": "Q"}], [left.id, right.id], True)
    service.change_phase(hub, hub.facilitator, consultation.id, Phase.COLLECTING)
    service.submit_statement(hub, hub.facilitator, consultation.id, consultation.questions[0].id, "one", "seed")
    service.change_phase(hub, hub.facilitator, consultation.id, Phase.VOTING)
    with hub.engine.begin() as conn:
        voter = members.get_member(conn, members.add_member(conn, None, 1, left.id, frozenset({"participant"}),
                                                           None, 0, web_handle="voter"))
    config = replace(hub.config, hub=replace(hub.config.hub, trusted_proxies=("127.0.0.1",)))
    client = TestClient(TestServer(create_app(config, clock=SystemClock(), background=False)))
    await client.start_server()

    async def timed_votes() -> list[float]:
        times = []
        for n in range(votes):
            started = time.perf_counter()
            value = (VoteValue.AGREE, VoteValue.DISAGREE)[n % 2]
            await client.app[VOTES].cast(voter, consultation.id, [(1, value)], None)
            times.append((time.perf_counter() - started) * 1000)
        return times

    async def bad_login(n: int) -> int:
        page = await (await client.get("/login")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = await client.post("/login", data={"csrf_token": token, "username": f"n{n}", "password": "x"},
                                     headers={"X-Forwarded-For": f"10.{n // 250}.{n % 250}.1"})
        return response.status

    try:
        quiet = await timed_votes()
        flood = [asyncio.create_task(bad_login(n)) for n in range(logins)]
        await asyncio.sleep(0.3)  # the checks are under way
        during = await timed_votes()
        statuses = await asyncio.gather(*flood)
    finally:
        await client.close()
    return quiet, during, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=60)
    parser.add_argument("--votes", type=int, default=20)
    args = parser.parse_args()
    quiet, during, statuses = asyncio.run(measure(args.logins, args.votes))
    for label, values in (("quiet", quiet), (f"during {args.logins} failed logins", during)):
        print(f"{label:<28} median {statistics.median(values):7.1f} ms   worst {max(values):7.1f} ms")
    print("login answers:", {status: statuses.count(status) for status in sorted(set(statuses))})


if __name__ == "__main__":
    main()
