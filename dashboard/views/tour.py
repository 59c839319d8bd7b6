"""The tour: the lab's story in six steps, each a small live figure and a link to the full page at the same
settings; it ends with the two headline numbers, read from the committed results files (``lab.results``).

One step at a time (Back / Next, or a step's name; ``?step=N`` opens it), so a presenter talks over one figure and
the first screen draws one chart, not six (the cold-load target); "all steps on one page" draws the six at once.

Every figure is computed here from ``lab`` at the tour's settings (``TOUR``), the same cached calls the full
pages make, so a link opens its page on exactly the picture the step showed, full size and with every control.
"""
import numpy as np
import streamlit as st

from lab.viz import gcd as vz
from lab.viz.alpha import accuracy_vs_alpha
from lab.viz.layout import induced_edges
from lab.viz.privacy import privacy_utility_figure

import loaders as L
import result_files as R
import widgets as W
from page import footer, guard, page_start, show
from tour_preset import TOUR, preset
from widgets import fmt_markov

SMALL = 330      # figure height on the tour (presenter mode enlarges it)


def step(n: int, title: str, notice: str, page: str, label: str, query: dict):
    """One step: number, title, what to notice, the link; returns the column that takes the figure."""
    text, fig = st.columns([2, 3], vertical_alignment="center")
    with text:
        st.subheader(f"{n}. {title}")
        st.markdown(notice)
        st.page_link(page, label=label, icon=":material/arrow_forward:", query_params=query)
    return fig


t0 = page_start("A tour of the lab",
                "six steps, one idea each, from how clients differ to what privacy costs; every figure is "
                "computed live, and each link opens the full page on the same settings.", presenter=True)
ckey = (TOUR["ds"], TOUR["part"], TOUR["alpha"], TOUR["clients"], TOUR["seed"], TOUR["client"], TOUR["model"],
        TOUR["nmax"])
graph_args = (ckey, TOUR["k"], TOUR["P"], TOUR["floor"])


def client_view():
    """What steps 2 and 3 draw: class names, true labels, the graph and the drawn nodes' layout (cached)."""
    names = L.federation(*ckey[:5]).pool.class_names
    y = L.client_arrays(*ckey)["y_true"]
    keep, pos = L.layout_for(ckey, TOUR["layout"], TOUR["ndraw"], *graph_args[1:])
    return names, y, L.graph_for(*graph_args), keep, pos


def step_partition(n: int):
    fed = L.federation(*ckey[:5])
    with step(n, "Clients differ", f"At α = {TOUR['alpha']:g} (strong label skew) each client — a row — holds a "
              "few classes, a different few for each client.", "views/data_partitions.py", "Open Data & partitions",
              preset("alpha", "clients", "seed")):
        show(vz.partition_heatmap(fed.part.counts, fed.pool.class_names, title=f"Samples per client and class, "
                                  f"α = {TOUR['alpha']:g}").update_layout(height=SMALL + 40, margin=dict(t=40),
                                                                          xaxis_tickangle=-30),
             "tour_partition", key="tour1")


def step_graph(n: int):
    names, y, g, keep, pos = client_view()
    cross = float((y[g.src] != y[g.dst])[g.kind == 0].mean())
    with step(n, "A similarity graph per client", f"Client {TOUR['client']} links each sample to its "
              f"{TOUR['k']} most similar ones; the **red** links join two classes ({cross:.0%} of them here), "
              "the mistakes a community finder could follow.",
              "views/similarity_graph.py", "Open the Similarity graph",
              preset("alpha", "client", "model", "layout", "ndraw")):
        src, dst, kind = induced_edges(keep, g.src, g.dst, g.kind)
        show(vz.similarity_graph(pos, src, dst, kind, y[keep], class_names=names, height=SMALL + 60,
                                 title=f"Client {TOUR['client']}: {len(keep)} samples (raw pixels), t-SNE"),
             "tour_graph", key="tour2")


def step_communities(n: int):
    names, y, _, keep, pos = client_view()
    com = L.communities_for(*graph_args, TOUR["mt"], TOUR["minc"])
    k_true = int((np.bincount(y) >= TOUR["minc"] * len(y)).sum())
    with step(n, "Communities, without knowing K", f"InfoMap splits the same graph into **{com.k_est}** "
              f"communities (markov time {fmt_markov(TOUR['mt'])}) where the client holds {k_true} classes "
              "(≥ 2 % of it), without being told how many to look for.", "views/communities.py",
              "Open InfoMap communities", preset("alpha", "client", "model", "layout", "ndraw", "mt")):
        show(vz.communities_scatter(pos, com.labels[keep], y[keep], class_names=names, height=SMALL,
                                    title=f"Client {TOUR['client']}: InfoMap communities"), "tour_communities",
             key="tour3")


def step_prior(n: int):
    names = L.federation(*ckey[:5]).pool.class_names
    true, read = L.community_histogram(*graph_args, TOUR["mt"], TOUR["minc"])
    with step(n, "A local prior", "Read as classes, the communities' sizes give a local prior with the "
              "client's few tall bars instead of a uniform share per class: FedLPA aligns each client's "
              "predictions to such a prior (the full page compares trained models).",
              "views/prior_alignment.py", "Open Prior alignment", preset("pclient")):
        show(vz.prior_bars({"true class histogram": true, "InfoMap communities (read as classes)": read},
                           labels=names, title=f"Client {TOUR['client']}: class shares").update_layout(
                               height=SMALL, legend=dict(orientation="h", y=-0.35)), "tour_prior", key="tour4")


