"""Helpers for the analysis tests and benchmarks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.special import comb

# Real Pol.is conversations (CC BY 4.0, The Computational Democracy Project; see the README there).
POLIS_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "polis"


def adjusted_rand_index(a: list, b: list) -> float:
    """Agreement of two partitions of the same items, corrected for chance (1 = identical)."""
    _, a_codes = np.unique(np.asarray(a, dtype=str), return_inverse=True)
    _, b_codes = np.unique(np.asarray(b, dtype=str), return_inverse=True)
    table = np.zeros((a_codes.max() + 1, b_codes.max() + 1))
    np.add.at(table, (a_codes, b_codes), 1)
    pairs = comb(table, 2).sum()
    a_pairs, b_pairs = comb(table.sum(axis=1), 2).sum(), comb(table.sum(axis=0), 2).sum()
    expected = a_pairs * b_pairs / comb(len(a_codes), 2)
    best = (a_pairs + b_pairs) / 2
    return float((pairs - expected) / (best - expected))


def polis_groups(folder: Path) -> dict[int, str]:
    """The opinion group Pol.is itself gave each participant it clustered."""
    with (folder / "participants-votes.csv").open(newline="", encoding="utf-8") as handle:
        return {int(row["participant"]): row["group-id"] for row in csv.DictReader(handle) if row["group-id"] != ""}


def agreement_with_polis(folder: Path, ours: dict) -> tuple[float, int]:
    """(ARI, participants compared) over the participants both Pol.is and we placed in a group."""
    theirs = polis_groups(folder)
    common = sorted(p for p, g in ours.items() if g is not None and int(p) in theirs)
    return adjusted_rand_index([ours[p] for p in common], [theirs[int(p)] for p in common]), len(common)
