r"""Tuned defaults of the privacy half: each DP algorithm's own (k, lr, clip), read from the committed tuning.

``bench/run_dp_tuning.py`` tunes ELS and ULS separately (protocol: ``bench/README.md``) at a few
user-level :math:`\varepsilon` (``tuning_epsilons``) and stores, per algorithm and tuned
:math:`\varepsilon`, the contribution bound, learning rate, clip norm and the clip's quantile level, plus
the gradient-norm quantiles at every bound it measured. :func:`apply_tuned` fills the fields a run left
unset from the setting of the **nearest tuned** :math:`\varepsilon` (in :math:`\log\varepsilon`; ties go
to the smaller one, whose setting was tuned under more noise; :math:`\infty` takes the largest) and says
so in a ``tuned_from`` record. Fields the caller set explicitly always win. When the bound is explicit
but the clip is not, the clip is placed at the tuned *quantile level* of the norms measured at that bound
(the nearest measured bound), not copied, because the norms ULS clips shrink with k.

Privacy: the tuning read the private training users; its choices are not covered by the reported
:math:`\varepsilon` (``bench/README.md``).
"""
from __future__ import annotations

import dataclasses
import math

from lab.privacy.config import ALGORITHMS, DPRunConfig

TUNING_FILE = "dp_tuning.json"
TUNED_FIELDS = ("bound", "lr", "clip")
#: The model the committed tuning fine-tuned (other models keep their own defaults).
TUNED_MODEL = "charlm"
#: Which gradient norms each algorithm clips (``norms[k]["<unit>_quantiles"]`` in the tuning file).
CLIP_UNIT = {"els": "example", "uls": "user"}


def load_tuning(results_dir=None) -> dict | None:
    """The committed tuning (``bench/results/dp_tuning.json``), or None when absent or unfinished."""
    from lab.privacy.sweep import RESULTS_DIR, stored

    t = stored(TUNING_FILE, results_dir or RESULTS_DIR)
    return t if t and t.get("tuned") else None


def nearest_epsilon(epsilon: float, tuned_epsilons) -> float:
    """The tuned epsilon closest to ``epsilon`` in log scale (ties: the smaller; inf: the largest)."""
    eps = sorted(float(e) for e in tuned_epsilons)
    if not eps:
        raise ValueError("no tuned epsilon")
    if math.isinf(epsilon):
        return eps[-1]
    return min(eps, key=lambda e: (round(abs(math.log(e) - math.log(epsilon)), 9), e))


def clip_at_bound(tuning: dict, algo: str, bound: int, level: float) -> tuple[float, int]:
    """``(clip, measured_bound)``: the ``level`` quantile of the norms ``algo`` clips, measured at the
    bound nearest to ``bound`` (log scale) in the tuning file's ``norms``."""
    norms = tuning["norms"]
    k = min((int(b) for b in norms), key=lambda b: (abs(math.log(b) - math.log(bound)), b))
    q = norms[str(k)][f"{CLIP_UNIT[algo]}_quantiles"]
    return float(q[_level_key(q, level)]), k


def _level_key(quantiles: dict, level: float) -> str:
    return min(quantiles, key=lambda s: abs(float(s) - level))


def setting_for(tuning: dict, algo: str, epsilon: float) -> tuple[float, dict]:
    """``(tuned epsilon, {"bound", "lr", "clip", "clip_quantile", ...})`` for ``algo`` at ``epsilon``."""
    per_eps = tuning["tuned"][algo]
    e = nearest_epsilon(epsilon, [float(x) for x in per_eps])
    return e, per_eps[_eps_key(per_eps, e)]


def _eps_key(d: dict, e: float) -> str:
    return next(k for k in d if float(k) == e)


