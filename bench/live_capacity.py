"""Audio-only participants in one live session: what Janus costs per participant, and how many this
machine carries.

    .venv/bin/python -m bench.live_capacity [--steps 4,8,12,16] [--seconds 20]

Starts a real stack (`crossline up`, with Janus) in a temporary directory, opens one live session
per step, and joins that many web participants from one headless Chromium (one page each, all
playing the same test tone through the fake microphone: the file is per browser process). Every
page publishes end-to-end encrypted Opus and subscribes to everyone else, so Janus forwards
n·(n−1) streams. Once every page receives every other feed, it measures for `--seconds`: Janus's
CPU (its process's user+system time), each page's bytes sent and received on its transports, and
packet loss and jitter on what it receives; the step passes when loss stays under 2 % and every
page still receives every feed. The browsers run on the same machine as Janus, so the step where
the machine stops carrying the session is bounded by them first: Janus's own CPU per participant
is the figure that says what a server without the browsers would carry.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from crossline.config import Paths
from tests.conftest import issue_invitation
from tests.live_audio import chromium_args, tone_wav
from tests.support import HubStack, WebSession, wait_for
from tests.test_browser_staff_pages import CHROMIUM_ARGS

PASSWORD = "benchmark facilitator password"
MAX_LOSS = 0.02

STATS_JS = """async () => {
  const live = window.crosslineLive;
  const totals = {sent: 0, received: 0, lost: 0, packets: 0, jitter: 0, feeds: Object.keys(live.feeds).length};
  for (const pc of [live.publisher, live.subscriber]) {
    if (!pc) continue;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'transport') { totals.sent += r.bytesSent || 0; totals.received += r.bytesReceived || 0; }
      if (r.type === 'inbound-rtp') {
        totals.lost += r.packetsLost || 0; totals.packets += r.packetsReceived || 0;
        totals.jitter = Math.max(totals.jitter, r.jitter || 0);
      }
    });
  }
  return totals;
}"""


def form(session: WebSession, page: str, action: str, fields: dict) -> tuple[int, str, str]:
    token = re.search(r'name="csrf_token" value="([^"]+)"', session.get(page)[1]).group(1)
    return session.request("POST", action, {"csrf_token": token, **fields})


def janus_cpu_seconds(stack: HubStack) -> float:
    pid = _janus_pid(stack)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _janus_pid(stack: HubStack) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"janus") and str(stack.data_dir).encode() in b" ".join(argv):
                return int(entry.name)
    raise RuntimeError("Janus is not running for this stack")


def allow_publishers(count: int):
    def edit(data_dir: Path) -> None:
        config = Paths(data_dir).config_file
        text = config.read_text()
        config.write_text(re.sub(r"(?m)^max_publishers = \d+", f"max_publishers = {count}", text))
    return edit


def run(steps: list[int], seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="crossline-live-bench-") as tmp:
        stack = HubStack.start(Path(tmp) / "data", before_up=allow_publishers(max(steps)))
        try:
            admin = WebSession(stack.hub_url)
            path = stack.setup_link.removeprefix(stack.hub_url)
            admin.submit(path, path, {"username": "facilitator", "password": PASSWORD, "password_again": PASSWORD})
            _, page, url = form(admin, "/lines", "/lines", {"name": "Bench", "sides": "North\nSouth"})
            line_id = int(url.rsplit("/", 1)[1])
            sides = [int(v) for v, _ in re.findall(r'<option value="(\d+)">([^<]+)</option>', page)][:2]
            _, _, url = form(admin, f"/lines/{line_id}/consultations/new", f"/lines/{line_id}/consultations",
                             {"title": "Bench", "questions": "What first?", "side_ids": [str(s) for s in sides]})
            consultation = int(url.rsplit("/", 1)[1])
            wav = tone_wav(Path(tmp) / "tone.wav", 440)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                     args=CHROMIUM_ARGS + chromium_args(wav))
                print("| participants | streams through Janus | Janus CPU (% of one core) | Janus CPU per participant "
                      "| sent per participant | received per participant | worst loss | worst jitter | load average | carried |")
                print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
                for count in steps:  # on while every page still gets every feed, to see loss grow
                    if not step(stack, admin, browser, line_id, sides, consultation, count, seconds):
                        break
                browser.close()
        finally:
            stack.stop()


def step(stack, admin, browser, line_id, sides, consultation, count, seconds) -> bool:
    path = f"/consultations/{consultation}"
    _, _, url = form(admin, path, f"{path}/live-sessions", {"starts_at": ""})
    lid = url.rsplit("/", 1)[1]
    pages = []
    for i in range(count):  # everyone signs in first, so joining is not slowed by pages already playing
        context = browser.new_context(base_url=stack.hub_url)
        context.set_default_timeout(120_000)
        page = context.new_page()
        link = issue_invitation(admin, line_id, sides[i % 2])
        page.goto(link.removeprefix(stack.hub_url))
        page.click("#web-only button")
        page.wait_for_selector("#return-link")
        page.goto(f"/live/{lid}")
        pages.append(page)
    for page in pages:
        page.click("#live-join")
    try:
        wait_for(lambda: all(p.evaluate(STATS_JS)["feeds"] >= count - 1 for p in pages),
                 timeout_s=60 + 5 * count, what="every page to receive every other feed")
        carried = True
    except AssertionError:
        carried = False
    before = [p.evaluate(STATS_JS) for p in pages]
    cpu_before, started = janus_cpu_seconds(stack), time.monotonic()
    wait_for(lambda: time.monotonic() - started >= seconds, timeout_s=seconds + 5, interval_s=0.5,
             what="the measuring window")
    cpu = (janus_cpu_seconds(stack) - cpu_before) / (time.monotonic() - started)
    elapsed = time.monotonic() - started
    after = [p.evaluate(STATS_JS) for p in pages]
    sent = sum(a["sent"] - b["sent"] for a, b in zip(after, before)) * 8 / elapsed / count
    received = sum(a["received"] - b["received"] for a, b in zip(after, before)) * 8 / elapsed / count
    losses = [(a["lost"] - b["lost"]) / max(1, a["lost"] - b["lost"] + a["packets"] - b["packets"])
              for a, b in zip(after, before)]
    connected = carried and all(a["feeds"] >= count - 1 for a in after)
    carried = connected and max(losses) < MAX_LOSS
    print(f"| {count} | {count * (count - 1)} | {cpu * 100:.1f} % | {cpu * 100 / count:.2f} % | {sent / 1000:.1f} kbit/s "
          f"| {received / 1000:.1f} kbit/s | {max(losses) * 100:.1f} % | {max(a['jitter'] for a in after) * 1000:.0f} ms "
          f"| {os.getloadavg()[0]:.1f} | {'yes' if carried else 'no'} |", flush=True)
    for page in pages:
        page.evaluate("document.getElementById('live-leave').click()")
        page.context.close()
    return connected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="4,8,12,16", help="participants per step, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per step")
    arguments = parser.parse_args()
    run([int(n) for n in arguments.steps.split(",")], arguments.seconds)


if __name__ == "__main__":
    main()
