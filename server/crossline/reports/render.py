"""A released report as Markdown and PDF (pure: bytes and text out). The HTML is a jinja2 template
in the web package. Every format shows the hub key's fingerprint and the signed JSON's SHA-256, so
a reader can check any copy against the JSON with `crossline verify`.

Member text (titles, names, prompts, statements, narrative) is neutralised (reports/neutral.py) and
kept in a place of its own: a statement is a Markdown blockquote or a shaded PDF cell, never text
between quotation marks that the statement itself could close, and the hub's figures follow it in
their own paragraph.

Nothing she wrote may vanish from the PDF: a character the bundled DejaVu fonts cannot draw is
replaced by its compatibility form where that one can be drawn (fullwidth or mathematical-bold
"ＮＯＴ" → "NOT"), else by a visible placeholder (�), and the copy then says that the HTML and JSON
copies hold the exact text. Text is shaped (HarfBuzz): Arabic joined, right-to-left text in its order.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from fpdf import FPDF

from crossline.reports.neutral import markdown_inline, markdown_quote, neutral

# fpdf logs each glyph a font lacks, quoting the characters: member text must never reach the log.
logging.getLogger("fpdf").setLevel(logging.ERROR)
PLACEHOLDER = "\ufffd"
NOT_DRAWN_NOTE = (f"Some characters in this report cannot be drawn with this PDF's fonts and are shown as "
                  f"{PLACEHOLDER}: the HTML and JSON copies hold the exact text.")


@dataclass(frozen=True)
class Item:
    """One entry of a section: a member's words shown apart (`quote`, after `label`), then the hub's text."""
    text: str
    label: str = ""
    quote: str | None = None


def _side_line(by_side: dict, esc: Callable[[str], str]) -> str:
    return "; ".join(
        f"{esc(side)}: {v['agree_percent']}% agree ({v['agree']} agree, {v['disagree']} disagree, {v['pass']} pass)"
        if v else f"{esc(side)}: not shown (too few votes)" for side, v in by_side.items())


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60} s"


def sections(report: dict, esc: Callable[[str], str] = neutral) -> list[tuple[str, list[Item]]]:
    """The report as headed lists of items, shared by Markdown and PDF. `esc` makes a member's name
    or prompt safe inside one line of the format; statements and the narrative are left for the
    format to quote as blocks."""
    def statement(s: dict, figures: str) -> Item:
        return Item(figures, f"Statement {s['number']}", s["text"])

    out: list[tuple[str, list[Item]]] = []
    for q in report["questions"]:
        out.append((f"Question {q['position']}: {esc(q['prompt'])}", []))
        bridging = [statement(b, f"Least support: {esc(b['weakest_side'])}, {b['weakest_side_agree_percent']}% "
                                 f"(at least {b['weakest_side_agree_percent_at_least']}%). "
                                 + _side_line(b["by_side"], esc)) for b in q["bridging"]]
        out.append(("Bridging recommendations (a majority on every side agrees)", bridging or [Item("None.")]))
        out.append(("Consensus", [statement(c, f"Most {c['direction']}.") for c in q["consensus"]] or [Item("None.")]))
        out.append(("Where the sides differ", [statement(d, f"{d['difference_percent']} points apart. "
                                                         + _side_line(d["by_side"], esc)) for d in q["divisive"]]
                    or [Item("None.")]))
        out.append(("Carried by one side only", [statement(s, f"{esc(s['side'])}: {s['agree_percent']}%. "
                                                            + _side_line(s["by_side"], esc))
                                                  for s in q["one_side_only"]] or [Item("None.")]))
    out.append(("Participation by side", [Item(
        f"{esc(p['side'])}: {p['members']} members, {p['voted'] if p['voted'] is not None else 'too few to show'} "
        f"voted, {p['statements']} statements" if p["members"] is not None
        else f"{esc(p['side'])}: not shown (too few members)") for p in report["participation"]]))
    for live in report.get("live_sessions", []):
        out.append((f"Live session {live['session']}: speaking time by side", [Item(
            f"{esc(side)}: {_minutes(seconds)}" if seconds is not None else f"{esc(side)}: not shown (too few people)")
            for side, seconds in live["speaking_seconds_by_side"].items()]))
    if report["narrative"]:
        out.append(("From the facilitators", [Item("", quote=p) for p in report["narrative"].split("\n\n")]))
    out.append(("Method", [Item(report["method"])]))
    if report["suppressed"]:
        out.append(("Not shown, to protect small groups", [Item(esc(note)) for note in report["suppressed"]]))
    return out


def title(report: dict, esc: Callable[[str], str] = neutral) -> str:
    c = report["consultation"]
    return f"{esc(c['title'])} — {esc(c['line'])} — report version {report['version']}"


def provenance(report: dict, fingerprint: str, digest: str, esc: Callable[[str], str] = neutral) -> list[str]:
    c = report["consultation"]
    hub = report.get("hub")
    lines = [f"Released {report['released_at']}; consultation {c['id']} closed {c['closed_at']}."
             + (f" Hub: {esc(hub['server_name'])} ({esc(hub['url'])})." if hub else ""),
             f"Signed with the hub key whose fingerprint is {fingerprint}.",
             f"SHA-256 of the signed JSON: {digest}. Check it with: crossline verify REPORT.json"]
    if report["replaces"]:
        lines.append(f"This version corrects version {report['replaces']['version']} "
                     f"(SHA-256 {report['replaces']['sha256']}).")
    return lines


def to_markdown(report: dict, fingerprint: str, digest: str) -> str:
    out = [f"# {title(report, markdown_inline)}", ""]
    out += [f"> {line}" for line in provenance(report, fingerprint, digest, markdown_inline)] + [""]
    for heading, items in sections(report, markdown_inline):
        level = "##" if heading.startswith("Question") or heading in ("Participation by side", "Method") else "###"
        out += [f"{level} {heading}", ""]
        for item in items:
            if item.label:
                out += [f"**{item.label}:**", ""]
            if item.quote is not None:
                out += markdown_quote(item.quote) + [""]
            if item.text:
                out += [item.text, ""]
    return "\n".join(out)


class _Drawable:
    """Text as the PDF's fonts can draw it (every character of a text must be drawable in both weights)."""

    def __init__(self, *cmaps: dict[int, object]):
        self._known = set.intersection(*(set(cmap) for cmap in cmaps))

    def _char(self, c: str) -> str:
        if ord(c) in self._known or c in "\n ":
            return c
        compatible = unicodedata.normalize("NFKC", c)
        return compatible if all(ord(k) in self._known for k in compatible) else PLACEHOLDER

    def __call__(self, text: str) -> str:
        return "".join(self._char(c) for c in unicodedata.normalize("NFC", text))

    def all_drawn(self, texts: list[str]) -> bool:
        return not any(c != PLACEHOLDER and self._char(c) == PLACEHOLDER
                       for t in texts for c in unicodedata.normalize("NFC", t))


