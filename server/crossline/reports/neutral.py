"""Member text made safe to show in a report (pure): titles, names, prompts, statements and
narratives keep every letter of every script, but lose what could reorder or hide text around them.

Dropped: every format character (Unicode category Cf: the bidirectional embeddings, overrides,
isolates and marks, the byte-order mark, zero-width spaces, invisible operators, the soft hyphen,
the deprecated format characters, tags…), C0 and C1 controls (a newline is kept only where a format
shows paragraphs), and the characters that show as nothing though they are letters or marks (the
combining grapheme joiner, the Hangul fillers, the braille blank). The zero-width joiner and
non-joiner (Cf too) are kept between two letters (Persian, Arabic, Devanagari and others need them
inside words) or inside an emoji sequence, dropped elsewhere. A deny-list of named characters
would miss the next invisible one; a whole category does not.
Direction is then set structurally by each format: a `<bdi>` or `dir="auto"` element in HTML, an
isolate (FSI…PDI) around the text in Markdown, a cell of its own in the PDF.
"""

from __future__ import annotations

import re
import unicodedata

FSI, PDI = "\u2068", "\u2069"
_JOINERS = "\u200c\u200d"
_CONTROLS = re.compile("[\u0000-\u0009\u000b-\u001f\u007f-\u009f]")  # all but the newline
_FILLERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
_LINE_BREAKS = re.compile("\r\n|[\r\u2028\u2029\u0085]")
_MARKDOWN_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def _joins(before: str, after: str) -> bool:
    return all(unicodedata.category(c)[0] in "LM" or unicodedata.category(c) == "So" for c in (before, after))


def neutral(text: object, paragraphs: bool = False) -> str:
    """`text` as a report may show it. One line unless `paragraphs` (then newlines are kept,
    with no more than one blank line in a row)."""
    text = _LINE_BREAKS.sub("\n", str(text)).replace("\t", " ")
    # A lone surrogate cannot be shown (nor encoded): it becomes "?".
    text = text.encode("utf-8", "replace").decode("utf-8") if any("\ud800" <= c <= "\udfff" for c in text) else text
    text = "".join(c for c in _CONTROLS.sub("", text)
                   if c in _JOINERS or not (c in _FILLERS or unicodedata.category(c) == "Cf"))
    text = "".join(c for i, c in enumerate(text) if c not in _JOINERS or (
        0 < i < len(text) - 1 and _joins(text[i - 1], text[i + 1])))
    if not paragraphs:
        return " ".join(text.split())
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub("\n{3,}", "\n\n", "\n".join(lines)).strip()


def isolated(text: object) -> str:
    """One line of member text in its own direction isolate, for plain-text formats."""
    return FSI + neutral(text) + PDI


def _escaped(text: str) -> str:
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def markdown_inline(text: object) -> str:
    """Member text inside a line of Markdown: every ASCII punctuation character escaped (CommonMark
    lets any be), so nothing she wrote opens emphasis, a link, code, a table cell, a heading or HTML."""
    return FSI + _escaped(neutral(text)) + PDI


def markdown_quote(text: object) -> list[str]:
    """Member text as a Markdown blockquote of its own: every line starts with '>', so no line she
    wrote can end the quote or start a heading, list or table."""
    out = []
    for line in neutral(text, paragraphs=True).split("\n"):
        out.append(f"> {FSI}{_escaped(line)}{PDI}" if line else ">")
    return out


def neutral_tree(value):
    """Every string in a report (keys too) neutralised, for templates that show it."""
    if isinstance(value, dict):
        return {neutral(k) if isinstance(k, str) else k: neutral_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [neutral_tree(v) for v in value]
    if isinstance(value, str):
        return neutral(value, paragraphs=True)
    return value
