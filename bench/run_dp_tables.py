"""Tier-1 grid, tier-2 tables and sweeps for user-level DP -> bench/results/dp_*.json + dp_summary.md.

    python bench/run_dp_tables.py --part tier1        # ~1-2 min: both regimes x ELS/ULS/nonprivate x eps x 3 seeds
    python bench/run_dp_tables.py --part accounting   # eps vs k at fixed sigma: mixture PLD vs group privacy
    python bench/run_dp_tables.py --part tune         # clip/lr grid per algorithm at eps=4, seed 0 (tier 2)
    python bench/run_dp_tables.py --part pu           # privacy-utility: eps in {0.5..16, inf} x ELS/ULS x 3 seeds
    python bench/run_dp_tables.py --part bound        # contribution bound k in {1..64} at eps=4
    python bench/run_dp_tables.py --part summary      # markdown summary from the JSON files

Run one part at a time (1 torch thread each; progress on stderr). Long parts checkpoint their rows to the
output JSON (with "partial": true) after every run. Schemas: lab/privacy/sweep.py.
"""
import argparse
import json
import math
import os
import time

import numpy as np

RES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _p(name):
    return os.path.join(RES, name)


def _write(name, obj):
    from lab.privacy.sweep import json_safe
    from lab.utils import write_json_atomic

    write_json_atomic(_p(name), json_safe(obj))


def _load(name):
    try:
        with open(_p(name)) as f:
            return json.load(f)
    except OSError:
        return None


def part_tier1(a):
    from lab.privacy.sweep import tier1_sweep

    res = tier1_sweep(epsilons=(0.5, 1.0, 2.0, 4.0, 16.0), seeds=(0, 1, 2))
    _write("dp_tier1.json", res)
    print(f"tier1 grid: {res['seconds']:.1f}s")


def part_accounting(a):
    from lab.privacy.sweep import accounting_sweep

    t = time.time()
    res = accounting_sweep(noise_multiplier=a.sigma, steps=a.steps, calibrate_epsilon=4.0)
    res["seconds"] = time.time() - t
    _write("dp_accounting.json", res)


def part_tune(a):
    from lab.privacy.sweep import tune_sweep

    res = tune_sweep(epsilon=4.0, bound=16, steps=a.steps,
                     on_row=lambda rows: _write("dp_tune.json", {"kind": "tune", "partial": True, "rows": rows}))
    _write("dp_tune.json", res)
    print(json.dumps(res["best"]))


def _hyper():
    """Tuned {algo: {clip, lr}} from dp_tune.json when present (else runner.DEFAULTS)."""
    tu = _load("dp_tune.json")
    return tu["best"] if tu and not tu.get("partial") else None


def part_pu(a):
    from lab.privacy.sweep import privacy_utility_sweep

    eps = tuple(a.epsilons) if a.epsilons else (1.0, 2.0, 4.0, 8.0)
    # 3 seeds at the table's epsilons {1, 2, 4, 8}; the curve's extra points get a.extra_seeds
    seeds = {e: tuple(a.seeds) for e in (1.0, 2.0, 4.0, 8.0)}
    seeds["default"] = tuple(a.seeds)
    for e in eps:
        seeds.setdefault(e, tuple(a.extra_seeds))
    old = _load("dp_privacy_utility.json") or {"rows": []}
    res = privacy_utility_sweep(epsilons=eps, seeds=seeds, bound=16, steps=a.steps, hyper=_hyper(),
                                reuse_rows=old["rows"],
                                on_row=lambda rows: _write("dp_privacy_utility.json",
                                                           {"kind": "privacy-utility", "partial": True, "rows": rows}))
    _write("dp_privacy_utility.json", res)


def part_pu_extra(a):
    """Add the curve's extra epsilons (default 0.5, 16, inf) with --extra-seeds to dp_privacy_utility.json."""
    from lab.privacy.sweep import _summ, privacy_utility_sweep

    base = _load("dp_privacy_utility.json")
    eps = tuple(a.epsilons) if a.epsilons else (0.5, 16.0, math.inf)
    res = privacy_utility_sweep(epsilons=eps, seeds={"default": (), **{e: tuple(a.extra_seeds) for e in eps}},
                                bound=base["bound"], steps=base["steps"], batch=base["batch"], hyper=_hyper())
    from lab.privacy.sweep import as_float

    rows = base["rows"] + res["rows"]
    base["rows"] = rows
    dp_rows = [dict(r, epsilon=r["epsilon_target"]) for r in rows if r["algo"] != "nonprivate"]
    base["summary"] = sorted(_summ(dp_rows, ("algo", "epsilon")), key=lambda r: (r["algo"], as_float(r["epsilon"])))
    base["epsilons"] = sorted({as_float(e) for e in base["epsilons"]} | set(eps))
    base["seconds"] = base.get("seconds", 0) + res["seconds"]
    _write("dp_privacy_utility.json", base)


