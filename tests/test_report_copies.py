"""Every copy of a released report that negotiators read carries its own signature (issue 25, item 1).

PDF: a PAdES signature that Debian's `pdfsig` (NSS) and pyHanko's validator accept, and refuse
after a one-character edit; an incremental update appended after signing is refused. HTML and
Markdown: a signature over the copy's exact bytes. Each forgery is refused with a reason.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pypdf
import pytest
from asn1crypto import cms
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.signing import SigningKey
from pyhanko.pdf_utils import embed, generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from crossline.cli import main
from crossline.clock import token_hash
from crossline.domain.consultations import Phase
from crossline.reports import copies, pdf_signature, render
from crossline.reports.content import build_report
from crossline.reports.render import to_pdf
from crossline.reports.signing import ReportVerificationError, fingerprint, sha256, sign_report, verify_report
from crossline.services import consultations, reports
from crossline.storage import bot as bot_store
from crossline.storage import lines, rooms, sessions
from crossline.web.app import create_app
from crossline.web.render import template_environment
from tests.test_reports import consultation

HUB_KEY = SigningKey(b"k" * 32)
OTHER_KEY = SigningKey(b"x" * 32)
VALID = "Signature Validation: Signature is Valid."


def release(title="Crossing points", released_at_ms=1_790_000_100_000, key=HUB_KEY) -> bytes:
    source = consultation()
    source = type(source)(**{**source.__dict__, "title": title})
    return sign_report(build_report(source, released_at_ms), key)


def html_copy(data: bytes, key=HUB_KEY) -> bytes:
    verified = verify_report(data)
    page = template_environment().get_template("report_document.html").render(
        report=verified.report, fingerprint=verified.fingerprint, sha256=verified.sha256)
    return copies.sign_copy("html", data, key, page.encode("utf-8"))


def text_copy(kind: str, data: bytes, key=HUB_KEY) -> bytes:
    return html_copy(data, key) if kind == "html" else copies.sign_copy(kind, data, key)


def refused(data: bytes, reason: str = "", detached: bytes | None = None) -> str:
    with pytest.raises(ReportVerificationError, match=reason) as error:
        copies.verify_copy(data, detached)
    return str(error.value)


# -- PDF ------------------------------------------------------------------------------------------

def pdfsig(tmp_path, data: bytes) -> tuple[int, str]:
    path = tmp_path / f"copy-{time.monotonic_ns()}.pdf"
    path.write_bytes(data)
    done = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def pyhanko_status(data: bytes):
    (signature,) = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
    return validate_pdf_signature(signature, ValidationContext(trust_roots=[signature.signer_cert],
                                                               allow_fetching=False))


def _glyph_codes(font) -> dict[str, bytes]:
    """Character -> the 2-byte code fpdf's font subset writes for it, from the font's ToUnicode map."""
    cmap = font["/ToUnicode"].get_data().decode("latin-1")
    codes = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for source, target in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            shown = bytes.fromhex(target).decode("utf-16-be")
            if len(shown) == 1:  # not a ligature's glyph (text is shaped: "fi" may be one glyph)
                codes[shown] = int(source, 16).to_bytes(2, "big")
    return codes


def _shown(codes: dict[str, bytes], text: str) -> bytes:
    raw = b"".join(codes[c] for c in text)  # as a PDF literal string in the content stream
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)").replace(b"\r", b"\\r")


def edit_in_place(pdf: bytes, old: str, new: str) -> bytes:
    """A forger's best edit: page 1's compressed content stream decompressed, `old` (first time it is
    shown) made `new`, compressed again into exactly the same bytes' length, so that every offset
    and the signature's byte range stay as they were. The text is shaped, so each glyph is shown on
    its own, `(code) Tj` at its own position (`… Tm`): the forger swaps the codes of the glyphs."""
    assert len(old) == len(new)
    page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
    content = page.get_contents().get_data()
    between = rb" Tj [0-9. -]+ Tm "
    for font in page["/Resources"]["/Font"].values():
        codes = _glyph_codes(font.get_object())
        glyph = lambda c: b"(" + _shown(codes, c) + b")"  # noqa: E731
        found = set(old + new) <= set(codes) and re.search(between.join(re.escape(glyph(c)) for c in old), content)
        if found:
            break
    else:
        raise AssertionError(f"{old!r} is not shown on page 1")
    parts = re.split(b"(" + between + b")", found.group(0))
    parts[::2] = [glyph(c) for c in new]
    edited = content[:found.start()] + b"".join(parts) + content[found.end():]
    for match in re.finditer(rb"stream\r?\n", pdf):
        start, end = match.end(), pdf.find(b"endstream", match.end())
        compressed = pdf[start:end].rstrip(b"\r\n")
        if zlib.decompressobj().decompress(compressed) == content:
            replacement = zlib.compress(edited, 9)
            assert len(replacement) <= len(compressed), "the edit did not fit; choose another"
            forged = pdf[:start] + replacement.ljust(len(compressed), b"\0") + pdf[start + len(compressed):]
            assert len(forged) == len(pdf)
            return forged
    raise AssertionError("page 1's content stream was not found")


def add_update(pdf: bytes, text: str) -> bytes:
    """An addendum appended as an incremental update: new text drawn on page 1 after signing."""
    page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
    codes = _glyph_codes(page["/Resources"]["/Font"]["/F1"].get_object())
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    stream = generic.StreamObject(stream_data=b"BT /F1 9 Tf 31 40 Td (" + _shown(codes, text) + b") Tj ET")
    writer.add_stream_to_page(0, writer.add_object(stream))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def test_the_pdf_is_signed_and_pdfsig_pyhanko_and_verify_accept_it(tmp_path):
    data = release()
    pdf = copies.sign_copy("pdf", data, HUB_KEY)
    assert pdf == copies.sign_copy("pdf", data, HUB_KEY), "the same release always gives the same PDF"
    # Dated by the release only (every date in the file's metadata and signature), never by the clock.
    assert set(re.findall(rb"D\\072(\d{8})|D:(\d{8})|(\d{4}-\d\d-\d\d)T", pdf)) <= {
        (b"20260921", b"", b""), (b"", b"20260921", b""), (b"", b"", b"2026-09-21")}
    code, out = pdfsig(tmp_path, pdf)
    genuine = verify_report(data)
    assert code == 0 and VALID in out and "Total document signed" in out, out
    assert f"OU=Ed25519 {genuine.fingerprint}" in out, "pdfsig shows the hub key's fingerprint"
    status = pyhanko_status(pdf)
    assert status.intact and status.valid and status.coverage is SignatureCoverageLevel.ENTIRE_FILE
    assert copies.detect_kind(pdf) == "pdf"
    assert copies.verify_copy(pdf) == genuine  # the embedded signed JSON: report, fingerprint, SHA-256
    assert genuine.sha256 in pdf_text(pdf) and "80% agree" in pdf_text(pdf)


def test_a_one_character_edit_of_the_pdf_is_refused_by_pdfsig_pyhanko_and_verify(tmp_path):
    pdf = copies.sign_copy("pdf", release(), HUB_KEY)
    for old, new in (("80% agree", "30% agree"), ("(7 agree", "(3 agree"), ("version 1", "version 2"),
                     ("2026-09-21T14:15", "2026-09-27T14:15"), ("Left bank", "Left banc")):
        forged = edit_in_place(pdf, old, new)
        assert new in pdf_text(forged), "the forgery changes what a reader sees"
        code, out = pdfsig(tmp_path, forged)
        assert VALID not in out and "Digest Mismatch" in out, out
        status = pyhanko_status(forged)
        assert not (status.intact and status.valid)
        refused(forged, "changed after it was signed")


def test_one_byte_changed_anywhere_in_the_pdf_is_refused():
    """Also inside the signature's own value, which the signature cannot cover: its padding and the
    case of its hex digits are checked as pyHanko writes them."""
    pdf = copies.sign_copy("pdf", release(), HUB_KEY)
    start, length, end = (int(x) for x in re.search(rb"/ByteRange \[(\d+) (\d+) (\d+) \d+\]", pdf).groups())
    gap = range(start + length, end)
    positions = list(range(0, len(pdf), max(1, len(pdf) // 400))) + list(gap[:40]) + list(gap[-60:])
    for position in positions:
        for flip in (0x01, 0x20):  # 0x20: "A" becomes "a", the same hex digit in the other case
            changed = bytearray(pdf)
            changed[position] ^= flip
            with pytest.raises(ReportVerificationError):
                copies.verify_copy(bytes(changed))
    for cut in range(len(pdf) - 1, 0, -max(1, len(pdf) // 50)):
        with pytest.raises(ReportVerificationError):
            copies.verify_copy(pdf[:cut])


def test_an_addendum_after_signing_is_refused(tmp_path):
    pdf = copies.sign_copy("pdf", release(), HUB_KEY)
    forged = add_update(pdf, "80% agree")
    assert pdf_text(forged).count("80% agree") == pdf_text(pdf).count("80% agree") + 1
    _, out = pdfsig(tmp_path, forged)
    assert "Not total document signed" in out, out
    assert pyhanko_status(forged).coverage is not SignatureCoverageLevel.ENTIRE_FILE
    refused(forged, "added to the PDF after it was signed")
    refused(pdf + b"\n% an addendum\n", "added to the PDF after it was signed")
    # `crossline verify` says so in one line: none of pyHanko's warnings or its diff traceback.
    path = tmp_path / "addendum.pdf"
    path.write_bytes(forged)
    done = subprocess.run([str(Path(sys.executable).parent / "crossline"), "verify", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == ["NOT VALID: something was added to the PDF after it was signed "
                                        "(its signature does not cover the whole file)."]


def signing_certificate_fingerprint(tmp_path, pdf: bytes) -> str:
    """What a reader without `crossline verify` compares: `pdfsig -dump`, then the certificate's SHA-256."""
    path = tmp_path / f"dump-{time.monotonic_ns()}.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdfsig", "-dump", str(path)], capture_output=True, check=True, timeout=60, cwd=tmp_path)
    signed = cms.ContentInfo.load(path.with_name(path.name + ".sig0").read_bytes(), strict=False)  # zero-padded
    (cert,) = signed["content"]["certificates"]
    return fingerprint(cert.chosen.dump())


