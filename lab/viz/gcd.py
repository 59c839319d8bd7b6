"""Figures for the federated category-discovery side: partitions, graphs, communities, priors, training."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

#: class / community / method colours. No red: red marks the edges that join two classes (similarity_graph)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#393b79", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#637939", "#8c6d31", "#7b4173", "#3182bd", "#31a354", "#756bb1",
           "#636363", "#6baed6", "#fdae6b", "#a1d99b"]


def _color(i):
    return "#cccccc" if i < 0 else PALETTE[int(i) % len(PALETTE)]


def partition_heatmap(counts, class_names=None, title="Samples per client and class"):
    """counts: (clients, classes) ints."""
    counts = np.asarray(counts)
    names = class_names or [str(c) for c in range(counts.shape[1])]
    fig = go.Figure(go.Heatmap(z=counts, x=names, y=[f"client {k}" for k in range(counts.shape[0])],
                               colorscale="Blues", text=counts, texttemplate="%{text}",
                               hovertemplate="%{y}, %{x}: %{z}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="class", yaxis_autorange="reversed", height=120 + 40 * counts.shape[0])
    return fig


def label_histograms(counts, class_names=None, old_classes=None, title="Each client's label histogram"):
    """Stacked share-of-client bars; old classes solid, new classes hatched."""
    counts = np.asarray(counts, dtype=float)
    share = counts / counts.sum(1, keepdims=True).clip(min=1)
    names = class_names or [str(c) for c in range(counts.shape[1])]
    old = set(old_classes if old_classes is not None else [])
    fig = go.Figure()
    for c in range(counts.shape[1]):
        fig.add_bar(x=[f"client {k}" for k in range(counts.shape[0])], y=share[:, c], name=names[c],
                    marker=dict(color=_color(c), pattern_shape="" if c in old or not old else "/"))
    fig.update_layout(barmode="stack", title=title, yaxis_title="share of the client's samples",
                      legend_title="class (hatched = new)")
    return fig


def sample_images(images, titles=None, cols: int = 8, title="Samples"):
    """images: (n, H, W) uint8."""
    images = np.asarray(images)
    n = len(images)
    rows = max(1, int(np.ceil(n / cols)))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.06)
    for i, im in enumerate(images):
        fig.add_trace(go.Heatmap(z=im[::-1], colorscale="gray_r", showscale=False, hoverinfo="skip"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor=None)
    fig.update_layout(title=title, height=110 * rows + 60, margin=dict(l=10, r=10, t=60, b=10))
    return fig


#: edge kinds in drawing order (later on top): context first, the edges the eye should find last.
#: name, colour, width, dash; colours stay clear of the class palette's hues (no red among the classes)
EDGE_STYLES = (
    ("kNN, same class", "rgba(130,130,130,0.30)", 0.8, "solid"),
    ("must-link", "rgba(44,160,44,0.35)", 0.8, "solid"),
    ("cut", "rgba(0,0,0,0.75)", 1.2, "dot"),
    ("kNN, joins two classes", "rgba(214,39,40,0.85)", 1.6, "solid"),
)


def segments_path(xs, ys) -> str:
    """Line segments (x0, x1, nan, ...) as ONE SVG path string ("M x0,y0 L x1,y1 M ..."): a browser draws a
    single DOM node, where plotly's SVG scatter draws one per segment and software WebGL costs seconds."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    pen_up = np.r_[True, ~ok[:-1]][ok]                      # a point after a gap starts a new subpath
    cmd = np.where(pen_up, "M", "L")
    pts = np.char.add(np.char.add(np.char.mod("%.5g", xs[ok]), ","), np.char.mod("%.5g", ys[ok]))
    return "".join(np.char.add(cmd, pts).tolist()) or "M0,0"


def _edge_xy(pos, src, dst):
    xs = np.empty(3 * len(src))
    ys = np.empty(3 * len(src))
    xs[0::3], xs[1::3], xs[2::3] = pos[src, 0], pos[dst, 0], np.nan
    ys[0::3], ys[1::3], ys[2::3] = pos[src, 1], pos[dst, 1], np.nan
    return xs, ys


def class_label(v, class_names=None, color_title="class") -> str:
    if v < 0:
        return "noise"
    if class_names is not None and 0 <= int(v) < len(class_names):
        return str(class_names[int(v)])
    return f"{color_title} {v}"


