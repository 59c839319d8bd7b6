"""Similarity graph (CLSD): a client's kNN graph and what confidence-guided refinement does to it."""
import numpy as np
import pandas as pd
import streamlit as st

from lab.gcd.clsd import CUT, KIND_NAMES, KNN, MUST
from lab.viz.gcd import similarity_graph
from lab.viz.layout import induced_edges

import loaders as L
from page import download_csv, footer, guard, page_start, settings_line, show
from sidebar import federation_sidebar, model_label
from widgets import LAYOUT_HELP, LAYOUTS, NODES_DRAWN, preset, select, select_slider, slider

t0 = page_start("Similarity graph (CLSD)",
                "the red edges join two true classes: they are the mistakes a community finder would follow. "
                "Raise k and watch them multiply; refinement adds green must-links between samples of one seen "
                "class and cuts (black, dotted) links between two, which should lift the edge precision. Click a "
                "legend entry to hide that kind of edge.")
s = federation_sidebar()


def snapshot_note(s) -> None:
    """A trained model's features on the sidebar's partition: say where the model came from, and offer its own
    α / clients / seed when they differ."""
    if not s.model.startswith("snap:"):
        return
    path = L.snapshots().get(s.model[5:])
    if path is None:
        return
    cfg = L.load_snapshot(path)[1]
    st.caption(f"Features and confident predictions from **{model_label(s.model)}**: trained on "
               f"{cfg.dataset}, α = {cfg.alpha:g}, {cfg.clients} clients, seed {cfg.seed}.")
    if (cfg.alpha, cfg.clients, cfg.seed) != (s.alpha, s.clients, s.seed) or s.scheme != cfg.partition:
        def align():
            for k, v in (("alpha", cfg.alpha), ("clients", cfg.clients), ("seed", cfg.seed), ("part", cfg.partition)):
                preset(k, v)
        st.button(f"Show the clients it was trained on (α = {cfg.alpha:g}, {cfg.clients} clients, seed {cfg.seed})",
                  on_click=align, key="align_snapshot")


c1, c2, c3 = st.columns(3)
k = slider("k (neighbours per sample)", 1, 50, 10, key="k", where=c1)
P = slider("P (confidence quantile)", 0.0, 1.0, 0.5, key="P", step=0.05, where=c2,
           help="an unlabelled sample predicted as seen class c is an anchor when its confidence is at or "
                 "above the P-quantile of that class's confidences (needs a trained model)")
floor = slider("Similarity floor (cosine)", -1.0, 0.99, 0.0, key="floor", step=0.01, where=c3,
               help="kNN links below this cosine similarity are dropped")
c4, c5, c6 = st.columns(3)
layout = select("Layout", list(LAYOUTS), key="layout", where=c4, format_func=LAYOUTS.get, help=LAYOUT_HELP)
n_draw = select_slider("Nodes drawn (seeded subsample)", NODES_DRAWN, 400, key="ndraw", where=c5,
                       help="the graph is built on all the client's samples; the figure draws this many of them "
                            "and the edges among them")
max_edges = select_slider("Edges drawn (sampled above this)", [1000, 2000, 5000, 10000, 20000, 50000], 5000,
                          key="edges", where=c6)

with guard():
    ckey = s.ckey()
    cl = L.client_arrays(*ckey)
    y = cl["y_true"]
    names = cl["class_names"]
    with st.spinner("Building the graph…"):
        g = L.graph_for(ckey, k, P, floor)
        g0 = L.graph_for(ckey, k, P, floor, refine=False)
        keep, pos = L.layout_for(ckey, layout, n_draw, k, P, floor)
    settings_line(f"{s.federation_text()} → client {s.client} ({cl['n_client']:,} samples"
                  f"{f', {len(y):,} kept' if len(y) < cl['n_client'] else ''}; {len(keep):,} drawn) · features: "
                  f"{model_label(s.model)} · k = {L.usable_k(ckey, k)}, P = {P:g}, floor = {floor:g}")
    snapshot_note(s)
    if L.usable_k(ckey, k) < k:
        st.caption(f"This client holds {len(y)} samples: k is lowered to {L.usable_k(ckey, k)} (each sample has at "
                   f"most {len(y) - 1} neighbours). Pick another **Client** in the sidebar for a larger graph.")
    counts = g.counts()
    prec0, prec1 = g0.edge_precision(y), g.edge_precision(y)
    m = st.columns(7)
    m[0].metric("Samples", len(y), help=f"client {s.client} holds {cl['n_client']} samples")
    m[1].metric("Anchors", int((g.anchor_label >= 0).sum()),
                help=f"{int(cl['labelled'].sum())} labelled + {int(g.confident.sum())} confident")
    m[2].metric("kNN edges", counts["kNN"])
    m[3].metric("Must-links", counts["must-link"])
    m[4].metric("Cuts", counts["cut"])
    m[5].metric("Precision (kNN)", f"{prec0:.3f}" if np.isfinite(prec0) else "–",
                help="share of edges joining two samples of the same true class")
    m[6].metric("Precision (refined)", f"{prec1:.3f}" if np.isfinite(prec1) else "–",
                delta=f"{prec1 - prec0:+.3f}" if np.isfinite(prec0) and np.isfinite(prec1) else None,
                help="kNN + must-link edges after refinement (cut edges removed)")
    if cl["probs"] is None:
        trained = any(m.startswith("snap:") for m in L.model_options(s.pool_key))
        st.caption("No trained heads for these features: only labelled samples are anchors (P has no effect)."
                   + (" Pick a trained model under **Features from** in the sidebar to see confidence-guided "
                      "refinement." if trained else ""))
    src, dst, kind = induced_edges(keep, g.src, g.dst, g.kind)
    title = (f"Client {s.client}: CLSD graph, {len(keep)} of {len(y)} samples and the {len(src):,} edges among them "
             f"({LAYOUTS[layout].split(' (')[0]} layout)")
    show(similarity_graph(pos, src, dst, kind, y[keep], max_edges=max_edges, title=title, class_names=names),
         "similarity_graph")

    cross = y[g.src] != y[g.dst]
    rows = []
    for kd in (KNN, MUST, CUT):
        mk = g.kind == kd
        rows.append({"kind": KIND_NAMES[kd], "edges": int(mk.sum()), "same class": int((mk & ~cross).sum()),
                     "joins two classes": int((mk & cross).sum()),
                     "precision": float((~cross[mk]).mean()) if mk.any() else np.nan})
    df = pd.DataFrame(rows)
    st.dataframe(df, hide_index=True)
    download_csv(df, f"clsd_edges_client{s.client}.csv", "Download edge summary (CSV)")

footer(t0)
