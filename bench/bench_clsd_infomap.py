"""FedLPA's discovery on one client of 5,000 samples (feature extraction excluded). Target <= 1 s.

Features, frozen-prefix features and predictions come from the committed trained FedLPA snapshot on 5,000 Fashion-MNIST
training images; the timed part is ``lab.gcd.discovery.discover`` with the library's FedLPA settings: the CLSD
graph (kNN on the prefix features, refined by the labelled samples), InfoMap, merging, the coarse route where it
fires, the community -> head mapping and the prior. Three variants, interleaved in each repeat so they share the
machine's state: the library's settings, the coarse route off, and the route forced on every client (what a routed
client costs: a second InfoMap and finish on the same graph); ratios against the route off, measured in the same
run. The graph alone (``build_discovery_graph``) is timed beside them. Median of repeats, after one warm-up round.

    python bench/bench_clsd_infomap.py
"""
import json
import os
import time

import numpy as np
import torch
from tqdm import tqdm

from lab.gcd.config import FedGCDConfig
from lab.gcd.discovery import build_discovery_graph, discover
from lab.gcd.snapshots import client_view, load_weights
from lab.utils import write_json_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAPSHOT = os.path.join("data", "snapshots", "fedlpa_alpha0.1_seed0.safetensors")
N = 5000


def variants() -> dict:
    lib = FedGCDConfig(method="fedlpa").discovery_params()
    return {"library": lib, "route off": lib.replace(coarse_k=None), "route forced": lib.replace(coarse_k=1000)}


def main(repeats=5):
    torch.set_num_threads(1)
    w, _ = load_weights(os.path.join(ROOT, SNAPSHOT))
    v = client_view(FedGCDConfig(method="fedlpa", clients=1, partition="iid"), 0, w)
    idx = np.random.default_rng(0).choice(len(v["y_true"]), N, replace=False)
    args = (v["features"][idx], v["probs"][idx], v["labelled"][idx], v["y_visible"][idx], v["old_classes"],
            v["probs"].shape[1])
    pre = v["prefix_features"][idx]
    runs = variants()
    times, k_est = {name: [] for name in [*runs, "graph only"]}, {}
    for r in tqdm(range(repeats + 1), desc="discovery timings", unit="round"):
        for name, params in runs.items():
            d = discover(*args, prefix_features=pre, params=params, seed=0)
            k_est[name] = int(d.k_est)
            if r:                                   # the first round warms scikit-learn / infomap up
                times[name].append(d.seconds)
        t0 = time.perf_counter()
        build_discovery_graph(*args[:5], prefix_features=pre, params=runs["library"], seed=0)
        if r:
            times["graph only"].append(time.perf_counter() - t0)
    med = {name: float(np.median(t)) for name, t in times.items()}
    lib = runs["library"]
    rec = {"samples": N, "snapshot": SNAPSHOT, "knn_k": lib.knn_k, "markov_time": lib.markov_time,
           "coarse_k": lib.coarse_k, "coarse_markov_time": lib.coarse_markov_time, "features": lib.features,
           "k_est": k_est, "median_s": med, "runs_s": times,
           "ratio_to_route_off": {name: med[name] / med["route off"] for name in runs},
           "target_s": 1.0, "meets_target": med["library"] <= 1.0}
    write_json_atomic(os.path.join(ROOT, "bench", "results", "clsd_infomap_time.json"), rec)
    print(json.dumps({k: rec[k] for k in ("k_est", "median_s", "ratio_to_route_off", "meets_target")}, indent=1))


if __name__ == "__main__":
    main()
