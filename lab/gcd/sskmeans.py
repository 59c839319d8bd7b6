"""Semi-supervised k-means (GCD, Vaze et al. 2022): labelled points stay fixed to their class's cluster.

Centroids of old classes start at the labelled means; the remaining K - |old| centroids start with
k-means++ on the unlabelled points. Each iteration assigns unlabelled points to the nearest centroid and
recomputes every centroid from its labelled + unlabelled members. :func:`head_seeded_kmeans` is the same
iteration started from a model's classifier heads instead, with K read off the heads (no true K).
"""
from __future__ import annotations

import numpy as np

from lab.gcd.prior import HELD_SHARE


def ss_kmeans(x_lab, y_lab, x_unlab, k: int, n_iter: int = 50, seed: int = 0, tol: float = 1e-6):
    """Returns (assignments of x_unlab (N_u,), centroids (k, d)). Labelled class c -> cluster c."""
    x_lab = np.asarray(x_lab, dtype=np.float64)
    x_unlab = np.asarray(x_unlab, dtype=np.float64)
    y_lab = np.asarray(y_lab, dtype=np.int64)
    rng = np.random.default_rng(seed)
    known = np.unique(y_lab)
    if known.size and known.max() >= k:
        raise ValueError("labelled classes must be < k")
    cent = np.zeros((k, x_unlab.shape[1]))
    for c in known:
        cent[c] = x_lab[y_lab == c].mean(0)
    free = [c for c in range(k) if c not in set(known.tolist())]
    # k-means++ for the free centroids, seeded by distances to the known ones
    d2 = (((x_unlab[:, None, :] - cent[known][None]) ** 2).sum(-1).min(1) if known.size
          else np.full(len(x_unlab), 1.0))
    for c in free:
        p = d2 / d2.sum() if d2.sum() > 0 else None
        cent[c] = x_unlab[rng.choice(len(x_unlab), p=p)]
        d2 = np.minimum(d2, ((x_unlab - cent[c]) ** 2).sum(1))
    return lloyd(x_lab, y_lab, x_unlab, cent, n_iter, tol)


def lloyd(x_lab, y_lab, x_unlab, cent, n_iter: int = 50, tol: float = 1e-6):
    """Semi-supervised Lloyd iterations from centroids ``cent`` (k, d): unlabelled points go to the nearest
    centroid, labelled points of class c stay in cluster c. Returns (assignments of x_unlab, centroids)."""
    known = set(np.unique(y_lab).tolist())
    assign = np.zeros(len(x_unlab), dtype=np.int64)
    for _ in range(n_iter):
        dist = (x_unlab ** 2).sum(1)[:, None] - 2 * x_unlab @ cent.T + (cent ** 2).sum(1)[None]
        assign = dist.argmin(1)
        new = cent.copy()
        for c in range(len(cent)):
            members = [x_unlab[assign == c]]
            if c in known:
                members.append(x_lab[y_lab == c])
            m = np.concatenate(members)
            if len(m):
                new[c] = m.mean(0)
        shift = np.abs(new - cent).max()
        cent = new
        if shift < tol:
            break
    return assign, cent


def head_seeded_kmeans(x_lab, y_lab, x_unlab, probs_unlab, min_share: float = HELD_SHARE, n_iter: int = 50,
                       tol: float = 1e-6):
    """A readout of a model with classifier heads that needs no K: k-means on its features, seeded by its heads.

    K_hat = the heads holding at least ``min_share`` of all samples (and at least one) when each unlabelled sample
    takes its argmax head and each labelled sample its class's head (old class c = head c; a labelled class always
    counts).
    Each kept head's centroid starts at the mean feature of its samples; then :func:`lloyd`, labelled points
    pinned. Nothing reads a true label of an unlabelled sample or the true K.

    Federated (:class:`FederatedHeadSeeded`), it is the messages of :class:`FederatedSSKMeans` with another
    first one: each client sends its per-head feature sums and counts under the heads' assignment, then Lloyd
    steps as there. With every client in every step that reproduces this pooled computation (up to float
    summation order), and it reveals what FedAvg+GCD's k-means reveals.
    Returns (the head id of each unlabelled sample, centroids (K_hat, d), the kept head ids (K_hat,))."""
    x_lab = np.asarray(x_lab, dtype=np.float64)
    x_unlab = np.asarray(x_unlab, dtype=np.float64)
    y_lab = np.asarray(y_lab, dtype=np.int64)
    n_heads = np.asarray(probs_unlab).shape[1]
    heads = np.concatenate([y_lab, np.asarray(probs_unlab).argmax(1)])
    counts = np.bincount(heads, minlength=n_heads)
    keep = np.union1d(np.flatnonzero((counts > 0) & (counts >= min_share * len(heads))), y_lab)
    pos = np.full(n_heads, -1, dtype=np.int64)
    pos[keep] = np.arange(len(keep))
    feats = np.concatenate([x_lab, x_unlab])
    start = np.stack([feats[heads == h].mean(0) for h in keep])
    assign, cent = lloyd(x_lab, pos[y_lab], x_unlab, start, n_iter, tol)
    return keep[assign], cent, keep


