"""Empirical privacy audits (one run each, canary users) and the fast accountant's measured margin
-> bench/results/dp_audit.json.

    python bench/run_dp_audit.py --part meanest   # synthetic testbed: ELS/ULS at 5 claims + non-private, 3 seeds
    python bench/run_dp_audit.py --part charlm    # char LM on Shakespeare users at modest sizes (tens of minutes)
    python bench/run_dp_audit.py --part fast      # epsilon_fast vs the library on page-reachable inputs
    python bench/run_dp_audit.py --part all

Resumable: every finished run is written to the JSON at once (``"partial": true`` until all parts are done)
and skipped when the script runs again with the same settings. One torch thread; run it with ``nice``.
Each record is the ``python -m lab dp-audit`` record (``lab/privacy/audit.py``) without the per-canary
scores. The figure: ``lab.viz.privacy.audit_figure``; the page: ``dashboard/views/privacy_sections/audit.py``.
"""
import argparse
import json
import os
import time

RES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
OUT = os.path.join(RES, "dp_audit.json")

#: The audits: per task, the claims audited (plus one non-private run) and the run settings.
PLAN = {
    "meanest": {"epsilons": (1.0, 2.0, 4.0, 8.0, 16.0), "seeds": (0, 1, 2),
                "kw": {"canaries": 1000, "bound": 16, "delta": 1e-5}},
    "charlm": {"epsilons": (1.0, 4.0, 16.0), "seeds": (0,),
               "kw": {"canaries": 500, "bound": 8, "delta": 1e-5, "steps": 200, "batch": 256}},
}
#: The fast path: the page's default view, and random draws of (kind, k, sigma, B) checked at every (T, delta).
FAST_DRAWS = 12
PAGE = {"sigma": (0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0), "steps": (100, 300, 1000, 3000),
        "delta": (1e-4, 1e-5, 1e-6, 1e-7), "batch": (16, 32, 64, 128, 256)}
DEFAULT_VIEW = {"k": 16, "sigma": 1.0, "steps": 300, "delta": 1e-5, "batch": 64}


def _load() -> dict:
    try:
        with open(OUT) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"runs": [], "fast_path": None}


def _save(res: dict) -> None:
    from lab.privacy.runner import json_safe
    from lab.utils import write_json_atomic

    write_json_atomic(OUT, json_safe(res))


def _key(cfg) -> str:
    return cfg.key()


def part_audits(task: str, res: dict) -> None:
    from tqdm import tqdm

    from lab.privacy.audit import run_audit

    todo = [c for c in _planned() if c.task == task]
    done = {r["config_key"] for r in res["runs"]}
    for cfg in tqdm(todo, desc=f"audits {task}"):
        if _key(cfg) in done:
            continue
        r = run_audit(cfg)
        for s in r["scores"].values():
            s.pop("by_guesses", None)
        r.pop("canary_scores"), r.pop("canary_in")
        r["config_key"] = _key(cfg)
        res["runs"].append(r)
        res["partial"] = True
        _save(res)
        tqdm.write(f"{task} {cfg.algo} eps={cfg.epsilon} seed={cfg.seed}: lower={r['epsilon_lower']:.3f} "
                   f"claimed={r['epsilon_claimed']} ({r['seconds']:.0f}s)")


def _examples_after_bound() -> dict:
    from lab.privacy.sweep import BOUNDS
    from lab.privacy.users import load_user_data

    counts = [len(w) for w in load_user_data().train_windows]
    return {k: sum(min(n, k) for n in counts) for k in BOUNDS}


