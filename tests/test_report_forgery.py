"""Forging a released report, as a forger would, and what `crossline verify` and the hub's check page
say: every changed, swapped, re-signed or malformed file is refused with a reason, never a traceback;
a file signed by a key the reader did not say to trust is never "Valid"; a valid verdict names the
hub, line, consultation, version and release date, and whether a newer version replaced it.
(The PDF, HTML and Markdown copies' own forgery cases are in tests/test_report_copies.py.)"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import re
import subprocess
import sys
import threading
import unicodedata
import zlib
from hashlib import sha256
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from aiohttp.test_utils import TestClient, TestServer
from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey

from crossline.clock import token_hash
from crossline.cli import main
from crossline.domain.consultations import Phase
from crossline.reports import copies
from crossline.reports.content import build_report
from crossline.reports.signing import ReportVerificationError, fingerprint, sign_report, verify_report
from crossline.reports.verdict import Verdict, check
from crossline.secrets import REPORT_SIGNING_KEY
from crossline.services import consultations, reports
from crossline.storage import lines, members, sessions
from crossline.web.app import create_app
from crossline.web.keys import WEB_SECRET
from crossline.web.reports import REPORT_CHECKS
from crossline.web.security import CSRF_COOKIE, SESSION_COOKIE
from tests.fakes import make_unit_hub
from tests.test_reports import consultation

KEY = SigningKey(b"k" * 32)
OTHER = SigningKey(b"x" * 32)
RELEASED = 1_790_000_100_000


def release_bytes(**changes) -> bytes:
    source = consultation()
    for name, value in changes.items():
        object.__setattr__(source, name, value)
    return sign_report(build_report(source, RELEASED), KEY)


def judged(data: bytes) -> Verdict:
    """The verdict on a signed JSON file when the hub's key is the one trusted."""
    return check(lambda: verify_report(data), {fingerprint(bytes(KEY.verify_key)): "this hub's key"}, None)


def refused(data: bytes, reason: str | None = None) -> str:
    verdict = judged(data)
    assert not verdict.valid and re.search(reason or "", verdict.lines[0]), verdict.lines
    return verdict.lines[0]


def resigned_file(document: dict) -> bytes:
    """A document written back in canonical form, keeping its (now wrong) signature."""
    return encode_canonical_json(document)


# -- One character, sections, swaps ------------------------------------------------------------------

def test_one_character_changes_of_numbers_names_dates_and_versions_are_refused():
    data = release_bytes()
    assert b'"agree_percent":' in data and b'"version":1' in data
    report = json.loads(data)["report"]
    percent = str(report["questions"][0]["bridging"][0]["weakest_side_agree_percent"]).encode()
    changes = [
        (b'"weakest_side_agree_percent":' + percent, b'"weakest_side_agree_percent":3' + percent[1:]),
        (b'"agree":7', b'"agree":3'),
        (b'"version":1', b'"version":2'),
        (b"Crossing points", b"Crossing paints"),
        (b"Left bank", b"Left bonk"),
        (b"Reopen the bridge", b"Reopen the fridge"),
        (b'"released_at":"2026-09-21', b'"released_at":"2026-09-22'),
        (b'"closed_at":"2026', b'"closed_at":"2025'),
        (b'"min_group_size":5', b'"min_group_size":3'),
    ]
    for old, new in changes:
        assert old in data, old
        changed = data.replace(old, new, 1)
        assert len(changed) == len(data)
        assert "signature does not match" in refused(changed)


def test_sections_removed_or_added_are_refused():
    document = json.loads(release_bytes())
    for edit in (lambda r: r.pop("narrative"), lambda r: r.pop("suppressed"),
                 lambda r: r["questions"][0]["bridging"].pop(),
                 lambda r: r.update(addendum="The sides agreed to everything."),
                 lambda r: r["questions"].append(dict(r["questions"][0], position=2))):
        forged = json.loads(json.dumps(document))
        edit(forged["report"])
        refused(resigned_file(forged), "signature does not match")


