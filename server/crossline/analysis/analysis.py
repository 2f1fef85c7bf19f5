"""The whole analysis of a vote table (pure, deterministic for a given seed).

Small-cell suppression is applied here, before anything leaves the engine: no figure for a side
or group with fewer than `min_cohort` members, and no per-statement figure that fewer than
`min_cohort` votes stand behind. Everything suppressed is listed, with why, in `suppressed`.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from crossline.analysis import scores
from crossline.analysis.clustering import Clustering, cluster
from crossline.analysis.votes import VoteTable

SMALLEST_ALLOWED_COHORT = 3


class AnalysisError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    min_cohort: int = 5  # k: smaller sides, groups and cells are suppressed
    seed: int = 0
    top: int = 5

    def __post_init__(self) -> None:
        if self.min_cohort < SMALLEST_ALLOWED_COHORT:
            raise AnalysisError(f"The smallest group shown (k) must be at least {SMALLEST_ALLOWED_COHORT}; "
                                f"{self.min_cohort} could identify people.")


@dataclass(frozen=True)
class Tally:
    agree: int
    disagree: int
    passed: int
    seen: int
    p_agree: float
    p_agree_interval: tuple[float, float]
    p_disagree: float
    p_disagree_interval: tuple[float, float]

    @property
    def majority_agrees(self) -> bool:
        return 2 * self.agree > self.seen


@dataclass(frozen=True)
class Cohort:
    kind: str  # "group" or "side"
    name: str
    members: int | None  # None when suppressed
    suppressed: str | None = None


@dataclass(frozen=True)
class StatementFigures:
    statement: object
    overall: Tally | None
    by_side: dict[str, Tally | None]
    by_group: dict[str, Tally | None]


@dataclass(frozen=True)
class Ranked:
    statement: object
    score: float
    direction: str  # "agree" or "disagree"
    cohort: str | None = None


@dataclass(frozen=True)
class Bridging:
    statement: object
    weakest_side: str
    weakest_support: float  # that side's smoothed probability of agreeing
    weakest_support_low: float  # the lower end of its 90% credible interval: the ranking key
    support_by_side: dict[str, float]


@dataclass(frozen=True)
class Analysis:
    settings: Settings
    participants: int
    clustered: int
    statements: list[StatementFigures]
    groups: list[Cohort]
    sides: list[Cohort]
    participant_groups: dict[object, str | None]
    representative: dict[str, list[Ranked]]
    consensus: list[Ranked]
    group_consensus: list[Ranked]
    side_consensus: list[Ranked]
    bridging: list[Bridging]
    one_side_only: list[Ranked]
    divisive: list[Ranked]
    silhouettes: dict[int, float]
    suppressed: list[str] = field(default_factory=list)


def group_name(index: int) -> str:
    letters = string.ascii_uppercase
    return f"Group {letters[index]}" if index < len(letters) else f"Group {index + 1}"


def analyze(table: VoteTable, sides: Mapping[object, str] | None = None, settings: Settings = Settings()) -> Analysis:
    k = settings.min_cohort
    suppressed: list[str] = []
    clustering = cluster(table, settings.seed)

    group_of_row = np.full(table.shape[0], -1)
    group_of_row[clustering.clustered] = clustering.group_labels
    groups, group_shown = _cohorts("group", [group_name(g) for g in range(clustering.group_count)],
                                   np.bincount(clustering.group_labels, minlength=clustering.group_count), k, suppressed)
    side_names = sorted(set((sides or {}).values()))
    side_index = {name: i for i, name in enumerate(side_names)}
    side_of_row = np.array([side_index.get((sides or {}).get(_plain(p)), -1) for p in table.participants], dtype=int) \
        if table.shape[0] else np.zeros(0, dtype=int)
    side_sizes = np.bincount(side_of_row[side_of_row >= 0], minlength=len(side_names))
    side_cohorts, side_shown = _cohorts("side", side_names, side_sizes, k, suppressed)

    everyone = scores.cohort_counts(table, np.zeros(table.shape[0], dtype=int), 1)
    by_group = scores.cohort_counts(table, group_of_row, clustering.group_count)
    by_side = scores.cohort_counts(table, side_of_row, len(side_names))
    overall_tallies = _tallies(everyone, k)[0]
    group_tallies = _tallies(by_group, k)
    side_tallies = _tallies(by_side, k)
    hidden_cells = sum(t is None for row in (overall_tallies, *group_tallies, *side_tallies) for t in row)
    if hidden_cells:
        suppressed.append(f"{hidden_cells} per-statement figures are not shown: fewer than {k} votes stand behind each.")

    statement_ids = [_plain(s) for s in table.statements]
    figures = [
        StatementFigures(
            statement_ids[s], overall_tallies[s],
            {side_names[i]: side_tallies[i][s] for i in range(len(side_names)) if side_shown[i]},
            {group_name(g): group_tallies[g][s] for g in range(clustering.group_count) if group_shown[g]},
        )
        for s in range(table.shape[1])
    ]
    return Analysis(
        settings=settings,
        participants=table.shape[0],
        clustered=len(clustering.clustered),
        statements=figures,
        groups=groups,
        sides=side_cohorts,
        participant_groups=_participant_groups(table, clustering, group_shown),
        representative=_representative(by_group, group_shown, statement_ids, settings),
        consensus=_consensus(everyone, statement_ids, settings),
        group_consensus=_aware_consensus(by_group, group_shown, statement_ids, settings),
        side_consensus=_aware_consensus(by_side, side_shown, statement_ids, settings),
        bridging=_bridging(side_tallies, side_names, side_shown, statement_ids, suppressed, k),
        one_side_only=_one_side_only(side_tallies, side_names, side_shown, statement_ids),
        divisive=_divisive([(side_names[i], side_tallies[i]) for i in range(len(side_names)) if side_shown[i]]
                           + [(group_name(g), group_tallies[g]) for g in range(clustering.group_count) if group_shown[g]],
                           statement_ids, settings),
        silhouettes=dict(clustering.silhouettes),
        suppressed=suppressed,
    )


def _plain(value: object) -> object:
    """numpy scalars become Python ones, so that ids print and serialise as given."""
    return value.item() if isinstance(value, np.generic) else value


def _cohorts(kind: str, names: list[str], sizes: np.ndarray, k: int, suppressed: list[str]) -> tuple[list[Cohort], list[bool]]:
    cohorts, shown = [], []
    for name, size in zip(names, sizes, strict=True):
        if size < k:
            cohorts.append(Cohort(kind, name, None, f"fewer than {k} members"))
            suppressed.append(f"{kind.capitalize()} “{name}” has fewer than {k} members: its figures are not shown.")
        else:
            cohorts.append(Cohort(kind, name, int(size)))
        shown.append(size >= k)
    return cohorts, shown


def _tallies(counts: scores.Counts, k: int) -> list[list[Tally | None]]:
    p_agree = scores.probability(counts.agree, counts.seen)
    p_disagree = scores.probability(counts.disagree, counts.seen)
    agree_low, agree_high = scores.credible_interval(counts.agree, counts.seen)
    disagree_low, disagree_high = scores.credible_interval(counts.disagree, counts.seen)
    passed = counts.passed
    rows = []
    for c in range(counts.seen.shape[0]):
        row: list[Tally | None] = []
        for s in range(counts.seen.shape[1]):
            if counts.seen[c, s] < k:
                row.append(None)
                continue
            row.append(Tally(int(counts.agree[c, s]), int(counts.disagree[c, s]), int(passed[c, s]), int(counts.seen[c, s]),
                             round(float(p_agree[c, s]), 4),
                             (round(float(agree_low[c, s]), 4), round(float(agree_high[c, s]), 4)),
                             round(float(p_disagree[c, s]), 4),
                             (round(float(disagree_low[c, s]), 4), round(float(disagree_high[c, s]), 4))))
        rows.append(row)
    return rows


def _participant_groups(table: VoteTable, clustering: Clustering, shown: list[bool]) -> dict[object, str | None]:
    groups: dict[object, str | None] = {_plain(p): None for p in table.participants}
    for row, label in zip(clustering.clustered, clustering.group_labels, strict=True):
        if shown[label]:
            groups[_plain(table.participants[row])] = group_name(int(label))
    return groups


def _top(scores_: np.ndarray, eligible: np.ndarray, top: int) -> list[int]:
    candidates = np.flatnonzero(eligible)
    order = np.lexsort((candidates, -scores_[candidates]))  # ties: by statement order
    return [int(i) for i in candidates[order][:top]]


def _representative(counts: scores.Counts, shown: list[bool], ids: list, settings: Settings) -> dict[str, list[Ranked]]:
    if not any(shown):
        return {}
    rep = scores.representativeness(counts)
    enough = counts.seen >= settings.min_cohort
    result = {}
    for g, visible in enumerate(shown):
        if not visible:
            continue
        agree_score = np.where(rep.agree_ok[g] & enough[g], rep.agree_score[g], -np.inf)
        disagree_score = np.where(rep.disagree_ok[g] & enough[g], rep.disagree_score[g], -np.inf)
        best = np.maximum(agree_score, disagree_score)
        picked = _top(best, np.isfinite(best), settings.top)
        result[group_name(g)] = [Ranked(ids[s], round(float(best[s]), 4),
                                        "agree" if agree_score[s] >= disagree_score[s] else "disagree", group_name(g))
                                 for s in picked]
    return result


def _consensus(everyone: scores.Counts, ids: list, settings: Settings) -> list[Ranked]:
    ranked = []
    enough = everyone.seen[0] >= settings.min_cohort
    for direction, successes in (("agree", everyone.agree[0]), ("disagree", everyone.disagree[0])):
        p = scores.probability(successes, everyone.seen[0])
        sure = scores.certainty(successes, everyone.seen[0])
        score = p * sure
        for s in _top(score, enough & (p > 0.5) & (sure > scores.Z_90), settings.top):
            ranked.append(Ranked(ids[s], round(float(score[s]), 4), direction))
    return ranked


def _aware_consensus(counts: scores.Counts, shown: list[bool], ids: list, settings: Settings) -> list[Ranked]:
    visible = [i for i, ok in enumerate(shown) if ok]
    if len(visible) < 2:
        return []
    subset = scores.Counts(counts.agree[visible], counts.disagree[visible], counts.seen[visible])
    score = scores.group_aware_consensus(subset)
    enough = (subset.seen >= settings.min_cohort).all(axis=0)
    return [Ranked(ids[s], round(float(score[s]), 4), "agree") for s in _top(score, enough, settings.top)]


def _bridging(side_tallies: list[list[Tally | None]], side_names: list[str], shown: list[bool], ids: list,
              suppressed: list[str], k: int) -> list[Bridging]:
    if len(side_names) < 2:
        return []
    if not all(shown):
        suppressed.append(f"No bridging recommendations: every side needs at least {k} members to be shown.")
        return []
    found = []
    for s in range(len(ids)):
        tallies = [side_tallies[i][s] for i in range(len(side_names))]
        if all(t is not None and t.majority_agrees for t in tallies):
            weakest = min(range(len(tallies)), key=lambda i: (tallies[i].p_agree_interval[0], i))
            found.append(Bridging(ids[s], side_names[weakest], tallies[weakest].p_agree,
                                  tallies[weakest].p_agree_interval[0],
                                  {side_names[i]: tallies[i].p_agree for i in range(len(tallies))}))
    return sorted(found, key=lambda b: (-b.weakest_support_low, -b.weakest_support, ids.index(b.statement)))


def _one_side_only(side_tallies: list[list[Tally | None]], side_names: list[str], shown: list[bool],
                   ids: list) -> list[Ranked]:
    """Statements a majority of one side (or some sides) agrees with, but not every side."""
    if len(side_names) < 2 or not all(shown):
        return []
    found = []
    for s in range(len(ids)):
        tallies = [side_tallies[i][s] for i in range(len(side_names))]
        carried = [i for i, t in enumerate(tallies) if t is not None and t.majority_agrees]
        if carried and len(carried) < len(tallies):
            best = max(carried, key=lambda i: (tallies[i].p_agree, -i))
            found.append(Ranked(ids[s], tallies[best].p_agree, "agree", side_names[best]))
    return sorted(found, key=lambda r: (-r.score, ids.index(r.statement)))


def _divisive(cohorts: list[tuple[str, list[Tally | None]]], ids: list, settings: Settings) -> list[Ranked]:
    """Where the cohorts' agreement differs most: the spread between the most and the least
    agreeing cohort (figures shown for both)."""
    spreads = np.full(len(ids), -np.inf)
    leaders: list[str | None] = [None] * len(ids)
    for s in range(len(ids)):
        shown = [(name, tallies[s]) for name, tallies in cohorts if tallies[s] is not None]
        if len(shown) < 2:
            continue
        most = max(shown, key=lambda item: item[1].p_agree)
        least = min(shown, key=lambda item: item[1].p_agree)
        spreads[s] = most[1].p_agree - least[1].p_agree
        leaders[s] = most[0]
    return [Ranked(ids[s], round(float(spreads[s]), 4), "agree", leaders[s])
            for s in _top(spreads, np.isfinite(spreads) & (spreads > 0), settings.top * 2)]
