"""Federated loop vs centralized training over the same number of example-passes (one run, a ratio).

FedAvg+SimGCD with 5 Dirichlet clients for R rounds x 1 local epoch sees every training image R times, as
does centralized SimGCD for R epochs. Same model, same client code, same batch size; no evaluation. The
ratio (federated seconds / centralized seconds) measures what the federated machinery costs: copying
weights in and out, aggregation, per-client optimiser state and smaller last batches. Target <= 1.2.

    python bench/bench_fed_overhead.py --rounds 3 --repeats 3
"""
import argparse
import json
import os
import time

import numpy as np
import torch

from lab.federated.core import run_federated
from lab.gcd.config import FedGCDConfig
from lab.gcd.experiment import Experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cfg, central: bool):
    import dataclasses

    exp = Experiment(dataclasses.replace(cfg, method="central" if central else cfg.method), torch.device("cpu"))
    clients = exp.clients()
    for c in clients:                   # the frozen-prefix view bank is built once per run either way
        c._prepare_cache()
    t = time.perf_counter()
    run_federated(clients, exp.strategy(), exp.initial_weights(), cfg.rounds, seed=cfg.seed)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = FedGCDConfig(method="simgcd", alpha=a.alpha, rounds=a.rounds)
    fed, cen = [], []
    for _ in range(a.repeats):           # interleaved, so background load hits both alike
        fed.append(timed(cfg, central=False))
        cen.append(timed(cfg, central=True))
    ratio = float(np.median(fed) / np.median(cen))
    rec = {"what": "FedAvg+SimGCD 5 clients vs centralized, same example-passes, no evaluation",
           "rounds": a.rounds, "alpha": a.alpha, "threads": a.threads, "federated_s": fed, "centralized_s": cen,
           "ratio_median": ratio, "target": 1.2, "machine": f"{os.cpu_count()} cores, torch {torch.__version__}"}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "fed_overhead.json"), "w") as f:
        json.dump(rec, f, indent=1)
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
