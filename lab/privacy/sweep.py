"""Sweeps for user-level DP, saved as JSON for notebooks and the dashboard (``lab.viz.privacy`` plots them).

All files are strict JSON; infinite values are the string ``"inf"`` (use :func:`as_float` to read them).
Committed results live in ``bench/results/`` and are written by ``bench/run_dp_tables.py`` (or
``python -m lab dp-sweep --kind ...``).

Schema
------
**Run record** (``python -m lab dp`` output and every element of ``rows`` below, task ``lm``)::

    task "lm" | "meanest"; algo "els" | "uls" | "nonprivate"
    epsilon_target   user-level target (float or "inf"; null when the run was given --noise-multiplier)
    epsilon          user-level epsilon as accounted (ELS: mixture-of-Gaussians PLD; ULS: PLD of the
                     Poisson-subsampled Gaussian at the user rate); "inf" without noise
    epsilon_example  ELS only: example-level epsilon (null for ULS)
    epsilon_group    ELS only: user-level epsilon via group privacy (loose; may be "inf")
    epsilon_rdp_opacus  ULS only: Opacus RDP second opinion
    delta, bound (k), noise_multiplier (sigma/C), sampling_rate (examples for ELS/nonprivate, users for ULS),
    sampling_unit "example" | "user", steps, seed, batch (expected example-gradients per step), clip, lr,
    eval_loss (held-out users, nats/char), eval_ppl, pretrained_loss, n_train_users, n_train_examples,
    n_eval_windows, example_gradients (actually computed), accountant, seconds, seconds_train,
    seconds_calibration, history [{step, eval_loss}],
    config           the run's DPRunConfig.to_dict() with every default (batch, clip, lr) filled in, so
                     DPRunConfig.from_dict(record["config"]) reruns it (records written before it lack it)
    model "charlm" | "smollm2", trainable_params (parameters that train: all of the char LM, SmolLM2's LoRA
    adapters); model "smollm2" only: eval_loss / pretrained_loss in nats/token plus eval_loss_per_char,
    pretrained_loss_per_char (bench/run_llm_dp.py writes bench/results/llm_dp_*.json in the formats below)
    (task "meanest" records carry the tier-1 keys tau, s, dim, n_users, error, error_last, regime instead
    of the LM-only ones; eval_loss is the squared error there)

``bench/results/dp_privacy_utility.json`` (:func:`privacy_utility_sweep`)::

    {"kind": "privacy-utility", "delta", "bound", "steps", "batch", "seeds": [..], "epsilons": [.., "inf"],
     "pretrained_loss": float, "nonprivate": {"mean", "std", "losses": [...]},
     "rows": [run record, ...],
     "summary": [{"algo", "epsilon", "mean", "std", "n", "noise_multiplier", "n_train_examples"}, ...],
     "seconds": float}
    (the table's epsilons {1, 2, 4, 8} have 3 seeds; the curve's extra points 0.5, 16 and "inf" — clipping
    without noise — have seed 0 only: check "n". While a sweep runs the file holds {"partial": true, "rows"}.)

``bench/results/dp_bound_sweep.json`` (:func:`bound_sweep`)::

    {"kind": "bound", "epsilon", "delta", "steps", "batch", "bounds": [..], "seeds": [..],
     "pretrained_loss", "rows": [run record...],
     "summary": [{"algo", "bound", "mean", "std", "n", "noise_multiplier", "n_train_examples"}], "seconds"}
    (rows taken over from the privacy-utility sweep — same deterministic run — carry "reused": true)

``bench/results/dp_accounting.json`` (:func:`accounting_sweep`)::

    {"kind": "accounting", "noise_multiplier", "sampling_rate", "steps", "delta",
     "rows": [{"bound", "epsilon_mixture", "epsilon_group", "epsilon_example", "epsilon_uls",
               "seconds"}], "calibration": [{"bound", "epsilon_target", "sigma_mixture", "seconds"}]}

``bench/results/dp_tier1.json`` (:func:`tier1_sweep`)::

    {"kind": "tier1", "config": MeanEstConfig as dict, "regimes": {"diverse": {"tau", "s"}, ...},
     "delta", "sampling_rate", "tuned": {"<regime>/<algo>": {"clip", "lr", "grid": [{clip, lr, error}]}},
     "rows": [{"regime", "algo", "epsilon", "seed", "noise_multiplier", "clip", "lr", "error",
               "error_last"}],
     "summary": [{"regime", "algo", "epsilon", "error_mean", "error_std", "n"}], "seconds"}

``bench/results/dp_tune.json`` (:func:`tune_sweep`)::

    {"kind": "tune", "epsilon", "bound", "delta", "steps", "seed": 0,
     "rows": [run record...], "best": {"els": {"clip", "lr", "eval_loss"}, "uls": ..., "nonprivate": ...}}

``bench/results/dp_step_bench.json`` (``bench/bench_dp_step.py``)::

    {"threads", "batch", "repeats", "seconds_per_step": {"nonprivate", "els", "uls"},
     "ratio": {"els", "uls"}, "params"}
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from lab.privacy.config import ALGORITHMS, DPRunConfig
from lab.privacy.runner import json_safe  # noqa: F401  (re-exported)
from lab.utils import repo_root

#: Where the committed sweeps live (relative paths are taken from the repository root).
RESULTS_DIR = "bench/results"
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
BOUNDS = (1, 2, 4, 8, 16, 32, 64)


def as_float(v):
    """Read a JSON number that may be the string "inf"."""
    return math.inf if v == "inf" else (-math.inf if v == "-inf" else float(v))


def results_path(name: str, results_dir: str = RESULTS_DIR) -> Path:
    """``results_dir / name``, a relative ``results_dir`` taken from the repository root."""
    d = Path(results_dir)
    return (d if d.is_absolute() else Path(repo_root()) / d) / name


def stored(name: str, results_dir: str = RESULTS_DIR):
    """A stored result JSON (e.g. ``"dp_accounting.json"``), or None if it has not been produced yet."""
    p = results_path(name, results_dir)
    return json.loads(p.read_text()) if p.exists() else None


def _say(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _summ(rows, keys):
    acc = {}
    for r in rows:
        acc.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for k, rs in acc.items():
        losses = [r["eval_loss"] for r in rs]
        d = dict(zip(keys, k))
        d.update(mean=float(np.mean(losses)), std=float(np.std(losses)), n=len(losses),
                 noise_multiplier=rs[0]["noise_multiplier"], n_train_examples=rs[0].get("n_train_examples"))
        out.append(d)
    return out


def _hp(hyper, algo):
    """``{"clip", "lr"}`` for ``algo`` from a ``{algo: {"clip", "lr", ...}}`` dict (tuned values), or {}."""
    if not hyper or algo not in hyper:
        return {}
    return {k: hyper[algo][k] for k in ("clip", "lr") if k in hyper[algo]}


def _find(rows, algo, eps, k, seed, steps, batch, delta, hyper):
    """A stored run record identical in every setting (same deterministic run), or None."""
    from lab.privacy.runner import DEFAULTS

    hp = _hp(hyper, algo) or {"clip": DEFAULTS[algo]["clip"], "lr": DEFAULTS[algo]["lr"]}
    for r in rows:
        if r.get("partial_marker"):
            continue
        e = r["epsilon_target"]
        e = as_float(e) if e is not None else None
        same_eps = not ALGORITHMS[algo].private or (e is not None and e == eps)
        if (r["algo"] == algo and same_eps and r["bound"] == k and r["seed"] == seed and r["steps"] == steps
                and r["batch"] == batch and r["delta"] == delta and r["clip"] == hp.get("clip")
                and r["lr"] == hp.get("lr")):
            return r
    return None


def _strip(r):
    return {k: v for k, v in r.items() if k not in ("device",)}


def _run(algo, epsilon, **settings) -> dict:
    """One ``run_lm`` (the non-private baseline ignores ``epsilon``); ``settings``: DPRunConfig fields."""
    from lab.privacy.runner import run_lm

    return run_lm(DPRunConfig(task="lm", algo=algo, epsilon=epsilon if ALGORITHMS[algo].private else None,
                              **settings))


def privacy_utility_sweep(epsilons=EPSILONS, seeds=(0, 1, 2), bound=16, steps=100, delta=1e-5, batch=256,
                          algos=("els", "uls"), on_row=None, hyper=None, reuse_rows=(), **kw) -> dict:
    """ELS and ULS at each user-level epsilon (``inf`` = clipping without noise) plus the non-private
    baseline, ``seeds`` each, same bound/steps/example-gradients. ``seeds`` may be a dict
    ``{epsilon: seeds}`` to spend fewer seeds on some points. ``hyper``: tuned ``{algo: {clip, lr}}``
    (default: ``runner.DEFAULTS``). ``reuse_rows``: stored records of identical runs are reused, not
    recomputed (so an interrupted sweep resumes). Runs go seed by seed, so a partial file has whole
    curves. ``kw``: further ``DPRunConfig`` fields of every run (e.g. ``eval_windows``). See module
    schema."""
    t0 = time.time()
    rows = []
    seeds_of = (lambda e: seeds.get(e, seeds.get("default", (0,)))) if isinstance(seeds, dict) else (lambda e: seeds)
    np_seeds = tuple(seeds.get("default", (0,))) if isinstance(seeds, dict) else tuple(seeds)
    all_seeds = sorted(set(np_seeds) | {s_ for e in epsilons for s_ in seeds_of(e)})

    def one(algo, eps, seed):
        old = _find(reuse_rows, algo, eps, bound, seed, steps, batch, delta, hyper)
        if old is not None:
            rows.append(old)
            return
        r = _run(algo, eps, delta=delta, bound=bound, steps=steps, seed=seed, batch=batch, **_hp(hyper, algo),
                 **kw)
        rows.append(_strip(r))
        if on_row:
            on_row(rows)
        _say(f"{algo} eps={eps} seed={seed} loss={r['eval_loss']:.4f} z={r['noise_multiplier']:.3f} "
             f"({r['seconds']:.0f}s)")

    for seed in all_seeds:
        if seed in np_seeds:
            one("nonprivate", math.inf, seed)
        for eps in epsilons:
            if seed in seeds_of(eps):
                for algo in algos:
                    one(algo, eps, seed)
    npl = [r["eval_loss"] for r in rows if r["algo"] == "nonprivate"]
    dp_rows = [dict(r, epsilon=r["epsilon_target"]) for r in rows if r["algo"] != "nonprivate"]
    summary = _summ(dp_rows, ("algo", "epsilon"))
    return {"kind": "privacy-utility", "delta": delta, "bound": bound, "steps": steps, "batch": batch,
            "seeds": sorted({r["seed"] for r in rows}), "epsilons": list(epsilons),
            "pretrained_loss": rows[0]["pretrained_loss"],
            "nonprivate": {"mean": float(np.mean(npl)), "std": float(np.std(npl)), "losses": npl},
            "rows": rows, "summary": summary, "seconds": time.time() - t0}


def bound_sweep(bounds=BOUNDS, seeds=(0,), epsilon=4.0, steps=100, delta=1e-5, batch=256,
                algos=("els", "uls"), on_row=None, hyper=None, reuse_rows=(), **kw) -> dict:
    """Contribution bound k vs held-out loss at one user-level epsilon, for ELS and ULS.

    ``reuse_rows``: run records from another sweep (e.g. the privacy-utility runs at this epsilon and
    k = 16); a record with the same algo, k, epsilon, seed, steps, batch, clip and lr is the same
    deterministic run, so it is reused instead of recomputed (marked ``"reused": true``). ``kw``: further
    ``DPRunConfig`` fields of every run."""
    t0 = time.time()
    rows = []
    for k in bounds:
        for algo in algos:
            for seed in seeds:
                old = _find(reuse_rows, algo, epsilon, k, seed, steps, batch, delta, hyper)
                if old is not None:
                    rows.append(dict(old, reused=True))
                    _say(f"{algo} k={k} seed={seed}: reused")
                    continue
                r = _run(algo, epsilon, delta=delta, bound=k, steps=steps, seed=seed, batch=batch,
                         **_hp(hyper, algo), **kw)
                rows.append(_strip(r))
                if on_row:
                    on_row(rows)
                _say(f"{algo} k={k} seed={seed} loss={r['eval_loss']:.4f} z={r['noise_multiplier']:.3f} "
                     f"M={r['n_train_examples']} ({r['seconds']:.0f}s)")
    return {"kind": "bound", "epsilon": epsilon, "delta": delta, "steps": steps, "batch": batch,
            "bounds": list(bounds), "seeds": list(seeds), "pretrained_loss": rows[0]["pretrained_loss"],
            "rows": rows, "summary": _summ(rows, ("algo", "bound")), "seconds": time.time() - t0}


def accounting_sweep(bounds=BOUNDS, noise_multiplier=1.0, sampling_rate=None, steps=100, delta=1e-5,
                     calibrate_epsilon=None) -> dict:
    """User-level epsilon vs k at a fixed sigma and q: mixture-of-Gaussians PLD vs group privacy, plus the
    example-level and ULS epsilons at the same sigma and rate. ``sampling_rate`` defaults to the tier-2
    rate at k = 16. With ``calibrate_epsilon``, also the sigma each k needs for that user-level epsilon."""
    from lab.privacy import accounting as A

    if sampling_rate is None:
        sampling_rate = default_lm_rate(16)
    rows = []
    for k in bounds:
        t = time.time()
        rows.append({"bound": k,
                     "epsilon_mixture": A.els_user_epsilon(noise_multiplier, sampling_rate, steps, k, delta),
                     "epsilon_group": A.group_privacy_epsilon(noise_multiplier, sampling_rate, steps, k, delta),
                     "epsilon_example": A.els_example_epsilon(noise_multiplier, sampling_rate, steps, delta),
                     "epsilon_uls": A.uls_epsilon(noise_multiplier, sampling_rate, steps, delta),
                     "seconds": time.time() - t})
        _say(f"accounting k={k}: {rows[-1]}")
    cal = []
    for k in (bounds if calibrate_epsilon else ()):
        t = time.time()
        z = A.calibrate_noise(calibrate_epsilon, delta, sampling_rate, steps, algo="els", bound=k)
        cal.append({"bound": k, "epsilon_target": calibrate_epsilon, "sigma_mixture": z, "seconds": time.time() - t})
        _say(f"calibration k={k}: {cal[-1]}")
    return {"kind": "accounting", "noise_multiplier": noise_multiplier, "sampling_rate": sampling_rate,
            "steps": steps, "delta": delta, "rows": rows, "calibration": cal}


def default_lm_rate(bound=16, batch=256) -> float:
    """The tier-2 example sampling rate B/M at contribution bound ``bound``."""
    from lab.privacy.users import bound_contributions, load_user_data

    w, _ = bound_contributions(load_user_data().train_windows, bound, 0)
    return batch / len(w)


def tier1_sweep(epsilons=(1.0, 4.0, 16.0), seeds=(0, 1, 2), delta=1e-5) -> dict:
    """Tier-1 grid (see ``meanest.regime_grid``) with a per-(regime, algo, epsilon) summary."""
    from lab.privacy.meanest import regime_grid, summarize

    g = regime_grid(epsilons=epsilons, seeds=seeds, delta=delta)
    g["kind"] = "tier1"
    g["summary"] = summarize(g)
    return g


#: (clip, lr) pairs tried per algorithm. Per-example gradient norm of the pretrained model on Shakespeare:
#: median 16.5; per-user mean gradient at k=16: median 6.6 — small clips put every update in the
#: "all clipped" regime, the large ones clip about half.
TUNE_GRID = {
    "els": ((1.0, 1e-3), (1.0, 3e-3), (8.0, 1e-3)),
    "uls": ((0.5, 1e-3), (0.5, 3e-3), (4.0, 1e-3)),
    "nonprivate": ((None, 1e-3), (None, 3e-3)),
}


def tune_sweep(epsilon=4.0, bound=16, steps=100, delta=1e-5, seed=0, grid=TUNE_GRID, on_row=None, **kw) -> dict:
    """Clip-norm / learning-rate grid per algorithm at one user-level epsilon and one seed."""
    rows, best = [], {}
    for algo, pairs in grid.items():
        for clip, lr in pairs:
            r = _run(algo, epsilon, delta=delta, bound=bound, steps=steps, seed=seed, clip=clip, lr=lr, **kw)
            rows.append(_strip(r))
            _say(f"tune {algo} clip={clip} lr={lr}: {r['eval_loss']:.4f} ({r['seconds']:.0f}s)")
            if on_row:
                on_row(rows)
            if algo not in best or r["eval_loss"] < best[algo]["eval_loss"]:
                best[algo] = {"clip": clip, "lr": lr, "eval_loss": r["eval_loss"]}
    return {"kind": "tune", "epsilon": epsilon, "bound": bound, "delta": delta, "steps": steps, "seed": seed,
            "rows": rows, "best": best}