def part_fast(res: dict) -> None:
    """epsilon_fast / library epsilon (reporting discretisation) on reachable inputs of the privacy page."""
    import numpy as np

    from lab.privacy import accounting as A
    from lab.privacy.sweep import BOUNDS

    t0 = time.time()
    m_of_k = _examples_after_bound()
    step_cache = {}

    def library(kind, z, q, T, delta, k):
        if kind == "els":
            if (z, q, k) not in step_cache:
                step_cache.clear()
                step_cache[(z, q, k)] = A._step_pld("els", z, q, k, A.REPORT_DISCRETIZATION)
            from dp_accounting.pld import privacy_loss_distribution as P

            composed = P.identity(value_discretization_interval=A.REPORT_DISCRETIZATION).compose(
                step_cache[(z, q, k)].self_compose(T))                 # as the library's accountant composes
            return float(composed.get_epsilon_for_delta(delta))
        if kind == "group":
            return A.group_privacy_epsilon(z, q, T, k, delta)
        return A.sampled_gaussian_epsilon(z, q, T, delta)

    def point(kind, k, z, B, T, delta):
        q = min(1.0, B / m_of_k[k])
        fast, lib = A.epsilon_fast(kind, z, q, T, delta, k), library(kind, z, q, T, delta, k)
        return {"kind": kind, "bound": k, "sigma": z, "batch": B, "steps": T, "delta": delta, "sampling_rate": q,
                "fast": fast, "library": lib, "ratio": fast / lib if lib and np.isfinite(lib) else None}

    v = DEFAULT_VIEW
    default = [point(kind, v["k"], v["sigma"], v["batch"], v["steps"], v["delta"])
               for kind in ("els", "uls", "example", "group")]
    rng = np.random.default_rng(11)
    sample = []
    for _ in range(FAST_DRAWS):
        kind = str(rng.choice(["els", "uls", "example", "group"]))
        k, z, B = int(rng.choice(BOUNDS)), float(rng.choice(PAGE["sigma"])), int(rng.choice(PAGE["batch"]))
        sample += [point(kind, k, z, B, T, d) for T in PAGE["steps"] for d in PAGE["delta"]]
    ratios = {}
    for p in sample + default:
        if p["ratio"] is not None:
            ratios.setdefault(p["kind"], []).append(p["ratio"])
    summary = {kind: {"n": len(r), "min": float(np.min(r)), "median": float(np.median(r)), "max": float(np.max(r))}
               for kind, r in ratios.items()}
    res["fast_path"] = {"default_view": {**v, "points": default}, "sample": sample, "summary": summary,
                        "all_at_or_above": all(p["fast"] >= p["library"] for p in sample + default),
                        "library_discretization": A.REPORT_DISCRETIZATION,
                        "fast_discretization": A.FAST_DISCRETIZATION_BY_KIND, "seconds": time.time() - t0}
    _save(res)
    print({k: (round(s["min"], 4), round(s["median"], 4), round(s["max"], 4)) for k, s in summary.items()})


def _planned() -> list:
    from lab.privacy.audit import AuditConfig

    return [AuditConfig(task=task, algo=algo, epsilon=eps, seed=seed, **plan["kw"])
            for task, plan in PLAN.items() for seed in plan["seeds"]
            for algo, eps in [("nonprivate", None)] + [(a, e) for e in plan["epsilons"] for a in ("els", "uls")]]


def finish(res: dict) -> None:
    """Mark the file complete, or partial with the planned runs still missing (task, algo, epsilon, seed)."""
    done = {r["config_key"] for r in res["runs"]}
    missing = [f"{c.task} {c.algo} eps={c.epsilon} seed={c.seed}" for c in _planned() if _key(c) not in done]
    if not res.get("fast_path"):
        missing.append("fast_path (--part fast)")
    res["partial"] = bool(missing)
    res["missing"] = missing
    res["plan"] = {t: {**p, "epsilons": list(p["epsilons"]), "seeds": list(p["seeds"])} for t, p in PLAN.items()}


def main():
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("meanest", "charlm", "fast", "all", "finish"), default="all",
                    help="finish: only mark the file complete or partial (what is missing)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    res = _load()
    for part in {"all": ("meanest", "fast", "charlm"), "finish": ()}.get(a.part, (a.part,)):
        if part == "fast":
            part_fast(res)
        else:
            part_audits(part, res)
    finish(res)
    if a.part != "finish":
        res["seconds_last_invocation"] = time.time() - t0
    _save(res)


if __name__ == "__main__":
    main()
