"""Tune once, then run the comparison tables for federated GCD (issues 2 and 3).

Stage ``tune``  (alpha = 0.1, seed 0): a small learning-rate grid per method, plus FedLPA's form and eps.
                The best setting per method (mean All of the last 3 evaluations) becomes its default;
                written to bench/results/gcd_tuning.json.
Stage ``tables``: every method at its tuned setting: FedLPA / FedAvg+SimGCD / FedAvg+GCD at alpha 0.1 and
                1.0 over 3 seeds; alpha 0.5, local and centralized at seed 0; FedLPA's three ablations.
Each run's full record -> bench/results/gcd/<name>.json; the summary -> bench/results/gcd_summary.md.

    python bench/run_gcd_tables.py --stage all --workers 16      # ~5 min on 16 idle cores
    python bench/run_gcd_tables.py --stage all --quick           # digits, 2 rounds: a smoke test of this script
"""
import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RES = os.path.join(ROOT, "bench", "results")

TUNE_GRID = {
    "simgcd": [dict(lr=lr) for lr in (0.02, 0.05, 0.1)],
    "gcd": [dict(lr=lr) for lr in (0.02, 0.05, 0.1)],
    "local": [dict(lr=lr) for lr in (0.05, 0.1)],
    "central": [dict(lr=lr) for lr in (0.05, 0.1)],
    "fedlpa": [dict(lr=lr, lpa_form=f, lpa_weight=e) for lr in (0.05, 0.1)
               for f, e in (("add", 0.5), ("add", 1.0), ("replace", 0.5))],
}


def name_of(method, alpha, seed, extra):
    tag = "_".join(f"{k}{v}" for k, v in sorted(extra.items()))
    return f"{method}_a{alpha}_s{seed}" + (f"_{tag}" if tag else "")


def run_one(job):
    import torch

    torch.set_num_threads(1)
    from lab.gcd.config import FedGCDConfig
    from lab.gcd.experiment import run_experiment

    method, alpha, seed, extra, quick, out_dir, weights_out = job
    kw = dict(method=method, alpha=alpha, seed=seed, **extra)
    if quick:
        kw.update(dataset="digits", rounds=2, warmup_rounds=1, clients=3)
    cfg = FedGCDConfig(**kw)
    r = run_experiment(cfg, weights_out=weights_out)
    path = os.path.join(out_dir, name_of(method, alpha, seed, extra) + ".json")
    with open(path, "w") as f:
        json.dump(r, f, indent=1)
    return path, r["acc_all"], r["seconds"]


def run_jobs(jobs, workers):
    out = []
    with ProcessPoolExecutor(workers) as ex:
        for path, acc, secs in ex.map(run_one, jobs):
            print(f"{os.path.basename(path)}: All {acc:.4f} ({secs:.0f}s)", flush=True)
            out.append(path)
    return out


def tune(args, out_dir):
    jobs = [(m, 0.1, 0, g, args.quick, out_dir, None) for m, grid in TUNE_GRID.items() for g in grid]
    run_jobs(jobs, args.workers)
    best = {}
    table = []
    for m, grid in TUNE_GRID.items():
        scored = []
        for g in grid:
            r = json.load(open(os.path.join(out_dir, name_of(m, 0.1, 0, g) + ".json")))
            scored.append((r["acc_all"], g))
            table.append({"method": m, **g, "acc_all": r["acc_all"], "acc_old": r["acc_old"], "acc_new": r["acc_new"]})
        best[m] = max(scored, key=lambda t: t[0])[1]
    rec = {"protocol": "alpha=0.1, seed 0, default rounds; best = highest mean All of the last 3 evaluations",
           "grid": table, "best": best}
    with open(os.path.join(RES, "gcd_tuning.json" if not args.quick else "gcd_tuning_quick.json"), "w") as f:
        json.dump(rec, f, indent=1)
    return best


def tables(args, out_dir, best):
    jobs = []
    snap = os.path.join(ROOT, "data", "snapshots")
    for alpha in (0.1, 1.0):
        for seed in (0, 1, 2):
            for m in ("fedlpa", "simgcd", "gcd"):
                if (seed, alpha) == (0, 0.1) and m == "gcd":
                    continue                   # same run as in the tuning grid
                w = (os.path.join(snap, f"{m}_alpha{alpha}_seed{seed}.safetensors")
                     if (seed == 0 and alpha == 0.1 and m in ("fedlpa", "simgcd") and not args.quick) else None)
                jobs.append((m, alpha, seed, best[m], args.quick, out_dir, w))
    for m in ("fedlpa", "simgcd", "gcd", "local", "central"):
        jobs.append((m, 0.5, 0, best[m], args.quick, out_dir, None))
    for alpha in (1.0,):               # alpha 0.1 local/central: same runs as in the tuning grid
        for m in ("local", "central"):
            jobs.append((m, alpha, 0, best[m], args.quick, out_dir, None))
    for abl in (dict(use_lpa=False), dict(use_confidence=False), dict(oracle_prior=True)):
        jobs.append(("fedlpa", 0.1, 0, {**best["fedlpa"], **abl}, args.quick, out_dir, None))
    other = {"add": "replace", "replace": "add"}[best["fedlpa"].get("lpa_form", "add")]
    jobs.append(("fedlpa", 0.1, 0, {**best["fedlpa"], "lpa_form": other}, args.quick, out_dir, None))
    # dedupe (a tuned run may equal a table run; rerunning is cheap but keep one file per name)
    seen, uniq = set(), []
    for j in jobs:
        key = name_of(j[0], j[1], j[2], j[3])
        if key not in seen:
            seen.add(key)
            uniq.append(j)
    run_jobs(uniq, args.workers)


