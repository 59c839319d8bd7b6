"""Plotly figures for user-level DP. Every function takes plain data — the dicts stored in
``bench/results/dp_*.json`` (schemas in ``lab/privacy/sweep.py``) or lists of numbers — and returns a
``plotly.graph_objects.Figure``. No model, no file access, no Streamlit: the dashboard and the notebooks
call the same functions. Infinite values may be floats or the string ``"inf"``.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {"els": "#1f77b4", "uls": "#d62728", "nonprivate": "#555555", "pretrained": "#000000",
          "mixture": "#1f77b4", "group": "#ff7f0e", "example": "#2ca02c", "uls_acc": "#d62728"}
NAMES = {"els": "ELS (example-level sampling)", "uls": "ULS (user-level sampling)", "nonprivate": "non-private"}


def _f(v):
    if v is None:
        return math.nan
    if isinstance(v, str):
        return math.inf if v == "inf" else (-math.inf if v == "-inf" else float(v))
    return float(v)


def _inf_x(values):
    """Finite epsilons as they are; inf drawn at 2x the largest finite one (tick label "∞")."""
    fin = [_f(v) for v in values if math.isfinite(_f(v))]
    top = 2 * max(fin) if fin else 1.0
    return [(_f(v) if math.isfinite(_f(v)) else top) for v in values], top


def _layout(fig, title, x, y, **kw):
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), margin=dict(t=80), **kw)
    return fig


def _reference_lines(fig, d: dict) -> None:
    """The non-private fine-tune (``d["nonprivate"]["mean"]``) and pretrained (``d["pretrained_loss"]``) losses as
    horizontal lines, each when present."""
    if d.get("nonprivate"):
        fig.add_hline(y=d["nonprivate"]["mean"], line=dict(color=COLORS["nonprivate"], dash="dot"),
                      annotation_text="non-private fine-tune", annotation_position="bottom right")
    if d.get("pretrained_loss") is not None:
        fig.add_hline(y=d["pretrained_loss"], line=dict(color=COLORS["pretrained"], dash="dash"),
                      annotation_text="pretrained (no fine-tuning)", annotation_position="top right")


def privacy_utility_figure(pu: dict, algos=("els", "uls")) -> go.Figure:
    """Held-out loss vs user-level ε (log axis), ELS vs ULS, mean ± std over seeds, with the
    non-private and pretrained losses as horizontal reference lines.

    Input: the ``dp_privacy_utility.json`` dict — uses ``summary`` (list of ``{"algo", "epsilon", "mean",
    "std", "n", "noise_multiplier"}``), ``pretrained_loss`` and ``nonprivate["mean"]``.
    """
    fig = go.Figure()
    top = 1.0
    for algo in algos:
        rows = sorted((r for r in pu["summary"] if r["algo"] == algo), key=lambda r: _f(r["epsilon"]))
        if not rows:
            continue
        xs, top = _inf_x([r["epsilon"] for r in rows])
        fig.add_trace(go.Scatter(
            x=xs, y=[r["mean"] for r in rows], mode="lines+markers", name=NAMES[algo],
            line=dict(color=COLORS[algo]), error_y=dict(type="data", array=[r["std"] for r in rows], visible=True),
            customdata=[[str(r["epsilon"]), _f(r.get("noise_multiplier")), r.get("n", 1)] for r in rows],
            hovertemplate="ε=%{customdata[0]}<br>loss=%{y:.4f}<br>σ=%{customdata[1]:.3f}<br>seeds=%{customdata[2]}"
                          "<extra>" + algo.upper() + "</extra>"))
    _reference_lines(fig, pu)
    ticks = [v for v in (0.5, 1, 2, 4, 8, 16, 32) if v < top]
    fig.update_xaxes(type="log", tickvals=ticks + [top], ticktext=[f"{v:g}" for v in ticks] + ["∞ (no noise)"])
    return _layout(fig, "Privacy–utility: user-level ε vs held-out loss", "user-level ε (log scale)",
                   "held-out loss (nats/char)")


def bound_sweep_figure(b: dict, algos=("els", "uls")) -> go.Figure:
    """Held-out loss vs contribution bound k (log2 axis) at a fixed user-level ε, ELS vs ULS; a second
    panel shows the calibrated noise multiplier σ each k needs (the other side of the trade-off: a larger k
    keeps more data but needs more noise for ELS).

    Input: the ``dp_bound_sweep.json`` dict — uses ``summary`` (``{"algo", "bound", "mean", "std",
    "noise_multiplier", "n_train_examples"}``), ``epsilon`` and ``pretrained_loss``.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("held-out loss", "noise multiplier σ"))
    for algo in algos:
        rows = sorted((r for r in b["summary"] if r["algo"] == algo), key=lambda r: r["bound"])
        if not rows:
            continue
        ks = [r["bound"] for r in rows]
        fig.add_trace(go.Scatter(x=ks, y=[r["mean"] for r in rows], mode="lines+markers", name=NAMES[algo],
                                 line=dict(color=COLORS[algo]),
                                 error_y=dict(type="data", array=[r["std"] for r in rows], visible=True),
                                 customdata=[[r.get("n_train_examples")] for r in rows],
                                 hovertemplate="k=%{x}<br>loss=%{y:.4f}<br>examples kept=%{customdata[0]}"
                                               "<extra>" + algo.upper() + "</extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=ks, y=[_f(r["noise_multiplier"]) for r in rows], mode="lines+markers",
                                 name=f"σ {algo.upper()}", line=dict(color=COLORS[algo], dash="dot"),
                                 showlegend=False), row=1, col=2)
    if b.get("pretrained_loss") is not None:
        fig.add_hline(y=b["pretrained_loss"], line=dict(color="black", dash="dash"), row=1, col=1,
                      annotation_text="pretrained")
    fig.update_xaxes(type="log", dtick=math.log10(2), title_text="contribution bound k (examples per user)")
    fig.update_yaxes(title_text="nats/char", row=1, col=1)
    fig.update_yaxes(title_text="σ", type="log", row=1, col=2)
    return _layout(fig, f"Contribution bound sweep at user-level ε = {b.get('epsilon')}", None, None)


