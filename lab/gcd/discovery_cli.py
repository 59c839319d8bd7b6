"""`python -m lab discover ...`: FedLPA's discovery step on every client of a partition, for your own data.

An analyst's CSV/NPZ (the dashboard's upload, the same validation: :func:`lab.data.tabular.read_upload`) or a
built-in data set is split into old/new classes and partitioned exactly as the dashboard does
(:func:`lab.data.partition.federate`, with the client count the data can carry by default). Each client then runs
:func:`lab.gcd.discovery.discover` on its own standardised features (no trained model: the graph is refined by
the visible labels only) and reports K̂ = old classes present + new-class communities, beside the client's true
class count. The discovery is the library's (:class:`lab.gcd.discovery.DiscoveryParams`, FedLPA's defaults but
what needs a trained model: merging new communities by their predictions has no predictions to read here), the
coarse route included: a client whose discovery counts at most ``--coarse-k`` categories is discovered again at a
coarser time, and its row says so (``first_k_hat``, ``markov_time``). The record is one JSON object (``config``
with every discovery parameter used, per-client rows, ``k_hat_within_1``).

Federated *training* on an upload is not offered: the lab's GCD objectives learn from two augmented views of an
image, and a table of features has no augmentation the lab could defend.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from lab.utils import LabError, check_range, write_json_atomic


def register(sub) -> None:
    from lab.gcd.cli import _or_off
    from lab.gcd.discovery import DiscoveryParams

    d = DiscoveryParams()
    p = sub.add_parser("discover", help="FedLPA's discovery (graph -> InfoMap -> K_hat) per client, on your data",
                       description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a CSV (label column + numeric features, optional user column) or NPZ file")
    src.add_argument("--dataset", help="a built-in data set: fashion_mnist or digits (raw pixels)")
    p.add_argument("--clients", type=int, default=None, help="default: as many as the data can carry (<= 5)")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet label-skew parameter (> 0)")
    p.add_argument("--partition", default="dirichlet", help="dirichlet, or users (the file's user column)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", dest="knn_k", type=int, default=d.knn_k, help="kNN graph degree (>= 1)")
    p.add_argument("--markov-time", type=float, default=d.markov_time, help="InfoMap markov time (> 0)")
    p.add_argument("--mutual-knn", action="store_true",
                   help="keep a kNN link only where each end lists the other among its k nearest")
    p.add_argument("--coarse-k", type=_or_off(int, "a count >= 1"), default=d.coarse_k,
                   help="a client whose discovery counts at most this many categories is discovered again at "
                        f"markov time {d.coarse_markov_time:g}, or 'off' (default {d.coarse_k}, FedLPA's)")
    p.add_argument("--out", default=None, help="result JSON path (default: print to stdout)")
    p.set_defaults(func=run)


def _pool(a):
    """(name, labels, standardised features, class names, old classes, user ids or None)."""
    from lab.data.tabular import read_upload

    if a.data is not None:
        ud = read_upload(a.data)
        return ud.name, ud.labels, ud.standardised(), list(ud.class_names), ud.old_classes, ud.users
    from lab.data.images import load_dataset
    from lab.gcd.config import FedGCDConfig

    data = load_dataset(a.dataset)                     # a LabError names the known data sets
    x = data.x_train.reshape(len(data.y_train), -1).astype(np.float32) / 255.0
    return a.dataset, data.y_train, x, list(data.class_names), FedGCDConfig().old_classes, None


def run(a) -> int:
    import json

    from lab.data.partition import default_clients, federate
    from lab.gcd.config import FedGCDConfig
    from lab.gcd.discovery import DiscoveryParams, discover
    from lab.privacy.cli import check_out

    check_out(a.out)                                   # before any work: an unwritable --out fails first
    check_range("alpha", a.alpha, 0, None, low_open=True)
    check_range("k", a.knn_k, 1, 1000, integer=True)
    check_range("markov_time", a.markov_time, 0, None, low_open=True)
    params = DiscoveryParams(knn_k=a.knn_k, markov_time=a.markov_time, knn_mutual=a.mutual_knn,
                             coarse_k=a.coarse_k).validate()
    name, y, x, class_names, old, users = _pool(a)
    clients = default_clients(len(y)) if a.clients is None else a.clients
    check_range("clients", clients, 1, max(1, len(y) // 10), integer=True)
    if a.partition not in ("dirichlet", "users"):
        raise LabError(f"partition must be dirichlet or users, got {a.partition!r}")
    if a.partition == "users" and users is None:
        raise LabError("partition=users needs a user column in the data file (or use --partition dirichlet)")
    cfg = FedGCDConfig(dataset=name, partition=a.partition, alpha=a.alpha, clients=clients, seed=a.seed,
                       old_classes=tuple(old))
    t0 = time.perf_counter()
    split, part = federate(y, cfg, users)
    k_true = part.k_true(0.02)
    rows = []
    for c, idx in enumerate(part.client_indices):
        lab = split.labelled[idx]
        y_vis = np.where(lab, y[idx], -1)
        n_heads = len(class_names)
        d = discover(x[idx], None, lab, y_vis, old, n_heads,
                     params=params.replace(knn_k=max(1, min(a.knn_k, len(idx) - 1))), seed=a.seed)
        rows.append({"client": c, "n": len(idx), "labelled": int(lab.sum()), "k_true": k_true[c],
                     "k_old": d.k_old, "k_new": d.k_new, "k_hat": d.k_old + d.k_new,
                     "first_k_hat": d.first_k_est, "markov_time": d.communities.markov_time,
                     "community_sizes": [int(s) for s in np.bincount(d.communities.labels[d.communities.labels >= 0])
                                         if s > 0],
                     "seconds": round(d.seconds, 3)})
    ok = [abs(r["k_hat"] - r["k_true"]) <= 1 for r in rows]
    rec = {"kind": "discovery", "data": name, "rows_in_data": int(len(y)), "classes": class_names,
           "old_classes": list(old), "config": {"partition": a.partition, "alpha": a.alpha, "clients": clients,
                                                 "seed": a.seed, "knn_k": a.knn_k, "markov_time": a.markov_time,
                                                 "discovery": dataclasses.asdict(params)},
           "clients": rows, "k_hat_within_1": float(np.mean(ok)), "seconds": round(time.perf_counter() - t0, 3)}
    if a.out:
        write_json_atomic(a.out, rec)
    else:
        print(json.dumps(rec, indent=1))
    return 0
