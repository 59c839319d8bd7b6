"""Accuracy against α: how category discovery degrades as clients grow more different.

Both figures take the rows of :func:`lab.results.alpha_curve` (one per method and α: mean, std, min, max over
seeds and the per-client accuracies), i.e. plain data read from ``bench/results/gcd_alpha_curve.json``.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab.viz.gcd import PALETTE

METRIC_TITLES = {"acc_all": "All", "acc_old": "Old", "acc_new": "New", "test_acc_all": "test All"}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _methods(rows) -> list:
    return list(dict.fromkeys(r["method"] for r in rows))


def accuracy_vs_alpha(rows, metrics=("acc_all", "acc_old", "acc_new"), dashed=(), height: int = 420,
                      title="Accuracy against α (mean over seeds; band: lowest to highest seed)"):
    """One panel per metric, α on a log axis (small α = strong label skew, right = close to IID), one line per
    method (mean over seeds) with a band from the worst to the best seed. ``dashed``: methods drawn dashed
    (references that are not federated, e.g. centralized)."""
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True,
                        subplot_titles=[METRIC_TITLES.get(m, m) for m in metrics], horizontal_spacing=0.04)
    for i, m in enumerate(_methods(rows)):
        rs = sorted((r for r in rows if r["method"] == m), key=lambda r: r["alpha"])
        color = PALETTE[i % len(PALETTE)]
        name = rs[0].get("display_name", m)
        seeds = max(len(r["seeds"]) for r in rs)
        for j, k in enumerate(metrics):
            pts = [r for r in rs if r.get(k)]
            if not pts:
                continue
            x = [r["alpha"] for r in pts]
            lo, hi = [r[k]["min"] for r in pts], [r[k]["max"] for r in pts]
            fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], mode="lines", fill="toself",
                                     fillcolor=_rgba(color, 0.15),
                                     line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=name),
                          row=1, col=j + 1)
            fig.add_trace(go.Scatter(
                x=x, y=[r[k]["mean"] for r in pts], mode="lines+markers", name=f"{name} ({seeds} seeds)",
                legendgroup=name, showlegend=j == 0,
                line=dict(color=color, width=2.5, dash="dash" if m in dashed else "solid"),
                customdata=[[r[k]["std"], r[k]["n"], r[k]["min"], r[k]["max"]] for r in pts],
                hovertemplate=(f"{name}<br>α = %{{x:g}}<br>{METRIC_TITLES.get(k, k)} %{{y:.3f}} "
                               "± %{customdata[0]:.3f} (%{customdata[1]} seeds, "
                               "%{customdata[2]:.3f}–%{customdata[3]:.3f})<extra></extra>")),
                row=1, col=j + 1)
    fig.update_xaxes(type="log", title_text="α (log scale; small = strong skew)")
    fig.update_yaxes(range=[0, 1], title_text="clustering accuracy (v2)", col=1)
    fig.update_layout(title=title, height=height, legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
                      margin=dict(b=110))
    return fig


def client_spread_vs_alpha(rows, methods=None, height: int = 420, seed: int = 0,
                           title="Per-client accuracy against α: who loses under skew"):
    """One panel per method: every client of every seed as a dot (size ~ the client's sample count, colour =
    how many classes it holds), the mean over clients as a line and the worst client as a dashed line. The
    gap between the two lines is what an average hides. Methods with per-client accuracies at fewer than two
    α are left out."""
    # a method whose clients are known at fewer than two α (centralized: one run, its own partition) has no curve
    methods = [m for m in (methods or _methods(rows))
               if sum(1 for r in rows if r["method"] == m and r["clients"]) >= 2]
    if not methods:
        fig = go.Figure()
        fig.update_layout(title=title + " (no per-client accuracies in the file)", height=200)
        return fig
    names = {r["method"]: r.get("display_name", r["method"]) for r in rows}
    fig = make_subplots(rows=1, cols=len(methods), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[names[m] for m in methods])
    rng = np.random.default_rng(seed)
    k_all = [c["k_true"] for r in rows for c in r["clients"] if c.get("k_true") is not None]
    kmax = max(k_all) if k_all else 1
    size_all = [c["size"] for r in rows for c in r["clients"] if c.get("size")]
    smax = max(size_all) if size_all else 1
    for j, m in enumerate(methods):
        rs = sorted((r for r in rows if r["method"] == m and r["clients"]), key=lambda r: r["alpha"])
        xs, ys, ks, ss, text = [], [], [], [], []
        for r in rs:
            for c in r["clients"]:
                xs.append(r["alpha"] * float(np.exp(rng.uniform(-0.12, 0.12))))   # jitter on the log axis
                ys.append(c["acc"])
                ks.append(c["k_true"] if c.get("k_true") is not None else 0)
                ss.append(6 + 14 * np.sqrt((c.get("size") or 0) / smax))
                text.append(f"α = {r['alpha']:g}, seed {c['seed']}, client {c['client']}<br>{c.get('size')} samples, "
                            f"{c.get('k_true')} classes<br>accuracy {c['acc']:.3f}")
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", showlegend=False, text=text,
                                 hovertemplate="%{text}<extra></extra>",
                                 marker=dict(size=ss, color=ks, cmin=1, cmax=kmax, colorscale="Viridis", opacity=0.7,
                                             line=dict(width=0.5, color="white"),
                                             showscale=j == len(methods) - 1,
                                             colorbar=dict(title="classes<br>held", thickness=12))),
                      row=1, col=j + 1)
        x = [r["alpha"] for r in rs]
        fig.add_trace(go.Scatter(x=x, y=[np.mean([c["acc"] for c in r["clients"]]) for r in rs], mode="lines",
                                 line=dict(color="#333", width=2), name="mean over clients", legendgroup="mean",
                                 showlegend=j == 0), row=1, col=j + 1)
        fig.add_trace(go.Scatter(x=x, y=[min(c["acc"] for c in r["clients"]) for r in rs], mode="lines",
                                 line=dict(color="#d62728", width=2, dash="dash"), name="worst client",
                                 legendgroup="worst", showlegend=j == 0), row=1, col=j + 1)
    fig.update_xaxes(type="log", title_text="α")
    fig.update_yaxes(range=[0, 1.02], title_text="accuracy on the client's unlabelled samples", col=1)
    fig.update_layout(title=title, height=height, legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
                      margin=dict(b=100))
    return fig