def step_training(n: int):
    curve, curve_src, _ = R.alpha_curve()
    with step(n, "Training under skew", "Read the accuracy from right (close to IID) to left (strong skew): "
              "the gap between FedLPA and the federated baselines at small α is what the local prior buys, or "
              "not.", "views/training.py", "Open Federated training", preset("ralpha")):
        if curve:
            show(accuracy_vs_alpha(curve, metrics=("acc_all",), height=SMALL + 40,
                                   title=f"All accuracy against α ({curve_src})"), "tour_alpha", key="tour5")
        else:
            st.info(f"`{curve_src}` is not computed yet (`python bench/run_gcd_tables.py`).")


def step_privacy(n: int):
    pu, dp_src = R.dp_summary()
    with step(n, "What user-level privacy costs", "At the same user-level ε (no Shakespeare character may be "
              "detectable), the lower curve keeps more of the language model's quality: ULS samples and clips "
              "whole users, ELS samples examples.", "views/privacy_utility.py", "Open Privacy–utility", {}):
        if pu and pu.get("summary"):
            show(privacy_utility_figure(pu).update_layout(height=SMALL + 40, title=f"Held-out loss against ε "
                                                          f"({dp_src})"), "tour_privacy", key="tour6")
        else:
            st.info(f"`{dp_src}` is not computed yet (`python -m lab dp-sweep`).")


#: the story, in order: (short name for the step picker, the step)
STEPS = [("Clients differ", step_partition), ("A graph per client", step_graph),
         ("Communities", step_communities), ("A local prior", step_prior), ("Training under skew", step_training),
         ("What privacy costs", step_privacy)]
NUMBERS = list(range(1, len(STEPS) + 1))


def _go(delta: int):
    W.preset("step", min(max(st.session_state.get("step", 1) + delta, 1), len(STEPS)))


everything = W.toggle("All steps on one page", False, key="all_steps",
                      help="draw the six figures at once (slower to open); off: one step at a time")
if everything:
    for i, (_, draw) in enumerate(STEPS, 1):
        with guard():
            draw(i)
else:
    back, pick, nxt = st.columns([1, 8, 1], vertical_alignment="bottom")
    cur = W.radio("Step", NUMBERS, 1, key="step", where=pick, horizontal=True, label_visibility="collapsed",
                  format_func=lambda i: f"{i}. {STEPS[i - 1][0]}")
    back.button("← Back", key="tour_back", on_click=_go, args=(-1,), disabled=cur == 1, width="stretch")
    nxt.button("Next →", key="tour_next", on_click=_go, args=(1,), disabled=cur == len(STEPS), width="stretch")
    with guard():
        STEPS[cur - 1][1](cur)

st.divider()
st.header("The two numbers")
h = R.headlines()
a, b = st.columns(2)
with a:
    gh = h["gcd"]
    if "error" in gh:
        st.info(f"FedLPA vs the best federated baseline: {gh['error']} (`{gh['source']}`).")
    else:
        ours, base, d = gh["fedlpa"]["acc_all"], gh["baseline"]["acc_all"], gh["diff"]
        st.metric(f"FedLPA vs {gh['baseline']['label']} (the best federated baseline), All at α = {gh['alpha']:g}",
                  f"{100 * ours['mean']:.1f} % vs {100 * base['mean']:.1f} %",
                  delta=(f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f} points, paired over seeds "
                         f"{d.get('seeds')}" if d else f"{100 * (ours['mean'] - base['mean']):+.1f} points"),
                  help="clustering accuracy on all unlabelled samples, mean of the last 3 rounds, mean ± std over "
                       "evaluation seeds no tuning choice saw")
        st.caption(f"± std over {ours['n']} seeds: FedLPA {100 * ours['std']:.1f}, {gh['baseline']['label']} "
                   f"{100 * base['std']:.1f} · from `{gh['source']}`")
with b:
    dh = h["dp"]
    if "error" in dh:
        st.info(f"ULS vs ELS: {dh['error']} (`{dh['source']}`).")
    else:
        d = dh["diff"]
        how = (f"paired over seeds {d.get('seeds')}, ± {d['std']:.4f}" if d.get("paired")
               else "difference of the means")
        st.metric(f"ULS vs ELS held-out loss at user-level ε = {dh['epsilon']:g} (lower is better)",
                  f"{dh['uls']['mean']:.3f} vs {dh['els']['mean']:.3f} nats/char",
                  delta=f"{d['mean']:+.4f} (ULS − ELS, {how})", delta_color="inverse",
                  help=f"δ = {dh.get('delta')}, " + (f"each user bounded to {dh['bound']} examples"
                                                      if dh.get("bound") else "each algorithm at its own tuned "
                                                      "contribution bound, step size and clip")
                       + "; ε from the user-level accountants")
        st.caption(f"{dh['uls']['n']} / {dh['els']['n']} seeds · from `{dh['source']}`")

footer(t0)
