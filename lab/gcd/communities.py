"""InfoMap communities on a CLSD graph: how many categories does this client hold (no K given)?

InfoMap (the ``infomap`` package, two-level) compresses a random walk on the graph; the modules it finds
are the client's concepts. Nodes without links stay singletons; communities smaller than ``min_size``
samples are noise (label -1). K_hat = number of non-noise communities. Each community gets a prototype
(the mean of its L2-normalised features).

``markov_time`` scales the walk's time: below 1 it splits finer, above 1 it merges. On kNN graphs of these
features, fixed values over-segment (see FIELD_NOTES): ``markov_time="auto"`` runs InfoMap at a base time
and then merges communities whose prototypes agree (cosine >= ``merge_threshold``); ``"labelled"`` picks a
time per client from its labelled samples. Counting ALL communities at one time cannot serve both alpha 0.1
(few large classes) and alpha 1.0 (many small ones): FedLPA's K_hat counts old classes from the labels and
only the new-class communities, see :func:`lab.gcd.discovery.discover` and
``bench/results/discovery_study.md`` (the default 4.0 below is kept for figures, not chosen by that study).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.gcd.clsd import SimilarityGraph
from lab.utils import check_range


@dataclass
class Communities:
    labels: np.ndarray        # (n,) community id in 0..K_hat-1, -1 = noise
    prototypes: np.ndarray    # (K_hat, d)
    sizes: np.ndarray         # (K_hat,)
    raw_modules: int          # InfoMap's module count before noise removal / merging
    markov_time: float

    @property
    def k_est(self) -> int:
        return int(len(self.sizes))


def infomap_modules(graph: SimilarityGraph, markov_time: float = 1.0, seed: int = 1, num_trials: int = 1):
    """Raw InfoMap module id per node (isolated nodes get their own ids)."""
    from infomap import Infomap

    check_range("markov_time", markov_time, 0, None, low_open=True)
    im = Infomap(two_level=True, silent=True, seed=max(1, int(seed)), num_trials=num_trials,
                 markov_time=float(markov_time))
    act = graph.active()
    if act.any():
        im.add_links(np.column_stack([graph.src[act], graph.dst[act], graph.weight[act]]).astype(np.float64))
        mods = dict(im.run().modules())
    else:
        mods = {}
    labels = np.full(graph.n, -1, dtype=np.int64)
    for node, m in mods.items():
        labels[int(node)] = int(m)
    nxt = labels.max() + 1
    iso = np.flatnonzero(labels < 0)
    labels[iso] = np.arange(nxt, nxt + len(iso))
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _relabel(labels, features, min_size):
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    keep = ids[counts >= min_size]
    out = np.full(len(labels), -1, dtype=np.int64)
    for new, old in enumerate(keep):
        out[labels == old] = new
    protos = np.stack([features[out == c].mean(0) for c in range(len(keep))]) if len(keep) else \
        np.zeros((0, features.shape[1]))
    return out, protos


def merge_by_prototype(labels, features, threshold: float):
    """Average-linkage merging of communities whose (normalised) prototypes have cosine >= threshold."""
    labels = labels.copy()
    while True:
        ids = np.unique(labels[labels >= 0])
        if len(ids) < 2:
            return labels
        P = np.stack([features[labels == c].mean(0) for c in ids])
        P = P / (np.linalg.norm(P, axis=1, keepdims=True) + 1e-12)
        S = P @ P.T
        np.fill_diagonal(S, -np.inf)
        i, j = np.unravel_index(np.argmax(S), S.shape)
        if S[i, j] < threshold:
            return labels
        labels[labels == ids[j]] = ids[i]


def find_communities(graph: SimilarityGraph, features, *, markov_time: float | str = 4.0,
                     min_size: int = 5, seed: int = 1, num_trials: int = 1, base_time: float = 1.0,
                     merge_threshold: float = 0.8, y_visible=None) -> Communities:
    """InfoMap -> noise removal -> (auto) prototype merging -> Communities.

    ``markov_time``: a number; ``"auto"`` (InfoMap at ``base_time``, then merge communities whose prototypes
    have cosine >= ``merge_threshold``); or ``"labelled"`` (per client, the time whose communities best
    reproduce the client's labelled classes, see :func:`choose_markov_time`; needs ``y_visible``)."""
    f = np.asarray(features, dtype=np.float64)
    f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
    if markov_time == "labelled":
        if y_visible is None:
            raise ValueError("markov_time='labelled' needs y_visible")
        markov_time, _ = choose_markov_time(graph, features, y_visible, min_size=min_size, seed=seed)
    mt = base_time if markov_time == "auto" else float(markov_time)
    raw = infomap_modules(graph, mt, seed, num_trials)
    labels, _ = _relabel(raw, f, min_size)
    if markov_time == "auto":
        labels = merge_by_prototype(labels, f, merge_threshold)
    labels, protos = _relabel(labels, f, min_size)
    sizes = np.bincount(labels[labels >= 0], minlength=len(protos)) if len(protos) else np.zeros(0, int)
    return Communities(labels, protos, sizes, int(raw.max() + 1), mt)


MARKOV_GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)


def labelled_fit(labels, y_visible) -> float:
    """How well communities reproduce the client's labelled classes: clustering accuracy with one
    Hungarian matching over the labelled samples only (noise counts as wrong). Over-splitting a class and
    merging two classes both lower it."""
    from scipy.optimize import linear_sum_assignment

    m = np.asarray(y_visible) >= 0
    if m.sum() == 0:
        return float("nan")
    y, c = np.asarray(y_visible)[m], np.asarray(labels)[m]
    ok = c >= 0
    if not ok.any():
        return 0.0
    _, ci = np.unique(c[ok], return_inverse=True)
    _, yi = np.unique(y[ok], return_inverse=True)
    w = np.zeros((ci.max() + 1, yi.max() + 1))
    np.add.at(w, (ci, yi), 1)
    r, k = linear_sum_assignment(-w)
    return float(w[r, k].sum() / m.sum())


def choose_markov_time(graph: SimilarityGraph, features, y_visible, *, grid=MARKOV_GRID, min_size: int = 5,
                       seed: int = 1, tol: float = 0.01):
    """Per-client markov time, calibrated on the client's own labelled samples (as GCD picks K by the
    accuracy on labelled data): the largest time whose communities reproduce the labelled classes within
    ``tol`` of the best time. Returns (time, {time: score})."""
    f = np.asarray(features, dtype=np.float64)
    f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
    scores = {}
    for t in grid:
        labels, _ = _relabel(infomap_modules(graph, t, seed), f, min_size)
        scores[t] = labelled_fit(labels, y_visible)
    valid = {t: s for t, s in scores.items() if s == s}
    if not valid:
        return 4.0, scores
    best = max(valid.values())
    return max(t for t, s in valid.items() if s >= best - tol), scores