def test_parts_swapped_between_releases_and_consultations_are_refused_and_a_moved_file_names_its_own():
    first, second = release_bytes(), release_bytes(version=2, narrative="A correction.")
    other = release_bytes(consultation_id=9, title="Water points")
    for body_from, signature_from in ((first, second), (second, first), (first, other), (other, first)):
        body, sig = json.loads(body_from), json.loads(signature_from)
        refused(resigned_file({**body, "signature": sig["signature"]}), "signature does not match")
    # A whole genuine release of consultation 9, saved under consultation 3's file name, is genuine:
    # the verdict names consultation 9, so the reader sees what it is.
    assert verify_report(other).report["consultation"]["id"] == 9


def test_a_report_resigned_by_another_key_is_not_the_hubs():
    document = json.loads(release_bytes())
    document["report"]["narrative"] = "Nothing was agreed."
    refused(sign_report(document["report"], OTHER), "signed by a key this check does not know")


# -- Canonical encoding ------------------------------------------------------------------------------

def _variants(value: str) -> list[str]:
    """Other spellings of the same bytes in base64: unused trailing bits set, padding dropped or
    doubled, line breaks, the URL-safe alphabet."""
    decoded = base64.b64decode(value)
    stripped = value.rstrip("=")
    padding = value[len(stripped):]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = []
    for c in alphabet:
        candidate = stripped[:-1] + c + padding
        if candidate != value and base64.b64decode(candidate) == decoded:
            out.append(candidate)
    out += [stripped, value + "=", value + "==", value[:20] + "\n" + value[20:], " " + value,
            value.replace("+", "-").replace("/", "_")]
    return [v for v in dict.fromkeys(out) if v != value]


def test_every_non_canonical_spelling_of_the_signature_and_key_is_refused():
    data = release_bytes()
    document = json.loads(data)
    signature_variants = _variants(document["signature"])
    key_variants = _variants(document["signed_by"]["public_key"])
    # 64 bytes leave 4 unused bits (15 other spellings), 32 bytes leave 2 (3 others).
    assert sum(1 for v in signature_variants if len(v) == len(document["signature"])) >= 15
    assert sum(1 for v in key_variants if len(v) == len(document["signed_by"]["public_key"])) >= 3
    for variant in signature_variants:
        refused(resigned_file({**document, "signature": variant}), "not the standard base64")
    for variant in key_variants:
        forged = json.loads(data)
        forged["signed_by"]["public_key"] = variant
        refused(resigned_file(forged), "not the standard base64")


def test_every_single_byte_change_of_a_small_release_is_refused():
    from tests.test_report_small_consultations import small_consultation

    data = sign_report(build_report(small_consultation(2, 1, [1]), RELEASED), KEY)
    assert judged(data).valid
    for position in range(len(data)):
        for flip in (0x01, 0x20):
            changed = bytearray(data)
            changed[position] ^= flip
            assert not judged(bytes(changed)).valid, position


# -- Malformed files, through `crossline verify` ------------------------------------------------------

def xref_bomb(entries: int) -> bytes:
    """A tiny PDF whose compressed xref stream of zeros declares `entries` entries (7 bytes each):
    a few KB that unpack to MBs (the reviewer's 68 KB one, 10 million entries, took a minute and GBs)."""
    head = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    head += b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    data = zlib.compress(b"\0" * 7 * entries, 9)
    at = len(head)
    head += (b"3 0 obj << /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode /Length %d >>\nstream\n"
             % (entries, len(data))) + data + b"\nendstream\nendobj\n"
    return head + b"startxref\n%d\n%%%%EOF\n" % at


def test_a_pdf_that_unpacks_to_far_more_than_a_report_is_refused_for_that(tmp_path, capsys):
    bomb = xref_bomb(500_000)  # 3.5 MB of xref from a few KB
    assert len(bomb) < 10_000
    with pytest.raises(ReportVerificationError, match="unpacks to far more than any report"):
        copies.verify_copy(bomb)
    (tmp_path / "bomb.pdf").write_bytes(bomb)
    assert main(["verify", str(tmp_path / "bomb.pdf"), "--data-dir", str(tmp_path / "none")]) == 1
    assert "unpacks to far more than any report" in capsys.readouterr().err


