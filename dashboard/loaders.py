"""Cached loaders: every call from a page into ``lab`` that costs more than a widget goes through here.

Heavy work is cached with ``st.cache_resource`` (read-only arrays, graphs, models: no copy on a hit), keyed by
plain tuples of settings; the work itself is ``lab``'s (``lab.gcd.experiment.prepare``, ``lab.gcd.snapshots``,
``lab.gcd.clsd``, ``lab.gcd.communities``, ``lab.data.tabular``). The snapshot folder is a module attribute so
that the tests can point it at an empty folder; result files are read by ``result_files.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from lab.data.tabular import UserData
from lab.utils import LabError

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT_DIR = ROOT / "data" / "snapshots"

OLD_CLASSES = (0, 1, 2, 3, 4)


def set_threads():
    import torch

    torch.set_num_threads(1)    # 2 shared cores: one thread is faster than two (FIELD_NOTES)


# --------------------------------------------------------------------------------------------------------
# Bring your own data: validated uploads (lab.data.tabular) kept in memory, keyed by their digest
# --------------------------------------------------------------------------------------------------------

@st.cache_resource
def _upload_registry() -> dict:
    """digest -> UserData, shared by the cached loaders (the digest is the cache key)."""
    return {}


def register_upload(ud: UserData) -> str:
    """Keep a validated upload (the 16 most recent) and return its data-set key ``upload:<digest>``."""
    reg = _upload_registry()
    if len(reg) > 16:
        reg.pop(next(iter(reg)))
    reg[ud.digest] = ud
    return f"upload:{ud.digest}"


def has_upload(key: str) -> bool:
    return key.split(":", 1)[1] in _upload_registry()


# --------------------------------------------------------------------------------------------------------
# Data set, split and partition
# --------------------------------------------------------------------------------------------------------

@dataclass
class Pool:
    """One whole data set (all training samples) as the partition pages see it."""
    key: str
    name: str
    y: np.ndarray
    class_names: list
    images: np.ndarray | None       # (N, H, W) uint8 or None
    features: np.ndarray | None     # (N, d) float32 standardised (uploads) or None
    users: np.ndarray | None
    old_classes: tuple
    data: object                    # what lab.gcd.experiment.prepare reads (ImageData or UserData)


def upload_data(key: str) -> UserData:
    ud = _upload_registry().get(key.split(":", 1)[1])
    if ud is None:
        raise LabError("the uploaded file is no longer in memory: upload it again (sidebar, Bring your own data)")
    return ud


@st.cache_resource(show_spinner=False)
def load_pool(key: str) -> Pool:
    if key.startswith("upload:"):
        ud = upload_data(key)
        return Pool(key, ud.name, ud.labels, list(ud.class_names), ud.images(), ud.standardised(), ud.users,
                    ud.old_classes, ud)
    from lab.data.images import load_dataset

    d = load_dataset(key)
    return Pool(key, key, d.y_train, list(d.class_names), d.x_train, None, None, OLD_CLASSES, d)


@dataclass
class Federation:
    pool: Pool
    split: object          # lab.data.split.GCDSplit
    part: object           # lab.data.partition.Partition


def fed_config(dataset, scheme, alpha, clients, seed):
    """The run config of these settings (an upload's: its name and its old classes)."""
    from lab.gcd.config import FedGCDConfig

    kw = {}
    if dataset.startswith("upload:"):
        pool = load_pool(dataset)
        kw = dict(dataset=pool.name, old_classes=pool.old_classes)
    else:
        kw = dict(dataset=dataset)
    return FedGCDConfig(partition=scheme, alpha=float(alpha), clients=int(clients), seed=int(seed), **kw)


@st.cache_resource(show_spinner=False, max_entries=64)
def federation(pool_key: str, scheme: str, alpha: float, clients: int, seed: int) -> Federation:
    """GCD split + partition of these settings: :func:`lab.data.partition.federate`, the very function
    :func:`lab.gcd.experiment.prepare` returns after validating the config (an upload is its ``data``; a test
    checks both agree). Called directly so that pages that never train do not import torch (seconds on a cold
    start); the sidebar only offers valid settings, and the partition checks its own inputs."""
    from lab.data.partition import federate

    pool = load_pool(pool_key)
    split, part = federate(pool.y, fed_config(pool_key, scheme, alpha, clients, seed), pool.users)
    return Federation(pool, split, part)


# --------------------------------------------------------------------------------------------------------
# Trained snapshots (data/snapshots/): thin cached wrappers over lab.gcd.snapshots
# --------------------------------------------------------------------------------------------------------

def snapshots() -> dict:
    """Committed trained models: stem -> path (``data/snapshots/*.safetensors``)."""
    from lab.gcd.snapshots import snapshot_paths

    return snapshot_paths(str(SNAPSHOT_DIR))


@st.cache_resource(show_spinner=False)
def load_snapshot(path: str):
    """(weights, FedGCDConfig) of a committed snapshot."""
    from lab.gcd.snapshots import load_weights

    return load_weights(path)


def model_options(pool_key: str) -> list:
    if pool_key.startswith("upload:"):
        return ["features"]
    if pool_key == "digits":
        return ["pixels"]
    snaps = sorted(snapshots(), key=lambda s: (not s.startswith("fedlpa"), not s.startswith("simgcd"), s))
    return [f"snap:{s}" for s in snaps] + ["backbone", "pixels"]


def snapshot_pairs() -> dict:
    """Snapshots grouped by setting: "alpha=0.1, seed 0" -> {method: path}, from each file's stored config."""
    out = {}
    for stem, path in snapshots().items():
        try:
            _, cfg = load_snapshot(path)
        except Exception:  # noqa: BLE001 - a half-written or foreign file is skipped, not fatal
            continue
        key = f"{cfg.dataset}, α={cfg.alpha:g}, {cfg.clients} clients, seed {cfg.seed}"
        out.setdefault(key, {})[cfg.method] = path
    return out


@st.cache_resource(show_spinner=False)
def head_classes(path: str) -> np.ndarray:
    """Each head of a snapshot read as a class (:func:`lab.gcd.snapshots.head_classes`), cached."""
    from lab.gcd.snapshots import head_classes as _head_classes

    set_threads()
    return _head_classes(*load_snapshot(path))


def to_class_space(p_heads, head_class, n_classes: int) -> np.ndarray:
    from lab.gcd.snapshots import to_class_space as _to_class_space

    return _to_class_space(p_heads, head_class, n_classes)


@st.cache_resource(show_spinner=False, max_entries=32)
def snapshot_client(path: str, client: int) -> dict:
    """A client seen through a snapshot (:func:`lab.gcd.snapshots.snapshot_client`), cached."""
    from lab.gcd.snapshots import snapshot_client as _snapshot_client

    set_threads()
    return _snapshot_client(*load_snapshot(path), client)


# --------------------------------------------------------------------------------------------------------
# One client: features, graph, layout, communities
# --------------------------------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=64)
def client_arrays(pool_key, scheme, alpha, clients, seed, client, model, n_max) -> dict:
    """One client's samples seen through ``model``: features, predictions (None without trained heads),
    true / visible labels, labelled mask, images; subsampled (seeded) to at most ``n_max`` samples."""
    fed = federation(pool_key, scheme, alpha, clients, seed)
    if not 0 <= client < fed.part.n_clients:
        raise LabError(f"client must be in [0, {fed.part.n_clients - 1}], got {client}")
    idx = fed.part.client_indices[client]
    pool = fed.pool
    probs = None
    if model == "pixels":
        if pool.images is None:
            raise LabError("this data set has no images: choose its features")
        feats = pool.images[idx].reshape(len(idx), -1).astype(np.float32) / 255.0
    elif model == "features":
        feats = pool.features[idx]
    elif model == "backbone" or model.startswith("snap:"):
        from lab.gcd.snapshots import client_view

        set_threads()              # torch only where a model runs (raw pixels and uploads never import it)
        weights = None
        if model.startswith("snap:"):
            path = snapshots().get(model[5:])
            if path is None:
                raise LabError(f"snapshot {model[5:]} not found under data/snapshots/")
            weights, _ = load_snapshot(path)
        v = client_view(fed_config(pool_key, scheme, alpha, clients, seed), client, weights)
        feats = v["features"]
        probs = v["probs"] if weights is not None else None   # untrained heads give meaningless confidence
    else:
        raise LabError(f"unknown model {model!r}")
    y = pool.y[idx]
    lab = fed.split.labelled[idx]
    sel = np.arange(len(idx))
    if len(idx) > n_max:
        sel = np.sort(np.random.default_rng(seed).choice(len(idx), int(n_max), replace=False))
    out = {"index": idx[sel], "features": np.ascontiguousarray(feats[sel]),
           "probs": None if probs is None else probs[sel],
           "y_true": y[sel], "labelled": lab[sel], "y_visible": np.where(lab[sel], y[sel], -1),
           "images": None if pool.images is None else pool.images[idx[sel]],
           "old_classes": np.asarray(pool.old_classes), "class_names": pool.class_names, "n_client": len(idx)}
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    return out


def usable_k(ckey: tuple, k: int) -> int:
    """k, lowered to n - 1 on a client of n <= k samples (the page says so)."""
    return int(max(1, min(int(k), len(client_arrays(*ckey)["y_true"]) - 1)))


@st.cache_resource(show_spinner=False, max_entries=128)
def graph_for(ckey: tuple, k: int, quantile: float, floor: float, refine: bool = True):
    from lab.gcd.clsd import build_graph

    c = client_arrays(*ckey)
    # probs=None (raw features, uploads): only labelled samples refine the graph
    return build_graph(c["features"], c["probs"], c["labelled"], c["y_visible"], c["old_classes"],
                       k=usable_k(ckey, k), quantile=float(quantile), sim_floor=float(floor), refine=refine)


@st.cache_resource(show_spinner=False, max_entries=64)
def layout_for(ckey: tuple, method: str, n_draw: int | None = None, k: int = 10, quantile: float = 0.5,
               floor: float = 0.0) -> tuple:
    """(indices of the drawn nodes, their (m, 2) positions): a seeded subsample of ``n_draw`` nodes, laid out
    by ``method`` on their own features (``spring``: the whole graph, then the drawn nodes' positions)."""
    from lab.viz.layout import draw_subset, embed_2d

    c = client_arrays(*ckey)
    keep = draw_subset(len(c["y_true"]), n_draw, seed=0)
    if method == "spring":
        pos = embed_2d(c["features"], method, seed=0, graph=graph_for(ckey, k, quantile, floor))[keep]
    else:
        pos = embed_2d(c["features"][keep], method, seed=0)
    keep.setflags(write=False)
    pos.setflags(write=False)
    return keep, pos


@st.cache_resource(show_spinner=False, max_entries=256)
def communities_for(ckey: tuple, k: int, quantile: float, floor: float, markov_time, min_share: float):
    from lab.gcd.communities import find_communities

    c = client_arrays(*ckey)
    g = graph_for(ckey, k, quantile, floor)
    min_size = max(2, int(math.ceil(min_share * len(c["y_true"]))))
    return find_communities(g, c["features"], markov_time=markov_time, min_size=min_size, seed=1,
                            y_visible=c["y_visible"])


def communities_routed(ckey: tuple, k: int, quantile: float, floor: float, markov_time, min_share: float,
                       route=None) -> tuple:
    """(communities, the first K̂ or None): :func:`communities_for`, then, with ``route`` (a
    ``lab.gcd.discovery.DiscoveryParams``), FedLPA's coarse route: a client whose communities number at most its
    ``coarse_k`` is found again at its ``coarse_markov_time`` (its merging of new-class communities by the model's
    predictions is FedLPA's alone: this page has no trained heads to read). None: the route is off. The page's
    slider may set a first time at or above the coarse one, which FedLPA's never is: there the route is off too."""
    com = communities_for(ckey, k, quantile, floor, markov_time, min_share)
    if route is None or com.markov_time >= route.coarse_markov_time or not route.routes(com.k_est):
        return com, None
    return communities_for(ckey, k, quantile, floor, route.coarse_markov_time, min_share), com.k_est


@st.cache_resource(show_spinner=False, max_entries=64)
def community_histogram(ckey: tuple, k: int, quantile: float, floor: float, markov_time, min_share: float):
    """(true class histogram, the communities read as classes) of one client, both normalised: each community's
    size goes to its majority true class (noise is left out). A teaching view of the local prior FedLPA
    estimates; FedLPA itself never reads true labels."""
    c = client_arrays(*ckey)
    com = communities_for(ckey, k, quantile, floor, markov_time, min_share)
    y, n_cls = c["y_true"], len(c["class_names"])
    read = np.zeros(n_cls)
    for m in np.unique(com.labels[com.labels >= 0]):
        read[np.bincount(y[com.labels == m], minlength=n_cls).argmax()] += (com.labels == m).sum()
    return np.bincount(y, minlength=n_cls) / len(y), read / max(read.sum(), 1)