def accounting_figure(acc: dict) -> go.Figure:
    """User-level ε vs contribution bound k at a fixed σ and sampling rate (log-log): the tight
    mixture-of-Gaussians PLD against the group-privacy conversion, with the example-level ε and the ULS ε
    at the same σ and rate as references. Infinite group-privacy values (the conversion failed) are left
    out.

    Input: the ``dp_accounting.json`` dict — ``rows`` of ``{"bound", "epsilon_mixture", "epsilon_group",
    "epsilon_example", "epsilon_uls"}`` plus ``noise_multiplier``, ``sampling_rate``, ``steps``, ``delta``.
    """
    rows = sorted(acc["rows"], key=lambda r: r["bound"])
    ks = [r["bound"] for r in rows]
    fig = go.Figure()
    for key, name, color, dash in (
            ("epsilon_mixture", "ELS user-level: mixture-of-Gaussians PLD (tight)", "mixture", None),
            ("epsilon_group", "ELS user-level: group privacy (loose)", "group", None),
            ("epsilon_example", "ELS example-level (not a user guarantee)", "example", "dot"),
            ("epsilon_uls", "ULS user-level at the same σ, q", "uls_acc", "dash")):
        ys = [_f(r.get(key)) for r in rows]
        pts = [(k, y) for k, y in zip(ks, ys) if math.isfinite(y)]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=name,
                                     line=dict(color=COLORS[color], dash=dash),
                                     hovertemplate="k=%{x}<br>ε=%{y:.3g}<extra></extra>"))
    fig.update_xaxes(type="log", dtick=math.log10(2))
    fig.update_yaxes(type="log")
    return _layout(fig, f"What the tight accountant buys (σ = {acc['noise_multiplier']}, "
                        f"q = {acc['sampling_rate']:.4g}, T = {acc['steps']}, δ = {acc['delta']})",
                   "contribution bound k", "ε (log scale)")