def test_a_certificate_that_copies_the_hubs_name_is_refused(tmp_path):
    """A forger signs her edited PDF with her own key and a certificate that copies the hub's: its name
    (the hub key's fingerprint) and its endorsement. pdfsig calls it valid and shows the hub's
    fingerprint; the certificate's own fingerprint differs from the one the hub publishes, and
    verify refuses it."""
    data = release()
    verified = verify_report(data)
    genuine = pdf_signature.certificate(HUB_KEY)
    forger = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(genuine.subject).issuer_name(genuine.issuer)
               .public_key(forger.public_key()).serial_number(genuine.serial_number)
               .not_valid_before(genuine.not_valid_before_utc).not_valid_after(genuine.not_valid_after_utc))
    for extension in genuine.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    report = json.loads(json.dumps(verified.report).replace("Both banks met twice.", "Nothing was agreed."))
    forged = pdf_signature.sign_pdf_with(to_pdf(report, verified.fingerprint, verified.sha256), data, forger,
                                         builder.sign(forger, hashes.SHA256()), pdf_signature._NOT_BEFORE)
    _, out = pdfsig(tmp_path, forged)
    assert VALID in out and "Total document signed" in out and f"OU=Ed25519 {verified.fingerprint}" in out
    published = pdf_signature.certificate_fingerprint(HUB_KEY)
    assert signing_certificate_fingerprint(tmp_path, forged) != published
    assert signing_certificate_fingerprint(tmp_path, copies.sign_copy("pdf", data, HUB_KEY)) == published
    refused(forged, "did not endorse")