def summarize(out_dir, best, quick):
    runs = [json.load(open(os.path.join(out_dir, f))) for f in sorted(os.listdir(out_dir)) if f.endswith(".json")]

    def pick(method, alpha, extra):
        cfg = dict(best[method], **extra)
        return [r for r in runs if r["method"] == method and r["alpha"] == alpha
                and all(r["config"].get(k) == v for k, v in cfg.items())
                and all(r["config"].get(k) == v for k, v in
                        dict(use_lpa=True, use_confidence=True, oracle_prior=False).items() if k not in extra)]

    lines = ["# Federated GCD on Fashion-MNIST (old 0-4 / new 5-9, 50% of old labelled, 5 clients)", "",
             f"Tuned settings (alpha 0.1, seed 0): `{json.dumps(best)}`", "",
             "All / Old / New: mean of the last 3 evaluations per run; mean ± std over seeds.", "",
             "| method | alpha | seeds | All | Old | New | test All | K_hat within ±1 | s/run |", "|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for method, alpha, extra, label in [
        ("fedlpa", 0.1, {}, "FedLPA"), ("simgcd", 0.1, {}, "FedAvg+SimGCD"), ("gcd", 0.1, {}, "FedAvg+GCD"),
        ("local", 0.1, {}, "local"), ("central", 0.1, {}, "centralized"),
        ("fedlpa", 0.5, {}, "FedLPA"), ("simgcd", 0.5, {}, "FedAvg+SimGCD"), ("gcd", 0.5, {}, "FedAvg+GCD"),
        ("local", 0.5, {}, "local"), ("central", 0.5, {}, "centralized"),
        ("fedlpa", 1.0, {}, "FedLPA"), ("simgcd", 1.0, {}, "FedAvg+SimGCD"), ("gcd", 1.0, {}, "FedAvg+GCD"),
        ("local", 1.0, {}, "local"), ("central", 1.0, {}, "centralized"),
        ("fedlpa", 0.1, dict(use_lpa=False), "FedLPA --no-lpa"),
        ("fedlpa", 0.1, dict(use_confidence=False), "FedLPA --no-confidence"),
        ("fedlpa", 0.1, dict(oracle_prior=True), "FedLPA --oracle-prior"),
        ("fedlpa", 0.1, dict(lpa_form={"add": "replace", "replace": "add"}[best["fedlpa"].get("lpa_form", "add")]),
         "FedLPA other form"),
    ]:
        rs = pick(method, alpha, extra)
        if not rs:
            continue
        a = {k: np.array([r[k] for r in rs]) for k in ("acc_all", "acc_old", "acc_new", "test_acc_all", "seconds")}
        fmt = lambda v: f"{100 * v.mean():.1f} ± {100 * v.std():.1f}" if len(v) > 1 else f"{100 * v.mean():.1f}"  # noqa: E731
        kh = "—"
        if rs[0]["k_est"] is not None:
            ok = [abs(e - t) <= 1 for r in rs for e, t in zip(r["k_est"], r["k_true"])]
            kh = f"{100 * np.mean(ok):.0f}% ({sum(ok)}/{len(ok)})"
        lines.append(f"| {label} | {alpha} | {len(rs)} | {fmt(a['acc_all'])} | {fmt(a['acc_old'])} | {fmt(a['acc_new'])} | "
                     f"{fmt(a['test_acc_all'])} | {kh} | {a['seconds'].mean():.0f} |")
        summary.append({"label": label, "method": method, "alpha": alpha, "extra": extra, "seeds": [r["seed"] for r in rs],
                        **{k + "_mean": float(v.mean()) for k, v in a.items()},
                        **{k + "_std": float(v.std()) for k, v in a.items()}})
    txt = "\n".join(lines) + "\n"
    suffix = "_quick" if quick else ""
    with open(os.path.join(RES, f"gcd_summary{suffix}.md"), "w") as f:
        f.write(txt)
    with open(os.path.join(RES, f"gcd_summary{suffix}.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(txt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=["tune", "tables", "all", "summary"], default="all")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()
    global RES
    if args.quick:                     # smoke test: keep the real results untouched
        import tempfile

        RES = tempfile.mkdtemp(prefix="gcd_quick_")
    out_dir = args.out_dir or os.path.join(RES, "gcd")
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(os.path.join(ROOT, "data", "snapshots"), exist_ok=True)
    t0 = time.time()
    tuning = os.path.join(RES, "gcd_tuning_quick.json" if args.quick else "gcd_tuning.json")
    if args.stage in ("tune", "all"):
        best = tune(args, out_dir)
    else:
        best = json.load(open(tuning))["best"]
    if args.stage in ("tables", "all"):
        tables(args, out_dir, best)
    summarize(out_dir, best, args.quick)
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
