"""Clustering accuracy for generalized category discovery ("v2": ONE Hungarian matching over all samples).

GCD/SimGCD's ``split_cluster_acc_v2``: build the contingency matrix between predicted clusters and true
classes over *all* evaluated samples, find the single best one-to-one matching with the Hungarian
algorithm, then report the matched accuracy on all samples, on samples of old classes, and on new classes.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def hungarian_map(y_true, y_pred, n_pred: int | None = None, n_true: int | None = None) -> np.ndarray:
    """The v2 matching itself: for each predicted cluster id, the true class it is matched to (-1: none)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    P = n_pred or int(y_pred.max()) + 1
    T = n_true or int(y_true.max()) + 1
    w = np.zeros((P, T), dtype=np.int64)
    np.add.at(w, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(-w)
    out = np.full(P, -1, dtype=np.int64)
    out[rows] = cols
    return out


def cluster_acc_v2(y_true, y_pred, old_mask, groups=None) -> dict:
    """All/Old/New accuracy under one Hungarian matching.

    y_true, y_pred: int arrays (N,); old_mask: bool (N,) True where the TRUE class is an old class.
    Returns {"all", "old", "new"} in [0, 1] (nan where a group is empty). With ``groups`` (N,) ints (e.g. the
    client of each sample), also "groups": accuracy per group id under the SAME global matching.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    old_mask = np.asarray(old_mask, dtype=bool)
    if y_true.shape != y_pred.shape or y_true.shape != old_mask.shape:
        raise ValueError("y_true, y_pred and old_mask must have the same shape")
    if y_true.size == 0:
        return {"all": float("nan"), "old": float("nan"), "new": float("nan")}
    D = int(max(y_pred.max(), y_true.max())) + 1
    w = np.zeros((D, D), dtype=np.int64)
    np.add.at(w, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(w.max() - w)
    mapping = np.empty(D, dtype=np.int64)
    mapping[rows] = cols
    correct = mapping[y_pred] == y_true
    grp = lambda m: float(correct[m].mean()) if m.any() else float("nan")  # noqa: E731
    out = {"all": float(correct.mean()), "old": grp(old_mask), "new": grp(~old_mask)}
    if groups is not None:
        groups = np.asarray(groups)
        out["groups"] = {int(g): grp(groups == g) for g in np.unique(groups)}
    return out


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 10) -> float:
    """Cosine kNN-k accuracy (majority vote): how linearly-free "good" a feature space is."""
    from sklearn.neighbors import KNeighborsClassifier

    f = lambda a: a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)  # noqa: E731
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    clf.fit(f(np.asarray(train_x, dtype=np.float32)), train_y)
    return float((clf.predict(f(np.asarray(test_x, dtype=np.float32))) == np.asarray(test_y)).mean())


def backbone_knn(backbone, train_x, train_y, test_x, test_y, device="cpu", batch: int = 2048,
                 spaces=("output", "prefix")) -> dict:
    """Cosine kNN-10 accuracy of a frozen image backbone (uint8 images (N, 28, 28)), fit on the train images and
    scored on the test images, on two of its feature spaces: ``"output"`` (the pooled features the pretraining
    objective shaped) and ``"prefix"`` (the flattened maps of the blocks a run freezes, on which FedLPA's
    graph is built). Labels serve the score only."""
    import torch

    def feats(x, part):
        was = backbone.training
        backbone.eval()
        with torch.no_grad():
            out = [part(torch.as_tensor(x[i:i + batch]).to(device).float().div(255).unsqueeze(1)).flatten(1).cpu()
                   for i in range(0, len(x), batch)]
        backbone.train(was)
        return torch.cat(out).numpy()

    return {name: knn_accuracy(feats(train_x, part), train_y, feats(test_x, part), test_y)
            for name, part in (("output", backbone), ("prefix", backbone.prefix)) if name in spaces}
