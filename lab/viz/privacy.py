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
    if pu.get("nonprivate"):
        fig.add_hline(y=pu["nonprivate"]["mean"], line=dict(color=COLORS["nonprivate"], dash="dot"),
                      annotation_text="non-private fine-tune", annotation_position="bottom right")
    if pu.get("pretrained_loss") is not None:
        fig.add_hline(y=pu["pretrained_loss"], line=dict(color=COLORS["pretrained"], dash="dash"),
                      annotation_text="pretrained (no fine-tuning)", annotation_position="top right")
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
