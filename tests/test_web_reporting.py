"""The anonymous report form through the web layer (no Synapse needed): it works without an
account, refuses bad input with a sentence and gives back what was typed, slows a flood."""

from __future__ import annotations

import re
from dataclasses import replace

import aiohttp
import pytest

from crossline.setup import init_data_dir
from crossline.web.app import create_app
from crossline.domain.moderation import CATEGORY_LABELS
from crossline.domain.ratelimit import Ratelimiter
from crossline.storage import moderation as store
from crossline.web.keys import HUB, TEMPLATES
from crossline.web.ratelimit import LIMITS
from crossline.web.ratelimit import REPORTS_PER_ADDRESS as PER_ADDRESS
from tests.fakes import FakeClock
from tests.pictures_support import tiny_png
from crossline.web.ratelimit import (FREE_DISK_FLOOR_BYTES, SCREENSHOT_BYTES_PER_HOUR, STATUS_ADDITIONS_PER_ADDRESS,
                                     STATUS_ADDITIONS_PER_LINK, STATUS_ADDITIONS_WINDOW_MS)

PNG = tiny_png()  # a real picture: every accepted one is decoded and re-encoded


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    config = init_data_dir(tmp_path / "data", hub_port=18997, synapse_port=18996)[0]
    return await aiohttp_client(create_app(config, background=False))


