"""Opinion groups the Pol.is way (pure, deterministic for a given seed).

1. Who is clustered: everyone who voted on at least min(7, statements) statements; if fewer than
   15 qualify, the heaviest voters are added up to 15.
2. Missing votes are imputed with the statement's mean vote, so after centring the matrix is as
   sparse as the votes; its two principal components come from subspace iteration on that sparse
   matrix (a few sparse products instead of a dense 10,000 x 2,000 decomposition).
3. A participant's position uses only the statements she voted on, scaled by
   sqrt(statements / her votes), so people who voted little are not pulled to the centre.
4. k-means in two steps: up to 100 fine base clusters of participants, then weighted k-means on
   the base centres for k = 2 .. min(5, 2 + base clusters // 12); the best silhouette wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.spatial import distance

from crossline.analysis.votes import VoteTable

MIN_VOTES = 7
MIN_CLUSTERED = 15
BASE_CLUSTERS = 100
MAX_GROUPS = 5
KMEANS_ITERATIONS = 100


@dataclass(frozen=True)
class Clustering:
    clustered: np.ndarray  # row indices of the participants who were clustered
    projection: np.ndarray  # their 2-D positions, one row each
    components: np.ndarray  # 2 x statements
    base_labels: np.ndarray  # base cluster of each clustered participant
    group_labels: np.ndarray  # opinion group of each clustered participant, 0..k-1
    silhouettes: dict[int, float]  # k -> silhouette of the best clustering with k groups

    @property
    def group_count(self) -> int:
        return int(self.group_labels.max()) + 1 if len(self.group_labels) else 0


def clustered_participants(votes_per_participant: np.ndarray, statement_count: int) -> np.ndarray:
    threshold = min(MIN_VOTES, statement_count)
    chosen = np.flatnonzero(votes_per_participant >= threshold)
    if len(chosen) < MIN_CLUSTERED:
        # The heaviest voters, ties broken by row, up to 15 (those who voted at all).
        heaviest = np.lexsort((np.arange(len(votes_per_participant)), -votes_per_participant))
        heaviest = heaviest[votes_per_participant[heaviest] > 0][:MIN_CLUSTERED]
        chosen = np.union1d(chosen, heaviest)
    return chosen


def centred_matrix(table: VoteTable, rows: np.ndarray) -> tuple[sparse.csr_array, np.ndarray]:
    """The clustered participants' votes minus each statement's mean vote (their mean-imputed,
    centred matrix, which is zero wherever they did not vote), and the votes each cast."""
    matrix = table.matrix(table.values.astype(np.float64))[rows]
    seen = table.matrix(np.ones(len(table.values)))[rows]
    counts = np.asarray(seen.sum(axis=0)).ravel()
    means = np.divide(np.asarray(matrix.sum(axis=0)).ravel(), counts, out=np.zeros(len(counts)), where=counts > 0)
    centred = matrix - seen.multiply(means[np.newaxis, :]).tocsr()
    centred.eliminate_zeros()  # keeps the structure honest where a vote equals the mean
    return sparse.csr_array(centred), np.asarray(seen.sum(axis=1)).ravel()


def principal_components(centred: sparse.csr_array, rng: np.random.Generator, count: int = 2,
                         tolerance: float = 1e-10, max_iterations: int = 500) -> np.ndarray:
    """The top `count` right singular vectors, by subspace iteration with oversampling."""
    columns = centred.shape[1]
    width = min(columns, count + 4)
    basis, _ = np.linalg.qr(rng.standard_normal((columns, width)))
    previous = None
    for _ in range(max_iterations):
        basis, _ = np.linalg.qr(centred.T @ (centred @ basis))
        projected = centred @ basis
        _, singular, vt = np.linalg.svd(projected, full_matrices=False)
        if previous is not None and np.allclose(singular[:count], previous, rtol=tolerance, atol=0):
            break
        previous = singular[:count]
    components = (basis @ vt.T)[:, :count].T
    # A component's sign is arbitrary: fix it so that results are reproducible.
    signs = np.sign(components[np.arange(count), np.abs(components).argmax(axis=1)])
    return components * np.where(signs == 0, 1, signs)[:, np.newaxis]


def project(centred: sparse.csr_array, components: np.ndarray, votes_cast: np.ndarray, zeroed: int = 0) -> np.ndarray:
    """`zeroed`: excluded statements, which Pol.is keeps as columns of zeros that everyone has
    "voted"; they change nobody's direction but do change the scaling (and matching Pol.is's
    groups depends on it: on scoop-hivemind the adjusted Rand index goes from 0.66 to 0.97)."""
    scale = np.sqrt((centred.shape[1] + zeroed) / np.maximum(votes_cast + zeroed, 1))
    return (centred @ components.T) * scale[:, np.newaxis]


def first_distinct(points: np.ndarray, k: int) -> np.ndarray:
    """Indices of the first k distinct points, in order: k-means' deterministic start."""
    _, first = np.unique(points, axis=0, return_index=True)
    return np.sort(first)[:k]


