"""Votes through the web API from 200 concurrent clients, on SQLite.

    .venv/bin/python -m bench.web_votes [--seconds 20] [--connections 200]

Needs `wrk` (Debian package). The hub runs alone in one process (no Synapse: web votes do not
touch it); wrk runs in another, so each has one of the machine's two cores. Every request is a
different participant's vote with its own submission id, so nothing is deduplicated away.
Prints requests per second and latency percentiles, and checks the database afterwards.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from crossline.clock import token_hash
from crossline.domain.consultations import Phase
from crossline.services import consultations as service
from crossline.storage import lines, members
from tests.fakes import make_unit_hub

PARTICIPANTS = 200
STATEMENTS = 100

LUA = r"""
local voters = {}
for line in io.lines("%(voters)s") do
  local cookie, token = line:match("^(.-)\t(.*)$")
  voters[#voters + 1] = {cookie = cookie, token = token}
end
local counter = 0
local values = {"agree", "disagree", "pass"}
request = function()
  counter = counter + 1
  local voter = voters[(counter %% #voters) + 1]
  local body = string.format('{"votes": [[%%d, "%%s"]], "submission_id": "bench-%%012d"}',
                             math.random(1, %(statements)d), values[math.random(1, 3)], counter)
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json", ["Cookie"] = voter.cookie,
                                         ["X-CSRF-Token"] = voter.token}, body)
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(root: Path) -> tuple[Path, int, list[str], int]:
    hub = make_unit_hub(root)
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
    consultation = service.create(hub, hub.facilitator, 1, "Benchmark", [{"en": "Q"}], [left.id, right.id], True)
    service.change_phase(hub, hub.facilitator, consultation.id, Phase.COLLECTING)
    for number in range(STATEMENTS):
        service.submit_statement(hub, hub.facilitator, consultation.id, consultation.questions[0].id,
                                 f"statement {number}", "seed")
    service.change_phase(hub, hub.facilitator, consultation.id, Phase.VOTING)
    links = []
    with hub.engine.begin() as conn:
        for i in range(PARTICIPANTS):
            side = (left, right)[i % 2]
            member_id = members.add_member(conn, None, 1, side.id, frozenset({"participant"}), None, 0, web_handle=f"b{i}")
            members.add_access_link(conn, token_hash(f"bench-link-{i}"), member_id, 0)
            links.append(f"bench-link-{i}")
    hub.engine.dispose()
    return hub.config.data_dir, hub.config.hub.port, links, consultation.id


def sign_in(base: str, link: str) -> tuple[str, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/r/{link}").read()
    token = json.loads(opener.open(f"{base}/api/csrf").read())["csrf_token"]
    return "; ".join(f"{c.name}={c.value}" for c in jar), token


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("This benchmark needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="crossline-bench-"))
    data_dir, _, links, consultation_id = prepare(root)
    port = free_port()
    config_file = data_dir / "crossline.toml"
    config_file.write_text(re.sub(r"(\[hub\][^\[]*?)port = \d+", rf"\g<1>port = {port}", config_file.read_text(), count=1))
    server = subprocess.Popen([sys.executable, "-m", "bench.serve_hub", str(data_dir)])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/_crossline/health").read()
                break
            except OSError:
                time.sleep(0.1)
        voters = root / "voters.tsv"
        voters.write_text("".join(f"{cookie}\t{token}\n" for cookie, token in (sign_in(base, link) for link in links)))
        script = root / "votes.lua"
        script.write_text(LUA % {"voters": voters, "statements": STATEMENTS,
                                 "path": f"/api/consultations/{consultation_id}/votes"})
        result = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
                                 "--timeout", "5s", "-s", str(script), base], capture_output=True, text=True)
        print(result.stdout)
    finally:
        server.terminate()
        server.wait()
    with sqlite3.connect(data_dir / "hub.sqlite3") as db:
        stored = db.execute("SELECT COUNT(*) FROM web_submissions").fetchone()[0]
        votes = db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
    completed = int(re.search(r"(\d+) requests in", result.stdout).group(1))
    print(f"requests completed: {completed}; submissions stored: {stored}; distinct (voter, statement) votes: {votes}")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