# ------------------------------------------------------------------------------------------------------
# Federated semi-supervised k-means: the same Lloyd iterations, with clients sending only statistics
# ------------------------------------------------------------------------------------------------------
# Each client holds its own features. The server sends centroids; a client assigns its unlabelled points to
# the nearest centroid, keeps its labelled points pinned to their class, and returns per-cluster feature
# SUMS and COUNTS; the server divides the totals. With every client in every step this reproduces the pooled
# Lloyd step exactly; only the initialisation differs (see client_init_stats).
#
# What a client reveals: how many of its samples fall in each cluster (≈ its class histogram) and the mean
# feature of each of its clusters — more than FedLPA, which sends only model weights and scalar losses.

def client_init_stats(features, y_visible, k: int, seed: int = 0) -> dict:
    """What a client sends once to start federated SS-k-means: per-class sums/counts of its labelled
    features, and ``k`` candidate centroids (local k-means of its unlabelled features) with their sizes."""
    from sklearn.cluster import KMeans

    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(y_visible)
    sums = np.zeros((k, f.shape[1]))
    counts = np.zeros(k)
    lab = y >= 0
    np.add.at(sums, y[lab], f[lab])
    np.add.at(counts, y[lab], 1)
    unl = f[~lab]
    m = min(k, len(unl))
    if m:
        km = KMeans(n_clusters=m, n_init=1, random_state=seed).fit(unl)
        cand, sizes = km.cluster_centers_, np.bincount(km.labels_, minlength=m).astype(float)
    else:
        cand, sizes = np.zeros((0, f.shape[1])), np.zeros(0)
    return {"class_sums": sums, "class_counts": counts, "candidates": cand, "candidate_counts": sizes}


def client_step_stats(features, y_visible, centroids, ids=None) -> dict:
    """One Lloyd step's statistics on a client: per-cluster feature sums and counts (labelled pinned).

    ``ids``: the class (head) id of each centroid row when the rows are not simply 0..k-1 (the head-seeded
    readout keeps some heads only); a labelled sample of class c is pinned to the row whose id is c."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(y_visible)
    c = np.asarray(centroids, dtype=np.float64)
    lab = y >= 0
    assign = y.copy()
    if ids is not None:
        row = {int(h): i for i, h in enumerate(np.asarray(ids))}
        assign[lab] = [row[int(v)] for v in y[lab]]
    if (~lab).any():
        u = f[~lab]
        assign[~lab] = ((u ** 2).sum(1)[:, None] - 2 * u @ c.T + (c ** 2).sum(1)[None]).argmin(1)
    sums = np.zeros_like(c)
    np.add.at(sums, assign, f)
    return {"sums": sums, "counts": np.bincount(assign, minlength=len(c)).astype(float)}


def client_head_stats(features, y_visible, probs) -> dict:
    """What a client sends to start the head-seeded readout (:class:`FederatedHeadSeeded`): per-head feature sums
    and counts, each unlabelled sample on its argmax head and each labelled one on its class's head, and how many
    labelled samples each class has (so that every labelled class stays a cluster)."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(y_visible)
    n_heads = np.asarray(probs).shape[1]
    heads = np.where(y >= 0, y, np.asarray(probs).argmax(1))
    sums = np.zeros((n_heads, f.shape[1]))
    np.add.at(sums, heads, f)
    return {"sums": sums, "counts": np.bincount(heads, minlength=n_heads).astype(float),
            "labelled_counts": np.bincount(y[y >= 0], minlength=n_heads).astype(float)}