def test_a_pdf_whose_parts_do_not_belong_together_is_refused(tmp_path):
    data, other = release(), release(title="Crossing points", released_at_ms=1_790_000_200_000)
    # Another hub's whole PDF is intact: verify_copy names that hub's key, and the caller compares it.
    foreign = copies.sign_copy("pdf", sign_report(verify_report(data).report, OTHER_KEY), OTHER_KEY)
    assert copies.verify_copy(foreign).fingerprint != verify_report(data).fingerprint
    # A release of this hub inside a PDF signed by another PDF key: not endorsed by the hub's key.
    verified = verify_report(data)
    mixed = pdf_signature.sign_pdf(to_pdf(verified.report, verified.fingerprint, verified.sha256), data, OTHER_KEY,
                                   pdf_signature._NOT_BEFORE)
    _, out = pdfsig(tmp_path, mixed)
    assert VALID in out  # the PDF itself is intact: only the endorsement tells that the key is not the hub's
    refused(mixed, "did not endorse")
    # The PDF of one release made to hold another release's JSON: only by an update after signing.
    pdf = copies.sign_copy("pdf", data, HUB_KEY)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    embed.embed_file(writer, embed.FileSpec(
        file_spec_string=pdf_signature.RELEASE_FILE_NAME, file_name=pdf_signature.RELEASE_FILE_NAME,
        embedded_data=embed.EmbeddedFileObject.from_file_data(writer, other)))
    swapped = io.BytesIO()
    writer.write(swapped)
    refused(swapped.getvalue(), "added to the PDF after it was signed")
    refused(to_pdf(verified.report, verified.fingerprint, verified.sha256), "carries 0 signatures")
    refused(b"%PDF-1.7\n" + b"\x00" * 100, "cannot be read")
    refused(pdf, "no separate signature file", detached=b"x")


