"""Pictures sent with a report, through the real report form (issue 24): what is stored (unsealed
from the database) and what a moderator is served carry none of the upload's metadata, look the
same (a sideways phone photo stays upright), and a bomb or an oversized file is refused with a
sentence and nothing stored."""

from __future__ import annotations

import io
import json
import re
import time
from hashlib import sha256

import pytest
from PIL import Image, ImageChops, ImageStat
from sqlalchemy import func, select

from crossline.clock import token_hash
from crossline.services import moderation as service
from crossline.storage import members, sessions
from crossline.storage import moderation as store
from crossline.storage.schema import audit_log, moderation_cases, moderation_evidence
from crossline.web.keys import HUB
from crossline.web.security import SESSION_COOKIE
from tests import pictures_support as pics
from tests.test_web_reporting import add, client, send  # noqa: F401 - the form helpers and their fixture

UPLOADS = {"jpeg_gps_maker_note": (pics.jpeg_with_gps, "image/jpeg"),
           "png_text_and_exif_chunks": (pics.png_with_text_chunks, "image/png"),
           "webp_exif_and_xmp": (pics.webp_with_exif_and_xmp, "image/webp"),
           "jpeg_orientation_6": (pics.jpeg_turned, "image/jpeg"),
           "jpeg_multi_picture_with_depth_map": (pics.jpeg_with_depth_map, "image/jpeg")}


def moderator_cookie(client) -> dict:
    hub = client.app[HUB]
    with hub.engine.begin() as conn:
        member = members.add_member(conn, "@mona:crossline.local", None, None, frozenset({"moderator"}), None, 0)
        sessions.add_session(conn, token_hash("mona-session"), member, 0, int(time.time() * 1000) + 86_400_000)
    return {SESSION_COOKIE: "mona-session"}


def stored_pictures(client, case_id: int) -> list[tuple[int, str, bytes]]:
    """(evidence id, mime, bytes unsealed) of the pictures stored for a case."""
    hub = client.app[HUB]
    with hub.engine.connect() as conn:
        rows = store.list_evidence(conn, case_id)
    return [(row[0], row[2], service.unseal(hub, row[3])) for row in rows if row[2] != "text/plain"]


def counts(client) -> tuple[int, int]:
    with client.app[HUB].engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(moderation_cases)).scalar(),
                conn.execute(select(func.count()).select_from(moderation_evidence)).scalar())


def looks_the_same(picture: bytes, expected: Image.Image) -> None:
    with Image.open(io.BytesIO(picture)) as seen:
        assert seen.size == expected.size
        difference = ImageChops.difference(seen.convert("RGB"), expected.convert("RGB"))
        # JPEG and WebP loss blurs colour at the quadrants' edges, no more: a turned or mirrored
        # picture differs by 165 to 200 in some colour on average.
        assert max(ImageStat.Stat(difference).mean) < 8


@pytest.mark.parametrize("name", UPLOADS)
async def test_a_reported_picture_is_stored_and_served_without_its_metadata(client, name):
    make, mime = UPLOADS[name]
    upload = make()
    assert pics.has_metadata(upload)  # the fixture does carry what must go
    status, page = await send(client, {"category": "threats", "text": "A note left at my door"}, [upload])
    assert status == 200, page
    case_id = int(re.search(r'id="case-number">(\d+)<', page).group(1))
    [(evidence_id, stored_mime, stored)] = stored_pictures(client, case_id)
    response = await client.get(f"/moderation/cases/{case_id}/evidence/{evidence_id}", cookies=moderator_cookie(client))
    assert response.status == 200
    served = await response.read()
    assert stored_mime == mime and response.content_type == mime and served == stored
    for picture in (stored, served):
        assert pics.has_metadata(picture) == []
        looks_the_same(picture, pics.scene())  # upright: red top left, green top right, blue bottom left
    # The audit log holds the hash of what is stored, not of the upload.
    with client.app[HUB].engine.connect() as conn:
        details = conn.execute(select(audit_log.c.details).where(audit_log.c.case_id == case_id)).scalar()
    assert json.loads(details)["images"] == [sha256(stored).hexdigest()]
    assert sha256(upload).hexdigest() not in details