def similarity_graph(pos, src, dst, kind, y_true, node_color=None, max_edges: int = 20000, seed: int = 0,
                     title="Similarity graph", color_title="true class", class_names=None, height: int = 560,
                     node_size: int = 6):
    """Nodes at ``pos`` (n, 2) coloured by ``node_color`` (default: true class, named by ``class_names``);
    edges by kind and by whether they join two true classes, sampled down to ``max_edges``.

    Each edge kind is ONE SVG path shape with its own legend entry (click it to hide that kind): drawing order
    and styles in :data:`EDGE_STYLES` put the red edges that join two true classes on top of faint same-class
    edges, green must-links and black dotted cuts. kind: 0 = kNN, 1 = must-link, 2 = cut (lab.gcd.clsd)."""
    pos, src, dst, kind = np.asarray(pos), np.asarray(src), np.asarray(dst), np.asarray(kind)
    y = np.asarray(y_true)
    if len(src) > max_edges:
        keep = np.sort(np.random.default_rng(seed).choice(len(src), max_edges, replace=False))
        src, dst, kind = src[keep], dst[keep], kind[keep]
    cross = y[src] != y[dst]
    masks = {"kNN, same class": (kind == 0) & ~cross, "kNN, joins two classes": (kind == 0) & cross,
             "must-link": kind == 1, "cut": kind == 2}
    fig = go.Figure()
    shapes = []
    for rank, (name, col, wd, dash) in enumerate(EDGE_STYLES):
        m = masks[name]
        xs, ys = _edge_xy(pos, src[m], dst[m])
        shapes.append(dict(type="path", path=segments_path(xs, ys), xref="x", yref="y", layer="below",
                           line=dict(color=col, width=wd, dash=dash), name=f"{name} ({int(m.sum())})",
                           showlegend=True, legendgroup=f"edges {name}", legendrank=rank + 1,
                           visible=True if m.any() else "legendonly"))
    c = y if node_color is None else np.asarray(node_color)
    for v in np.unique(c):
        m = c == v
        fig.add_trace(go.Scattergl(x=pos[m, 0], y=pos[m, 1], mode="markers",
                                   name=class_label(v, class_names if node_color is None else None, color_title),
                                   marker=dict(size=node_size, color=_color(v), line=dict(width=0.5, color="white")),
                                   legendgroup="nodes", legendrank=100 + len(shapes) + int(v),
                                   text=[class_label(t, class_names) for t in y[m]],
                                   hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, height=height, shapes=shapes,
                      legend=dict(itemsizing="constant", title="click an entry to hide it"),
                      plot_bgcolor="white", margin=dict(l=10, r=10, t=50, b=10))
    # shapes do not enter autorange: frame the nodes
    pad = 0.03 * (np.ptp(pos, axis=0) + 1e-9)
    fig.update_xaxes(range=[pos[:, 0].min() - pad[0], pos[:, 0].max() + pad[0]])
    fig.update_yaxes(range=[pos[:, 1].min() - pad[1], pos[:, 1].max() + pad[1]])
    return fig


def communities_scatter(pos, comm_labels, y_true, title="InfoMap communities", class_names=None,
                        height: int = 520):
    """Samples coloured by community (grey = noise); hover shows the true class (by name when given)."""
    pos, comm, y = np.asarray(pos), np.asarray(comm_labels), np.asarray(y_true)
    fig = go.Figure()
    for c in np.unique(comm):
        m = comm == c
        fig.add_trace(go.Scattergl(x=pos[m, 0], y=pos[m, 1], mode="markers",
                                   name="noise" if c < 0 else f"community {c} ({int(m.sum())})",
                                   marker=dict(size=6, color=_color(c), line=dict(width=0.5, color="white")),
                                   text=[f"true class: {class_label(v, class_names, 'class')}" for v in y[m]],
                                   hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, height=height, plot_bgcolor="white")
    return fig


def k_estimates(k_true, k_est, title="Estimated vs true number of categories per client"):
    x = [f"client {k}" for k in range(len(k_true))]
    fig = go.Figure([go.Bar(x=x, y=k_true, name="true (classes >= 2% of client)"),
                     go.Bar(x=x, y=k_est, name="InfoMap K_hat")])
    fig.update_layout(barmode="group", title=title, yaxis_title="categories")
    return fig


def community_class_table(comm_labels, y_true, class_names=None, title="Community x true class"):
    comm, y = np.asarray(comm_labels), np.asarray(y_true)
    cs = np.unique(comm)
    n_cls = int(y.max()) + 1
    tab = np.stack([np.bincount(y[comm == c], minlength=n_cls) for c in cs])
    names = class_names or [str(i) for i in range(n_cls)]
    fig = go.Figure(go.Heatmap(z=tab, x=names, y=["noise" if c < 0 else f"community {c}" for c in cs],
                               colorscale="Purples", text=tab, texttemplate="%{text}"))
    fig.update_layout(title=title, yaxis_autorange="reversed", height=140 + 28 * len(cs))
    return fig


def prior_bars(series: dict, labels=None, title="Local distributions over heads"):
    """series: name -> (H,) distribution (e.g. true histogram, InfoMap prior, mean prediction SimGCD / LPA)."""
    fig = go.Figure()
    for name, v in series.items():
        v = np.asarray(v, dtype=float)
        fig.add_bar(x=labels or [str(i) for i in range(len(v))], y=v, name=name)
    fig.update_layout(barmode="group", title=title, yaxis_title="probability", xaxis_title="head / class")
    return fig


def training_curves(histories: dict, metrics=("acc_all", "acc_old", "acc_new"), title="Accuracy per round"):
    """histories: run name -> list of {round, acc_all, acc_old, acc_new}. One panel per metric."""
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m.replace("acc_", "").title() for m in metrics],
                        shared_yaxes=True)
    for i, (name, hist) in enumerate(histories.items()):
        r = [h["round"] for h in hist]
        for j, m in enumerate(metrics):
            fig.add_trace(go.Scatter(x=r, y=[h[m] for h in hist], mode="lines+markers", name=name,
                                     line=dict(color=_color(i)), legendgroup=name, showlegend=j == 0),
                          row=1, col=j + 1)
    fig.update_yaxes(range=[0, 1], title_text="clustering accuracy (v2)", col=1)
    fig.update_xaxes(title_text="round")
    fig.update_layout(title=title, height=420)
    return fig