# -- HTML and Markdown ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["markdown", "html"])
def test_a_genuine_text_copy_is_accepted(kind):
    data = release()
    copy = text_copy(kind, data)
    assert copies.detect_kind(copy) == kind
    assert copies.verify_copy(copy) == verify_report(data)
    # The signature block kept apart (a detached signature) checks the same.
    at = copy.rindex(b"<!-- crossline-signature/1")
    assert copies.verify_copy(copy[:at], copy[at:]) == verify_report(data)


@pytest.mark.parametrize("kind", ["markdown", "html"])
def test_every_change_of_meaning_in_a_text_copy_is_refused(kind):
    copy = text_copy(kind, release())
    body = copy[:copy.rindex(b"<!-- crossline-signature/1")]
    for old, new in (("80% agree", "30% agree"), ("(7 agree", "(3 agree"), ("Reopen the bridge", "Reopen the bridgE"),
                     ("Left bank", "Left banK"), ("2026-09-21", "2026-09-27"), ("version 1", "version 2")):
        assert old.encode() in body, old
        refused(copy.replace(old.encode(), new.encode(), 1), "changed after it was signed")
    last = body.rindex(b"Method")
    refused(copy[:last] + copy[len(body):], "changed after it was signed")  # the last section removed
    refused(body + b"\nAddendum: both sides agreed to everything.\n" + copy[len(body):], "changed after")
    refused(copy + b"\nAddendum: both sides agreed to everything.\n", "changed or something was added")
    refused(body, "carries no signature")


