"""Figures build from the documented JSON schemas (after a JSON round trip, with "inf" strings)."""
import json

import plotly.graph_objects as go

from lab.privacy import meanest as M
from lab.privacy.sweep import _summ, json_safe
from lab.viz import privacy as V


def _rt(obj):
    return json.loads(json.dumps(json_safe(obj)))


def _run(algo, eps, k, seed, loss):
    return {"algo": algo, "epsilon_target": eps, "epsilon": eps, "bound": k, "seed": seed, "eval_loss": loss,
            "noise_multiplier": 0.0 if eps == float("inf") else 1.0 / eps, "n_train_examples": 100 * k,
            "clip": 1.0, "lr": 1e-3}


def test_privacy_utility_and_bound_figures():
    rows = [_run(a, e, 16, s, 2.0 - 0.01 * s - (0.05 if a == "uls" else 0.0) - 0.01 * (e if e < 99 else 20))
            for a in ("els", "uls") for e in (0.5, 1.0, 16.0, float("inf")) for s in (0, 1)]
    pu = _rt({"summary": _summ([dict(r, epsilon=r["epsilon_target"]) for r in rows], ("algo", "epsilon")),
              "pretrained_loss": 2.3, "nonprivate": {"mean": 1.7, "std": 0.01}, "rows": rows})
    fig = V.privacy_utility_figure(pu)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    assert fig.layout.xaxis.type == "log" and "∞" in fig.layout.xaxis.ticktext[-1]
    assert max(fig.data[0].x) == 32.0  # inf drawn at 2x the largest finite epsilon
    b_rows = [_run(a, 4.0, k, 0, 2.0 + abs(k - 8) * 0.01) for a in ("els", "uls") for k in (1, 4, 16, 64)]
    b = _rt({"summary": _summ(b_rows, ("algo", "bound")), "epsilon": 4.0, "pretrained_loss": 2.3})
    fig = V.bound_sweep_figure(b)
    assert len(fig.data) == 4 and list(fig.data[0].x) == [1, 4, 16, 64]


def test_tier1_and_accounting_figures():
    rows = [{"regime": reg, "algo": a, "epsilon": e, "seed": s, "error": 1.0 / e + s}
            for reg in M.REGIMES for a in ("els", "uls") for e in (1.0, 8.0) for s in (0, 1)]
    rows += [{"regime": reg, "algo": "nonprivate", "epsilon": float("inf"), "seed": 0, "error": 0.1}
             for reg in M.REGIMES]
    g = {"regimes": M.REGIMES, "rows": rows}
    g["summary"] = M.summarize(g)
    fig = V.tier1_figure(_rt(g))
    assert len(fig.data) == 4
    acc = _rt({"noise_multiplier": 1.0, "sampling_rate": 0.01, "steps": 100, "delta": 1e-5,
               "rows": [{"bound": 1, "epsilon_mixture": 1.0, "epsilon_group": 1.0, "epsilon_example": 1.0,
                         "epsilon_uls": 1.0},
                        {"bound": 8, "epsilon_mixture": 3.0, "epsilon_group": float("inf"), "epsilon_example": 1.0,
                         "epsilon_uls": 1.0}]})
    fig = V.accounting_figure(acc)
    group = [t for t in fig.data if "group" in t.name][0]
    assert list(group.x) == [1]  # the failed (infinite) conversion is left out
    V.step_ratio_figure({"seconds_per_step": {"nonprivate": 0.05, "els": 0.06, "uls": 0.07},
                         "ratio": {"els": 1.2, "uls": 1.4}, "threads": 1, "device": "cpu"})
    V.tuning_figure({"rows": [dict(_run("els", 4.0, 16, 0, 2.0))], "epsilon": 4, "seed": 0})
    V.epsilon_curve_figure({"sigma": [0.5, 1, 2], "ULS user": [8, 2, "inf"]})
