"""Semi-supervised k-means (GCD, Vaze et al. 2022): labelled points stay fixed to their class's cluster.

Centroids of old classes start at the labelled means; the remaining K - |old| centroids start with
k-means++ on the unlabelled points. Each iteration assigns unlabelled points to the nearest centroid and
recomputes every centroid from its labelled + unlabelled members.
"""
from __future__ import annotations

import numpy as np


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
    assign = np.zeros(len(x_unlab), dtype=np.int64)
    for _ in range(n_iter):
        dist = (x_unlab ** 2).sum(1)[:, None] - 2 * x_unlab @ cent.T + (cent ** 2).sum(1)[None]
        assign = dist.argmin(1)
        new = cent.copy()
        for c in range(k):
            members = [x_unlab[assign == c]]
            if c in set(known.tolist()):
                members.append(x_lab[y_lab == c])
            m = np.concatenate(members)
            if len(m):
                new[c] = m.mean(0)
        shift = np.abs(new - cent).max()
        cent = new
        if shift < tol:
            break
    return assign, cent
