# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · One client's similarity graph, and how confidence refines it (CLSD)
#
# FedLPA's first local step: a client looks at its own samples through the current global model and links
# each sample to the samples that look most like it. Communities in that graph become the client's
# categories (notebook 03), so every wrong edge matters.
#
# **What you will learn**
#
# 1. How a client builds a **cosine kNN graph** from the model's L2-normalised features (`lab.gcd.clsd`).
# 2. Which edges are wrong — they join two *true* classes — and which classes they confuse.
# 3. How **confidence-guided refinement** uses what the client knows: labelled samples and *confident*
#    unlabelled ones (per predicted seen class, those at or above the P-quantile of confidence) become
#    **anchors**; anchors of the same seen class get **must-link** edges, kNN edges between anchors of
#    different seen classes are **cut**.
# 4. How to measure it: **edge precision** (share of edges joining two samples of the same true class) before
#    and after, and how the quantile P and the degree k move it.
#
# The model is a trained global model committed in `data/snapshots/` (FedAvg+SimGCD, α = 0.1, seed 0).
# Nothing is trained here; the notebook takes well under a minute.

# %% tags=["parameters"]
SNAPSHOT = "simgcd_alpha0.1_seed0"   # data/snapshots/<name>.safetensors: the global model whose features we use
CLIENT = 1                           # which client of that federation to look at
K = 10                               # kNN degree
P = 0.5                              # confidence quantile per predicted seen class
SIM_FLOOR = 0.0                      # drop kNN edges with cosine similarity below this
LAYOUT = "tsne"                      # 2-D positions: "tsne" (seconds), "pca" (instant) or "spring"
P_VALUES = [0.0, 0.25, 0.5, 0.75, 0.9]
K_VALUES = [5, 10, 20, 40]
FALLBACK_ROUNDS = 3                  # only if the snapshot is missing: train a short FedAvg+SimGCD run instead

# %%
# Setup (`lab` is installed by `pip install -r requirements.txt`).
import numpy as np
import pandas as pd
import plotly.express as px
import torch

from lab.gcd.clsd import CUT, KNN, MUST, build_graph
from lab.gcd.snapshots import client_view, load_snapshot
from lab.viz import gcd as vz
from lab.viz.layout import embed_2d

torch.set_num_threads(1)   # one thread measured fastest on a shared 2-core machine

# %% [markdown]
# ## 1. The client, seen through the global model
#
# `load_snapshot` returns the model's weights *and* the config that trained it, so `client_view` rebuilds
# exactly that federation (same split, same partition) and runs the model on one client's images. We get
# per sample: L2-normalised features, predicted probabilities over the heads, the true label (for us, the
# teachers — the client never sees it) and the label the client *may* see (old classes, labelled half).

# %%
# the committed trained model; a checkout without it trains a short FedAvg+SimGCD run instead (progress bar)
from tqdm.auto import tqdm

with tqdm(total=FALLBACK_ROUNDS, desc="snapshot (trains only if missing)", unit="round") as bar:
    weights, cfg = load_snapshot(SNAPSHOT, FALLBACK_ROUNDS, on_round=lambda r, n, row: bar.update(1))
view = client_view(cfg, CLIENT, weights)
y = view["y_true"]
names = view["class_names"]
print(f"model: {cfg.method}, α = {cfg.alpha:g}, {cfg.rounds} rounds, {cfg.clients} clients; "
      f"client {CLIENT}: {len(y)} samples, {view['labelled'].sum()} labelled")
present = np.flatnonzero(np.bincount(y, minlength=len(names)))
pd.DataFrame({"class": [names[c] for c in present],
              "kind": ["old" if c in view["old_classes"] else "new" for c in present],
              "samples": np.bincount(y)[present],
              "labelled": np.bincount(y[view["labelled"]], minlength=len(names))[present]})

# %% [markdown]
# ## 2. The plain kNN graph
#
# Each sample is linked to its `K` most similar samples (cosine similarity of the features, brute force in
# scikit-learn); links are undirected and weighted by similarity. No labels are used yet (`refine=False`).