async def test_a_sideways_photo_is_turned_so_a_person_sees_it_upright(client):
    upload = pics.jpeg_turned(6)
    with Image.open(io.BytesIO(upload)) as raw:
        assert raw.size == (48, 64)  # the sensor's pixels: portrait, scene on its side
    status, page = await send(client, {"category": "threats", "text": "Photo taken upright"}, [upload])
    assert status == 200, page
    case_id = int(re.search(r'id="case-number">(\d+)<', page).group(1))
    [(_id, _mime, stored)] = stored_pictures(client, case_id)
    with Image.open(io.BytesIO(stored)) as seen:
        assert seen.size == (64, 48) and 0x0112 not in seen.getexif()  # width and height swapped, no tag left
        red, green, blue = seen.convert("RGB").getpixel((4, 4)), seen.convert("RGB").getpixel((60, 4)), \
            seen.convert("RGB").getpixel((4, 44))
    assert red[0] > 180 > red[1] and green[1] > 120 > green[0] and blue[2] > 160 > blue[0]


@pytest.mark.parametrize("bad, message", [
    (pics.png_bomb(), "too many pixels"),            # 10 gigapixels declared: Pillow's own bomb error
    (pics.png_bomb(8000, 8000), "too many pixels"),  # 64 megapixels: under Pillow's limit, over the hub's
    (pics.tiny_png() + b"\x00" * (5 * 1024 * 1024), "too large"),  # a real PNG, 5 MB and a bit
    (pics.jpeg_with_gps()[:600], "could not be read"),  # cut short
    (b"GIF89a" + b"\x00" * 64, "PNG, JPEG or WebP"),
])
async def test_a_bomb_an_oversized_or_broken_picture_is_refused_and_nothing_is_stored(client, bad, message):
    before = counts(client)
    status, page = await send(client, {"category": "threats", "text": "Kept words"}, [pics.tiny_png(), bad])
    assert status == 400 and message in page and "Kept words" in page  # what she typed is given back
    assert counts(client) == before  # not the case, not her words, not the good picture


def test_a_50_megapixel_phone_photo_fits_the_limit():
    """The largest common phone sensor (8160 x 6144, 50.1 megapixels) was refused at 50_000_000."""
    assert 8160 * 6144 <= service.MAX_IMAGE_PIXELS


async def test_a_picture_added_on_the_status_page_is_cleaned_too_and_a_bad_one_adds_nothing(client):
    status, page = await send(client, {"category": "other", "text": "What happened"})
    case_id = int(re.search(r'id="case-number">(\d+)<', page).group(1))
    link = re.search(r'id="status-link" readonly value="[^"]*(/report/status/[^"]+)"', page).group(1)
    before = counts(client)
    status, page = await add(client, link, "More", [pics.jpeg_with_gps(), pics.png_bomb()])
    assert status == 400 and "too many pixels" in page and counts(client) == before
    status, page = await add(client, link, "More", [pics.webp_with_exif_and_xmp()])
    assert status == 200, page
    [(_id, mime, stored)] = stored_pictures(client, case_id)
    assert mime == "image/webp" and pics.has_metadata(stored) == []
    with client.app[HUB].engine.connect() as conn:
        details = [json.loads(d) for d in conn.execute(select(audit_log.c.details).where(
            audit_log.c.case_id == case_id).order_by(audit_log.c.seq)).scalars()]
    assert details[-1]["images"] == [sha256(stored).hexdigest()]
    assert service.verify_audit(client.app[HUB])[1] is None  # the chain still holds


async def test_the_report_page_says_how_to_send_photos_that_do_not_show_where_she_is(client):
    page = await (await client.get("/report")).text()
    photos = page.split('<section id="photos">')[1].split("</section>")[0]
    for needed in ("screenshot", "Android camera", "iPhone camera", "Location Services", "Element Android",
                   "Element iOS", "FluffyChat", "Element Web and Desktop", "cannot remove them from pictures you send in a room"):
        assert needed in photos
    assert "the hub removes any location" in page  # at the screenshots field