def malformed_files(tmp_path: Path) -> dict[str, Path]:
    data = release_bytes()
    text = data.decode()
    files = {
        "lone surrogate": text.replace("Both banks", "Both \\ud800banks").encode(),
        "deep nesting": b"[" * 200_000 + b"]" * 200_000,
        "deep nesting in the report": text.replace('"narrative":"', '"narrative":' + "[" * 5000 + '"x"' + "]" * 5000
                                                   + ',"n":"').encode(),
        "huge number": text.replace('"version":1', '"version":1' + "0" * 20_000).encode(),
        "huge float": text.replace('"version":1', '"version":1e999').encode(),
        "NaN": text.replace('"version":1', '"version":NaN').encode(),
        "duplicate keys": text.replace('"signature":', '"signature":"AAAA","signature":', 1).encode(),
        "duplicate keys in the report": text.replace('"version":1', '"version":2,"version":1', 1).encode(),
        "BOM": b"\xef\xbb\xbf" + data,
        "not UTF-8": data.replace(b"Both banks", b"Both \xff\xfebanks"),
        "UTF-16": text.encode("utf-16"),
        "empty": b"",
        "just spaces": b"   \n",
        "a list": b"[]",
        "a string": b'"report"',
        "null": b"null",
        "PDF xref bomb": xref_bomb(500_000),
    }
    document = json.loads(data)
    for name, path, value in (("signature is a number", ("signature",), 5),
                              ("signature is null", ("signature",), None),
                              ("signed_by is a list", ("signed_by",), []),
                              ("public key is a number", ("signed_by", "public_key"), 7),
                              ("fingerprint is a list", ("signed_by", "fingerprint"), ["A"]),
                              ("algorithm is a dict", ("signed_by", "algorithm"), {}),
                              ("report is a string", ("report",), "Everyone agreed"),
                              ("consultation is a list", ("report", "consultation"), [])):
        forged = json.loads(data)
        target = forged
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        files[name] = encode_canonical_json(forged)
    # Signed by the trusted key, but not shaped like a report: refused as unreadable, not a traceback.
    files["signed nonsense"] = sign_report({"consultation": {"title": 5}}, KEY)
    files["signed with a consultation number no database holds"] = sign_report(
        {**json.loads(data)["report"], "consultation": {**json.loads(data)["report"]["consultation"], "id": 10**30}}, KEY)
    files["signed nonsense 2"] = sign_report({"consultation": {"title": "T", "line": "L", "id": 1,
                                                               "closed_at": "yesterday"}, "version": 1,
                                              "released_at": "2026-09-21T14:15:00Z"}, KEY)
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name.replace(' ', '-')}.json"
        paths[name].write_bytes(content)
    assert document  # the genuine one parses
    return paths


def test_malformed_files_are_not_valid_with_a_reason_never_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CROSSLINE_DATA_DIR", str(tmp_path / "no-hub-here"))
    trusted = fingerprint(bytes(KEY.verify_key))
    cases = malformed_files(tmp_path)
    (tmp_path / "a-directory").mkdir()
    cases["a directory"] = tmp_path / "a-directory"
    cases["missing"] = tmp_path / "missing.json"
    cases["a device that never ends"] = Path("/dev/zero")
    for name, path in cases.items():
        code = main(["verify", str(path), "--fingerprint", trusted])
        out, err = capsys.readouterr()
        assert code != 0, name
        assert err.startswith("NOT VALID: ") and len(err) > len("NOT VALID: ") + 10, (name, err)
        assert "Valid" not in out and "Traceback" not in err, name