def to_pdf(report: dict, fingerprint: str, digest: str) -> bytes:
    fonts = resources.files("crossline.reports").joinpath("fonts")
    pdf = FPDF(format="A4")
    # Dated by the release, not by the clock: the same report always gives the same file.
    pdf.set_creation_date(datetime.strptime(report["released_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
    pdf.add_font("DejaVu", "", str(fonts.joinpath("DejaVuSans.ttf")))
    pdf.add_font("DejaVu", "B", str(fonts.joinpath("DejaVuSans-Bold.ttf")))
    pdf.set_text_shaping(True)
    drawable = _Drawable(pdf.fonts["dejavu"].cmap, pdf.fonts["dejavuB"].cmap)
    parts = sections(report)
    texts = [title(report)] + [h for h, _ in parts] + [t for _, items in parts for i in items
                                                         for t in (i.text, i.quote or "")]
    pdf.set_title(drawable(title(report)))
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.multi_cell(0, 8, drawable(title(report)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8)
    notes = [] if drawable.all_drawn(texts) else [NOT_DRAWN_NOTE]
    for line in provenance(report, fingerprint, digest) + notes:
        pdf.multi_cell(0, 4.5, drawable(line), new_x="LMARGIN", new_y="NEXT")
    pdf.set_fill_color(236, 236, 236)
    pdf.set_draw_color(0)
    pdf.set_line_width(0.8)
    for heading, items in parts:
        pdf.ln(3)
        pdf.set_font("DejaVu", "B", 12 if heading.startswith("Question") else 10.5)
        pdf.multi_cell(0, 6, drawable(heading), new_x="LMARGIN", new_y="NEXT")
        for item in items:
            if item.label:
                pdf.set_font("DejaVu", "B", 9.5)
                pdf.multi_cell(0, 5, item.label + ":", new_x="LMARGIN", new_y="NEXT")
            if item.quote is not None:
                # Her words in a shaded, indented cell of their own: nothing in them can end it. A black
                # rule on its left keeps it apart where the shade does not print (black and white).
                pdf.set_font("DejaVu", "", 9.5)
                pdf.set_x(pdf.l_margin + 6)
                pdf.multi_cell(0, 5, drawable(neutral(item.quote, paragraphs=True)), fill=True, border="L",
                               new_x="LMARGIN", new_y="NEXT")
            if item.text:
                pdf.set_font("DejaVu", "", 9.5)
                pdf.multi_cell(0, 5, drawable(item.text), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
    return bytes(pdf.output())