def tier1_figure(t1: dict) -> go.Figure:
    """Tier 1 (synthetic mean estimation): error ‖θ̄ − μ‖² vs user-level ε for ELS and ULS, one panel per
    regime (diverse users vs identical examples within a user), mean ± std over seeds; the non-private error
    as a dotted line. Shows ULS winning with diverse users and ELS winning without within-user diversity.

    Input: the ``dp_tier1.json`` dict — ``summary`` of ``{"regime", "algo", "epsilon", "error_mean",
    "error_std", "n"}`` and ``regimes`` (``{name: {"tau", "s"}}``).
    """
    regimes = list(t1["regimes"])
    fig = make_subplots(rows=1, cols=len(regimes), shared_yaxes=False,
                        subplot_titles=[f"{r}: τ={t1['regimes'][r]['tau']}, s={t1['regimes'][r]['s']}"
                                        for r in regimes])
    for i, reg in enumerate(regimes, start=1):
        for algo in ("els", "uls"):
            rows = sorted((r for r in t1["summary"] if r["regime"] == reg and r["algo"] == algo),
                          key=lambda r: _f(r["epsilon"]))
            fig.add_trace(go.Scatter(x=[_f(r["epsilon"]) for r in rows], y=[r["error_mean"] for r in rows],
                                     error_y=dict(type="data", array=[r["error_std"] for r in rows], visible=True),
                                     mode="lines+markers", name=NAMES[algo], legendgroup=algo, showlegend=i == 1,
                                     line=dict(color=COLORS[algo])), row=1, col=i)
        npv = [r for r in t1["summary"] if r["regime"] == reg and r["algo"] == "nonprivate"]
        if npv:
            fig.add_hline(y=npv[0]["error_mean"], line=dict(color=COLORS["nonprivate"], dash="dot"), row=1, col=i,
                          annotation_text="non-private")
    fig.update_xaxes(type="log", title_text="user-level ε")
    fig.update_yaxes(type="log", title_text="‖θ̄ − μ‖²", col=1)
    fig.update_yaxes(type="log")
    return _layout(fig, "Tier 1: which sampling wins depends on within-user diversity", None, None)


def tuning_figure(tu: dict) -> go.Figure:
    """Held-out loss for each (clip, lr) on the tuning grid, grouped bars per algorithm.

    Input: the ``dp_tune.json`` dict — ``rows`` of run records (``algo``, ``clip``, ``lr``, ``eval_loss``)."""
    fig = go.Figure()
    for algo in ("els", "uls", "nonprivate"):
        rows = [r for r in tu["rows"] if r["algo"] == algo]
        if rows:
            fig.add_trace(go.Bar(x=[f"{algo.upper()} C={r['clip']} lr={r['lr']}" for r in rows],
                                 y=[r["eval_loss"] for r in rows], name=NAMES[algo], marker_color=COLORS[algo]))
    ys = [r["eval_loss"] for r in tu["rows"]]
    if ys:
        fig.update_yaxes(range=[min(ys) - 0.02, max(ys) + 0.02])
    return _layout(fig, f"Clip-norm / learning-rate tuning at ε = {tu.get('epsilon')} (seed {tu.get('seed')})",
                   None, "held-out loss (nats/char)")


def step_ratio_figure(st: dict) -> go.Figure:
    """Seconds per training step: non-private vs ELS vs ULS, with the DP/non-private ratios in the labels.

    Input: the ``dp_step_bench.json`` dict — ``seconds_per_step`` {nonprivate, els, uls} and ``ratio``."""
    sp = st["seconds_per_step"]
    keys = ["nonprivate", "els", "uls"]
    labels = ["1.00×"] + [f"{st['ratio'][k]:.2f}×" for k in keys[1:]]
    fig = go.Figure(go.Bar(x=[NAMES[k] for k in keys], y=[sp[k] * 1e3 for k in keys], text=labels,
                           marker_color=[COLORS[k] for k in keys]))
    return _layout(fig, f"Training step time ({st.get('threads')} thread(s), {st.get('device')})", None, "ms per step")