async def send(client, fields: dict, files: list[bytes] = ()) -> tuple[int, str]:
    page = await (await client.get("/report")).text()
    form = aiohttp.FormData()
    form.add_field("csrf_token", re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
    for key, value in fields.items():
        form.add_field(key, value)
    for data in files:
        form.add_field("screenshots", data, filename="shot.png", content_type="image/png")
    response = await client.post("/report", data=form)
    return response.status, await response.text()


async def test_a_report_without_an_account_gives_a_private_status_link(client):
    page = await (await client.get("/report")).text()
    assert "Quick exit" in page and "do not have to say who you are" in page
    status, page = await send(client, {"category": "threats", "text": "He said he knows where I live",
                                       "country": "GE"}, [PNG])
    assert status == 200, page
    link = re.search(r'id="status-link" readonly value="[^"]*(/report/status/[^"]+)"', page).group(1)
    assert "116 006" in page  # support services for Georgia
    status_page = await (await client.get(link)).text()
    assert "moderators will look at it" in status_page


async def test_bad_input_is_refused_with_a_sentence_and_keeps_what_was_typed(client):
    status, page = await send(client, {"category": "harassment", "text": "   "})
    assert status == 400 and "Write what happened" in page
    long_text = "word " * 1100
    status, page = await send(client, {"category": "harassment", "text": long_text, "contact": "my@mail"})
    assert status == 400 and "too long" in page and "word word word" in page and 'value="my@mail"' in page
    status, page = await send(client, {"category": "harassment", "text": "Kept text"}, [b"not an image"])
    assert status == 400 and "PNG, JPEG or WebP" in page and "Kept text" in page
    status, page = await send(client, {"category": "made-up", "text": "Kept text"})
    assert status == 400 and "listed kinds" in page
    status, page = await send(client, {"category": "harassment", "text": "Big"}, [PNG + b"\x00" * (17 * 1024 * 1024)])
    assert status == 413 and "too large" in page


async def send_from(client, address: str, text: str, category: str = "threats") -> str:
    page = await (await client.get("/report")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = await client.post("/report", data={"csrf_token": token, "category": category, "text": text},
                                 headers={"X-Forwarded-For": address})
    assert response.status == 200  # never refused
    return await response.text()


def held_and_not(client) -> tuple[list, list]:
    with client.app[HUB].engine.connect() as conn:
        cases = store.queue(conn)
    return [c for c in cases if c.source == "web_held"], [c for c in cases if c.source == "web"]


async def test_a_flood_from_one_address_is_held_for_review_not_refused(client):
    """Without trusted proxies, X-Forwarded-For is ignored: a new one each time is still one sender."""
    for n in range(PER_ADDRESS):
        assert 'id="held"' not in await send_from(client, f"192.0.2.{n}", f"Report {n}")
    page = await send_from(client, "192.0.2.99", "One too many")
    assert 'id="held"' in page and "nothing you wrote is lost" in page
    held, accepted = held_and_not(client)
    assert len(accepted) == PER_ADDRESS and len(held) == 1
    assert not held[0].urgent  # a flood cannot jump the queue by choosing "threats"


async def test_a_few_dozen_addresses_cannot_close_the_form_for_everybody(aiohttp_client, tmp_path):
    config = init_data_dir(tmp_path / "data", hub_port=18997, synapse_port=18996)[0]
    config = replace(config, hub=replace(config.hub, trusted_proxies=("127.0.0.1", "::1")))
    client = await aiohttp_client(create_app(config, background=False))
    limits = client.app[LIMITS]
    limits.reports_overall = Ratelimiter(limits.reports_overall.clock, burst=4, per_ms=3600_000)
    for n in range(4):
        await send_from(client, f"198.51.100.{n}", f"Flood {n}")
    page = await send_from(client, "203.0.113.7", "A genuine report, from someone new, during the flood")
    assert 'id="held"' in page
    held, accepted = held_and_not(client)
    assert len(accepted) == 4 and len(held) == 1
    queue = await (await client.get("/report")).text()  # the form stays open
    assert 'name="text"' in queue


async def test_moderators_see_held_reports_apart(client):
    for n in range(PER_ADDRESS + 2):
        await send_from(client, "192.0.2.1", f"Report {n}")
    held, accepted = held_and_not(client)
    template = client.app[TEMPLATES].get_template("moderation_queue.html")
    page = template.render(cases=held + accepted, labels=CATEGORY_LABELS, member=None, csrf_token="",
                           quick_exit_url="", server_name="")
    main, apart = page.split('<table id="held">')
    assert all(f"Case {c.id}<" in apart and f"Case {c.id}<" not in main for c in held)
    assert all(f"Case {c.id}<" in main for c in accepted)


def evidence_of(client, case_id: int) -> list[str]:
    """The mime types of what is stored for a case, in order."""
    with client.app[HUB].engine.connect() as conn:
        return [row[2] for row in store.list_evidence(conn, case_id)]


async def add(client, link: str, text: str, files: list[bytes] = (), address: str = "192.0.2.1") -> tuple[int, str]:
    page = await (await client.get(link)).text()
    form = aiohttp.FormData()
    form.add_field("csrf_token", re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
    form.add_field("text", text)
    form.add_field("wants_action", "yes")
    for data in files:
        form.add_field("screenshots", data, filename="shot.png", content_type="image/png")
    response = await client.post(link, data=form, headers={"X-Forwarded-For": address})
    return response.status, await response.text()


async def file_report(client, files: list[bytes] = ()) -> tuple[int, str, str]:
    """(case id, status link, page)"""
    status, page = await send(client, {"category": "other", "text": "What happened"}, files)
    assert status == 200, page
    case_id = int(re.search(r'id="case-number">(\d+)<', page).group(1))
    return case_id, re.search(r'id="status-link" readonly value="[^"]*(/report/status/[^"]+)"', page).group(1), page


@pytest.fixture
async def roomy(aiohttp_client, tmp_path):
    """On a clock the test moves, with plenty of free disk whatever the machine running the tests has."""
    config = init_data_dir(tmp_path / "data", hub_port=18997, synapse_port=18996)[0]
    client = await aiohttp_client(create_app(config, clock=FakeClock(1_000_000), background=False))
    client.app[LIMITS].free_disk_bytes = lambda: 100 * FREE_DISK_FLOOR_BYTES
    return client


async def test_a_status_link_takes_a_few_additions_an_hour_then_words_but_not_screenshots(roomy):
    client = roomy
    case_id, link, _ = await file_report(client)
    for n in range(STATUS_ADDITIONS_PER_LINK):
        status, page = await add(client, link, f"More {n}", [PNG])
        assert status == 200 and "Added. Thank you." in page
    stored = evidence_of(client, case_id)
    assert stored.count("image/png") == STATUS_ADDITIONS_PER_LINK
    status, page = await add(client, link, "Her words past the limit", [PNG, PNG, PNG])
    assert status == 200 and "Your words were added" in page and "Add them again in an hour" in page
    assert evidence_of(client, case_id) == stored + ["text/plain"]  # words kept, screenshots not
    status, page = await add(client, link, "", [PNG])
    assert status == 429 and "Try again in an hour" in page
    assert len(evidence_of(client, case_id)) == len(stored) + 1  # nothing more stored
    client.app[HUB].clock.now += STATUS_ADDITIONS_WINDOW_MS  # an hour later she adds them
    status, page = await add(client, link, "", [PNG])
    assert status == 200 and evidence_of(client, case_id)[-1] == "image/png"


async def test_additions_are_limited_per_address_across_status_links(roomy):
    client = roomy
    client.app[LIMITS].status_additions_by_link.burst = 10 ** 6
    links = [(await file_report(client))[1] for _ in range(3)]
    statuses = [(await add(client, links[n % 3], "", [PNG]))[0] for n in range(STATUS_ADDITIONS_PER_ADDRESS + 1)]
    assert statuses == [200] * STATUS_ADDITIONS_PER_ADDRESS + [429]
    assert (await add(client, links[0], "", [PNG], address="2001:db8::1"))[0] == 429  # an untrusted header changes nothing


async def test_a_held_report_keeps_her_words_not_her_screenshots_and_tells_her(roomy):
    client = roomy
    client.app[LIMITS].reports_by_address.burst = 1
    await file_report(client)
    case_id, link, page = await file_report(client, [PNG, PNG, PNG])
    assert 'id="held"' in page and 'id="screenshots-not-kept"' in page and "on your status page later" in page
    assert evidence_of(client, case_id) == ["text/plain"]


async def test_screenshots_past_the_hours_byte_budget_or_below_the_disk_floor_are_not_kept(roomy):
    client = roomy
    limits = client.app[LIMITS]
    limits.screenshot_bytes.burst = 2 * len(PNG)
    case_id, _, page = await file_report(client, [PNG, PNG])
    assert evidence_of(client, case_id) == ["text/plain", "image/png", "image/png"]
    case_id, link, page = await file_report(client, [PNG])
    assert "short of room" in page and evidence_of(client, case_id) == ["text/plain"]
    limits.screenshot_bytes.burst = SCREENSHOT_BYTES_PER_HOUR
    limits.free_disk_bytes = lambda: FREE_DISK_FLOOR_BYTES - 1
    status, page = await add(client, link, "Still my words", [PNG])
    assert status == 200 and "short of room" in page
    assert evidence_of(client, case_id) == ["text/plain", "text/plain"]


async def test_a_refused_screenshot_does_not_use_up_the_byte_budget(roomy):
    client = roomy
    client.app[LIMITS].screenshot_bytes.burst = len(PNG) + 8
    status, _ = await send(client, {"category": "other", "text": "Kept text"}, [b"not an image"])
    assert status == 400
    case_id, _, _ = await file_report(client, [PNG])
    assert evidence_of(client, case_id) == ["text/plain", "image/png"]
