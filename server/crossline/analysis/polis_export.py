"""Reading a Pol.is export folder (`comments.csv`, `votes.csv`) and an optional sides CSV.

Errors name the file, the line and what to fix. Nothing here computes: see `analysis`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossline.analysis.votes import VoteError, VoteTable, vote_table


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class PolisConversation:
    table: VoteTable
    texts: dict[int, str]  # statement id -> text (rejected ones left out)
    rejected: list[int]


def _rows(path: Path, required: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise ExportError(f"{path} is missing: a Pol.is export folder holds comments.csv and votes.csv.")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ExportError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}.")
        return list(reader)


def _integer(path: Path, line: int, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ExportError(f"{path}, line {line}: {column} must be a whole number, not {value!r}.") from None


def read_polis_export(folder: Path) -> PolisConversation:
    comments_path, votes_path = folder / "comments.csv", folder / "votes.csv"
    comments = _rows(comments_path, ["comment-id", "moderated", "comment-body"])
    rejected, texts = [], {}
    for line, row in enumerate(comments, start=2):
        comment = _integer(comments_path, line, "comment-id", row["comment-id"])
        if _integer(comments_path, line, "moderated", row["moderated"]) == -1:
            rejected.append(comment)
        else:
            texts[comment] = row["comment-body"]
    votes = _rows(votes_path, ["timestamp", "comment-id", "voter-id", "vote"])
    columns = {name: np.empty(len(votes), dtype=np.int64) for name in ("timestamp", "comment-id", "voter-id", "vote")}
    for line, row in enumerate(votes, start=2):
        for name, array in columns.items():
            array[line - 2] = _integer(votes_path, line, name, row[name])
    try:
        table = vote_table(columns["voter-id"], columns["comment-id"], columns["vote"], columns["timestamp"], rejected)
    except VoteError as error:
        raise ExportError(f"{votes_path}: {error}.") from None
    return PolisConversation(table, texts, rejected)


def read_sides(path: Path) -> dict[int, str]:
    """A CSV with columns `participant` (the Pol.is participant id) and `side`."""
    rows = _rows(path, ["participant", "side"])
    sides = {}
    for line, row in enumerate(rows, start=2):
        side = row["side"].strip()
        if not side:
            raise ExportError(f"{path}, line {line}: the side is empty.")
        sides[_integer(path, line, "participant", row["participant"])] = side
    return sides
