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

How small may a client be? :func:`min_client_size` adapts the Dirichlet redraw threshold to the data: half an
even share ``n / clients``, at least ``MIN_SIZE_FLOOR`` (a client needs more samples than the kNN degree to draw
a graph), at most ``cap`` (50 in the lab's runs, which the committed data sets always reach). An upload's
default client count is :func:`default_clients`. When no draw works, :class:`PartitionError` carries the
settings that would (``fixes``), found by replaying the same seeded draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.utils import LabError, check_choice, check_range

SCHEMES = ("iid", "dirichlet", "shards", "natural")
ALPHA_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)   # the α values a fix may suggest
MIN_SIZE_FLOOR = 10          # > the default kNN degree (10): every client can draw its graph
MIN_SIZE_SHARE = 0.5         # of an even share n / clients
ROWS_PER_CLIENT = 50         # an upload's default: at least this many rows per client on average
FIX_TRIES = 100              # draws replayed per candidate fix (a fix found in 100 draws works in 1000)


class PartitionError(LabError):
    """No partition for these settings. ``fixes``: setting -> a value that works with the same seed (e.g.
    ``{"clients": 3, "alpha": 0.2, "partition": "iid"}``), for messages that name the user's controls."""

    def __init__(self, message: str, fixes: dict | None = None, settings: dict | None = None):
        super().__init__(message)
        self.fixes = dict(fixes or {})
        self.settings = dict(settings or {})        # the failing call: alpha, clients, min_size


def min_client_size(n: int, n_clients: int, cap: int = 50) -> int:
    """The smallest client a Dirichlet draw may leave: ``min(cap, n // clients, max(floor, share · n / clients))``.

    >>> min_client_size(6000, 5), min_client_size(178, 3), min_client_size(178, 5), min_client_size(50, 2)
    (50, 30, 18, 12)
    """
    even = n // max(1, n_clients)
    return int(min(cap, even, max(MIN_SIZE_FLOOR, round(MIN_SIZE_SHARE * even))))


def max_clients(n: int) -> int:
    """The most clients ``n`` samples can feed with ``MIN_SIZE_FLOOR`` samples each (at least 1)."""
    return max(1, n // MIN_SIZE_FLOOR)


def default_clients(n: int, preferred: int = 5) -> int:
    """The client count an upload of ``n`` rows starts with: ``preferred``, or fewer so that clients average
    at least ``ROWS_PER_CLIENT`` rows (never below 2). 178 rows -> 3 clients (of >= 30, see min_client_size)."""
    return int(max(2, min(preferred, n // ROWS_PER_CLIENT)))


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
    """Raises :class:`PartitionError` (without ``fixes``; :func:`make_partition` adds them) when none of
    ``max_tries`` seeded draws gives every client ``min_size`` samples."""
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
    raise PartitionError(f"no Dirichlet(alpha={alpha}) draw gave every one of {n_clients} clients >= {min_size} "
                         f"samples in {max_tries} tries; raise alpha, lower min_size or use fewer clients",
                         settings={"alpha": alpha, "clients": n_clients, "min_size": min_size})


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


def dirichlet_fixes(y, n_clients: int, alpha: float, *, seed: int = 0, strata=None, min_size: int | None = None,
                    min_size_cap: int = 50) -> dict:
    """Settings that make a Dirichlet partition where ``(n_clients, alpha)`` fails, each changing one thing:
    the most clients below ``n_clients`` at this α, the smallest α of :data:`ALPHA_STEPS` above ``alpha`` at
    these clients, and always ``partition: iid``. A candidate counts only if one of its first ``FIX_TRIES``
    seeded draws works, so the same call with it succeeds (it replays the same draws)."""
    n = len(y)

    def works(c, a):
        ms = min_client_size(n, c, min_size_cap) if min_size is None else min(min_size, n // c)
        try:
            dirichlet(y, c, a, ms, seed, strata, max_tries=FIX_TRIES)
            return True
        except LabError:
            return False
    fixes = {}
    c = next((c for c in range(n_clients - 1, 1, -1) if works(c, alpha)), None)
    if c is not None:
        fixes["clients"] = c
    a = next((a for a in ALPHA_STEPS if a > alpha and works(n_clients, a)), None)
    if a is not None:
        fixes["alpha"] = a
    fixes["partition"] = "iid"
    return fixes


def make_partition(scheme: str, y, n_clients: int, *, alpha: float = 0.5, min_size: int | None = 10,
                   classes_per_client: int = 2, user_ids=None, strata=None, seed: int = 0,
                   min_size_cap: int = 50) -> Partition:
    """One partition by name. ``min_size=None``: the Dirichlet threshold adapts to the data
    (:func:`min_client_size` with ``min_size_cap``). A Dirichlet failure is a :class:`PartitionError` whose
    ``fixes`` say which clients / α / partition would work and whose message says so."""
    check_choice("partition", scheme, SCHEMES)
    if scheme == "iid":
        return iid(y, n_clients, seed)
    if scheme == "dirichlet":
        n = len(np.asarray(y))
        ms = min_client_size(n, n_clients, min_size_cap) if min_size is None else min_size
        try:
            return dirichlet(y, n_clients, alpha, ms, seed, strata)
        except PartitionError as e:
            fixes = dirichlet_fixes(np.asarray(y), n_clients, alpha, seed=seed, strata=strata, min_size=min_size,
                                    min_size_cap=min_size_cap)
            how = [f"alpha={fixes['alpha']:g} works" if "alpha" in fixes else None,
                   f"clients={fixes['clients']} works" if "clients" in fixes else None, "partition=iid works"]
            raise PartitionError(f"{e} ({'; '.join(h for h in how if h)})", fixes, e.settings) from None
    if scheme == "shards":
        return shards(y, n_clients, classes_per_client, seed)
    if user_ids is None:
        raise LabError("partition 'natural' needs a user id column")
    return natural(y, user_ids, n_clients, seed)


def federate(y, cfg, users=None):
    """The GCD split and the partition of labels ``y`` for a run config (the fields ``old_classes``,
    ``labelled_fraction``, ``partition``, ``clients``, ``alpha``, ``seed``, ``min_client_size`` of a
    ``FedGCDConfig``): what :func:`lab.gcd.experiment.prepare` returns after validating the config, and what
    the dashboard draws (without importing the training stack). The Dirichlet threshold adapts to the data
    (:func:`min_client_size` capped at ``cfg.min_client_size``). Returns ``(GCDSplit, Partition)``."""
    from lab.data.split import gcd_split

    split = gcd_split(y, cfg.old_classes, cfg.labelled_fraction, seed=cfg.seed)
    part = make_partition(cfg.partition, y, cfg.clients, alpha=cfg.alpha, min_size=None,
                          min_size_cap=cfg.min_client_size, strata=split.labelled, user_ids=users, seed=cfg.seed)
    return split, part
