"""Statements and votes through the bot, end to end: encrypted nio participants send commands in
the consultation room; the bot decrypts, applies and answers each one (encrypted).

    .venv/bin/python -m bench.bot_throughput [--participants 10] [--messages 30]

Starts a real stack (`crossline up`) in a temporary directory. Participants' own Synapse rate
limits are lifted for the run (the bot's are lifted by the hub itself), so the figure is the
bot's, not a per-person limit. Reports messages per second from the first send to the last
confirmation, and percentiles of the time from a message's send to its confirmation.

Senders only send; one more member of the room (an observer) syncs and times the bot's answers,
each of which lists the events it answers (`crossline.answered`). (With every sender syncing as well, Synapse on
SQLite spends its time answering their syncs: see docs/benchmarks.md.)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from nio import AsyncClient, AsyncClientConfig, RoomMessageNotice

from crossline import secrets
from crossline.services.room_events import ANSWERED_KEY
from tests.conftest import issue_invitation, member_ids_on_page  # noqa: F401
from tests.postgres import PostgresServer
from tests.support import HubStack, WebSession, matrix, register_like_element, wait_for

PASSWORD = "benchmark participant password"


def form_post(session: WebSession, page: str, action: str, fields: dict) -> tuple[int, str, str]:
    token = re.search(r'name="csrf_token" value="([^"]+)"', session.get(page)[1]).group(1)
    return session.request("POST", action, {"csrf_token": token, **fields})


def setup_world(stack: HubStack, participants: int) -> tuple[str, list[str], str]:
    admin = WebSession(stack.hub_url)
    path = stack.setup_link.removeprefix(stack.hub_url)
    admin.submit(path, path, {"username": "facilitator", "password": PASSWORD, "password_again": PASSWORD})
    _, page, url = form_post(admin, "/lines", "/lines", {"name": "Bench", "sides": "North\nSouth"})
    line_id = int(url.rsplit("/", 1)[1])
    sides = [int(v) for v, _ in re.findall(r'<option value="(\d+)">([^<]+)</option>', page)][:2]
    names = [f"p{i:03d}" for i in range(participants)]
    admin_token = secrets.read_secret(stack.data_dir / "secrets", secrets.HUB_ADMIN_ACCESS_TOKEN)
    for i, name in enumerate(names):
        code = issue_invitation(admin, line_id, sides[i % 2]).rsplit("/", 1)[1]
        status, data = register_like_element(stack.homeserver_url, name, PASSWORD, code)
        assert status == 200, data
        matrix(stack.synapse_socket, "POST", f"/_synapse/admin/v1/users/{stack.user_id(name)}/override_ratelimit",
               admin_token, {"messages_per_second": 0, "burst_count": 0})
    wait_for(lambda: all(stack.user_id(n) in admin.get(f"/lines/{line_id}")[1] for n in names), timeout_s=60,
             what="participants to become members")
    _, _, url = form_post(admin, f"/lines/{line_id}/consultations/new", f"/lines/{line_id}/consultations",
                          {"title": "Bench", "questions": "Q?", "side_ids": [str(s) for s in sides]})
    consultation = url.split(stack.hub_url)[1]
    _, page, _ = form_post(admin, consultation, f"{consultation}/room", {})
    room_id = re.search(r"Encrypted room <code>([^<]+)</code>", page).group(1)
    form_post(admin, consultation, f"{consultation}/phase", {"target": "collecting"})
    return room_id, names, consultation, admin


class Observer:
    """A room member who times the bot's answers to everyone's messages."""

    def __init__(self, client: AsyncClient, room_id: str):
        self.client, self.room_id = client, room_id
        self.confirmed: dict[str, float] = {}
        self.announcements: list[str] = []  # what the bot posted that answers nobody

    async def until_posted(self, text: str, timeout_s: float = 120) -> None:
        """Reads the room until the bot has posted `text` (as participants would before voting)."""
        stop = asyncio.Event()
        listener = asyncio.create_task(self.listen(stop))
        deadline = time.perf_counter() + timeout_s
        while not any(text in body for body in self.announcements) and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        await listener

    async def listen(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # A large timeline limit: with nio's default of 10 a burst of answers is skipped.
            response = await self.client.sync(timeout=1000, sync_filter={"room": {"timeline": {"limit": 1000}}})
            room = response.rooms.join.get(self.room_id) if hasattr(response, "rooms") else None
            now = time.perf_counter()
            assert not (room and room.timeline.limited), "the observer missed events: raise its timeline limit"
            for event in room.timeline.events if room else []:
                if isinstance(event, RoomMessageNotice):
                    answered = event.source["content"].get(ANSWERED_KEY)
                    if not answered:
                        self.announcements.append(event.body)
                    for event_id in answered or []:
                        self.confirmed.setdefault(event_id, now)
            if self.client.should_query_keys:
                await self.client.keys_query()


async def send_all(client: AsyncClient, room_id: str, bodies: list[str], sent: dict[str, float],
                   sending: list[float] | None = None) -> None:
    for body in bodies:
        started = time.perf_counter()
        response = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                                          ignore_unverified_devices=True)
        sent[response.event_id] = started
        if sending is not None:
            sending.append(time.perf_counter() - started)


async def run_phase(senders: list[AsyncClient], observer: Observer, bodies, label: str) -> dict:
    stop = asyncio.Event()
    listener = asyncio.create_task(observer.listen(stop))
    sent: dict[str, float] = {}
    sending: list[float] = []  # how long each participant's own send took: queueing at Synapse
    begin = time.perf_counter()
    await asyncio.gather(*[send_all(c, observer.room_id, bodies(i), sent, sending) for i, c in enumerate(senders)])
    all_sent = time.perf_counter()
    deadline = time.perf_counter() + 300
    while not set(sent) <= set(observer.confirmed) and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await listener
    latencies = sorted(observer.confirmed[e] - sent[e] for e in sent if e in observer.confirmed)
    end = max(observer.confirmed[e] for e in sent if e in observer.confirmed)
    return {
        "what": label, "messages": len(sent), "confirmed": len(latencies), "seconds": round(end - begin, 2),
        "sending_seconds": round(all_sent - begin, 2),
        "per_second": round(len(latencies) / (end - begin), 1),
        "p50_ms": round(1000 * statistics.median(latencies)),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))]),
        "max_ms": round(1000 * latencies[-1]),
        "send_request_p50_ms": round(1000 * statistics.median(sending)),
    }


async def unloaded(sender: AsyncClient, observer: Observer, count: int) -> dict:
    """One message at a time, each sent after the previous one was answered: the latency a
    participant sees when the room is quiet."""
    stop = asyncio.Event()
    listener = asyncio.create_task(observer.listen(stop))
    latencies = []
    for k in range(count):
        sent: dict[str, float] = {}
        await send_all(sender, observer.room_id, [f"!agree {1 + k % 20}"], sent)
        (event_id, started), = sent.items()
        while event_id not in observer.confirmed:
            await asyncio.sleep(0.01)
        latencies.append(observer.confirmed[event_id] - started)
    stop.set()
    await listener
    latencies.sort()
    return {"what": "single votes, quiet room", "messages": count, "p50_ms": round(1000 * statistics.median(latencies)),
            "max_ms": round(1000 * latencies[-1])}


def synapse_on_postgres(url_parts: dict):
    """For comparison only: point the generated homeserver.yaml at a PostgreSQL database."""
    def patch(data_dir: Path) -> None:
        config_path = data_dir / "synapse" / "homeserver.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["database"] = {"name": "psycopg2", "args": {**url_parts, "cp_min": 2, "cp_max": 10}}
        config_path.write_text(yaml.safe_dump(config))
    return patch


async def main_async(args) -> int:
    root = Path(tempfile.mkdtemp(prefix="crossline-botbench-"))
    before_up, postgres = None, None
    if args.synapse_postgres:
        postgres = PostgresServer()
        postgres.start()
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "crossline", "-d", "postgres", "-c",
                        "CREATE DATABASE synapse ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0"],
                       check=True, capture_output=True)
        before_up = synapse_on_postgres({"user": "crossline", "database": "synapse", "host": "127.0.0.1",
                                         "port": postgres.port})
    stack = HubStack.start(root / "data", server_name="bench.test", before_up=before_up)
    try:
        room_id, names, consultation, admin = setup_world(stack, args.participants)
        clients = []
        for name in names:
            client = AsyncClient(stack.homeserver_url, stack.user_id(name), store_path=str(root / name),
                                 config=AsyncClientConfig(encryption_enabled=True, pickle_key="bench"))
            (root / name).mkdir()
            await client.login(PASSWORD)
            await client.sync(timeout=1000)
            await client.join(room_id)
            clients.append(client)
        for _ in range(2):
            for client in clients:
                await client.sync(timeout=500, full_state=True)
                if client.should_upload_keys:
                    await client.keys_upload()
                if client.should_query_keys:
                    await client.keys_query()
        observer, senders = Observer(clients[0], room_id), clients[1:]
        statements = await run_phase(
            senders, observer, lambda i: [f"!say Statement {i}-{k} from participant {i}" for k in range(args.messages)], "statements")
        for number in range(1, 21):
            form_post(admin, consultation, f"{consultation}/moderate", {"number": str(number), "decision": "approve"})
        form_post(admin, consultation, f"{consultation}/phase", {"target": "voting"})
        # The bot first posts the numbered statements; the votes start once they are all there.
        await observer.until_posted(f"Statement {statements['messages']}:")
        votes = await run_phase(
            senders, observer, lambda i: [f"!{('agree', 'disagree', 'pass')[k % 3]} {1 + (i + k) % 20}" for k in range(args.messages)],
            "votes")
        quiet = await unloaded(senders[0], observer, 20)
        for result in (statements, votes, quiet):
            print(result)
        for client in clients:
            await client.close()
    finally:
        stack.stop()
        if postgres:
            postgres.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=11, help="senders, plus one observer")
    parser.add_argument("--messages", type=int, default=30, help="messages per participant per phase")
    parser.add_argument("--synapse-postgres", action="store_true",
                        help="run Synapse on a throwaway PostgreSQL (Debian's) instead of SQLite, for comparison")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
