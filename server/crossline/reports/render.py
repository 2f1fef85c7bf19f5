"""A released report as Markdown and PDF (pure: bytes and text out). The HTML is a jinja2 template
in the web package. Every format shows the hub key's fingerprint and the signed JSON's SHA-256, so
a reader can check any copy against the JSON with `crossline verify`."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

from fpdf import FPDF


def _side_line(by_side: dict) -> str:
    return "; ".join(
        f"{side}: {v['agree_percent']}% agree ({v['agree']} agree, {v['disagree']} disagree, {v['pass']} pass)"
        if v else f"{side}: not shown (too few votes)" for side, v in by_side.items())


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60} s"


def sections(report: dict) -> list[tuple[str, list[str]]]:
    """The report as headed lists of paragraphs, shared by Markdown and PDF."""
    out: list[tuple[str, list[str]]] = []
    for q in report["questions"]:
        out.append((f"Question {q['position']}: {q['prompt']}", []))
        bridging = [f"Statement {b['number']}: “{b['text']}” — least support: {b['weakest_side']}, "
                    f"{b['weakest_side_agree_percent']}% (at least {b['weakest_side_agree_percent_at_least']}%). "
                    + _side_line(b["by_side"]) for b in q["bridging"]]
        out.append(("Bridging recommendations (a majority on every side agrees)", bridging or ["None."]))
        out.append(("Consensus", [f"Statement {c['number']}: “{c['text']}” — most {c['direction']}."
                                  for c in q["consensus"]] or ["None."]))
        out.append(("Where the sides differ", [f"Statement {d['number']}: “{d['text']}” — {d['difference_percent']} points apart. "
                                               + _side_line(d["by_side"]) for d in q["divisive"]] or ["None."]))
        out.append(("Carried by one side only", [f"Statement {s['number']}: “{s['text']}” — {s['side']} "
                                                 f"{s['agree_percent']}%. " + _side_line(s["by_side"])
                                                 for s in q["one_side_only"]] or ["None."]))
    out.append(("Participation by side", [
        f"{p['side']}: {p['members']} members, {p['voted'] if p['voted'] is not None else 'too few to show'} voted, "
        f"{p['statements']} statements" if p["members"] is not None else f"{p['side']}: not shown (too few members)"
        for p in report["participation"]]))
    for live in report.get("live_sessions", []):
        out.append((f"Live session {live['session']}: speaking time by side", [
            f"{side}: {_minutes(seconds)}" if seconds is not None else f"{side}: not shown (too few people)"
            for side, seconds in live["speaking_seconds_by_side"].items()]))
    if report["narrative"]:
        out.append(("From the facilitators", report["narrative"].split("\n\n")))
    out.append(("Method", [report["method"]]))
    if report["suppressed"]:
        out.append(("Not shown, to protect small groups", report["suppressed"]))
    return out


def title(report: dict) -> str:
    c = report["consultation"]
    return f"{c['title']} — {c['line']} — report version {report['version']}"


def provenance(report: dict, fingerprint: str, digest: str) -> list[str]:
    lines = [f"Released {report['released_at']}; consultation closed {report['consultation']['closed_at']}.",
             f"Signed with the hub key whose fingerprint is {fingerprint}.",
             f"SHA-256 of the signed JSON: {digest}. Check it with: crossline verify REPORT.json"]
    if report["replaces"]:
        lines.append(f"This version corrects version {report['replaces']['version']} "
                     f"(SHA-256 {report['replaces']['sha256']}).")
    return lines


def to_markdown(report: dict, fingerprint: str, digest: str) -> str:
    out = [f"# {title(report)}", ""]
    out += [f"> {line}" for line in provenance(report, fingerprint, digest)] + [""]
    for heading, paragraphs in sections(report):
        level = "##" if heading.startswith("Question") or heading in ("Participation by side", "Method") else "###"
        out += [f"{level} {heading}", ""]
        out += [f"- {p}" if len(paragraphs) > 1 or heading.startswith(("Bridging", "Consensus", "Where", "Carried"))
                else p for p in paragraphs] if paragraphs else []
        out.append("")
    return "\n".join(out)


def to_pdf(report: dict, fingerprint: str, digest: str) -> bytes:
    fonts = resources.files("crossline.reports").joinpath("fonts")
    pdf = FPDF(format="A4")
    # Dated by the release, not by the clock: the same report always gives the same file.
    pdf.set_creation_date(datetime.strptime(report["released_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
    pdf.add_font("DejaVu", "", str(fonts.joinpath("DejaVuSans.ttf")))
    pdf.add_font("DejaVu", "B", str(fonts.joinpath("DejaVuSans-Bold.ttf")))
    pdf.set_title(title(report))
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.multi_cell(0, 8, title(report), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8)
    for line in provenance(report, fingerprint, digest):
        pdf.multi_cell(0, 4.5, line, new_x="LMARGIN", new_y="NEXT")
    for heading, paragraphs in sections(report):
        pdf.ln(3)
        pdf.set_font("DejaVu", "B", 12 if heading.startswith("Question") else 10.5)
        pdf.multi_cell(0, 6, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 9.5)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 5, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
    return bytes(pdf.output())