@pytest.mark.parametrize("kind", ["markdown", "html"])
def test_one_byte_changed_anywhere_in_a_text_copy_is_refused(kind):
    copy = text_copy(kind, release())
    step = max(1, len(copy) // 1500)
    for position in list(range(0, len(copy), step)) + list(range(len(copy) - 300, len(copy))):
        changed = bytearray(copy)
        changed[position] ^= 0x01
        with pytest.raises(ReportVerificationError):
            copies.verify_copy(bytes(changed))


@pytest.mark.parametrize("kind", ["markdown", "html"])
def test_parts_swapped_between_releases_or_keys_are_refused(kind):
    first, second = release(), release(title="Crossing points, second round", released_at_ms=1_790_000_200_000)
    a, b = text_copy(kind, first), text_copy(kind, second)
    marker = b"<!-- crossline-signature/1"
    body_a, block_a = a[:a.rindex(marker)], a[a.rindex(marker):]
    body_b, block_b = b[:b.rindex(marker)], b[b.rindex(marker):]
    refused(body_b + block_a, "its text belongs to another report")
    refused(body_a + block_b, "its text belongs to another report")
    # The signature of A with B's release inside: the block must name what it was made from.
    release_b64 = re.search(rb"release: (\S+)", block_b).group(1)
    refused(body_a + re.sub(rb"release: \S+", b"release: " + release_b64, block_a), "signature block was changed")
    # Signed by another key, over this hub's text and release: refused (the key did not sign the release).
    forged = copies._sign_text(body_a, kind, first, verify_report(first), OTHER_KEY)
    refused(forged, "does not match")
    # Another hub's own copy is intact: verify_copy names its key for the caller to compare.
    assert copies.verify_copy(text_copy(kind, release(key=OTHER_KEY), OTHER_KEY)).fingerprint != \
        verify_report(first).fingerprint
    # A Markdown block on the HTML text (or the reverse) is refused.
    other_kind = "html" if kind == "markdown" else "markdown"
    other = text_copy(other_kind, first)
    refused(body_a + other[other.rindex(marker):], "the signature block is for a")


@pytest.mark.parametrize("kind", ["markdown", "html"])
def test_a_signature_block_not_written_as_the_hub_writes_it_is_refused(kind):
    copy = text_copy(kind, release())
    signature = re.search(rb"signature: (\S+)\n", copy).group(1)
    raw = base64.b64decode(signature)
    # The same 64 bytes spelled another way: the last character's unused bits set.
    last = base64.b64encode(raw)[-3:-2]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for other in alphabet[alphabet.index(last) + 1:alphabet.index(last) + 4]:
        variant = signature[:-3] + bytes([other]) + b"=="
        if base64.b64decode(variant) == raw:
            refused(copy.replace(signature, variant), "signature block")
    refused(copy.replace(b"\nfingerprint: ", b"\nfingerprint:  "), "signature block")
    refused(copy.replace(b"-->\n", b"-->\r\n"), "changed or something was added")
    fingerprint = re.search(rb"fingerprint: ([0-9A-F ]+)\n", copy).group(1)
    refused(copy.replace(fingerprint, fingerprint.replace(b" ", b"")), "signature block was changed")
    refused(b"{}", "not a report file")
    refused(b"\xef\xbb\xbf" + release(), "byte-order mark")
    refused(b"plain words", "not a report")


# -- Through the hub ------------------------------------------------------------------------------

@pytest.fixture
def released(hub):
    with hub.engine.begin() as conn:
        left, right = lines.get_line(conn, 1).sides
        rooms.add_room(conn, "!negotiators:crossline.local", 1, "negotiators", "Negotiators", hub.facilitator.id, 0)
    made = consultations.create(hub, hub.facilitator, 1, "Wells", [{"en": "Q"}], [left.id, right.id], False)
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.COLLECTING)
    consultations.seed_statement(hub, hub.facilitator, made.id, made.questions[0].id, "Repair the wells")
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.VOTING)
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.CLOSED)
    draft = reports.start_draft(hub, hub.facilitator, made.id)
    return reports.release(hub, hub.facilitator, draft.id, "!negotiators:crossline.local")


def test_the_room_summary_names_the_release_sha256_and_the_key(hub, released):
    _, data = reports.released_document(hub, released.id)
    with hub.engine.connect() as conn:
        (notice,) = [m for m in bot_store.waiting_messages(conn) if m.purpose == "notice"]
    text = notice.content["body"]
    assert notice.room_id == "!negotiators:crossline.local"
    assert sha256(data) in text and reports.hub_fingerprint(hub) in text
    assert reports.pdf_certificate_fingerprint(hub) in text
    # ... which is the certificate that signs the hub's PDF copies.
    (signature,) = PdfFileReader(io.BytesIO(reports.signed_copy(hub, data, "pdf")), strict=False).embedded_signatures
    assert fingerprint(signature.signer_cert.dump()) == reports.pdf_certificate_fingerprint(hub)


async def test_every_download_is_a_copy_that_checks(aiohttp_client, hub, released, tmp_path):
    with hub.engine.begin() as conn:
        expires = int(time.time() * 1000) + 3_600_000
        sessions.add_session(conn, token_hash("session-fac"), hub.facilitator.id, 0, expires)
    client = await aiohttp_client(create_app(hub.config, clock=hub.clock, background=False))
    client.session.cookie_jar.update_cookies({"crossline_session": "session-fac"})
    served = {}
    for fmt in ("json", "pdf", "html", "md"):
        response = await client.get(f"/reports/{released.id}/report.{fmt}")
        assert response.status == 200, (fmt, await response.text())
        served[fmt] = await response.read()
    for fmt, data in served.items():
        verified = copies.verify_copy(data)
        assert verified.sha256 == sha256(served["json"]) and verified.fingerprint == reports.hub_fingerprint(hub), fmt
    code, out = pdfsig(tmp_path, served["pdf"])
    assert code == 0 and VALID in out, out


# -- Every character she wrote, in the PDF -------------------------------------------------------