# %%
plain = build_graph(view["features"], view["probs"], view["labelled"], view["y_visible"], view["old_classes"],
                    k=K, quantile=P, sim_floor=SIM_FLOOR, refine=False)
print(f"{plain.counts()['kNN']} kNN edges; edge precision {plain.edge_precision(y):.3f} "
      f"(share joining two samples of the same true class)")

# %% [markdown]
# Which classes do the wrong edges join? Rows and columns are the two true classes at the ends of an edge.

# %%
a, b = y[plain.src], y[plain.dst]
wrong = a != b
pairs = pd.crosstab(pd.Series([names[i] for i in np.minimum(a, b)[wrong]], name="class"),
                    pd.Series([names[i] for i in np.maximum(a, b)[wrong]], name="joined to"))
pairs

# %% [markdown]
# The graph drawn in 2-D (the layout only places the dots; the edges are computed in the full feature space).
# Grey edges join samples of the same true class; **red edges join two true classes**.

# %%
pos = embed_2d(view["features"], LAYOUT, seed=0, graph=plain if LAYOUT == "spring" else None)
vz.similarity_graph(pos, plain.src, plain.dst, plain.kind, y,
                    title=f"Client {CLIENT}: plain kNN graph (k = {K}), nodes coloured by true class").show()

# %% [markdown]
# What do wrong edges look like? The two ends of a few of them, side by side:

# %%
rng = np.random.default_rng(0)
show = rng.choice(np.flatnonzero(wrong), size=min(6, int(wrong.sum())), replace=False)
imgs = np.stack([view["images"][i] for e in show for i in (plain.src[e], plain.dst[e])])
vz.sample_images(imgs, titles=[names[y[i]] for e in show for i in (plain.src[e], plain.dst[e])], cols=4,
                 title="Ends of kNN edges that join two true classes (pairs, left to right)").show()

# %% [markdown]
# ## 3. Anchors: labelled and confident samples
#
# The client knows two things the plain graph ignores:
#
# * its **labelled** samples (old classes only);
# * the model's **confident** predictions: for each predicted seen class c, the unlabelled samples predicted c
#   whose maximum probability is at or above the P-quantile of the confidences of all samples predicted c.
#
# Both become *anchors* carrying a seen-class label. How good are the confident ones? (Only we can check:
# the client does not know the truth.)

# %%
refined = build_graph(view["features"], view["probs"], view["labelled"], view["y_visible"], view["old_classes"],
                      k=K, quantile=P, sim_floor=SIM_FLOOR, refine=True)
conf = refined.confident
pred = view["probs"].argmax(1)
print(f"anchors: {view['labelled'].sum()} labelled + {conf.sum()} confident unlabelled samples")
print(f"confident samples whose predicted class is their true class: {(pred[conf] == y[conf]).mean():.1%}")
pd.crosstab(pd.Series([names[c] for c in y[conf]], name="true class of confident sample"),
            pd.Series([names[c] for c in pred[conf]], name="predicted (seen) class"))

# %% [markdown]
# A confident sample of a **new** class can only be predicted as one of the seen classes it resembles —
# if there are any in the table above, those anchors carry a wrong label into the graph.
#
# ## 4. Refinement: must-links and cuts
#
# * kNN edges between anchors of **different** seen classes are **cut** (kept in the record, ignored by InfoMap);
# * anchors of the **same** seen class are joined by **must-link** edges of weight 1 (each anchor to its k most
#   similar same-class anchors, plus any kNN edge already between them).

# %%
rows = []
for name, g, kinds in [("plain kNN", plain, (KNN,)), ("refined: kNN kept", refined, (KNN,)),
                       ("refined: must-link", refined, (MUST,)), ("refined: all used (kNN + must-link)", refined, (KNN, MUST))]:
    m = np.isin(g.kind, kinds)
    rows.append({"edges": name, "count": int(m.sum()), "edge precision": round(g.edge_precision(y, kinds), 3)})
cut = refined.kind == CUT
rows.append({"edges": "refined: cut", "count": int(cut.sum()),
             "edge precision": round(float((y[refined.src[cut]] == y[refined.dst[cut]]).mean()), 3) if cut.any() else None})
pd.DataFrame(rows)

