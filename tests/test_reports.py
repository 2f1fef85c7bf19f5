"""Report content, signing and `crossline verify`."""

from __future__ import annotations

import json

import pytest
from nacl.signing import SigningKey

from crossline.cli import main
from crossline.reports.content import ReportInput, build_report
from crossline.reports.signing import ReportVerificationError, fingerprint, sign_report, verify_report

LEFT, RIGHT = "Left bank", "Right bank"


def consultation(left=8, right=8, small_side_size=None) -> ReportInput:
    """Statement 1: both sides agree. 2: only the left. 3: only the right. 4: everyone disagrees."""
    members = {m: LEFT for m in range(left)} | {100 + m: RIGHT for m in range(right)}
    if small_side_size:
        members |= {200 + m: "Island" for m in range(small_side_size)}
    leaning = {1: {LEFT: 1, RIGHT: 1, "Island": 1}, 2: {LEFT: 1, RIGHT: -1, "Island": 1},
               3: {LEFT: -1, RIGHT: 1, "Island": 1}, 4: {LEFT: -1, RIGHT: -1, "Island": -1}}
    votes = []
    for member, side in members.items():
        for statement in (11, 12, 13, 14):
            value = leaning[statement - 10][side]
            if member % 7 == 3:  # a few dissent
                value = -value
            votes.append((member, statement, value, 1000 + member))
    return ReportInput(
        consultation_id=3, title="Crossing points", line="Nistru", closed_at_ms=1_790_000_000_000,
        questions=[(5, 1, "What should reopen first?")],
        statements=[(11, 1, 5, "Reopen the bridge for pedestrians"), (12, 2, 5, "Left text"),
                    (13, 3, 5, "Right text"), (14, 4, 5, "Close everything")],
        votes=votes, member_sides=members, sides=[LEFT, RIGHT] + (["Island"] if small_side_size else []),
        narrative="Both banks met twice.", statements_by_side={LEFT: 2, RIGHT: 2},
    )


def test_bridging_comes_from_every_side_and_one_sided_statements_are_kept_apart():
    report = build_report(consultation(), released_at_ms=1_790_000_100_000)
    (question,) = report["questions"]
    assert [b["number"] for b in question["bridging"]] == [1]
    assert {s["number"]: s["side"] for s in question["one_side_only"]} == {2: LEFT, 3: RIGHT}
    assert {d["number"] for d in question["divisive"]} >= {2, 3}
    assert report["participation"] == [{"side": LEFT, "members": 8, "voted": 8, "statements": 2},
                                       {"side": RIGHT, "members": 8, "voted": 8, "statements": 2}]
    assert "author" not in json.dumps(report) and report["released_at"] == "2026-09-21T14:15:00Z"


def test_a_small_side_is_never_shown_and_blocks_bridging_claims():
    report = build_report(consultation(small_side_size=3), released_at_ms=1_790_000_100_000)
    text = json.dumps(report, ensure_ascii=False)
    (question,) = report["questions"]
    assert question["bridging"] == [] and "Island" not in json.dumps(question)
    assert {"side": "Island", "members": None, "voted": None, "statements": None} in report["participation"]
    assert any("Island" in note and "fewer than 5" in note for note in report["suppressed"])
    assert text.count("Island") == 1 + sum("Island" in n for n in report["suppressed"])


def test_a_signed_report_verifies_and_any_changed_byte_is_rejected(tmp_path, capsys):
    key = SigningKey(b"k" * 32)
    data = sign_report(build_report(consultation(), 1_790_000_100_000), key)
    verified = verify_report(data)
    assert verified.fingerprint == fingerprint(bytes(key.verify_key))
    assert verified.report["consultation"]["title"] == "Crossing points"
    for position in (10, len(data) // 2, len(data) - 3):
        changed = bytearray(data)
        changed[position] ^= 0x01
        with pytest.raises(ReportVerificationError):
            verify_report(bytes(changed))
    # Re-signed by someone else's key: valid on its own, but not the hub's (verdict.check decides whom to trust).
    forged = json.loads(data)
    forged["report"]["narrative"] = "Nothing was agreed."
    other = sign_report(forged["report"], SigningKey(b"x" * 32))
    assert verify_report(other).fingerprint == fingerprint(bytes(SigningKey(b"x" * 32).verify_key))
    assert verify_report(other).fingerprint != verified.fingerprint

    path = tmp_path / "report.json"
    path.write_bytes(data)
    assert main(["verify", str(path), "--fingerprint", verified.fingerprint]) == 0
    assert verified.fingerprint in capsys.readouterr().out
    path.write_bytes(data.replace(b"Both banks", b"Both banKs"))
    assert main(["verify", str(path)]) == 1
    assert "NOT VALID" in capsys.readouterr().err
    path.write_bytes(data + b" ")
    assert main(["verify", str(path)]) == 1


def test_markdown_and_pdf_show_the_provenance_and_every_script(tmp_path):
    import io

    import pypdf

    from crossline.reports.render import to_markdown, to_pdf

    report = build_report(consultation(), 1_790_000_100_000)
    report["questions"][0]["prompt"] = "Ո՞րն է առաջինը — რა უნდა გაიხსნას — Что открыть первым?"
    markdown = to_markdown(report, "AB12 CD34", "f" * 64)
    assert "AB12 CD34" in markdown and "f" * 64 in markdown and "Reopen the bridge" in markdown
    pdf = to_pdf(report, "AB12 CD34", "f" * 64)
    assert pdf == to_pdf(report, "AB12 CD34", "f" * 64), "the same report gives the same PDF"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    for expected in ("AB12 CD34", "f" * 64, "Ո՞րն է առաջինը", "რა უნდა გაიხსნას", "Что открыть первым",
                     "Bridging recommendations", "Reopen the bridge"):
        assert expected in text
