"""The vote table the analysis works on (pure).

Votes are kept sparse: a consultation of 10,000 people and 2,000 statements has 20 million cells
but perhaps a million votes. Values: agree = 1, disagree = -1, pass = 0 (the Pol.is export's
convention); a cell nobody voted is simply absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

AGREE, PASS, DISAGREE = 1, 0, -1


@dataclass(frozen=True)
class VoteTable:
    participants: np.ndarray  # participant ids, one per row, sorted
    statements: np.ndarray  # statement ids, one per column, sorted
    rows: np.ndarray  # int32, the row of each vote
    cols: np.ndarray  # int32, the column of each vote
    values: np.ndarray  # int8: 1, -1 or 0
    # Statements rejected by moderators are not in the table, but as in Pol.is they still count as
    # zeroed columns: in how many statements there are and in how much each participant voted.
    excluded_statements: int = 0
    votes_on_excluded: np.ndarray | None = None  # per participant

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.participants), len(self.statements)

    def matrix(self, values: np.ndarray | None = None) -> sparse.csr_array:
        """A participants x statements matrix holding `values` (default: the votes) at voted cells."""
        data = self.values if values is None else values
        return sparse.csr_array((data, (self.rows, self.cols)), shape=self.shape)

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-cell indicator matrices: agree, disagree, seen (passes included), as float CSR."""
        seen = np.ones(len(self.values), dtype=np.float64)
        return (self.matrix((self.values == AGREE).astype(np.float64)),
                self.matrix((self.values == DISAGREE).astype(np.float64)),
                self.matrix(seen))

    def votes_per_participant(self) -> np.ndarray:
        """Votes each participant cast, on excluded statements too."""
        votes = np.bincount(self.rows, minlength=self.shape[0])
        return votes if self.votes_on_excluded is None else votes + self.votes_on_excluded


class VoteError(ValueError):
    pass


def vote_table(participant_ids: Sequence | np.ndarray, statement_ids: Sequence | np.ndarray,
               values: Sequence | np.ndarray, times: Sequence | np.ndarray | None = None,
               excluded_statements: Sequence = ()) -> VoteTable:
    """Builds the table from one entry per vote. When a participant voted on a statement more than
    once, the latest counts: the one with the greatest time, or the last given without times.
    Excluded statements (rejected by moderators) that received votes are left out of the table
    and only counted (see VoteTable)."""
    participant_ids, statement_ids = np.asarray(participant_ids), np.asarray(statement_ids)
    values = np.asarray(values)
    if not len(participant_ids) == len(statement_ids) == len(values):
        raise VoteError("participants, statements and values must have one entry per vote")
    if len(values) and not np.isin(values, (AGREE, PASS, DISAGREE)).all():
        raise VoteError("a vote must be 1 (agree), -1 (disagree) or 0 (pass)")
    participants, rows = np.unique(participant_ids, return_inverse=True)
    statements, cols = np.unique(statement_ids, return_inverse=True)
    rows, cols, values = _latest_per_cell(rows, cols, values.astype(np.int8), len(statements), times)
    excluded = np.isin(statements, np.asarray(list(excluded_statements), dtype=statements.dtype))
    on_excluded = excluded[cols]
    kept_columns = np.cumsum(~excluded) - 1  # old column -> new column
    return VoteTable(participants, statements[~excluded], rows[~on_excluded].astype(np.int32),
                     kept_columns[cols[~on_excluded]].astype(np.int32), values[~on_excluded],
                     excluded_statements=int(excluded.sum()),
                     votes_on_excluded=np.bincount(rows[on_excluded], minlength=len(participants)))


def _latest_per_cell(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, columns: int,
                     times: Sequence | np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One vote per (row, column), the latest; sorted by row then column."""
    cell = rows.astype(np.int64) * columns + cols
    order = np.argsort(cell, kind="stable")  # repeats keep the order they were given in
    sorted_cells = cell[order]
    repeated = np.zeros(len(order), dtype=bool)
    if len(order):
        same = sorted_cells[1:] == sorted_cells[:-1]
        repeated[1:] |= same
        repeated[:-1] |= same
    if times is not None and repeated.any():
        # Only the (few) cells voted more than once are sorted again, by time (two votes at the
        # same instant: the higher value, so that the outcome never depends on input order).
        times = np.asarray(times)
        positions = np.flatnonzero(repeated)
        subset = order[positions]
        order[positions] = subset[np.lexsort((values[subset], times[subset], cell[subset]))]
    last = np.ones(len(order), dtype=bool)
    if len(order):
        last[:-1] = sorted_cells[1:] != sorted_cells[:-1]
    order = order[last]
    return rows[order], cols[order], values[order]
