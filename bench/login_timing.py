"""How long a failed login on the hub's page takes, by kind of name (issue 10, item 3).

    .venv/bin/python -m bench.login_timing [--rounds 20] [--synapse-ms 300]

The hub runs in this process with the real clock and the real pacing; Synapse's password check
is a stand-in that takes --synapse-ms (about 300 ms was measured on the issue's machine with a
real Synapse). Each round sends one wrong password for an unknown name, a staff member and a
participant with a Matrix account, in turn, from a new client address each time (so the rate
limit does not answer instead). Prints the median, 10th and 90th percentile of each, in ms.
The tests check the same property structurally (tests/test_ratelimit.py); this shows it in time.
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

from crossline import passwords
from crossline.clock import SystemClock
from crossline.storage import members
from crossline.web.app import create_app
from crossline.web.keys import HUB
from tests.fakes import make_unit_hub

NAMES = {"unknown": "nobody-at-all", "staff": "staffer", "participant with Matrix account": "maria"}


class SlowSynapse:
    def __init__(self, seconds: float):
        self.seconds = seconds

    async def password_matches(self, user_id: str, password: str) -> bool:
        await asyncio.sleep(self.seconds)
        return False


async def measure(rounds: int, synapse_ms: int) -> dict[str, list[float]]:
    hub = make_unit_hub(Path(tempfile.mkdtemp()))
    with hub.engine.begin() as conn:
        members.add_member(conn, "@staffer:crossline.local", None, None, frozenset({"facilitator"}),
                           passwords.hash_password("the right one"), 0)
        members.add_member(conn, "@maria:crossline.local", 1, 1, frozenset({"participant"}), None, 0)
    config = replace(hub.config, hub=replace(hub.config.hub, trusted_proxies=("127.0.0.1",)))
    client = TestClient(TestServer(create_app(config, clock=SystemClock(), background=False)))
    await client.start_server()
    client.app[HUB].homeserver = SlowSynapse(synapse_ms / 1000)
    times: dict[str, list[float]] = {kind: [] for kind in NAMES}
    try:
        for n in range(rounds):
            for kind, name in NAMES.items():
                page = await (await client.get("/login")).text()
                token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
                started = time.perf_counter()
                response = await client.post("/login", data={"csrf_token": token, "username": name,
                                                              "password": "wrong"},
                                             headers={"X-Forwarded-For": f"10.{n // 250}.{n % 250}.{len(times[kind])}"})
                await response.read()
                times[kind].append((time.perf_counter() - started) * 1000)
                assert response.status == 401, response.status
    finally:
        await client.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--synapse-ms", type=int, default=300)
    args = parser.parse_args()
    times = asyncio.run(measure(args.rounds, args.synapse_ms))
    print(f"{'name':<34}{'median':>8}{'p10':>8}{'p90':>8}  (ms, {args.rounds} failed logins each)")
    for kind, values in times.items():
        deciles = statistics.quantiles(values, n=10)
        print(f"{kind:<34}{statistics.median(values):>8.0f}{deciles[0]:>8.0f}{deciles[-1]:>8.0f}")


if __name__ == "__main__":
    main()