def results_bars(rows, title="All / Old / New (mean of the last 3 evaluations)"):
    """rows: list of dicts with name, acc_all, acc_old, acc_new and optional *_std."""
    fig = go.Figure()
    for m in ("acc_all", "acc_old", "acc_new"):
        fig.add_bar(x=[r["name"] for r in rows], y=[r[m] for r in rows], name=m.replace("acc_", "").title(),
                    error_y=dict(type="data", array=[r.get(m + "_std", 0) for r in rows]))
    fig.update_layout(barmode="group", title=title, yaxis_range=[0, 1])
    return fig


def paired_seed_differences(study: dict, title="FedLPA − other, All, paired per evaluation seed", key="paired",
                            lead="FedLPA"):
    """One panel per α: each dot is one seed's difference lead − other (points), the diamond the mean with its
    95 % interval. ``study``: ``gcd_summary.json``'s ``seed_study`` (``bench/run_gcd_tables.py --stage seeds``);
    ``key``: ``"paired"`` (FedLPA − each other run), ``"ceiling"`` (the oracle prior − each federated
    baseline, with ``lead="oracle prior"``) or ``"parts"`` (the oracle's lead taken apart, each row "first −
    second", with ``lead="the first"``; on the seeds in ``parts_seeds``)."""
    alphas = [dict(e, seeds=e.get(f"{key}_seeds", e["seeds"])) for e in study.get("alphas") or [] if e.get(key)]
    fig = make_subplots(rows=1, cols=max(1, len(alphas)), shared_yaxes=True,
                        subplot_titles=[f"α = {e['alpha']:g} · {len(e['seeds'])} seeds" for e in alphas])
    for j, e in enumerate(alphas):
        for i, p in enumerate(e[key]):
            vals = 100 * np.asarray(p["diff"]["values"])
            fig.add_scatter(x=vals, y=[p["vs"]] * len(vals), mode="markers", row=1, col=j + 1,
                            marker=dict(color=_color(i), size=8, opacity=0.55), showlegend=False,
                            text=[f"seed {s}" for s in e["seeds"]],
                            hovertemplate="%{text}: %{x:+.1f} points<extra>" + p["vs"] + "</extra>")
            lo, hi = (100 * v for v in p["ci95"])
            m = 100 * p["diff"]["mean"]
            fig.add_scatter(x=[m], y=[p["vs"]], mode="markers", row=1, col=j + 1, showlegend=False,
                            marker=dict(color=_color(i), size=14, symbol="diamond", line=dict(color="black", width=1)),
                            error_x=dict(type="data", symmetric=False, array=[hi - m], arrayminus=[m - lo]),
                            hovertemplate=(f"mean %{{x:+.1f}}, 95 % interval [{lo:+.1f}, {hi:+.1f}], {lead} ahead "
                                           f"on {p['ahead']}/{len(e['seeds'])} seeds<extra>{p['vs']}</extra>"))
        fig.add_vline(x=0, line_dash="dash", line_color="#555", row=1, col=j + 1)
        fig.update_xaxes(title_text=f"points (> 0: {lead} ahead)", row=1, col=j + 1)
    fig.update_layout(title=title, height=300 + 30 * max((len(e[key]) for e in alphas), default=0))
    return fig