def apply_tuned(cfg: DPRunConfig, given=(), results_dir=None, tuning: dict | None = None):
    """``(cfg, tuned_from)``: ``cfg`` with every field of ``TUNED_FIELDS`` not in ``given`` taken from the
    tuned setting for ``cfg.algo`` at the nearest tuned epsilon; ``tuned_from`` records where they came
    from (None, and ``cfg`` unchanged, when nothing was filled: all given, a non-private or non-``lm`` run,
    no epsilon target, or no committed tuning)."""
    given = set(given)
    missing = [f for f in TUNED_FIELDS if f not in given]
    if (not missing or cfg.task != "lm" or getattr(cfg, "model", TUNED_MODEL) != TUNED_MODEL
            or not ALGORITHMS[cfg.algo].private or cfg.epsilon is None or cfg.noise_multiplier is not None):
        return cfg, None
    tuning = tuning if tuning is not None else load_tuning(results_dir)
    if tuning is None or cfg.algo not in tuning["tuned"]:
        return cfg, None
    e, s = setting_for(tuning, cfg.algo, float(cfg.epsilon))
    bound = cfg.bound if "bound" in given else int(s["bound"])
    lr = cfg.lr if "lr" in given else float(s["lr"])
    note = {}
    if "clip" in given:
        clip = cfg.clip
    elif bound == int(s["bound"]):
        clip = float(s["clip"])
    else:
        clip, measured = clip_at_bound(tuning, cfg.algo, bound, float(s["clip_quantile"]))
        note = {"clip_placed_at_bound": measured}
    tuned_from = {"file": f"{results_dir or 'bench/results'}/{TUNING_FILE}", "algo": cfg.algo, "epsilon": e,
                  "requested_epsilon": cfg.epsilon, "fields": missing,
                  "setting": {k: s[k] for k in ("bound", "lr", "clip", "clip_quantile")},
                  "tuning": s.get("protocol", "full"), **note}
    return dataclasses.replace(cfg, bound=bound, lr=lr, clip=clip).validate(), tuned_from


def comparison_rows(curve: dict) -> list[dict]:
    """One row per epsilon of ``dp_tuned_curve.json``: each algorithm's tuned setting and loss (mean ± std over
    evaluation seeds), the paired per-seed ULS − ELS differences and the winner (for tables)."""
    s = {(r["algo"], float(r["epsilon"])): r for r in curve.get("summary") or []}
    rows = []
    for p in sorted(curve.get("paired") or [], key=lambda p: float(p["epsilon"])):
        e = float(p["epsilon"])
        els, uls = s.get(("els", e)), s.get(("uls", e))
        if els and uls:
            rows.append({"user-level ε": e, "ELS k, lr": f"{els['bound']}, {els['lr']:g}",
                         "ELS loss": f"{els['mean']:.4f} ± {els['std']:.4f}",
                         "ULS k, lr": f"{uls['bound']}, {uls['lr']:g}",
                         "ULS loss": f"{uls['mean']:.4f} ± {uls['std']:.4f}",
                         "ULS − ELS per seed": ", ".join(f"{v:+.4f}" for v in p["diff"]["values"]),
                         "mean difference": round(p["diff"]["mean"], 4), "better": p.get("winner", "")})
    return rows


def rules_rows(curve: dict) -> list[dict]:
    """One row per (algorithm, tuned epsilon) of ``dp_tuned_curve.json``'s ``rules``: the rule's k against the
    grid's best k at the same lr and clip quantile, on the evaluation seeds (paired)."""
    return [{"algorithm": r["algo"].upper(), "ε": float(r["epsilon"]), "rule k": r["rule_bound"],
             "grid-best k": r["grid_bound"], "rule loss": round(r["rule"]["mean"], 4),
             "grid loss": round(r["grid"]["mean"], 4),
             "rule − grid per seed": ", ".join(f"{v:+.4f}" for v in r["diff"]["values"])}
            for r in curve.get("rules") or []]


def settings_rows(tuning: dict) -> list[dict]:
    """One row per (algorithm, tuned epsilon) of ``dp_tuning.json``: the tuned setting and, per coordinate,
    whether the optimum is interior to the grid or at a natural boundary."""
    return [{"algorithm": a.upper(), "tuned at ε": float(e), "k": t["bound"], "lr": t["lr"],
             "clip": round(t["clip"], 3), "clip quantile": t["clip_quantile"],
             "tuning loss": round(t["tuning_loss"], 4), "runs": t["runs"],
             **{f"{name}: where": t["optimum"][d] for d, name in (("k", "k"), ("lr", "lr"), ("q", "clip"))}}
            for a, per in tuning.get("tuned", {}).items() for e, t in per.items()]


__all__ = ["TUNING_FILE", "TUNED_FIELDS", "apply_tuned", "clip_at_bound", "comparison_rows", "load_tuning",
           "nearest_epsilon", "rules_rows", "setting_for", "settings_rows"]