async def test_other_people_are_served_while_a_picture_is_being_rebuilt(client, monkeypatch):
    """Rebuilding a large picture takes seconds: it runs beside the event loop, so the report page
    still answers another person meanwhile (the rebuild is held here until that answer came)."""
    import asyncio
    import threading

    from crossline.domain import pictures

    started, release = threading.Event(), threading.Event()
    real_clean = pictures.clean

    def slow_clean(*args, **kwargs):
        started.set()
        assert release.wait(timeout=60), "the other request never got its answer"
        return real_clean(*args, **kwargs)

    monkeypatch.setattr(pictures, "clean", slow_clean)
    sending = asyncio.ensure_future(send(client, {"category": "threats", "text": "A note"}, [pics.jpeg_with_gps()]))
    assert await asyncio.to_thread(started.wait, 60)
    other = await client.get("/report")  # would wait for the rebuild if it ran on the loop
    assert other.status == 200
    release.set()
    status, page = await sending
    assert status == 200, page


async def test_only_rebuilding_waits_its_turn_and_past_a_while_her_words_are_kept_without_the_pictures(client,
                                                                                                      monkeypatch):
    """Two rebuilds held (every turn taken): a report with no picture goes through at once, and one
    with a picture, past PICTURE_WAIT_S of waiting, keeps her words and tells her to add it later."""
    import asyncio
    import threading

    from crossline.domain import pictures
    from crossline.web import reporting

    started, release = threading.Semaphore(0), threading.Event()
    real_clean = pictures.clean

    def held_clean(*args, **kwargs):
        started.release()
        assert release.wait(timeout=60), "a request waited for other people's pictures"
        return real_clean(*args, **kwargs)

    monkeypatch.setattr(pictures, "clean", held_clean)
    monkeypatch.setattr(reporting, "PICTURE_WAIT_S", 0.05)
    held = [asyncio.ensure_future(send(client, {"category": "threats", "text": f"flood {i}"}, [pics.tiny_png()]))
            for i in range(2)]
    for _ in held:
        assert await asyncio.to_thread(started.acquire, True, 60)
    before = counts(client)
    status, page = await send(client, {"category": "threats", "text": "He knows where I live"})
    assert status == 200 and "case-number" in page
    status, page = await send(client, {"category": "threats", "text": "Here is his note"}, [pics.jpeg_with_gps()])
    assert status == 200 and "screenshots were not kept this time" in page and "status page later" in page
    case_id = int(re.search(r'id="case-number">(\d+)<', page).group(1))
    assert stored_pictures(client, case_id) == [] and counts(client) == (before[0] + 2, before[1] + 2)
    link = re.search(r'(/report/status/[^"<\s]+)', page).group(1)
    status, page = await add(client, link, "One more thing", [pics.jpeg_with_gps()])
    assert status == 200 and "Your words were added" in page and "screenshots were not kept" in page
    assert stored_pictures(client, case_id) == [] and counts(client)[1] == before[1] + 3
    release.set()
    assert [status for status, _page in await asyncio.gather(*held)] == [200, 200]


async def test_a_picture_stored_before_pictures_were_rebuilt_is_served_without_its_metadata(client):
    """Pictures stored before e40ff72 were kept byte for byte: they are rebuilt when shown, while
    what is stored stays as received; an old picture that cannot be rebuilt is not shown."""
    status, page = await send(client, {"category": "threats", "text": "An old report"})
    case_id = int(re.search(r'id="case-number">(\d+)<', page).group(1))
    hub = client.app[HUB]
    with hub.engine.begin() as conn:
        for data in (pics.jpeg_with_gps(), pics.png_with_text_chunks(), b"\xff\xd8 not a picture"):
            store.add_evidence(conn, case_id, "reporter_supplied", "image/jpeg", service.seal(hub, data), 0)
    cookie = moderator_cookie(client)
    (old_jpeg, _, stored), (old_png, _, _), (broken, _, _) = stored_pictures(client, case_id)
    for evidence_id in (old_jpeg, old_png):
        response = await client.get(f"/moderation/cases/{case_id}/evidence/{evidence_id}", cookies=cookie)
        served = await response.read()
        assert response.status == 200 and pics.has_metadata(served) == []
        looks_the_same(served, pics.scene())
    assert stored == pics.jpeg_with_gps()
    response = await client.get(f"/moderation/cases/{case_id}/evidence/{broken}", cookies=cookie)
    assert response.status == 400 and "not shown" in await response.text()