def epsilon_curve_figure(curves: dict) -> go.Figure:
    """User-level ε vs noise multiplier σ, for a live accounting widget.

    Input: ``{"sigma": [...], "<label>": [eps...], ...}`` — every key other than ``sigma`` becomes a line
    (e.g. ``"ELS user (mixture)"``, ``"ELS user (group privacy)"``, ``"ULS user"``); compute the values with
    ``lab.privacy.accounting.epsilon_fast``.
    """
    fig = go.Figure()
    for name, ys in curves.items():
        if name == "sigma":
            continue
        pts = [(s, _f(y)) for s, y in zip(curves["sigma"], ys) if math.isfinite(_f(y))]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=name))
    fig.update_yaxes(type="log")
    return _layout(fig, "Privacy spent vs noise", "noise multiplier σ", "ε (log scale)")


__all__ = ["privacy_utility_figure", "bound_sweep_figure", "accounting_figure", "tier1_figure", "tuning_figure",
           "step_ratio_figure", "epsilon_curve_figure"]


# ------------------------------------------------------------------ issue 15: each algorithm at its own tuned k
def _eps_axis(fig, values, **kw):
    ticks = sorted({_f(v) for v in values if math.isfinite(_f(v))})
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{v:g}" for v in ticks], **kw)


def tuned_curve_figure(curve: dict) -> go.Figure:
    """Held-out loss vs user-level ε: ELS and ULS each at its own tuned (k, lr, clip) (solid lines), and
    both at k = 16 with the old settings (dashed: the teaching contrast, what happens if k is not
    calibrated); mean ± std over evaluation seeds, the non-private and pretrained losses as reference lines.

    Input: the ``dp_tuned_curve.json`` dict — ``summary`` and ``fixed_k16["summary"]`` (lists of
    ``{"algo", "epsilon", "mean", "std", "n", "bound", "lr", "clip"}``), ``nonprivate`` and
    ``pretrained_loss`` (either may be null).
    """
    fig = go.Figure()
    sets = (("tuned", curve.get("summary") or [], "solid", "tuned k, lr, clip"),
            ("k16", (curve.get("fixed_k16") or {}).get("summary") or [], "dash", "k = 16, old settings"))
    eps = []
    for name, summary, dash, label in sets:
        for algo in ("els", "uls"):
            rows = sorted((r for r in summary if r["algo"] == algo), key=lambda r: _f(r["epsilon"]))
            if not rows:
                continue
            eps += [r["epsilon"] for r in rows]
            fig.add_trace(go.Scatter(
                x=[_f(r["epsilon"]) for r in rows], y=[r["mean"] for r in rows], mode="lines+markers",
                name=f"{algo.upper()}, {label}", line=dict(color=COLORS[algo], dash=dash),
                opacity=1.0 if name == "tuned" else 0.55,
                error_y=dict(type="data", array=[r["std"] for r in rows], visible=True),
                customdata=[[r.get("bound"), r.get("lr"), r.get("clip"), r.get("n")] for r in rows],
                hovertemplate="ε=%{x}<br>loss=%{y:.4f}<br>k=%{customdata[0]}, lr=%{customdata[1]}, "
                              "clip=%{customdata[2]:.3g}<br>seeds=%{customdata[3]}<extra>" + algo.upper() + "</extra>"))
    _reference_lines(fig, curve)
    _eps_axis(fig, eps)
    return _layout(fig, "Each algorithm at its own tuned bound (solid) vs both at k = 16 (dashed)",
                   "user-level ε (log scale)", "held-out loss (nats/char)")


