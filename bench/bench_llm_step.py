"""SmolLM2 + LoRA: DP step vs non-private step, measured in one run (target: DP <= 1.5x non-private).

    python bench/bench_llm_step.py [--repeats 10] [--threads 1] [--bound 4] [--batch 32]

The three steps the runner trains with (``lab.privacy.runner.STEP``) on the bench's bounded Shakespeare
users: non-private (Poisson sampling + one batched backward through the LoRA top + Adam), ELS (vectorised
per-example adapter gradients — ``torch.func.vmap`` over ``functional_call`` — clipping, noise) and ULS (the
same plus per-user means), and, for the record, ELS with a Python loop of per-example backwards instead of
``vmap`` (``els-loop``). Repeat ``r`` of every variant draws from a generator seeded with ``r``, so
non-private, ELS and ELS-loop differentiate exactly the same windows; ULS samples users at the same rate.
Variants are interleaved (round robin) after a warm-up so machine load hits them alike; reported: medians
per step and seconds per example-gradient (total time / total example-gradients). Frozen-layer states are
cached before timing (the runs' first touch of a window costs one frozen forward; the bench measures the
step). Writes bench/results/llm_dp_step_bench.json.
"""
import argparse
import os
import statistics
import time

import torch

from lab.privacy import llm
from lab.privacy.config import DPRunConfig
from lab.privacy.grads import loss_of
from lab.privacy.mechanism import StepResult, gaussian_sum, poisson_sample
from lab.privacy.runner import STEP, optimizer_step
from lab.utils import get_device, write_json_atomic


def els_loop_step(model, params, data, *, sampling_rate, clip, noise_multiplier, generator, chunk_size=None):
    """ELS with one autograd backward per sampled example (the alternative to vmap; bench only)."""
    M = data.n_examples
    idx = poisson_sample(M, sampling_rate, generator, data.windows.device)
    rows = data.windows[idx]
    names, leaves = zip(*((n, p) for n, p in model.named_parameters() if p.requires_grad))
    per = {n: [] for n in names}
    for i in range(len(idx)):
        gs = torch.autograd.grad(loss_of(model)(model, rows[i:i + 1])[0], leaves)
        for n, g in zip(names, gs):
            per[n].append(g)
    stacked = {n: torch.stack(v) if v else leaves[names.index(n)].new_zeros((0,) + leaves[names.index(n)].shape)
               for n, v in per.items()}
    grads = gaussian_sum(stacked, clip=clip, noise_multiplier=noise_multiplier, denominator=sampling_rate * M,
                         generator=generator)
    return StepResult(grads, int(len(idx)), int(len(idx)))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bound", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lora-rank", type=int, default=4)
    ap.add_argument("--no-loop", action="store_true", help="skip the per-example-loop variant")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "llm_dp_step_bench.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = get_device()
    cfg = DPRunConfig(model="smollm2", algo="nonprivate", epsilon=None, bound=a.bound, batch=a.batch,
                      lora_rank=a.lora_rank, eval_windows=1, seed=0)
    train, _, n_users = llm.user_data(cfg, dev)
    M = train.n_examples
    q = a.batch / M
    train.windows[torch.arange(M)]  # every window's frozen states cached before timing
    model = llm.load_model(cfg, dev)
    params = llm.trainable(model)
    opt = torch.optim.Adam(params.values(), lr=1e-4)
    steps = {"nonprivate": STEP["nonprivate"], "els": STEP["els"], "uls": STEP["uls"]}
    if not a.no_loop:
        steps["els-loop"] = els_loop_step

    def run(step, r):
        gen = torch.Generator().manual_seed(r)
        t = time.perf_counter()
        res = step(model, {n: p.detach() for n, p in params.items()}, train, sampling_rate=q, clip=0.05,
                   noise_multiplier=1.0, generator=gen)
        optimizer_step(params, opt, res)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, res.examples

    for step in steps.values():  # warm-up
        run(step, 10_000)
    times = {k: [] for k in steps}
    examples = {k: [] for k in steps}
    for r in range(a.repeats):
        for k, step in steps.items():
            s, n = run(step, r)
            times[k].append(s)
            examples[k].append(n)
        print(f"repeat {r + 1}/{a.repeats}: " + "  ".join(f"{k} {times[k][-1]:.2f}s/{examples[k][-1]}"
                                                          for k in steps), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    per_ex = {k: sum(times[k]) / max(1, sum(examples[k])) for k in steps}
    res = {"model": "smollm2", "threads": a.threads, "device": str(dev), "batch": a.batch, "bound": a.bound,
           "repeats": a.repeats, "lora_rank": a.lora_rank, "n_train_examples": M, "n_train_users": n_users,
           "trainable_params": sum(p.numel() for p in params.values()),
           "seconds_per_step": med, "seconds_per_example_gradient": per_ex,
           "example_gradients": {k: sum(v) for k, v in examples.items()},
           "ratio": {k: med[k] / med["nonprivate"] for k in steps if k != "nonprivate"},
           "ratio_per_example_gradient": {k: per_ex[k] / per_ex["nonprivate"] for k in steps if k != "nonprivate"},
           "load_average": os.getloadavg()}
    write_json_atomic(a.out, res)
    print("median s/step: " + "  ".join(f"{k} {v:.3f}" for k, v in med.items()))
    print("ratio DP/non-private (median step): " + "  ".join(f"{k} {v:.2f}" for k, v in res["ratio"].items()))
    per = res["ratio_per_example_gradient"]
    print("ratio per example-gradient: " + "  ".join(f"{k} {v:.2f}" for k, v in per.items()))
    return res


if __name__ == "__main__":
    main()