def part_bound(a):
    from lab.privacy.sweep import BOUNDS, bound_sweep

    pu = _load("dp_privacy_utility.json") or {"rows": []}
    prev = _load("dp_bound_sweep.json") or {"rows": []}
    res = bound_sweep(bounds=tuple(a.bounds) if a.bounds else BOUNDS, seeds=tuple(a.bound_seeds), epsilon=4.0,
                      steps=a.steps, hyper=_hyper(), reuse_rows=pu["rows"] + prev["rows"],
                      on_row=lambda rows: _write("dp_bound_sweep.json", {"kind": "bound", "partial": True,
                                                                         "rows": rows}))
    _write("dp_bound_sweep.json", res)


def _f(x, nd=3):
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    return f"{x:.{nd}f}"


def part_summary(a):
    L = ["# User-level DP: measured results", "",
         "Written by `python bench/run_dp_tables.py --part summary` from the JSON files in this folder "
         "(schemas in `lab/privacy/sweep.py`). Loss = held-out users' next-character cross-entropy, nats/char; "
         "tier-1 error = ‖θ̄ − μ‖². User-level ε, δ = 1e-5.", ""]
    t1 = _load("dp_tier1.json")
    if t1:
        L += ["## Tier 1: synthetic mean estimation (3 seeds, tuned clip/lr)", "",
              f"Setting: {t1['config']}; grid time {t1['seconds']:.1f} s.", "",
              "| regime | ε | ELS error | ULS error | non-private | winner |", "|---|---|---|---|---|---|"]
        s = {(r["regime"], r["algo"], str(r["epsilon"])): r for r in t1["summary"]}
        for regime in t1["regimes"]:
            npv = s.get((regime, "nonprivate", "inf"))
            for e in sorted({r["epsilon"] for r in t1["summary"] if r["algo"] == "els"}, key=float):
                els, uls = s[(regime, "els", str(e))], s[(regime, "uls", str(e))]
                win = "ULS" if uls["error_mean"] < els["error_mean"] else "ELS"
                L.append(f"| {regime} (s={t1['regimes'][regime]['s']}) | {e} | {els['error_mean']:.3f} ± "
                         f"{els['error_std']:.3f} | {uls['error_mean']:.3f} ± {uls['error_std']:.3f} | "
                         f"{npv['error_mean']:.3f} | {win} |")
        L += ["", "Tuned (clip, lr): " + ", ".join(f"{k}: ({v['clip']}, {v['lr']})" for k, v in t1["tuned"].items()),
              ""]
    pu = _load("dp_privacy_utility.json")
    if pu and pu.get("partial"):  # an interrupted sweep: summarise the runs it has
        from lab.privacy.sweep import _summ, as_float

        rows = pu["rows"]
        npl = [r["eval_loss"] for r in rows if r["algo"] == "nonprivate"]
        pu = {"rows": rows, "bound": rows[0]["bound"], "steps": rows[0]["steps"], "batch": rows[0]["batch"],
              "pretrained_loss": rows[0]["pretrained_loss"], "seeds": sorted({r["seed"] for r in rows}),
              "nonprivate": {"mean": float(np.mean(npl)), "std": float(np.std(npl))},
              "summary": _summ([dict(r, epsilon=r["epsilon_target"]) for r in rows if r["algo"] != "nonprivate"],
                               ("algo", "epsilon"))}
        pu["epsilons"] = sorted({r["epsilon"] for r in pu["summary"]}, key=as_float)
        L += ["**(partial sweep: the runs finished so far)**", ""]
    if pu:
        L += ["## Tier 2: char LM fine-tuned on Shakespeare users (3 seeds)", "",
              f"k = {pu['bound']}, T = {pu['steps']} steps, B = {pu['batch']} example-gradients per step "
              f"(both algorithms), pretrained on SOTU.", "",
              "| user-level ε | ELS loss | ULS loss | seeds | ELS σ | ULS σ | better |",
              "|---|---|---|---|---|---|---|"]
        s = {(r["algo"], str(r["epsilon"])): r for r in pu["summary"]}
        for e in pu["epsilons"]:
            els, uls = s.get(("els", str(e))), s.get(("uls", str(e)))
            if els and uls:
                win = "ULS" if uls["mean"] < els["mean"] else "ELS"
                L.append(f"| {e} | {els['mean']:.4f} ± {els['std']:.4f} | {uls['mean']:.4f} ± {uls['std']:.4f} | "
                         f"{min(els['n'], uls['n'])} | {_f(els['noise_multiplier'])} | {_f(uls['noise_multiplier'])} | "
                         f"{win} |")
        L += ["", f"Pretrained (no fine-tuning): **{pu['pretrained_loss']:.4f}**; non-private fine-tune: "
              f"**{pu['nonprivate']['mean']:.4f} ± {pu['nonprivate']['std']:.4f}** (gain "
              f"{pu['pretrained_loss'] - pu['nonprivate']['mean']:.3f} nats/char).", ""]
        ex = [r for r in pu["rows"] if r["algo"] == "els" and r.get("epsilon_example") not in (None, "inf")]
        if ex:
            L += ["ELS accounting at the same σ (seed 0): user-level ε (mixture PLD) vs example-level ε vs group "
                  "privacy:", "", "| target ε | user ε (mixture) | example ε | group-privacy ε |", "|---|---|---|---|"]
            for r in ex:
                if r["seed"] == pu["seeds"][0]:
                    L.append(f"| {r['epsilon_target']} | {_f(r['epsilon'])} | {_f(r['epsilon_example'])} | "
                             f"{_f(r['epsilon_group'])} |")
            L.append("")
        secs = [r["seconds"] for r in pu["rows"]]
        L += [f"Seconds per sweep point (one run incl. calibration and evaluation, 1 thread): median "
              f"{np.median(secs):.0f}, max {np.max(secs):.0f}.", ""]
    b = _load("dp_bound_sweep.json")
    if b and b.get("partial"):
        from lab.privacy.sweep import _summ

        b = {"rows": b["rows"], "epsilon": b["rows"][0]["epsilon_target"],
             "seeds": sorted({r["seed"] for r in b["rows"]}),
             "bounds": sorted({r["bound"] for r in b["rows"]}), "summary": _summ(b["rows"], ("algo", "bound"))}
        L += ["**(partial bound sweep)**", ""]
    if b:
        L += [f"## Contribution bound sweep (user-level ε = {b['epsilon']}, seeds {b['seeds']})", "",
              "| k | ELS loss | ELS σ | ULS loss | ULS σ | examples kept |", "|---|---|---|---|---|---|"]
        s = {(r["algo"], r["bound"]): r for r in b["summary"]}
        for k in b["bounds"]:
            e, u = s.get(("els", k)), s.get(("uls", k))
            if not (e and u):
                continue
            L.append(f"| {k} | {e['mean']:.4f} | {_f(e['noise_multiplier'])} | {u['mean']:.4f} | "
                     f"{_f(u['noise_multiplier'])} | {e['n_train_examples']} |")
        for algo in ("els", "uls"):
            best = min((s[(algo, k)] for k in b["bounds"] if (algo, k) in s), key=lambda r: r["mean"])
            L.append(f"\nBest k for {algo.upper()}: {best['bound']} ({best['mean']:.4f}).")
        L.append("")
    acc = _load("dp_accounting.json")
    if acc:
        L += [f"## Accounting alone: ε vs k at σ = {acc['noise_multiplier']}, q = {acc['sampling_rate']:.5f}, "
              f"T = {acc['steps']}", "",
              "| k | mixture PLD (user) | group privacy (user) | example-level | ULS at same σ, q |",
              "|---|---|---|---|---|"]
        for r in acc["rows"]:
            L.append(f"| {r['bound']} | {_f(r['epsilon_mixture'])} | {_f(r['epsilon_group'])} | "
                     f"{_f(r['epsilon_example'])} | {_f(r['epsilon_uls'])} |")
        if acc.get("calibration"):
            L += ["", "σ that ELS needs for user-level ε = 4: " + ", ".join(
                f"k={c['bound']}: {c['sigma_mixture']:.3f}" for c in acc["calibration"])]
        L.append("")
    tu = _load("dp_tune.json")
    if tu:
        L += [f"## Tuning (tier 2, ε = {tu['epsilon']}, k = {tu['bound']}, seed {tu['seed']})", "",
              "| algo | clip | lr | loss |", "|---|---|---|---|"]
        for r in tu["rows"]:
            L.append(f"| {r['algo']} | {r['clip']} | {r['lr']} | {r['eval_loss']:.4f} |")
        L += ["", "Chosen: " + ", ".join(f"{k}: clip {v['clip']}, lr {v['lr']}" for k, v in tu["best"].items()), ""]
    st = _load("dp_step_bench.json")
    if st:
        sp = st["seconds_per_step"]
        L += ["## DP step vs non-private step (one run, interleaved, medians)", "",
              f"{st['threads']} thread(s), {st['device']}, B = {st['batch']}, k = {st['bound']}, "
              f"{st['params']:,} parameters: non-private {sp['nonprivate']*1e3:.1f} ms, ELS {sp['els']*1e3:.1f} ms "
              f"(ratio **{st['ratio']['els']:.2f}**), ULS {sp['uls']*1e3:.1f} ms (ratio **{st['ratio']['uls']:.2f}**).",
              ""]
    with open(_p("dp_summary.md"), "w") as f:
        f.write("\n".join(L))
    print("\n".join(L))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", required=True,
                    choices=("tier1", "accounting", "tune", "pu", "pu_extra", "bound", "summary"))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--extra-seeds", type=int, nargs="+", default=[0],
                    help="seeds for privacy-utility points outside the eps {1,2,4,8} table")
    ap.add_argument("--bound-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--bounds", type=int, nargs="+", default=None)
    ap.add_argument("--epsilons", type=float, nargs="+", default=None)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    os.makedirs(RES, exist_ok=True)
    globals()[f"part_{a.part}"](a)


if __name__ == "__main__":
    main()