def statements_release(*texts: str, title: str = "Crossing points") -> bytes:
    source = consultation()
    source = type(source)(**{**source.__dict__, "title": title, "statements": [
        (11 + i, 1 + i, 5, text) for i, text in enumerate(texts)] + source.statements[len(texts):]})
    return sign_report(build_report(source, 1_790_000_100_000), HUB_KEY)


def pdftotext(tmp_path, pdf: bytes) -> str:
    path = tmp_path / f"text-{time.monotonic_ns()}.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                          timeout=60, check=True).stdout


def test_nothing_she_wrote_vanishes_from_the_pdf(tmp_path):
    """A negation in fullwidth or mathematical letters stays a negation; characters the fonts lack
    are visible placeholders, and the copy says where the exact text is."""
    data = statements_release("We do ＮＯＴ want the ferry schedule", "We do 𝐍𝐎𝐓 want the checkpoint open",
                              "Open 渡口 now 🙂 please")
    pdf = copies.sign_copy("pdf", data, HUB_KEY)
    text = pdftotext(tmp_path, pdf)
    assert "We do NOT want the ferry schedule" in text and "We do NOT want the checkpoint open" in text
    assert "Open \ufffd\ufffd now \ufffd please" in text, "one visible placeholder for each character not drawn"
    assert "the HTML and JSON copies hold the exact text" in " ".join(text.split())
    assert copies.verify_copy(pdf) == verify_report(data)
    # A report every character of which can be drawn says nothing of the kind.
    plain = pdftotext(tmp_path, copies.sign_copy("pdf", statements_release("Open the ferry, 10² boats"), HUB_KEY))
    assert "exact text" not in plain and "10² boats" in plain, "drawable characters are kept as written"


def test_right_to_left_statements_read_in_their_own_order(tmp_path):
    arabic, hebrew = "نريد فتح المعبر 24 ساعة", "פתחו את המעבר בשעה 6"
    data = statements_release(arabic, hebrew, title="المعبر")
    pdf = copies.sign_copy("pdf", data, HUB_KEY)
    assert pdf == copies.sign_copy("pdf", data, HUB_KEY), "shaped text is still deterministic"
    text = pdftotext(tmp_path, pdf)
    for words in ("نريد فتح المعبر", "ساعة", "פתחו את המעבר בשעה"):
        assert words in text, (words, [line for line in text.splitlines() if "24" in line or "6" in line][:4])


@pytest.mark.parametrize("placeholders", [True, False])
def test_no_member_text_reaches_the_log(caplog, monkeypatch, placeholders):
    if not placeholders:  # glyphs fpdf lacks reach it unshaped, and it warns quoting them: not in the log
        monkeypatch.setattr(render._Drawable, "_char", lambda self, c: c)
        monkeypatch.setattr(render.FPDF, "set_text_shaping", lambda self, *args: None)
    caplog.set_level(logging.DEBUG)
    written = ["渡口每天开放 पुल खोलो", "We do ＮＯＴ want 🙂", "نريد فتح المعبر"]
    data = statements_release(*written, title="渡轮 ferry")
    for kind in ("pdf", "markdown"):
        copies.sign_copy(kind, data, HUB_KEY)
    html_copy(data)
    characters = {c for text in written + ["渡轮"] for c in text if not c.isascii()}
    logged = [record.getMessage() for record in caplog.records]
    assert not [message for message in logged if characters & set(message)], logged[:5]


def second_signature(pdf: bytes) -> bytes:
    """The reviewer's forgery: new figures painted over page 1 in an update, then a second signature
    by a forger's key whose certificate copies the hub's (name, dates, serial, extensions)."""
    genuine = pdf_signature.certificate(HUB_KEY)
    forger = ec.derive_private_key(12345, ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(genuine.subject).issuer_name(genuine.issuer)
               .public_key(forger.public_key()).serial_number(genuine.serial_number)
               .not_valid_before(genuine.not_valid_before_utc).not_valid_after(genuine.not_valid_after_utc))
    for extension in genuine.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    cert = builder.sign(forger, hashes.SHA256())
    page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
    codes = _glyph_codes(page["/Resources"]["/Font"]["/F1"].get_object())
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    writer.add_stream_to_page(0, writer.add_object(generic.StreamObject(
        stream_data=b"q 1 1 1 rg 28 633 540 11 re f Q BT /F1 9 Tf 28.5 635.5 Td ("
        + _shown(codes, "Least support: Left bank, 30% agree") + b") Tj ET")))
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(forger.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        cert_registry=None)
    meta = signers.PdfSignatureMetadata(field_name="Sig2", subfilter=fields.SigSeedSubFilter.PADES)
    return _Forger(meta, signer).sign_pdf(writer).getvalue()