def paired_gap_figure(curve: dict) -> go.Figure:
    """ULS − ELS held-out loss at each user-level ε, one dot per evaluation seed (the paired difference) and a
    line through the means, for the tuned comparison and the k = 16 contrast; below zero ULS is better.

    Input: the ``dp_tuned_curve.json`` dict — ``paired`` and ``fixed_k16["paired"]`` (lists of
    ``{"epsilon", "seeds", "diff": {"mean", "std", "n", "values"}}``).
    """
    fig = go.Figure()
    eps = []
    for paired, label, color in ((curve.get("paired") or [], "tuned", "#6a3d9a"),
                                 ((curve.get("fixed_k16") or {}).get("paired") or [], "k = 16, old settings",
                                  "#aaaaaa")):
        rows = sorted(paired, key=lambda r: _f(r["epsilon"]))
        if not rows:
            continue
        eps += [r["epsilon"] for r in rows]
        xs = [_f(r["epsilon"]) for r in rows]
        fig.add_trace(go.Scatter(x=xs, y=[r["diff"]["mean"] for r in rows], mode="lines", name=f"mean, {label}",
                                 line=dict(color=color)))
        fig.add_trace(go.Scatter(
            x=[x for x, r in zip(xs, rows) for _ in r["diff"]["values"]],
            y=[v for r in rows for v in r["diff"]["values"]],
            customdata=[s for r in rows for s in r["seeds"]], mode="markers", name=f"per seed, {label}",
            marker=dict(color=color, size=8), hovertemplate="ε=%{x}<br>seed %{customdata}: %{y:+.4f}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="black", width=1))
    _eps_axis(fig, eps)
    return _layout(fig, "Paired difference ULS − ELS per evaluation seed (below 0: ULS better)",
                   "user-level ε (log scale)", "Δ held-out loss (nats/char)")


def bound_rules_figure(tuning: dict) -> go.Figure:
    """Held-out loss vs contribution bound k on the tuning seed, each algorithm at its tuned lr and clip
    quantile, one panel per tuned ε: the grid's best k (star) and each paper rule's k (dotted vertical line:
    ELS, median examples per user; ULS, minimum predicted noise-to-signal ratio).

    Input: the ``dp_tuning.json`` dict — ``runs`` (``{"algo", "tune_epsilon", "bound", "lr", "clip_quantile",
    "eval_loss"}``), ``tuned`` (``{algo: {eps: {"bound", "lr", "clip_quantile", "tuning_loss"}}}``) and
    ``rules`` (``{"els": {"bound"}, "uls": {"by_epsilon": {eps: {"bound"}}}}``).
    """
    eps_keys = sorted({e for per in tuning["tuned"].values() for e in per}, key=float)
    fig = make_subplots(rows=1, cols=len(eps_keys), subplot_titles=[f"tuned at ε = {float(e):g}" for e in eps_keys])
    rules = tuning.get("rules") or {}
    for col, e in enumerate(eps_keys, start=1):
        for algo in ("els", "uls"):
            t = tuning["tuned"].get(algo, {}).get(e)
            if not t:
                continue
            pts = sorted({r["bound"]: r["eval_loss"] for r in tuning["runs"]
                          if r["algo"] == algo and float(r["tune_epsilon"]) == float(e) and r["lr"] == t["lr"]
                          and float(r["clip_quantile"]) == float(t["clip_quantile"])}.items())
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                     name=f"{algo.upper()} (lr {t['lr']:g}, clip q {t['clip_quantile']:g})",
                                     line=dict(color=COLORS[algo]), legendgroup=algo, showlegend=col == 1),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=[t["bound"]], y=[t["tuning_loss"]], mode="markers", showlegend=False,
                                     marker=dict(symbol="star", size=14, color=COLORS[algo]),
                                     hovertemplate=f"grid best k = {t['bound']}<extra>{algo.upper()}</extra>"),
                          row=1, col=col)
            rk = (rules.get("els") or {}).get("bound") if algo == "els" else \
                ((rules.get("uls") or {}).get("by_epsilon") or {}).get(e, {}).get("bound")
            if rk:
                fig.add_vline(x=rk, line=dict(color=COLORS[algo], dash="dot"), row=1, col=col,
                              annotation_text=f"{algo.upper()} rule k={rk}", annotation_position="top")
    fig.update_xaxes(type="log", dtick=math.log10(2), title_text="contribution bound k")
    fig.update_yaxes(title_text="held-out loss, tuning seed", col=1)
    return _layout(fig, "Contribution bound: the grid's best k (star) vs the paper's rules (dotted)", None, None)