def kmeans(points: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Lloyd iterations from the first k distinct points; empty clusters are dropped.
    Returns (labels 0..k'-1, centres)."""
    centres = points[first_distinct(points, k)]
    labels = np.full(len(points), -1)
    for _ in range(KMEANS_ITERATIONS):
        new_labels = distance.cdist(points, centres, "sqeuclidean").argmin(axis=1)
        used, new_labels = np.unique(new_labels, return_inverse=True)
        if len(used) == len(centres) and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        mass = np.bincount(labels, weights=weights, minlength=len(used))
        centres = np.stack([np.bincount(labels, weights=weights * points[:, d], minlength=len(used))
                            for d in range(points.shape[1])], axis=1) / mass[:, np.newaxis]
    return labels, centres


def weighted_silhouette(points: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> float:
    """The silhouette of participants, computed on base centres that stand for `weights` people each
    (people in one base cluster are at distance 0 from each other)."""
    groups = labels.max() + 1
    if groups < 2:
        return -1.0
    distances = distance.cdist(points, points)
    membership = np.zeros((len(points), groups))
    membership[np.arange(len(points)), labels] = 1.0
    mass = weights @ membership  # people per group
    total_distance = distances @ (membership * weights[:, np.newaxis])  # point -> sum of distances to each group
    own_mass = mass[labels] - 1.0  # the others in one's own group
    inner = np.divide(total_distance[np.arange(len(points)), labels], own_mass,
                      out=np.zeros(len(points)), where=own_mass > 0)
    outer_means = total_distance / mass[np.newaxis, :]
    outer_means[np.arange(len(points)), labels] = np.inf
    outer = outer_means.min(axis=1)
    scores = np.divide(outer - inner, np.maximum(inner, outer), out=np.zeros(len(points)),
                       where=np.maximum(inner, outer) > 0)
    scores[own_mass <= 0] = 0.0  # alone in one's group: silhouette 0 by convention
    return float((scores * weights).sum() / weights.sum())


def cluster(table: VoteTable, seed: int = 0) -> Clustering:
    rng = np.random.default_rng(seed)
    rows = clustered_participants(table.votes_per_participant(), table.shape[1] + table.excluded_statements)
    if len(rows) < 2 or table.shape[1] < 2:
        # Too few people or statements to place anyone: nobody is clustered (one voter is not a group).
        empty = np.zeros(0, dtype=int)
        return Clustering(empty, np.zeros((0, 2)), np.zeros((2, table.shape[1])), empty, empty, {})
    centred, votes_cast = centred_matrix(table, rows)
    components = principal_components(centred, rng)
    projection = project(centred, components, votes_cast, table.excluded_statements)
    base_labels, base_centres = kmeans(projection, np.ones(len(projection)), BASE_CLUSTERS)
    sizes = np.bincount(base_labels).astype(np.float64)
    candidates: dict[int, np.ndarray] = {}
    silhouettes: dict[int, float] = {}
    for k in range(2, min(MAX_GROUPS, 2 + len(base_centres) // 12, len(base_centres)) + 1):
        labels, _ = kmeans(base_centres, sizes, k)
        if labels.max() + 1 == k:  # fewer distinct groups than asked: nothing new
            candidates[k], silhouettes[k] = labels, weighted_silhouette(base_centres, sizes, labels)
    if silhouettes:
        best = max(silhouettes, key=lambda k: (silhouettes[k], -k))  # ties: fewer groups
        group_labels = _numbered_by_size(candidates[best][base_labels])
    else:
        group_labels = np.zeros(len(rows), dtype=int)
    return Clustering(rows, projection, components, base_labels, group_labels, silhouettes)


def _numbered_by_size(labels: np.ndarray) -> np.ndarray:
    """Groups renumbered largest first (ties: by first member), so that numbering is stable."""
    counts = np.bincount(labels)
    first = np.array([np.flatnonzero(labels == g)[0] for g in range(len(counts))])
    order = np.lexsort((first, -counts))
    renumber = np.empty(len(counts), dtype=int)
    renumber[order] = np.arange(len(counts))
    return renumber[labels]