def test_the_command_itself_answers_a_deeply_nested_file_without_a_traceback(tmp_path):
    files = malformed_files(tmp_path)
    for name in ("deep nesting", "lone surrogate", "not UTF-8"):
        done = subprocess.run([sys.executable, "-m", "crossline.cli", "verify", str(files[name]),
                               "--data-dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and done.stderr.startswith("NOT VALID: ") and "Traceback" not in done.stderr


# -- Which key: this hub's by default ------------------------------------------------------------------

def closed_consultation(hub, title: str) -> int:
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
    made = consultations.create(hub, hub.facilitator, 1, title, [{"en": "Q"}], [left.id, right.id], False)
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.COLLECTING)
    consultations.seed_statement(hub, hub.facilitator, made.id, made.questions[0].id, "Repair the wells")
    for phase in (Phase.VOTING, Phase.CLOSED):
        consultations.change_phase(hub, hub.facilitator, made.id, phase)
    return made.id


def released(hub, consultation_id: int) -> tuple[int, bytes]:
    draft = reports.start_draft(hub, hub.facilitator, consultation_id)
    record = reports.release(hub, hub.facilitator, draft.id, None)
    return record.id, reports.released_document(hub, record.id)[1]


def verify(*args) -> tuple[int, str, str]:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["verify", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def test_verify_trusts_this_hubs_key_and_names_what_the_file_is(hub, tmp_path):
    data_dir = hub.config.data_dir
    wells = closed_consultation(hub, "Wells")
    _, v1 = released(hub, wells)
    path = tmp_path / "report.json"
    path.write_bytes(v1)
    code, out, err = verify(path, "--data-dir", data_dir)
    assert code == 0, err
    assert out.startswith("Valid: signed by this hub's key")
    assert reports.hub_fingerprint(hub) in out
    assert f"Hub: crossline.local ({hub.config.hub_url})" in out and "Line: Nistru" in out
    assert f"Consultation: Wells (consultation {wells}, closed " in out and "Version: 1, released 1970-" in out
    assert "Current: no newer version" in out

    _, v2 = released(hub, wells)  # a correction replaces version 1
    code, out, _ = verify(path, "--data-dir", data_dir)
    assert code == 0 and "SUPERSEDED: version 2, released " in out
    path.write_bytes(v2)
    assert "Current: no newer version" in verify(path, "--data-dir", data_dir)[1]


def test_a_release_saved_under_another_consultations_name_says_which_it_is(hub, tmp_path):
    wells, roads = closed_consultation(hub, "Wells"), closed_consultation(hub, "Roads")
    _, of_roads = released(hub, roads)
    released(hub, wells)
    path = tmp_path / f"crossline-report-{wells}-v1.json"
    path.write_bytes(of_roads)
    code, out, _ = verify(path, "--data-dir", hub.config.data_dir)
    assert code == 0 and f"Consultation: Roads (consultation {roads}," in out and "Wells" not in out


def test_another_hubs_key_is_never_valid(hub, tmp_path, monkeypatch):
    other = make_unit_hub(tmp_path / "other")
    _, theirs = released(other, closed_consultation(other, "Wells"))
    path = tmp_path / "theirs.json"
    path.write_bytes(theirs)
    theirs_fp, ours_fp = reports.hub_fingerprint(other), reports.hub_fingerprint(hub)
    assert theirs_fp != ours_fp
    monkeypatch.setenv("CROSSLINE_DATA_DIR", str(hub.config.data_dir))
    for args in ((), ("--data-dir", hub.config.data_dir), ("--fingerprint", ours_fp),
                 ("--data-dir", hub.config.data_dir, "--fingerprint", ours_fp)):
        code, out, err = verify(path, *args)
        assert code == 1 and out == "", args
        assert err.startswith("NOT VALID: the file is intact, but it was signed by a key this check does not know")
        assert theirs_fp in err and "Compare it with the fingerprint your hub publishes" in err
    # No hub here and no fingerprint given: nothing to trust, never "Valid".
    monkeypatch.setenv("CROSSLINE_DATA_DIR", str(tmp_path / "nowhere"))
    code, out, err = verify(path)
    assert code == 1 and "does not know" in err and "no hub data directory" in err
    # Naming that key is the reader's own decision: then it is valid, and says whose; this hub's
    # records say nothing about another hub's consultations.
    for args in (("--fingerprint", theirs_fp), ("--fingerprint", theirs_fp, "--data-dir", hub.config.data_dir)):
        code, out, _ = verify(path, *args)
        assert code == 0 and out.startswith("Valid: signed by the key whose fingerprint you gave")
        assert "not known here" in out and "SUPERSEDED" not in out and "WARNING" not in out


def test_a_release_signed_with_the_hubs_key_but_not_in_its_records_is_pointed_out(hub, tmp_path):
    wells = closed_consultation(hub, "Wells")
    _, genuine = released(hub, wells)
    document = json.loads(genuine)
    document["report"]["narrative"] = "Signed outside the hub (a stolen key)."
    path = tmp_path / "stolen.json"
    path.write_bytes(sign_report(document["report"], reports._signing_key(hub)))
    code, out, _ = verify(path, "--data-dir", hub.config.data_dir)
    assert code == 0 and "WARNING: this hub's records hold no release with this SHA-256" in out


# -- The hub's pages ---------------------------------------------------------------------------------

class Reader:
    """A signed-in browser (CSRF cookie and token as the hub makes them)."""

    def __init__(self, client: TestClient, cookie: str):
        self.client, self.cookie = client, cookie
        self.csrf = hmac.new(client.app[WEB_SECRET], f"csrf-{cookie}".encode(), sha256).hexdigest()
        self.headers = {"Cookie": f"{CSRF_COOKIE}=csrf-{cookie}; {SESSION_COOKIE}={cookie}"}

    async def get(self, path: str) -> tuple[int, str]:
        response = await self.client.get(path, headers=self.headers, allow_redirects=False)
        return response.status, await response.text()

    async def check(self, data: bytes | None, signature: bytes | None = None, name: str = "report.json",
                    token: str | None = None) -> tuple[int, str]:
        form = aiohttp.FormData()
        form.add_field("csrf_token", self.csrf if token is None else token)
        if data is not None:
            form.add_field("report", data, filename=name, content_type="application/octet-stream")
        if signature is not None:
            form.add_field("signature", signature, filename="report.sig", content_type="application/octet-stream")
        response = await self.client.post("/reports/check", data=form, headers=self.headers, allow_redirects=False)
        return response.status, await response.text()


@pytest.fixture
async def site(hub):
    with hub.engine.begin() as conn:
        negotiator = members.add_member(conn, "@neg:crossline.local", 1, None, frozenset({"negotiator"}), None, 0)
        moderator = members.add_member(conn, "@mod:crossline.local", 1, None, frozenset({"moderator"}), None, 0)
        for member_id, cookie in ((negotiator, "negotiator-cookie"), (moderator, "moderator-cookie")):
            sessions.add_session(conn, token_hash(cookie), member_id, 0, hub.clock.now_ms() + 3600_000)
    client = TestClient(TestServer(create_app(hub.config, clock=hub.clock, background=False)),
                        cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    yield client, Reader(client, "negotiator-cookie"), Reader(client, "moderator-cookie")
    await client.close()


async def test_the_check_page_gives_the_same_verdicts(hub, site, tmp_path):
    client, reader, moderator = site
    wells = closed_consultation(hub, "Wells")
    first_id, v1 = released(hub, wells)
    status, page = await reader.check(v1)
    assert status == 200 and "Valid: signed by this hub&#39;s key" in page and f"consultation {wells}" in page
    assert "Current: no newer version" in page
    second_id, _ = released(hub, wells)
    status, page = await reader.check(v1)
    assert "SUPERSEDED: version 2" in page and f'href="/reports/{second_id}"' in page

    other = make_unit_hub(tmp_path / "other")
    _, theirs = released(other, closed_consultation(other, "Wells"))
    status, page = await reader.check(theirs)
    assert status == 200 and "Not valid" in page and "does not know" in page
    assert reports.hub_fingerprint(other) in page and "Valid:" not in page

    for name, path in malformed_files(tmp_path).items():
        status, page = await reader.check(path.read_bytes())
        assert status == 200 and "NOT VALID: " in page and "Valid:" not in page, name
    status, page = await reader.check(None)
    assert status == 200 and "Choose the report file" in page
    status, _ = await reader.check(b"{" * (1024 * 1024 + 1))
    assert status == 413
    status, _ = await reader.check(v1, token="wrong")
    assert status == 403
    status, _ = await moderator.check(v1)
    assert status == 403  # not a report reader


async def test_a_superseded_version_says_so_and_lists_show_rounds_by_date(hub, site):
    client, reader, _ = site
    first, second = closed_consultation(hub, "Wells"), closed_consultation(hub, "Wells")
    v1_id, _ = released(hub, first)
    v2_id, _ = released(hub, first)
    other_id, _ = released(hub, second)
    status, page = await reader.get(f"/reports/{v1_id}")
    assert status == 200 and 'id="superseded"' in page and f'href="/reports/{v2_id}"' in page
    status, page = await reader.get(f"/reports/{v2_id}")
    assert 'id="superseded"' not in page and "released on 1970-" in page
    status, page = await reader.get("/reports")
    assert status == 200 and "superseded by version 2" in page
    assert f"consultation {first}, closed" in page and f"consultation {second}, closed" in page
    assert "Released on" in page and "1970-" in page
    for record_id in (v1_id, v2_id, other_id):
        sha = reports.released_document(hub, record_id)[0].sha256
        assert sha[:12] not in page
    with hub.engine.begin() as conn:
        sessions.add_session(conn, token_hash("facilitator-cookie"), hub.facilitator.id, 0, hub.clock.now_ms() + 3600_000)
    status, page = await Reader(client, "facilitator-cookie").get(f"/consultations/{first}/report")
    assert status == 200 and page.count("released on 1970-") == 2


# -- Member text stays in its place --------------------------------------------------------------------

HOSTILE = ("Keep the ferry schedule” — least support: Right bank, 97% \"agree\" **bold** _it_ [link](http://x.example) "
           "<b>html</b> <script>alert(1)</script> `code` | a | b |\n# Heading\n\n> not a quote\n- item "
           "\u202eevil\u202c \u2066iso\u2069 \u200fmark \x07bell \x85nel")
BIDI_AND_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\x07\x85"


def hostile_report() -> dict:
    source = consultation()
    source.statements[0] = (11, 1, 5, HOSTILE)
    object.__setattr__(source, "title", "Crossing\u202e points\nVersion 9")
    object.__setattr__(source, "narrative", "First *paragraph* \u202e.\n\n# Second")
    report = build_report(source, RELEASED)
    assert report["questions"][0]["bridging"][0]["text"] == HOSTILE
    return report


def test_neutral_keeps_every_script_and_drops_what_reorders_text():
    from crossline.reports.neutral import neutral

    persian = "می\u200cخواهم"  # ZWNJ inside a Persian word
    devanagari = "क्\u200dष"  # ZWJ between Devanagari letters
    family = "👩\u200d👩\u200d👧"
    assert neutral(persian) == persian and neutral(devanagari) == devanagari and neutral(family) == family
    assert neutral("ا\u202eب\u2067ج\u200fد\u061c") == "ابجد"
    assert neutral("\u200dstart end\u200c") == "start end" and neutral("a \u200d b") == "a b"
    assert neutral("one\ntwo\r\nthree\u2028four") == "one two three four"
    assert neutral("one\n\n\n\ntwo", paragraphs=True) == "one\n\ntwo"
    assert neutral("lone \ud800 surrogate") == "lone ? surrogate"
    assert not any(c in neutral("x" + BIDI_AND_CONTROLS + "y") for c in BIDI_AND_CONTROLS)


INVISIBLE = ("\u00ad\u034f\u180e\u206a\u206b\u206c\u206d\u206e\u206f\U000e0001\U000e0041\U000e007f\u115f\u1160"
             "\u3164\uffa0\u2800\u0600\U000110bd\U0001d173\ufff9")


def test_neutral_drops_every_format_character_and_filler():
    from crossline.reports.neutral import neutral

    assert neutral("N" + INVISIBLE + "OT") == "NOT"
    assert neutral("\u3164\u115f", paragraphs=True) == ""


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), st.booleans())
def test_neutral_leaves_no_invisible_character_and_keeps_every_letter(text, paragraphs):
    from crossline.reports.neutral import _FILLERS, _JOINERS, neutral

    out = neutral(text, paragraphs)
    for i, c in enumerate(out):
        category = unicodedata.category(c)
        assert c not in _FILLERS and (category != "Cc" or (c == "\n" and paragraphs)), (text, c)
        assert category != "Cf" or (c in _JOINERS and 0 < i < len(out) - 1), (text, c)
    def letters(s: str) -> list[str]:
        return [c for c in s if unicodedata.category(c)[0] in "LN" and c not in _FILLERS]
    assert letters(out) == letters(text)


def test_a_hostile_statement_is_one_quoted_statement_in_markdown():
    from crossline.reports.neutral import FSI, PDI
    from crossline.reports.render import to_markdown

    markdown = to_markdown(hostile_report(), "AB12", "f" * 64)
    lines = markdown.split("\n")
    assert not any(c in markdown for c in BIDI_AND_CONTROLS if c not in (FSI, PDI))
    assert markdown.count(FSI) == markdown.count(PDI)
    assert lines[0].startswith("# ") and "Version 9" in lines[0]  # the title's newline stays in its heading
    start = lines.index("**Statement 1:**")
    quote = []
    for line in lines[start + 2:]:
        if not line.startswith(">"):
            break
        quote.append(line)
    # Her words: only blockquote lines, each one isolate, every Markdown character escaped.
    assert len(quote) == 6 and lines[start + 2 + len(quote)] == ""  # NEL is a line break
    assert lines[start + 3 + len(quote)].startswith("Least support: ")
    for line in quote:
        body = line[2:-1] if line != ">" else ""
        assert line == ">" or (line.startswith("> " + FSI) and line.endswith(PDI))
        plain = body.lstrip(FSI)
        for i, c in enumerate(plain):
            if c in "*_[]()<>`|#\"!-":
                assert plain[i - 1] == "\\", (c, line)
    assert "Least support" not in "".join(quote) and r"97\%" in quote[0]


def test_a_hostile_statement_is_one_quoted_statement_in_html():
    import lxml.html

    from crossline.reports.neutral import neutral, neutral_tree
    from crossline.web.render import template_environment

    report = hostile_report()
    page = template_environment().get_template("report_document.html").render(
        report=neutral_tree(report), fingerprint="AB12", sha256="f" * 64)
    assert not any(c in page for c in BIDI_AND_CONTROLS)
    assert "<script>" not in page and "<b>html" not in page
    tree = lxml.html.fromstring(page)
    assert not tree.xpath("//script | //a[@href='http://x.example'] | //strong | //b | //code[.='code']")
    quotes = tree.xpath("//blockquote[@class='statement']")
    first = [q for q in quotes if "ferry" in q.text_content()]
    q = report["questions"][0]
    listed = sum(1 for part in ("bridging", "consensus", "divisive", "one_side_only") for s in q[part] if s["number"] == 1)
    assert len(first) == listed >= 1  # one quotation wherever the statement is listed
    for quote in first:
        assert quote.text_content() == neutral(HOSTILE, paragraphs=True) and len(quote.xpath("./bdi")) == 1
        assert quote.getnext().tag == "p" and quote.getnext().get("class") == "figures"
    assert tree.xpath("//h1/bdi")[0].text_content() == "Crossing points\nVersion 9"


def test_a_hostile_statement_is_one_quoted_statement_in_the_pdf():
    import io

    import pypdf

    from crossline.reports.render import to_pdf

    pdf = to_pdf(hostile_report(), "AB12", "f" * 64)
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert not any(c in text for c in BIDI_AND_CONTROLS)
    text = " ".join(text.split())  # justified lines come out with wider spaces
    statement = text.index("Statement 1:")
    figures = text.index("Least support:", statement)
    assert "Keep the ferry schedule” — least support: Right bank, 97%" in text[statement:figures]
    assert "evil" in text[statement:figures] and "<b>html</b>" in text[statement:figures]


def test_verify_shows_a_hostile_title_on_its_own_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSLINE_DATA_DIR", str(tmp_path / "none"))
    path = tmp_path / "r.json"
    path.write_bytes(sign_report(hostile_report(), KEY))
    code, out, err = verify(path, "--fingerprint", fingerprint(bytes(KEY.verify_key)))
    assert code == 0, err
    assert not any(c in out for c in BIDI_AND_CONTROLS)
    assert any(line.startswith("Consultation: Crossing points Version 9 (consultation 3, closed ")
               for line in out.split("\n"))


# -- Every copy kind, through the check page and `crossline verify` ------------------------------------

async def test_every_copy_kind_gets_the_same_verdict_on_the_page_and_from_verify(hub, site, tmp_path):
    client, reader, _ = site
    wells = closed_consultation(hub, "Wells")
    record_id, _ = released(hub, wells)
    for fmt in ("json", "md", "html", "pdf"):
        response = await client.get(f"/reports/{record_id}/report.{fmt}", headers=reader.headers)
        assert response.status == 200, fmt
        copy = await response.read()
        status, page = await reader.check(copy, name=f"report.{fmt}")
        assert status == 200 and "Valid: signed by this hub&#39;s key" in page, (fmt, page[-2000:])
        assert f"Wells (consultation {wells}, closed" in page and "Version: 1, released" in page
        path = tmp_path / f"report.{fmt}"
        path.write_bytes(copy)
        code, out, err = verify(path, "--data-dir", hub.config.data_dir)
        assert code == 0 and f"Consultation: Wells (consultation {wells}, closed" in out, (fmt, err)
        # The same copy with one byte changed near its end (a figure or its signature block): not valid.
        changed = bytearray(copy)
        changed[-200] ^= 0x01
        path.write_bytes(bytes(changed))
        code, out, err = verify(path, "--data-dir", hub.config.data_dir)
        assert code == 1 and out == "" and err.startswith("NOT VALID"), fmt
        status, page = await reader.check(bytes(changed), name=f"report.{fmt}")
        assert status == 200 and "NOT VALID" in page and "Valid:" not in page, fmt


def test_the_room_summary_isolates_the_title_and_drops_controls(hub):
    from crossline.reports.neutral import FSI, PDI

    record_id, data = released(hub, closed_consultation(hub, "Wells\u202e” — 0 bridging recommendations\u202c"))
    record = reports.released_document(hub, record_id)[0]
    text = reports.summary(record, data, reports.pdf_certificate_fingerprint(hub))
    assert not any(c in text for c in BIDI_AND_CONTROLS if c not in (FSI, PDI))
    assert f"Report on “{FSI}Wells” — 0 bridging recommendations{PDI}” ({FSI}Nistru{PDI}, consultation " in text


async def test_uploads_checked_at_once_are_bounded(hub, site, monkeypatch):
    """Parallel uploads wait their turn: at most two verdicts are computed at once (memory)."""
    client, reader, _ = site
    gate, running, most = threading.Event(), [0], [0]
    lock = threading.Lock()

    def slow_check(*args):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        gate.wait(60)
        with lock:
            running[0] -= 1
        return Verdict(False, ("NOT VALID: test.",))

    monkeypatch.setattr(reports, "check_file", slow_check)
    uploads = [asyncio.ensure_future(reader.check(b"{}")) for _ in range(4)]
    semaphore = client.app[REPORT_CHECKS]
    for _ in range(600):  # until two are being checked and the others are held back
        if running[0] == 2 and semaphore.locked():
            break
        await asyncio.sleep(0.05)
    gate.set()
    answers = await asyncio.gather(*uploads)
    assert [status for status, _ in answers] == [200] * 4 and most[0] == 2


async def test_the_reports_list_and_draft_page_neutralise_titles(hub, site):
    client, reader, _ = site
    title = "Wells \u202egnissorc eht nepo\u202c\u2066"
    made = closed_consultation(hub, title)
    released(hub, made)
    status, page = await reader.get("/reports")
    assert status == 200 and "Wells gnissorc eht nepo" in page
    assert not set(BIDI_AND_CONTROLS) & set(page)
    with hub.engine.begin() as conn:
        sessions.add_session(conn, token_hash("facilitator-cookie"), hub.facilitator.id, 0, hub.clock.now_ms() + 3600_000)
    status, page = await Reader(client, "facilitator-cookie").get(f"/consultations/{made}/report")
    assert status == 200 and "Wells gnissorc eht nepo" in page and not set(BIDI_AND_CONTROLS) & set(page)


def test_verify_says_why_there_is_no_hub_key(hub, tmp_path):
    other = make_unit_hub(tmp_path / "other")
    _, theirs = released(other, closed_consultation(other, "Wells"))
    path = tmp_path / "theirs.json"
    path.write_bytes(theirs)
    code, _, err = verify(path, "--data-dir", tmp_path / "nowhere")
    assert code == 1 and f"no hub data directory at {tmp_path / 'nowhere'}" in err
    secret = hub.config.paths.secrets_dir / REPORT_SIGNING_KEY
    secret.chmod(0o644)  # a secret others could read is not used (run as root, an unreadable one cannot be made)
    try:
        code, _, err = verify(path, "--data-dir", hub.config.data_dir)
    finally:
        secret.chmod(0o600)
    assert code == 1 and "no hub data directory" not in err
    assert f"the hub's report key in {hub.config.data_dir} cannot be read" in err and "--fingerprint" in err


def test_verify_checks_the_file_once_when_the_hubs_records_cannot_be_read(hub, tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    _, v1 = released(hub, closed_consultation(hub, "Wells"))
    pdf = copies.sign_copy("pdf", v1, reports._signing_key(hub))
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    calls = []
    real = copies.verify_copy
    monkeypatch.setattr(copies, "verify_copy", lambda *args: calls.append(1) or real(*args))

    def unreachable(engine, consultation_id):
        raise OperationalError("select", {}, Exception("database is locked"))

    monkeypatch.setattr(reports, "history", unreachable)
    code, out, _ = verify(path, "--data-dir", hub.config.data_dir)
    assert code == 0 and len(calls) == 1, calls
    assert "records could not be read" in out and "not known here" in out