class FederatedSSKMeans:
    """Server side of federated semi-supervised k-means with ``k`` clusters (old class c -> cluster c).

    ``run(ask)`` drives it: ``ask(config) -> list of client replies`` sends one evaluate message to every
    client (in-process: through ClientProxy objects; on Flower: as messages) and returns their answers.
    Initialisation: old centroids are the federated means of the labelled features; the free centroids are
    chosen by k-means++ (seeded) among the clients' candidate centroids, weighted by candidate size.
    """

    def __init__(self, k: int, known_classes, n_iter: int = 50, tol: float = 1e-6, seed: int = 0):
        self.k, self.known = int(k), np.asarray(sorted(known_classes), dtype=np.int64)
        self.n_iter, self.tol, self.seed = int(n_iter), float(tol), int(seed)

    def init(self, replies: list) -> np.ndarray:
        sums = sum(r["class_sums"] for r in replies)
        counts = sum(r["class_counts"] for r in replies)
        cand = np.concatenate([r["candidates"] for r in replies])
        w = np.concatenate([r["candidate_counts"] for r in replies])
        cent = np.zeros((self.k, cand.shape[1] if len(cand) else sums.shape[1]))
        known = [c for c in self.known if counts[c] > 0]
        for c in known:
            cent[c] = sums[c] / counts[c]
        rng = np.random.default_rng(self.seed)
        chosen = [cent[c] for c in known]
        for c in (c for c in range(self.k) if c not in set(known)):
            d2 = (((cand[:, None, :] - np.asarray(chosen)[None]) ** 2).sum(-1).min(1) if chosen
                  else np.ones(len(cand)))
            p = w * d2
            cent[c] = cand[rng.choice(len(cand), p=p / p.sum())] if p.sum() > 0 else cand[rng.integers(len(cand))]
            chosen.append(cent[c])
        return cent

    def step(self, cent: np.ndarray, replies: list) -> np.ndarray:
        sums = sum(r["sums"] for r in replies)
        counts = sum(r["counts"] for r in replies)
        new = cent.copy()
        ok = counts > 0
        new[ok] = sums[ok] / counts[ok, None]
        return new

    def run(self, ask) -> np.ndarray:
        return self.iterate(self.init(ask({"task": "kmeans-init", "k": self.k, "seed": self.seed})), ask)

    def iterate(self, cent: np.ndarray, ask, **config) -> np.ndarray:
        """Lloyd steps from ``cent`` until no centroid moves more than ``tol`` (or ``n_iter`` steps); ``config``
        travels with every ``kmeans-step`` message."""
        for _ in range(self.n_iter):
            new = self.step(cent, ask({"task": "kmeans-step", "centroids": cent, **config}))
            shift = np.abs(new - cent).max()
            cent = new
            if shift < self.tol:
                break
        return cent


def nearest(features, centroids) -> np.ndarray:
    """Index of the nearest centroid for each row."""
    f = np.asarray(features, dtype=np.float64)
    c = np.asarray(centroids, dtype=np.float64)
    return ((f ** 2).sum(1)[:, None] - 2 * f @ c.T + (c ** 2).sum(1)[None]).argmin(1)


class FederatedHeadSeeded(FederatedSSKMeans):
    """Server side of :func:`head_seeded_kmeans`: the same result from per-head and per-cluster sums and counts.

    ``run(ask)``: one ``heads-init`` message (:func:`client_head_stats`); the server keeps the heads whose summed
    count reaches ``min_share`` of all samples, plus every labelled class, and starts each kept centroid at its
    head's mean feature; then ``kmeans-step`` messages carrying the kept head ids, as :class:`FederatedSSKMeans`.
    Returns (centroids (K_hat, d), kept head ids (K_hat,)); a sample's cluster is the id of its nearest centroid.
    K is not known in advance, so the parent's constructor and init are not used; its Lloyd steps are."""

    def __init__(self, min_share: float = HELD_SHARE, n_iter: int = 50, tol: float = 1e-6):
        self.min_share, self.n_iter, self.tol = float(min_share), int(n_iter), float(tol)

    def start(self, replies: list):
        sums = sum(r["sums"] for r in replies)
        counts = sum(r["counts"] for r in replies)
        labelled = sum(r["labelled_counts"] for r in replies)
        keep = np.flatnonzero(((counts > 0) & (counts >= self.min_share * counts.sum())) | (labelled > 0))
        return keep, sums[keep] / counts[keep, None]

    def run(self, ask):
        keep, cent = self.start(ask({"task": "heads-init"}))
        return self.iterate(cent, ask, ids=keep), keep
