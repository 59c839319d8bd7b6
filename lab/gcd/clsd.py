"""CLSD: a client's confidence-guided similarity graph over its local feature vectors.

1. kNN graph: each sample links to its k most cosine-similar samples (exact, on L2-normalised features);
   links are undirected, weighted by similarity, dropped below ``sim_floor``. With ``mutual`` a link is kept
   only when each end is among the other's k nearest: a hub (a sample many others list, often on a class
   border) keeps only the links it returns, so fewer links cross between classes, and more samples are left
   with few or none.
2. Anchors: labelled samples (their label) and *confident* unlabelled samples: for each predicted seen
   class c, the unlabelled samples predicted c whose max probability is at or above the P-quantile of
   max probabilities among samples predicted c (their predicted label). The quantile is relative: half of
   what the model calls "T-shirt" becomes a T-shirt anchor even where the model merges Shirts into it;
   ``min_confidence`` replaces it by an absolute threshold on the max probability.
3. Refinement: kNN links between anchors of DIFFERENT seen classes are cut; anchors of the SAME seen class
   are joined by must-link edges of weight 1 (each anchor to its ``k`` most similar same-class anchors,
   plus any kNN link already between them), which keeps the graph sparse instead of a full clique.

The result keeps every edge with a kind flag (KNN, MUST, CUT) so figures can draw what refinement did;
InfoMap uses only the KNN and MUST edges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.utils import check_range

KNN, MUST, CUT = 0, 1, 2
KIND_NAMES = {KNN: "kNN", MUST: "must-link", CUT: "cut"}


@dataclass
class SimilarityGraph:
    n: int
    src: np.ndarray        # (E,) int64, src < dst
    dst: np.ndarray        # (E,)
    weight: np.ndarray     # (E,) float32
    kind: np.ndarray       # (E,) uint8: KNN, MUST or CUT
    anchor_label: np.ndarray  # (n,) int64: seen class used for refinement, -1 if not an anchor
    confident: np.ndarray  # (n,) bool: unlabelled sample selected as confident

    def active(self) -> np.ndarray:
        return self.kind != CUT

    def edge_precision(self, y_true, kinds=(KNN, MUST)) -> float:
        """Share of edges (of the given kinds) joining two samples of the same true class."""
        m = np.isin(self.kind, kinds)
        if not m.any():
            return float("nan")
        y = np.asarray(y_true)
        return float((y[self.src[m]] == y[self.dst[m]]).mean())

    def counts(self) -> dict:
        return {KIND_NAMES[k]: int((self.kind == k).sum()) for k in KIND_NAMES}

    def to_networkx(self, include_cut: bool = False):
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(self.n))
        for s, d, w, k in zip(self.src, self.dst, self.weight, self.kind):
            if include_cut or k != CUT:
                g.add_edge(int(s), int(d), weight=float(w), kind=KIND_NAMES[int(k)])
        return g


def knn_edges(features, k: int, sim_floor: float = 0.0, mutual: bool = False):
    """Undirected cosine kNN edges (src < dst, deduplicated) with similarity weights; ``mutual``: only the pairs
    each of which lists the other among its k nearest (the union otherwise)."""
    f = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
    n = len(f)
    kk = min(k + 1, n)
    # exact top-k by blocks of cosine similarities (one BLAS product per block: ~10x faster than
    # scikit-learn's brute-force search on 1568-d prefix maps)
    idx = np.empty((n, kk), dtype=np.int64)
    sim = np.empty((n, kk), dtype=np.float32)
    for s in range(0, n, 2048):
        S = f[s:s + 2048] @ f.T
        part = np.argpartition(-S, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (len(S), 1))
        ps = np.take_along_axis(S, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        idx[s:s + 2048] = np.take_along_axis(part, order, axis=1)
        sim[s:s + 2048] = np.take_along_axis(ps, order, axis=1)
    src = np.repeat(np.arange(n), kk)
    dst = idx.ravel()
    w = sim.ravel()
    keep = (src != dst) & (w >= sim_floor)
    a, b, w = np.minimum(src, dst)[keep], np.maximum(src, dst)[keep], w[keep]
    key = a.astype(np.int64) * n + b
    key, first, times = np.unique(key, return_index=True, return_counts=True)
    if mutual:            # a pair is listed once from each end that counts the other among its k nearest
        first = first[times == 2]
    return a[first].astype(np.int64), b[first].astype(np.int64), w[first].astype(np.float32)


def confident_samples(probs, labelled, old_classes, quantile: float = 0.5,
                      min_confidence: float | None = None) -> np.ndarray:
    """Unlabelled samples predicted as a seen class with max-prob >= that class's P-quantile (or, with
    ``min_confidence``, >= that absolute value)."""
    probs = np.asarray(probs)
    pred, conf = probs.argmax(1), probs.max(1)
    out = np.zeros(len(probs), dtype=bool)
    for c in old_classes:
        m = (pred == c) & ~labelled
        if m.any():
            thr = np.quantile(conf[m], quantile) if min_confidence is None else min_confidence
            out |= m & (conf >= thr)
    return out


def graph_features(features, dim: int = 0, seed: int = 0) -> np.ndarray:
    """Features as the graph sees them: flattened, L2-normalised, and (``dim`` > 0) projected on their
    ``dim`` first principal components (this client's own PCA, seeded), e.g. the 32x7x7 frozen-prefix maps."""
    f = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
    if 0 < dim < min(f.shape):
        from sklearn.decomposition import PCA

        f = PCA(dim, svd_solver="randomized", random_state=seed).fit_transform(f).astype(np.float32)
    return f


def build_graph(features, probs, labelled, y_visible, old_classes, *, k: int = 10, quantile: float = 0.5,
                sim_floor: float = 0.0, refine: bool = True, min_confidence: float | None = None,
                mutual: bool = False) -> SimilarityGraph:
    """The CLSD graph of one client. ``y_visible``: labels of labelled samples (-1 elsewhere); ``probs`` None:
    only the labels refine the graph; ``mutual``: mutual kNN links only (the must-links are not affected)."""
    features = np.asarray(features, dtype=np.float32)
    n = len(features)
    check_range("k", k, 1, max(1, n - 1), integer=True)
    check_range("P (confidence quantile)", quantile, 0, 1)
    check_range("sim_floor", sim_floor, -1, 1)
    if min_confidence is not None:
        check_range("min_confidence", min_confidence, 0, 1)
    labelled = np.asarray(labelled, bool)
    src, dst, w = knn_edges(features, k, sim_floor, mutual)
    kind = np.full(len(src), KNN, dtype=np.uint8)
    anchor = np.full(n, -1, dtype=np.int64)
    confident = np.zeros(n, dtype=bool)
    if not refine:
        return SimilarityGraph(n, src, dst, w, kind, anchor, confident)
    anchor[labelled] = np.asarray(y_visible)[labelled]
    if probs is not None:     # without a model (bring-your-own features) only labels refine the graph
        confident = confident_samples(probs, labelled, old_classes, quantile, min_confidence)
        anchor[confident] = np.asarray(probs).argmax(1)[confident]
    la, lb = anchor[src], anchor[dst]
    both = (la >= 0) & (lb >= 0)
    kind[both & (la != lb)] = CUT
    kind[both & (la == lb)] = MUST
    w = np.where(kind == MUST, 1.0, w).astype(np.float32)
    # must-links: each anchor to its k most similar anchors of the same class
    new_s, new_d = [], []
    for c in np.unique(anchor[anchor >= 0]):
        members = np.flatnonzero(anchor == c)
        if len(members) < 2:
            continue
        ms, md, _ = knn_edges(features[members], min(k, len(members) - 1))
        new_s.append(members[ms])
        new_d.append(members[md])
    if new_s:
        s2, d2 = np.concatenate(new_s), np.concatenate(new_d)
        key_old = src * n + dst
        key_new = np.unique(s2 * n + d2)
        key_new = key_new[~np.isin(key_new, key_old)]
        src = np.concatenate([src, key_new // n])
        dst = np.concatenate([dst, key_new % n])
        w = np.concatenate([w, np.ones(len(key_new), dtype=np.float32)])
        kind = np.concatenate([kind, np.full(len(key_new), MUST, dtype=np.uint8)])
    return SimilarityGraph(n, src, dst, w, kind, anchor, confident)
