"""The anonymous report form through the web layer (no Synapse needed): it works without an
account, refuses bad input with a sentence and gives back what was typed, slows a flood."""

from __future__ import annotations

import re

import aiohttp
import pytest

from crossline.setup import init_data_dir
from crossline.web.app import create_app
from crossline.web.reporting import PER_ADDRESS

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


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


async def test_a_flood_from_one_address_is_slowed_and_loses_nothing_typed(client):
    for n in range(PER_ADDRESS):
        status, _ = await send(client, {"category": "spam", "text": f"Report {n}"})
        assert status == 200
    status, page = await send(client, {"category": "spam", "text": "One too many"})
    assert status == 429 and "Wait ten minutes" in page and "One too many" in page


def test_behind_a_local_proxy_the_forwarded_address_is_the_sender():
    from aiohttp.test_utils import make_mocked_request

    from crossline.web.reporting import client_address

    proxied = make_mocked_request("POST", "/report", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"})
    proxied._transport_peername = ("127.0.0.1", 5000)
    assert client_address(proxied) == "198.51.100.7"  # the hop the local proxy itself saw
    direct = make_mocked_request("POST", "/report", headers={"X-Forwarded-For": "1.2.3.4"})
    direct._transport_peername = ("192.0.2.50", 5000)
    assert client_address(direct) == "192.0.2.50"  # not from a local proxy: the header is not trusted