def uls_nsr_figure(tuning: dict) -> go.Figure:
    """The ULS rule's predicted noise-to-signal ratio σ(k) / (q(k) N ρ̂(k)) against k, one line per tuned ε,
    each scaled to its minimum (the rule's k, where the line touches 1).

    Input: the ``dp_tuning.json`` dict — ``rules["uls"]["by_epsilon"]`` (``{eps: {"bound", "nsr": {k: ratio}}}``).
    """
    fig = go.Figure()
    for e, r in sorted(((rules_e, v) for rules_e, v in tuning["rules"]["uls"]["by_epsilon"].items()),
                       key=lambda kv: float(kv[0])):
        ks = sorted(r["nsr"], key=int)
        lo = min(r["nsr"][k] for k in ks)
        fig.add_trace(go.Scatter(x=[int(k) for k in ks], y=[r["nsr"][k] / lo for k in ks], mode="lines+markers",
                                 name=f"ε = {float(e):g} (rule k = {r['bound']})"))
    fig.update_xaxes(type="log", dtick=math.log10(2))
    return _layout(fig, "ULS rule: predicted noise-to-signal ratio (1 = the rule's k)", "contribution bound k",
                   "NSR / min NSR")


__all__ += ["tuned_curve_figure", "paired_gap_figure", "bound_rules_figure", "uls_nsr_figure"]


# ------------------------------------------------------------------ issue 12: a real LLM (SmolLM2-135M + LoRA)
def llm_vs_char_figure(llm: dict, char: dict | None = None) -> go.Figure:
    """Held-out loss vs user-level ε for SmolLM2-135M + LoRA (left, nats/token) beside the char LM (right,
    nats/char), ELS vs ULS, each panel with its own pretrained and non-private reference lines.

    Input: ``llm_dp_results.json`` and ``dp_privacy_utility.json`` dicts (privacy-utility sweeps: ``summary``
    of ``{"algo", "epsilon", "mean", "std", "n"}``, ``pretrained_loss``, ``nonprivate["mean"]``). The char
    panel shows its finite ε only; ``char`` None draws the LLM panel alone."""
    panels = [(llm, "SmolLM2-135M + LoRA", "nats/token")] + ([(char, "char LM (117k parameters)", "nats/char")]
                                                             if char else [])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[f"{t} ({u})" for _, t, u in panels])
    for col, (pu, _, unit) in enumerate(panels, start=1):
        eps = []
        for algo in ("els", "uls"):
            rows = sorted((r for r in pu.get("summary", []) if r["algo"] == algo and math.isfinite(_f(r["epsilon"]))),
                          key=lambda r: _f(r["epsilon"]))
            eps += [_f(r["epsilon"]) for r in rows]
            fig.add_trace(go.Scatter(
                x=[_f(r["epsilon"]) for r in rows], y=[r["mean"] for r in rows], mode="lines+markers",
                name=NAMES[algo], legendgroup=algo, showlegend=col == 1, line=dict(color=COLORS[algo]),
                error_y=dict(type="data", array=[r.get("std", 0.0) for r in rows], visible=True),
                customdata=[[r.get("n", 1)] for r in rows],
                hovertemplate="ε=%{x}<br>loss=%{y:.4f} " + unit + "<br>seeds=%{customdata[0]}<extra>"
                              + algo.upper() + "</extra>"), row=1, col=col)
        if pu.get("nonprivate"):
            fig.add_hline(y=pu["nonprivate"]["mean"], line=dict(color=COLORS["nonprivate"], dash="dot"), row=1,
                          col=col, annotation_text="non-private", annotation_position="bottom right")
        if pu.get("pretrained_loss") is not None:
            fig.add_hline(y=pu["pretrained_loss"], line=dict(color=COLORS["pretrained"], dash="dash"), row=1,
                          col=col, annotation_text="pretrained", annotation_position="top right")
        ticks = sorted(set(eps))
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{v:g}" for v in ticks], title_text="user-level ε",
                         row=1, col=col)
        fig.update_yaxes(title_text=f"held-out loss ({unit})", row=1, col=col)
    return _layout(fig, "A real LLM beside the char model: ELS vs ULS at the same user-level ε", None, None)


__all__ += ["llm_vs_char_figure"]


