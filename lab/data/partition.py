"""Non-IID partitions of a labelled pool across clients.

Every function returns a :class:`Partition`: one index array per client (each sample exactly once) and the
client x class count matrix that the heatmaps draw. Schemes:

- ``iid``: a seeded shuffle cut into near-equal parts.
- ``dirichlet``: label skew. For each class c, client shares p_c ~ Dir(alpha * 1); small alpha -> each client
  sees few classes, large alpha -> IID. Redrawn until every client holds at least ``min_size`` samples.
  ``strata`` (e.g. labelled/unlabelled) are cut with the SAME shares, so labelled and unlabelled pools are
  partitioned jointly and each client keeps the global labelled fraction per class.
- ``shards``: pathological split, each client gets ``classes_per_client`` classes.
- ``natural``: by a user/group id column; users are dealt to clients (round-robin after a seeded shuffle).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.utils import LabError, check_choice, check_range

SCHEMES = ("iid", "dirichlet", "shards", "natural")


@dataclass
class Partition:
    client_indices: list          # list of (n_k,) int64 arrays, sorted
    counts: np.ndarray            # (n_clients, n_classes) int64

    @property
    def n_clients(self) -> int:
        return len(self.client_indices)

    def sizes(self) -> np.ndarray:
        return np.array([len(i) for i in self.client_indices])

    def k_true(self, min_share: float = 0.02) -> list:
        """Per client: how many classes hold at least ``min_share`` of that client's samples."""
        tot = self.counts.sum(1, keepdims=True).clip(min=1)
        return [int(k) for k in ((self.counts / tot) >= min_share).sum(1)]


def _counts(y, parts, n_classes):
    return np.stack([np.bincount(y[p], minlength=n_classes) for p in parts]).astype(np.int64)


def _check_common(y, n_clients):
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise LabError("labels must be a non-empty 1-D array")
    check_range("clients", n_clients, 1, len(y), integer=True)
    return y


def iid(y, n_clients: int, seed: int = 0) -> Partition:
    y = _check_common(y, n_clients)
    perm = np.random.default_rng(seed).permutation(len(y))
    parts = [np.sort(p) for p in np.array_split(perm, n_clients)]
    return Partition(parts, _counts(y, parts, int(y.max()) + 1))


def dirichlet(y, n_clients: int, alpha: float, min_size: int = 10, seed: int = 0, strata=None,
              max_tries: int = 1000) -> Partition:
    y = _check_common(y, n_clients)
    check_range("alpha", alpha, 0, None, low_open=True)
    check_range("min_size", min_size, 0, len(y) // n_clients, integer=True)
    strata = np.zeros(len(y), dtype=np.int64) if strata is None else np.asarray(strata).astype(np.int64)
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    for _ in range(max_tries):
        buckets = [[] for _ in range(n_clients)]
        for c in range(n_classes):
            p = rng.dirichlet(np.full(n_clients, float(alpha)))
            for s in np.unique(strata[y == c]):
                idx = rng.permutation(np.flatnonzero((y == c) & (strata == s)))
                cuts = (np.cumsum(p)[:-1] * len(idx)).round().astype(int)
                for k, part in enumerate(np.split(idx, cuts)):
                    buckets[k].append(part)
        parts = [np.sort(np.concatenate(b)).astype(np.int64) for b in buckets]
        if min(len(p) for p in parts) >= min_size:
            return Partition(parts, _counts(y, parts, n_classes))
    raise LabError(f"no Dirichlet(alpha={alpha}) draw gave every one of {n_clients} clients >= {min_size} "
                   f"samples in {max_tries} tries; raise alpha, lower min_size or use fewer clients")


def shards(y, n_clients: int, classes_per_client: int = 2, seed: int = 0) -> Partition:
    """Sort by label, cut into n_clients * c shards, deal c shards to each client (McMahan et al. 2017)."""
    y = _check_common(y, n_clients)
    n_classes = int(y.max()) + 1
    check_range("classes_per_client", classes_per_client, 1, n_classes, integer=True)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(y)), y))
    pieces = np.array_split(order, n_clients * classes_per_client)
    deal = rng.permutation(len(pieces))
    parts = [np.sort(np.concatenate([pieces[j] for j in deal[k::n_clients]])).astype(np.int64)
             for k in range(n_clients)]
    return Partition(parts, _counts(y, parts, n_classes))


def natural(y, user_ids, n_clients: int | None = None, seed: int = 0) -> Partition:
    """One client per user id (``n_clients=None``), or users dealt round-robin to ``n_clients`` clients."""
    y = np.asarray(y)
    user_ids = np.asarray(user_ids)
    if user_ids.shape != y.shape:
        raise LabError("user_ids must have one entry per sample")
    users = np.unique(user_ids)
    n_clients = len(users) if n_clients is None else n_clients
    check_range("clients", n_clients, 1, len(users), integer=True)
    shuffled = np.random.default_rng(seed).permutation(users)
    owner = {u: i % n_clients for i, u in enumerate(shuffled)}
    client_of = np.array([owner[u] for u in user_ids])
    parts = [np.flatnonzero(client_of == k).astype(np.int64) for k in range(n_clients)]
    return Partition(parts, _counts(y, parts, int(y.max()) + 1))


def make_partition(scheme: str, y, n_clients: int, *, alpha: float = 0.5, min_size: int = 10,
                   classes_per_client: int = 2, user_ids=None, strata=None, seed: int = 0) -> Partition:
    check_choice("partition", scheme, SCHEMES)
    if scheme == "iid":
        return iid(y, n_clients, seed)
    if scheme == "dirichlet":
        return dirichlet(y, n_clients, alpha, min_size, seed, strata)
    if scheme == "shards":
        return shards(y, n_clients, classes_per_client, seed)
    if user_ids is None:
        raise LabError("partition 'natural' needs a user id column")
    return natural(y, user_ids, n_clients, seed)
