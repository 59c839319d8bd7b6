"""Build the small training runs the dashboard's training page shows when ``bench/results/gcd/`` is empty.

    python dashboard/build_demo_results.py            # FedAvg+SimGCD and FedLPA at α = 0.1 and 1.0, 6 rounds

Each file is the CLI's result record (``python -m lab fedgcd``), written to ``dashboard/demo_results/``.
Short on purpose (about 1–2 minutes per run on 2 CPU cores): a demo of the curves, not evidence; the
evidence lives in ``bench/results/gcd/``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["simgcd", "fedlpa"])
    p.add_argument("--alphas", nargs="+", type=float, default=[0.1, 1.0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2, help="FedLPA warm-up rounds (the CLI default is 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(ROOT, "dashboard", "demo_results"))
    a = p.parse_args(argv)

    import torch

    from lab.gcd.config import FedGCDConfig
    from lab.gcd.experiment import run_experiment
    from lab.utils import write_json_atomic

    torch.set_num_threads(1)
    for alpha in a.alphas:
        for m in a.methods:
            cfg = FedGCDConfig(method=m, alpha=alpha, rounds=a.rounds, warmup_rounds=a.warmup, seed=a.seed)
            t = time.time()
            res = run_experiment(cfg, on_round=lambda r, n, row: print(f"  {m} α={alpha:g} round {r}/{n}: "
                                                                      f"All {row['acc_all']:.3f}", flush=True))
            res["demo"] = True
            path = os.path.join(a.out, f"{m}_alpha{alpha:g}_seed{a.seed}.json")
            write_json_atomic(path, res)
            print(f"{path}: All {res['acc_all']:.3f} ({time.time() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
