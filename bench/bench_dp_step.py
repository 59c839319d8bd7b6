"""DP training step vs non-private step, measured in one run: ratio for ELS and ULS (target <= 2).

    python bench/bench_dp_step.py [--repeats 30] [--threads 1] [--bound 16] [--batch 64]

Same model (the tier-2 char LM), same bounded Shakespeare users, same expected example-gradients per step
(B). The non-private step is Poisson sampling + one batched backward + Adam; ELS adds vectorised
per-example gradients, clipping and noise; ULS adds per-user averaging as well. All three are the steps
the runner trains with (``lab.privacy.runner.STEP``). The three are timed
interleaved (round robin) after a warm-up so machine load hits them alike; medians are reported.
Writes bench/results/dp_step_bench.json.
"""
import argparse
import os
import statistics
import time

import torch

from lab.privacy.charlm import CharLM, load_pretrained
from lab.privacy.runner import STEP, optimizer_step
from lab.privacy.users import BoundedUsers, bound_contributions, load_user_data
from lab.utils import get_device, write_json_atomic


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bound", type=int, default=16)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "dp_step_bench.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = get_device()
    data = load_user_data()
    train = BoundedUsers.build(*bound_contributions(data.train_windows, a.bound, 0), device=dev)
    M = train.n_examples
    q = a.batch / M
    try:
        model = load_pretrained(device=dev)
    except Exception:
        model = CharLM().to(dev)
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)

    def timed(step):
        def one():
            res = step(model, {n: p.detach() for n, p in params.items()}, train, sampling_rate=q, clip=1.0,
                       noise_multiplier=1.0, generator=gen)
            optimizer_step(params, opt, res)
        return one

    fns = {algo: timed(STEP[algo]) for algo in ("nonprivate", "els", "uls")}
    times = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        for _ in range(3):
            f()
    for _ in range(a.repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"threads": a.threads, "device": str(dev), "batch": a.batch, "bound": a.bound, "repeats": a.repeats,
           "params": sum(p.numel() for p in model.parameters()), "n_train_examples": M,
           "seconds_per_step": med, "seconds_per_step_mean": {k: statistics.mean(v) for k, v in times.items()},
           "ratio": {"els": med["els"] / med["nonprivate"], "uls": med["uls"] / med["nonprivate"]}}
    write_json_atomic(a.out, res)
    print(f"median s/step: nonprivate {med['nonprivate']:.4f}  ELS {med['els']:.4f}  ULS {med['uls']:.4f}")
    print(f"ratio DP/non-private: ELS {res['ratio']['els']:.2f}  ULS {res['ratio']['uls']:.2f}  "
          f"({a.threads} thread(s), {dev})")
    return res


if __name__ == "__main__":
    main()