class _Forger(signers.PdfSigner):
    """A forger's tool does not honour the certification's "no changes" as pyHanko does."""

    def _enforce_certification_constraints(self, reader):
        pass


def test_the_pdf_is_certified_and_a_second_signature_is_refused(tmp_path):
    pdf = copies.sign_copy("pdf", release(), HUB_KEY)
    (signature,) = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
    assert signature.docmdp_level is fields.MDPPerm.NO_CHANGES, "a certification signature: no changes allowed"
    forged = second_signature(pdf)
    # pdfsig calls the forger's signature valid and total: the guide's rule is exactly one signature.
    _, out = pdfsig(tmp_path, forged)
    assert "Signature #2:" in out and out.count(VALID) == 2
    guide = " ".join((Path(__file__).parents[1] / "docs" / "negotiators.md").read_text().split())
    assert "exactly one signature" in guide and "Signature #2" in guide
    refused(forged, "carries 2 signatures")
    # pyHanko, which reads the certification, says the document was changed against it.
    first = PdfFileReader(io.BytesIO(forged), strict=False).embedded_signatures[0]
    status = validate_pdf_signature(first, ValidationContext(trust_roots=[first.signer_cert], allow_fetching=False))
    assert status.coverage is not SignatureCoverageLevel.ENTIRE_FILE and not status.docmdp_ok


async def test_the_pdf_certificate_fingerprint_is_shown_where_readers_look(aiohttp_client, hub, released, tmp_path,
                                                                         capsys):
    published = reports.pdf_certificate_fingerprint(hub)
    with hub.engine.begin() as conn:
        sessions.add_session(conn, token_hash("session-fac"), hub.facilitator.id, 0, int(time.time() * 1000) + 3_600_000)
    client = await aiohttp_client(create_app(hub.config, clock=hub.clock, background=False))
    client.session.cookie_jar.update_cookies({"crossline_session": "session-fac"})
    for page in ("/reports", f"/reports/{released.id}"):
        response = await client.get(page)
        assert response.status == 200 and f'<code id="pdf-certificate">{published}</code>' in await response.text()
    pdf = await (await client.get(f"/reports/{released.id}/report.pdf")).read()
    (tmp_path / "report.pdf").write_bytes(pdf)
    assert main(["verify", str(tmp_path / "report.pdf"), "--data-dir", str(hub.config.paths.data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"PDF certificate, SHA-256 fingerprint {published}" in out, out
    guide = " ".join((Path(__file__).parents[1] / "docs" / "negotiators.md").read_text().split())
    assert "Reports page and each report's page show it" in guide


@pytest.mark.parametrize("kind", ["pdf", "markdown", "html"])
def test_a_copy_is_signed_only_for_a_release_of_the_same_key(kind):
    theirs = release(key=OTHER_KEY)
    with pytest.raises(ValueError, match="not signed by the key"):
        copies.sign_copy(kind, theirs, HUB_KEY, b"<!doctype html>\n")
    assert copies.verify_copy(text_copy("markdown", theirs, OTHER_KEY)).fingerprint == verify_report(theirs).fingerprint


def test_each_quoted_statement_has_a_rule_that_prints_in_black_and_white():
    """The shade alone may vanish in black-and-white print: a black rule runs down each quote's left side."""
    pdf = copies.sign_copy("pdf", statements_release("Keep the ferry\n\nand the bridge"), HUB_KEY)
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        content = page.get_contents().get_data()
        shaded = {(x, y) for x, y in re.findall(rb"([\d.]+) ([\d.]+) [\d.]+ [\d.]+ re f", content)}
        ruled = {(x, y) for x, y, x2 in re.findall(rb"([\d.]+) ([\d.]+) m ([\d.]+) [\d.]+ l S", content) if x == x2}
        assert shaded and shaded <= ruled, (shaded - ruled)
        assert b" G" not in content and b" RG" not in content, "drawn in the default colour, black"