# %% [markdown]
# For the **cut** row, a *low* precision is what we want: a cut edge that joined two different true classes
# was a good cut; a cut edge between two samples of the same class was a mistake caused by a wrong anchor.

# %%
vz.similarity_graph(pos, refined.src, refined.dst, refined.kind, y,
                    title=f"Client {CLIENT}: refined graph (P = {P}): green must-links, black cuts").show()

# %% [markdown]
# ## 5. How P and k move the graph
#
# Lower P makes more samples confident (more must-links and cuts, but noisier anchors); higher P keeps only
# the most confident ones. A larger k adds edges, and the extra, farther neighbours are wrong more often.

# %%
rows = []
for p_ in P_VALUES:
    g = build_graph(view["features"], view["probs"], view["labelled"], view["y_visible"], view["old_classes"],
                    k=K, quantile=p_, sim_floor=SIM_FLOOR)
    c_ = g.confident
    cut = g.kind == CUT
    rows.append({"P": p_, "confident": int(c_.sum()), "confident correct": round(float((pred[c_] == y[c_]).mean()), 3),
                 **g.counts(), "edge precision (used)": round(g.edge_precision(y), 3),
                 "cuts that were right": round(float((y[g.src[cut]] != y[g.dst[cut]]).mean()), 3) if cut.any() else None})
by_p = pd.DataFrame(rows)
by_p

# %%
rows = []
for k_ in K_VALUES:
    g0 = build_graph(view["features"], view["probs"], view["labelled"], view["y_visible"], view["old_classes"],
                     k=k_, sim_floor=SIM_FLOOR, refine=False)
    g1 = build_graph(view["features"], view["probs"], view["labelled"], view["y_visible"], view["old_classes"],
                     k=k_, quantile=P, sim_floor=SIM_FLOOR)
    rows.append({"k": k_, "precision before": g0.edge_precision(y), "precision after": g1.edge_precision(y)})
by_k = pd.DataFrame(rows)
px.line(by_k.melt("k", var_name="graph", value_name="edge precision"), x="k", y="edge precision", color="graph",
        markers=True, title=f"Client {CLIENT}: edge precision vs k (P = {P})").show()

# %% [markdown]
# The same before/after measurement on every client of the federation (a few seconds):

# %%
rows = []
for c in range(cfg.clients):
    v = client_view(cfg, c, weights)
    g0 = build_graph(v["features"], v["probs"], v["labelled"], v["y_visible"], v["old_classes"], k=K, refine=False)
    g1 = build_graph(v["features"], v["probs"], v["labelled"], v["y_visible"], v["old_classes"], k=K, quantile=P)
    pc = v["probs"].argmax(1)
    rows.append({"client": c, "samples": len(v["y_true"]), "precision before": round(g0.edge_precision(v["y_true"]), 3),
                 "precision after": round(g1.edge_precision(v["y_true"]), 3),
                 "confident correct": round(float((pc[g1.confident] == v["y_true"][g1.confident]).mean()), 3)})
pd.DataFrame(rows)

# %% [markdown]
# ## What to notice
#
# * Most kNN edges are right; the wrong ones concentrate on a few **visually similar class pairs** (look at the
#   crosstab and the image pairs: dresses and coats, shirts and T-shirts, sneakers and sandals…).
# * Refinement raises edge precision, but only as far as the anchors are right. A new class that the model
#   confidently calls a seen class (e.g. shirts called T-shirts) produces wrong must-links *and* wrong cuts:
#   the graph inherits the model's confusions. That is why P matters and why FedLPA reruns this step as the
#   model improves.
# * Edge precision falls as k grows: farther neighbours are more often from another class. A small k keeps
#   precision, a large k keeps the graph connected.
#
# ## Exercise
#
# 1. Set `CLIENT = 3`. What share of its confident samples is correct, and why? (Look at which true classes
#    are predicted as which seen class.) What does that do to the cuts?
# 2. Use the FedLPA snapshot (`SNAPSHOT = "fedlpa_alpha0.1_seed0"`). Does a model trained with local prior
#    alignment give a cleaner graph on the same client?
# 3. Raise `SIM_FLOOR` to 0.8. Which edges disappear, and what happens to isolated samples?
