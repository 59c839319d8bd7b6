"""CLSD graph + InfoMap on one client of 5,000 samples (feature extraction excluded). Target <= 1 s.

Features and predictions come from the committed trained FedLPA snapshot on 5,000 Fashion-MNIST training
images; the timed part is build_graph (kNN + confidence refinement) + find_communities (InfoMap, noise,
prototypes) + the community->head mapping and prior. Median of repeats, after one warm-up call.

    python bench/bench_clsd_infomap.py
"""
import json
import os
import time

import numpy as np
import torch

from lab.gcd.clsd import build_graph
from lab.gcd.communities import find_communities
from lab.gcd.config import FedGCDConfig
from lab.gcd.prior import empirical_prior, map_communities_to_heads, sample_heads
from lab.gcd.snapshots import client_view, load_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(repeats=5):
    torch.set_num_threads(1)
    w, cfg0 = load_weights(os.path.join(ROOT, "data", "snapshots", "fedlpa_alpha0.1_seed0.safetensors"))
    v = client_view(FedGCDConfig(method="fedlpa", clients=1, partition="iid"), 0, w)
    idx = np.random.default_rng(0).choice(len(v["y_true"]), 5000, replace=False)
    f, p, lab, yv = v["features"][idx], v["probs"][idx], v["labelled"][idx], v["y_visible"][idx]
    cfg = FedGCDConfig(method="fedlpa")
    times, parts = [], []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        g = build_graph(f, p, lab, yv, v["old_classes"], k=cfg.knn_k, quantile=cfg.confidence_quantile)
        t1 = time.perf_counter()
        c = find_communities(g, f, markov_time=cfg.markov_time, min_size=int(np.ceil(cfg.min_community * 5000)))
        t2 = time.perf_counter()
        heads = sample_heads(c.labels, p, map_communities_to_heads(c.labels, p, yv, p.shape[1]))
        empirical_prior(heads, p.shape[1])
        t3 = time.perf_counter()
        if r:                                   # first call warms scikit-learn / infomap up
            times.append(t3 - t0)
            parts.append({"graph_s": t1 - t0, "infomap_s": t2 - t1, "prior_s": t3 - t2})
    rec = {"samples": 5000, "k": cfg.knn_k, "markov_time": cfg.markov_time, "edges": g.counts(), "k_est": c.k_est,
           "median_s": float(np.median(times)), "runs_s": times,
           "median_parts_s": {k: float(np.median([p_[k] for p_ in parts])) for k in parts[0]}, "target_s": 1.0}
    with open(os.path.join(ROOT, "bench", "results", "clsd_infomap_time.json"), "w") as fh:
        json.dump(rec, fh, indent=1)
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
