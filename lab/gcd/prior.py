"""From communities to heads to a local prior, and the Local Prior Alignment (LPA) loss.

Mapping (no true number of new classes needed; the model has |old| + K_max heads):
1. a community holding labelled samples maps to the head of their majority seen class;
2. the other communities map to heads still unused, by Hungarian matching on their mean predictions;
3. surplus communities (more than unused heads) map to the argmax head of their mean prediction.
Noise samples take their own argmax head.

Prior: pi = (histogram of mapped head labels over the client's samples + s) / (n + s * H): the empirical
share of each concept, smoothed. LPA = KL(p_bar || pi), p_bar = batch-mean prediction over both views; with
a uniform pi it is exactly SimGCD's mean-entropy term (see ``lab.gcd.losses.prior_kl``).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from lab.gcd.losses import prior_kl  # noqa: F401  (the LPA loss lives beside the SimGCD terms)


def map_communities_to_heads(comm_labels, probs, y_visible, n_heads: int) -> np.ndarray:
    """Head id for each community id 0..C-1 (see module docstring)."""
    comm_labels = np.asarray(comm_labels)
    probs = np.asarray(probs)
    y_visible = np.asarray(y_visible)
    C = int(comm_labels.max()) + 1 if (comm_labels >= 0).any() else 0
    head = np.full(C, -1, dtype=np.int64)
    for c in range(C):
        ys = y_visible[(comm_labels == c) & (y_visible >= 0)]
        if ys.size:
            head[c] = np.bincount(ys).argmax()
    rest = np.flatnonzero(head < 0)
    free = np.setdiff1d(np.arange(n_heads), head[head >= 0])
    if rest.size and free.size:
        mean_p = np.stack([probs[comm_labels == c].mean(0) for c in rest])     # (R, H)
        r, f = linear_sum_assignment(-mean_p[:, free])
        head[rest[r]] = free[f]
    for c in np.flatnonzero(head < 0):                                         # surplus communities
        head[c] = probs[comm_labels == c].mean(0).argmax()
    return head


def sample_heads(comm_labels, probs, head_of_comm) -> np.ndarray:
    """Each sample's head: its community's head, or its own argmax for noise samples."""
    comm_labels = np.asarray(comm_labels)
    out = np.asarray(probs).argmax(1).copy()
    ok = comm_labels >= 0
    out[ok] = np.asarray(head_of_comm)[comm_labels[ok]]
    return out


def empirical_prior(head_labels, n_heads: int, smoothing: float = 0.5) -> np.ndarray:
    """Smoothed histogram over heads."""
    counts = np.bincount(np.asarray(head_labels), minlength=n_heads).astype(np.float64)
    return (counts + smoothing) / (counts.sum() + smoothing * n_heads)


def oracle_heads(y_true, probs, old_classes, n_heads: int) -> np.ndarray:
    """Ablation: true classes as the communities (old class c -> head c; new classes by Hungarian)."""
    y_true = np.asarray(y_true)
    y_vis = np.where(np.isin(y_true, old_classes), y_true, -1)
    classes, comm = np.unique(y_true, return_inverse=True)
    head_of = map_communities_to_heads(comm, probs, np.where(y_vis >= 0, y_vis, -1), n_heads)
    return head_of[comm]


def prior_vs_truth_kl(y_true, head_labels, prior, n_classes: int, smoothing: float = 1e-3) -> float:
    """KL(true class histogram || estimated prior read in class space), for reporting only.

    Each head is read as the true class most of its samples have (an oracle view), and the prior mass of the
    heads of one class is summed."""
    y_true = np.asarray(y_true)
    head_labels = np.asarray(head_labels)
    q = np.full(n_classes, 0.0)
    for h in range(len(prior)):
        members = y_true[head_labels == h]
        cls = np.bincount(members, minlength=n_classes).argmax() if members.size else None
        if cls is not None:
            q[cls] += prior[h]
    q = (q + smoothing) / (q + smoothing).sum()
    p = np.bincount(y_true, minlength=n_classes).astype(float)
    p = p / p.sum()
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / q[m])))
