"""InfoMap communities: how many categories does each client hold, found without knowing K?"""
import numpy as np
import pandas as pd
import streamlit as st

from lab.gcd.discovery import DiscoveryParams
from lab.viz.gcd import communities_scatter, community_class_table, k_estimates

import loaders as L
from page import download_csv, footer, guard, page_start, settings_line, show
from sidebar import federation_sidebar, model_label
from widgets import (LAYOUT_HELP, LAYOUTS, MARKOV_TIMES, NODES_DRAWN, carried, default_markov_time, fmt_markov, select,
                     select_slider, slider, toggle)

t0 = page_start("InfoMap communities",
                "slide the markov time: below 1 InfoMap splits the client into many small communities, above "
                "1 it merges them. Compare K̂ with the true class count in the bars: no single time suits every "
                "client, which is why 'labelled' picks one per client, and FedLPA's coarse route (the toggle) "
                "finds a client that counts few categories again at a coarser one.")
s = federation_sidebar()

c1, c2, c3, c4, c5 = st.columns([2, 1, 1, 1, 1])
mt = select_slider("Markov time", MARKOV_TIMES, default_markov_time(), key="mt", where=c1,
                   format_func=fmt_markov,
                   help="'auto': InfoMap at 1, then communities with agreeing prototypes merge; 'labelled': per "
                        "client, the time whose communities best reproduce the client's labelled classes")
k = slider("k (neighbours per sample)", 1, 50, 10, key="k", where=c2)
min_share = select_slider("Noise below (share of client)", [0.0, 0.005, 0.01, 0.02, 0.05, 0.1], 0.02,
                          key="minc", where=c3, format_func=lambda v: f"{v:.1%}",
                           help="communities smaller than this share of the client's samples are noise")
layout = select("Layout", list(LAYOUTS), key="layout", where=c4, format_func=LAYOUTS.get, help=LAYOUT_HELP)
n_draw = select_slider("Nodes drawn", NODES_DRAWN, 400, key="ndraw", where=c5,
                       help="InfoMap runs on all the client's samples; the figure draws this seeded subsample")
ROUTE = DiscoveryParams()       # FedLPA's route: the library's cutoff and coarse time
route = ROUTE if toggle("FedLPA's coarse route", False, key="route",
                        help=f"FedLPA's discovery by default: a client whose communities number at most "
                             f"{ROUTE.coarse_k} (a skewed client, which the time that suits a client of many "
                             "classes over-splits) is found again at markov time "
                             f"{fmt_markov(ROUTE.coarse_markov_time)}, where the slider's time is finer than that "
                             "(FedLPA's first time always is). "
                             "FedLPA also merges new-class communities whose predictions agree there; this page "
                             "has no trained heads, so that step is not drawn.") else None
P = carried("P", 0.5)          # the graph page's refinement settings, when set there
floor = carried("floor", 0.0)

with guard():
    ckey = s.ckey()
    cl = L.client_arrays(*ckey)
    y = cl["y_true"]
    with st.spinner("Running InfoMap…"):
        com, first = L.communities_routed(ckey, k, P, floor, mt, min_share, route)
        keep, pos = L.layout_for(ckey, layout, n_draw, k, P, floor)
    settings_line(f"{s.federation_text()} → client {s.client} ({len(y):,} samples, {len(keep):,} drawn) · "
                  f"features: {model_label(s.model)} · markov time {fmt_markov(mt)}, k = {L.usable_k(ckey, k)}"
                  + (f" · the route found it again at markov time {fmt_markov(com.markov_time)} (first K̂ {first})"
                     if first is not None else ""))
    k_true_here = int((np.bincount(y) >= 0.02 * len(y)).sum())
    m = st.columns(4)
    m[0].metric("K̂ (communities)", com.k_est, delta=f"{com.k_est - k_true_here:+d} vs true",
                delta_color="off")
    m[1].metric("True classes (≥ 2 %)", k_true_here)
    m[2].metric("InfoMap modules before noise/merge", com.raw_modules)
    m[3].metric("Noise samples", int((com.labels < 0).sum()))

    show(communities_scatter(pos, com.labels[keep], y[keep], class_names=cl["class_names"],
                             title=f"Client {s.client}: InfoMap communities (markov time {fmt_markov(mt)}, "
                                   f"{len(keep)} of {len(y)} samples drawn, {layout.upper()} layout)"), "communities")
    left, right = st.columns(2)
    with left:
        show(community_class_table(com.labels, y, cl["class_names"]), "community_class_table")

    with st.spinner("K̂ for every client…"):
        k_est, k_true, k_first = [], [], []
        for c in range(s.clients):
            ck = s.ckey(c)
            yc = L.client_arrays(*ck)["y_true"]
            com_c, first_c = L.communities_routed(ck, k, P, floor, mt, min_share, route)
            k_est.append(com_c.k_est)
            k_first.append(first_c)
            k_true.append(int((np.bincount(yc) >= 0.02 * len(yc)).sum()))
    with right:
        show(k_estimates(k_true, k_est), "k_estimates")
        within = np.mean(np.abs(np.array(k_est) - np.array(k_true)) <= 1)
        st.caption(f"K̂ within ±1 of the true count for {within:.0%} of clients.")
        if route is not None:
            again = [f"client {c}: {f} → {e}" for c, (f, e) in enumerate(zip(k_first, k_est)) if f is not None]
            st.caption(f"The route found {len(again)} of {s.clients} clients again (first K̂ ≤ {route.coarse_k}, "
                       f"markov time {fmt_markov(route.coarse_markov_time)})" + (": " + "; ".join(again) if again
                                                                                 else "") + ".")

    ids = np.unique(com.labels)
    rows = []
    for c in ids:
        yc = y[com.labels == c]
        maj = int(np.bincount(yc).argmax())
        rows.append({"community": "noise" if c < 0 else str(int(c)), "size": len(yc),
                     "majority class": cl["class_names"][maj], "purity": float((yc == maj).mean()),
                     "labelled": int(cl["labelled"][com.labels == c].sum())})
    df = pd.DataFrame(rows)
    st.dataframe(df, hide_index=True)
    download_csv(df, f"communities_client{s.client}.csv", "Download communities (CSV)")
    kdf = pd.DataFrame({"client": range(s.clients), "k_true": k_true, "k_est": k_est,
                        "first_k_est": pd.array(k_first, dtype="Int64")})   # empty where the route did not apply
    download_csv(kdf, "k_estimates.csv", "Download K̂ per client (CSV)")

footer(t0)
