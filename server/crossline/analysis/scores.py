"""Per-cohort vote counts and the Pol.is scores built on them (pure, vectorised).

A cohort is a set of participants: an opinion group or a declared side. For cohort g and
statement s: na, nd = agrees and disagrees in g; ns = all votes g cast on s (passes included).
- pa = (na + 1) / (ns + 2), the smoothed probability of agreeing, with a 90% credible interval
  from its Beta(na + 1, ns - na + 1) posterior;
- pat = 2 sqrt(ns + 1) ((na + 1) / (ns + 1) - 0.5), how sure we are that agreement beats 50%;
- ra = pa / pa of everyone else, rat = two-proportion z-test against everyone else (+1 smoothing).
The same with nd for disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from crossline.analysis.votes import VoteTable

Z_90 = 1.2816  # one-sided 90% confidence


@dataclass(frozen=True)
class Counts:
    """cohorts x statements arrays."""
    agree: np.ndarray
    disagree: np.ndarray
    seen: np.ndarray

    @property
    def passed(self) -> np.ndarray:
        return self.seen - self.agree - self.disagree


def cohort_counts(table: VoteTable, membership: np.ndarray, cohorts: int) -> Counts:
    """`membership[row]` is the cohort of each participant row, or -1 for none."""
    members = np.flatnonzero(membership >= 0)
    onehot = sparse.csr_array((np.ones(len(members)), (membership[members], members)), shape=(cohorts, table.shape[0]))
    agree, disagree, seen = table.counts()
    return Counts(*(np.asarray((onehot @ m).todense()).astype(np.int64) if cohorts else np.zeros((0, table.shape[1]), int)
                    for m in (agree, disagree, seen)))


def probability(successes: np.ndarray, seen: np.ndarray) -> np.ndarray:
    return (successes + 1) / (seen + 2)


def credible_interval(successes: np.ndarray, seen: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - level) / 2
    a, b = successes + 1, seen - successes + 1
    return stats.beta.ppf(tail, a, b), stats.beta.ppf(1 - tail, a, b)


def certainty(successes: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Pol.is's pat: a z-like score that the proportion is above one half."""
    return 2 * np.sqrt(seen + 1) * ((successes + 1) / (seen + 1) - 0.5)


def two_proportion_z(success_in: np.ndarray, success_out: np.ndarray, seen_in: np.ndarray,
                     seen_out: np.ndarray) -> np.ndarray:
    s1, s2, n1, n2 = success_in + 1, success_out + 1, seen_in + 1, seen_out + 1
    pooled = (s1 + s2) / (n1 + n2)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return np.divide(s1 / n1 - s2 / n2, spread, out=np.zeros(np.broadcast(s1, s2).shape), where=spread > 0)


@dataclass(frozen=True)
class Representativeness:
    """cohorts x statements: the representativeness score for agreeing and disagreeing, and
    whether each clears both thresholds."""
    agree_score: np.ndarray
    disagree_score: np.ndarray
    agree_ok: np.ndarray
    disagree_ok: np.ndarray


def representativeness(counts: Counts) -> Representativeness:
    total = Counts(counts.agree.sum(axis=0), counts.disagree.sum(axis=0), counts.seen.sum(axis=0))
    result = []
    for mine, everyone in ((counts.agree, total.agree), (counts.disagree, total.disagree)):
        rest, rest_seen = everyone[np.newaxis, :] - mine, total.seen[np.newaxis, :] - counts.seen
        p = probability(mine, counts.seen)
        ratio = p / probability(rest, rest_seen)
        z = two_proportion_z(mine, rest, counts.seen, rest_seen)
        sure = certainty(mine, counts.seen)
        result.append((ratio * z * p * sure, (z > Z_90) & (sure > Z_90)))
    (agree_score, agree_ok), (disagree_score, disagree_ok) = result
    return Representativeness(agree_score, disagree_score, agree_ok, disagree_ok)


def group_aware_consensus(counts: Counts) -> np.ndarray:
    """Per statement: the product over cohorts of (agrees + 1) / (seen + 2). High only when every
    cohort agrees."""
    return np.prod(probability(counts.agree, counts.seen), axis=0)
