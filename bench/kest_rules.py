"""How well does each InfoMap rule estimate a client's number of categories? (issue 3, K_hat target)

Features and predictions of the committed trained snapshots (SimGCD and FedLPA after 20 rounds, alpha 0.1,
seed 0) on the clients of Dirichlet partitions (seeds 0-2) at alpha 0.1 and 1.0; for each rule, the share of
clients whose K_hat is within +-1 of their true class count (classes holding >= 2 % of the client).
Rules: fixed markov times; "auto" = InfoMap at a base time + merging communities whose prototypes agree;
"labelled-calibrated" = per client, the time whose communities best reproduce its labelled classes.

    python bench/kest_rules.py          # ~1-2 min; writes bench/results/kest_rules.json
"""
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from lab.gcd.clsd import build_graph  # noqa: E402
from lab.gcd.communities import find_communities  # noqa: E402
from lab.gcd.config import FedGCDConfig  # noqa: E402
from lab.gcd.snapshots import client_view, load_weights  # noqa: E402

RULES = {
    "markov 1": dict(markov_time=1.0), "markov 2": dict(markov_time=2.0), "markov 3": dict(markov_time=3.0),
    "markov 4": dict(markov_time=4.0), "markov 5": dict(markov_time=5.0),
    "auto (1, merge 0.7)": dict(markov_time="auto", merge_threshold=0.7),
    "auto (1, merge 0.8)": dict(markov_time="auto", merge_threshold=0.8),
    "auto (1, merge 0.9)": dict(markov_time="auto", merge_threshold=0.9),
    "auto (2, merge 0.8)": dict(markov_time="auto", base_time=2.0, merge_threshold=0.8),
    "labelled-calibrated": dict(markov_time="labelled"),
}


def main():
    torch.set_num_threads(1)
    out = []
    for snap in ("simgcd_alpha0.1_seed0", "fedlpa_alpha0.1_seed0"):
        w, _ = load_weights(os.path.join(ROOT, "data", "snapshots", snap + ".safetensors"))
        for alpha in (0.1, 1.0):
            hits = {r: [] for r in RULES}
            for seed in (0, 1, 2):
                cfg = FedGCDConfig(method="fedlpa", alpha=alpha, seed=seed)
                for k in range(cfg.clients):
                    v = client_view(cfg, k, w)
                    f, p = v["features"], v["probs"]
                    g = build_graph(f, p, v["labelled"], v["y_visible"], v["old_classes"], k=cfg.knn_k)
                    ms = max(2, int(np.ceil(cfg.min_community * len(f))))
                    for r, kw in RULES.items():
                        hits[r].append((find_communities(g, f, min_size=ms, y_visible=v["y_visible"], **kw).k_est,
                                        v["k_true"][k]))
            row = {"snapshot": snap, "alpha": alpha,
                   "within_1": {r: float(np.mean([abs(a - b) <= 1 for a, b in h])) for r, h in hits.items()},
                   "pairs": {r: h for r, h in hits.items()}}
            out.append(row)
            print(snap, alpha, {r: round(v, 2) for r, v in row["within_1"].items()}, flush=True)
    with open(os.path.join(ROOT, "bench", "results", "kest_rules.json"), "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