def k_hat_direction_scatter(study: dict, title="Does FedLPA's lead follow the direction of its K̂ misses?"):
    """One panel per α: each dot is one evaluation seed, x its net over-count Σ (K̂ − K) over its clients, y FedLPA
    − a federated baseline (points), and the run told the heads of the client's classes − FedLPA. ``study``:
    ``gcd_summary.json``'s ``seed_study``, each α's ``k_hat_direction`` (``bench/run_gcd_tables.py``). The true K
    is read only to draw this: a diagnosis after the fact, never a choice."""
    alphas = [e for e in study.get("alphas") or [] if e.get("k_hat_direction")]
    fig = make_subplots(rows=1, cols=max(1, len(alphas)), shared_yaxes=True,
                        subplot_titles=[f"α = {e['alpha']:g} · {len(e['seeds'])} seeds" for e in alphas])
    for j, e in enumerate(alphas):
        d = e["k_hat_direction"]
        for i, (name, vals) in enumerate(d["per_seed"].items()):
            seeds = list(vals)
            r = d["r"].get(name)
            fig.add_scatter(x=[d["net_overcount"][s] for s in seeds], y=[100 * vals[s] for s in seeds],
                            mode="markers", row=1, col=j + 1, name=name, legendgroup=name, showlegend=j == 0,
                            marker=dict(color=_color(i), size=9, opacity=0.7), text=[f"seed {s}" for s in seeds],
                            hovertemplate=("%{text}: net K̂ − K %{x:+d}, %{y:+.1f} points<extra>" + name
                                           + ("" if r is None else f" (r = {r:+.2f})") + "</extra>"))
        fig.add_hline(y=0, line_dash="dash", line_color="#555", row=1, col=j + 1)
        fig.add_vline(x=0.5, line_dash="dot", line_color="#999", row=1, col=j + 1)
        fig.update_xaxes(title_text="net K̂ − K over the seed's clients (> 0: over-count)", row=1, col=j + 1)
    fig.update_yaxes(title_text="points", row=1, col=1)
    fig.update_layout(title=title, height=380, legend=dict(orientation="h", y=-0.3))
    return fig


def k_hat_frontier(rows, bar: float = 0.8, title="Can one discovery rule keep K̂ within ±1 at both α?"):
    """Each dot is one discovery setting or rule of a study (``rows``: :func:`lab.results.k_hat_frontier_rows`): x the
    share of clients with K̂ within ±1 at α 0.1, y at α 1; colour the study; the star FedLPA's own setting. The
    shaded corner is issue 9's bar (``bar`` at both α): a setting there meets it with one rule."""
    fig = go.Figure()
    fig.add_shape(type="rect", x0=100 * bar, y0=100 * bar, x1=101, y1=101, line_width=0,
                  fillcolor="rgba(44, 160, 44, 0.15)", layer="below")
    studies = list(dict.fromkeys(r["study"] for r in rows))
    for i, study in enumerate(studies):
        mine = [r for r in rows if r["study"] == study]
        fig.add_scatter(x=[100 * r["within_1_alpha_0.1"] for r in mine], y=[100 * r["within_1_alpha_1"] for r in mine],
                        mode="markers", name=study, marker=dict(color=_color(i), size=9, opacity=0.6,
                                                                symbol=["diamond" if r["pick"] else "circle"
                                                                        for r in mine]),
                        text=[f"{r['setting']}<br>mean KL(oracle ‖ π) {r['kl']:.3f}" + (" · the study's pick by KL"
                                                                                       if r["pick"] else "")
                              for r in mine], hovertemplate="%{text}<br>α 0.1: %{x:.0f} %, α 1: %{y:.0f} %<extra>"
                        + study + "</extra>")
    own = [r for r in rows if r["fedlpa"]][:1]
    if own:
        fig.add_scatter(x=[100 * own[0]["within_1_alpha_0.1"]], y=[100 * own[0]["within_1_alpha_1"]], mode="markers",
                        name="FedLPA's setting", marker=dict(symbol="star", size=18, color="#000",
                                                             line=dict(color="#fff", width=1)),
                        text=[own[0]["setting"]], hovertemplate="%{text}<extra>FedLPA</extra>")
    # axes start at the nearest ten below the lowest dot: the corner and every setting stay in view
    lo = {a: max(0, 10 * int(min([100 * r[f"within_1_alpha_{a}"] for r in rows] or [0]) // 10) - 10)
          for a in ("0.1", "1")}
    fig.update_xaxes(title_text="K̂ within ±1, α = 0.1 (% of clients)", range=[lo["0.1"], 101])
    fig.update_yaxes(title_text="K̂ within ±1, α = 1 (% of clients)", range=[lo["1"], 101])
    fig.update_layout(title=title, height=460, legend=dict(orientation="h", y=-0.2))
    return fig