# ------------------------------------------------------------------ issue 11: the empirical audit
AUDIT_SYMBOLS = {"meanest": "circle", "charlm": "diamond"}
AUDIT_TASKS = {"meanest": "synthetic testbed", "charlm": "char LM, Shakespeare users"}


def audit_figure(audit: dict, score: str | None = None) -> go.Figure:
    """Empirical lower bound ε_lower (one-run canary audit) against the accountant's ε, one marker per run;
    the diagonal is where a lower bound would meet the claim (a run above it would prove a bug).

    Input: the ``dp_audit.json`` dict — ``runs``, each a ``python -m lab dp-audit`` record (``task``, ``algo``,
    ``epsilon_claimed`` (null: non-private, drawn at "∞"), ``epsilon_lower``, ``scores`` {whitebox, blackbox}).
    ``score``: which score's bound to plot (default: each run's headline score)."""
    runs = audit["runs"]
    claims = [r["epsilon_claimed"] if r.get("epsilon_claimed") is not None else math.inf for r in runs]
    xs, top = _inf_x(claims)
    fig = go.Figure()
    for task in AUDIT_SYMBOLS:
        for algo in ("els", "uls", "nonprivate"):
            pts = [(x, r) for x, r in zip(xs, runs) if r["task"] == task and r["algo"] == algo]
            if not pts:
                continue
            ys = [_f(r["scores"][score]["epsilon_lower"] if score else r["epsilon_lower"]) for _, r in pts]
            text = [f"seed {r['seed']}: {r['correct']}/{r['guesses']} guesses right ({r['score']}), "
                    f"{r['canaries']} canaries" for _, r in pts]
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=ys, mode="markers", text=text,
                                     name=f"{NAMES[algo]} — {AUDIT_TASKS[task]}",
                                     marker=dict(color=COLORS[algo], symbol=AUDIT_SYMBOLS[task], size=10,
                                                 line=dict(width=1, color="white")),
                                     hovertemplate="claimed ε %{x:.3g}, ε_lower %{y:.3g}<br>%{text}<extra></extra>"))
    fin = [x for x in xs if x < top]
    lo = min(fin) / 1.5 if fin else 0.5
    fig.add_trace(go.Scatter(x=[lo, top], y=[lo, top], mode="lines", name="ε_lower = ε claimed",
                             line=dict(dash="dash", color="#999")))
    ticks = sorted(set(fin)) + [top]
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{t:.3g}" for t in ticks[:-1]] + ["∞ (no DP)"])
    return _layout(fig, "Empirical audit: what one run with canary users proves about ε",
                   "ε claimed by the accountant (user level, log scale)", "ε_lower (95 % confidence)")


def audit_scores_figure(runs: list, score: str = "whitebox") -> go.Figure:
    """The canaries' scores, in vs out, one pair of overlaid histograms per run (each run's scores centred on
    their median and scaled by their std, so runs at different noise share an axis): separated histograms are
    an attack that wins, overlapping ones an attack that cannot tell.

    Input: ``python -m lab dp-audit`` records with their per-canary fields ``canary_scores`` and ``canary_in``
    ({score: list}); the bench's committed records drop them."""
    import statistics

    fig = go.Figure()
    for r in runs:
        raw, inside = [float(v) for v in r["canary_scores"][score]], [bool(v) for v in r["canary_in"][score]]
        mid, spread = statistics.median(raw), statistics.pstdev(raw) + 1e-12
        s = [(v - mid) / spread for v in raw]
        label = NAMES.get(r["algo"], r["algo"]) + (f", ε = {r['epsilon_claimed']:.3g}"
                                                   if r.get("epsilon_claimed") is not None else "")
        for flag, name in ((True, "in"), (False, "out")):
            fig.add_trace(go.Histogram(x=[v for v, i in zip(s, inside) if i == flag], nbinsx=40, opacity=0.6,
                                       name=f"{label}: canaries {name}", legendgroup=label))
    fig.update_layout(barmode="overlay")
    return _layout(fig, f"Canary scores ({score}, standardised per run): in vs out", "score", "canaries")


__all__ += ["audit_figure", "audit_scores_figure"]
