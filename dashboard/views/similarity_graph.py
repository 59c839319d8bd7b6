"""Similarity graph (CLSD): a client's kNN graph and what confidence-guided refinement does to it."""
import numpy as np
import pandas as pd
import streamlit as st

from lab.gcd.clsd import CUT, KIND_NAMES, KNN, MUST
from lab.viz.gcd import similarity_graph

import loaders as L
from page import download_csv, footer, guard, page_start, show
from sidebar import federation_sidebar, model_label
from widgets import select, select_slider, slider

t0 = page_start("Similarity graph (CLSD)",
                "red edges join two true classes. Raise k and watch them multiply; refinement adds green "
                "must-links between samples of one seen class and cuts (black) links between two, which "
                "should lift the edge precision.")
s = federation_sidebar()

c1, c2, c3 = st.columns(3)
k = slider("k (neighbours per sample)", 1, 50, 10, key="k", where=c1)
P = slider("P (confidence quantile)", 0.0, 1.0, 0.5, key="P", step=0.05, where=c2,
           help="an unlabelled sample predicted as seen class c is an anchor when its confidence is at or "
                 "above the P-quantile of that class's confidences (needs a trained model)")
floor = slider("Similarity floor (cosine)", -1.0, 0.99, 0.0, key="floor", step=0.01, where=c3,
               help="kNN links below this cosine similarity are dropped")
c4, c5 = st.columns(2)
layout = select("Layout", ["pca", "tsne", "spring"], key="layout", where=c4,
                format_func={"pca": "PCA (instant)", "tsne": "t-SNE (seconds, cached)",
                                 "spring": "spring on the graph (seconds, cached)"}.get)
max_edges = select_slider("Edges drawn (sampled above this)", [1000, 2000, 5000, 10000, 20000, 50000], 5000,
                          key="edges", where=c5)

with guard():
    ckey = s.ckey()
    cl = L.client_arrays(*ckey)
    y = cl["y_true"]
    with st.spinner("Building the graph…"):
        g = L.graph_for(ckey, k, P, floor)
        g0 = L.graph_for(ckey, k, P, floor, refine=False)
        pos = L.layout_for(ckey, layout, k, P, floor)
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
        st.caption("No trained heads for these features: only labelled samples are anchors (P has no effect). "
                   "Pick a trained model in the sidebar to see confidence-guided refinement.")
    title = f"Client {s.client}: CLSD graph ({model_label(s.model)}, {layout.upper()} layout)"
    show(similarity_graph(pos, g.src, g.dst, g.kind, y, max_edges=max_edges, title=title,
                          color_title="class"), "similarity_graph")

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
