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
# # 03 · InfoMap: how many categories does this client hold?
#
# A client of a non-IID federation holds its own, unknown number of classes (notebook 01). FedLPA does not
# assume that number: it runs **InfoMap** on the client's refined similarity graph (notebook 02) and takes
# the communities it finds as the client's categories.
#
# **What you will learn**
#
# 1. What InfoMap returns on a CLSD graph: communities, a noise label for tiny ones, **K̂** = the number of
#    real communities, a prototype per community (`lab.gcd.communities`).
# 2. How K̂ compares with the true local class count on every client.
# 3. How sensitive K̂ is to InfoMap's **markov time** and to the graph degree **k** — and two adaptive rules,
#    `"labelled"` and `"auto"` (InfoMap at markov time 1, then merge communities whose prototypes agree).
# 4. What you would get from **k-means given the true K** — a method that cannot run without knowing K.
# 5. The rule FedLPA's clients use (`lab.gcd.discovery`): old classes counted from the labels, new classes from
#    the communities, on a graph of the frozen backbone features — chosen on tuning seeds, never on these.
#
# Uses the committed snapshot (FedAvg+SimGCD, α = 0.1); runs in under a minute.

# %% tags=["parameters"]
SNAPSHOT = "simgcd_alpha0.1_seed0"   # data/snapshots/<name>.safetensors
CLIENT = 1                           # the client drawn in detail (same as notebook 02)
K = 10                               # kNN degree of the CLSD graph
P = 0.5                              # confidence quantile
MARKOV_TIME = None                   # None: FedLPA's markov time (FedGCDConfig().markov_time); a number > 0; "auto"; "labelled"
MIN_SHARE = 0.02                     # communities below this share of the client's samples are noise
MARKOV_TIMES = [0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 4.0, 5.0]
K_VALUES = [5, 10, 20, 40]
MERGE_THRESHOLDS = [0.8, 0.85, 0.9, 0.95]   # the "auto" rule's prototype cosine for merging
LAYOUT = "tsne"                      # "tsne" (seconds) or "pca" (instant)
FALLBACK_ROUNDS = 3                  # only if the snapshot is missing

# %%
# Setup (`lab` is installed by `pip install -r requirements.txt`).
import math

import numpy as np
import pandas as pd
import plotly.express as px
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from lab.gcd.clsd import build_graph
from lab.gcd.communities import choose_markov_time, find_communities
from lab.gcd.config import FedGCDConfig
from lab.gcd.metrics import cluster_acc_v2
from lab.gcd.snapshots import client_view, load_snapshot
from lab.viz import gcd as vz
from lab.viz.layout import embed_2d

torch.set_num_threads(1)

# %%
# the committed trained model; a checkout without it trains a short FedAvg+SimGCD run instead (progress bar)
from tqdm.auto import tqdm

with tqdm(total=FALLBACK_ROUNDS, desc="snapshot (trains only if missing)", unit="round") as bar:
    weights, cfg = load_snapshot(SNAPSHOT, FALLBACK_ROUNDS, on_round=lambda r, n, row: bar.update(1))
views = {c: client_view(cfg, c, weights) for c in range(cfg.clients)}   # every client, through the same model
k_true = views[0]["k_true"]                                              # classes with >= 2 % of each client
names = views[0]["class_names"]
if MARKOV_TIME is None:
    MARKOV_TIME = FedGCDConfig().markov_time                             # what FedLPA's clients use by default


def graph_of(v, k=K, p=P):
    return build_graph(v["features"], v["probs"], v["labelled"], v["y_visible"], v["old_classes"], k=k, quantile=p)


def communities_of(v, g, markov_time=MARKOV_TIME, **kw):
    return find_communities(g, v["features"], markov_time=markov_time, y_visible=v["y_visible"],
                            min_size=max(2, math.ceil(MIN_SHARE * len(v["y_true"]))), seed=1, **kw)


print(f"model: {cfg.method}, α = {cfg.alpha:g}; true classes per client (>= {MIN_SHARE:.0%}): {k_true}; "
      f"markov time: {MARKOV_TIME}")

# %% [markdown]
# ## 1. Communities on one client
#
# InfoMap describes a random walk on the graph with as few bits as possible: groups of nodes where the walk
# lingers become modules. Here the walk uses the kNN and must-link edges (cut edges are gone). Communities
# smaller than `MIN_SHARE` of the client's samples are labelled **noise** (−1); the rest are the client's
# categories, and their count is **K̂**.

# %%
v = views[CLIENT]
y = v["y_true"]
graph = graph_of(v)
comm = communities_of(v, graph)
print(f"client {CLIENT}: InfoMap found {comm.raw_modules} raw modules at markov time {comm.markov_time}; "
      f"K_hat = {comm.k_est} communities of sizes {comm.sizes.tolist()}, "
      f"{(comm.labels < 0).sum()} noise samples; true classes: {k_true[CLIENT]}")
pos = embed_2d(v["features"], LAYOUT, seed=0)
vz.communities_scatter(pos, comm.labels, y, title=f"Client {CLIENT}: InfoMap communities (hover: true class)").show()

# %% [markdown]
# Which true classes does each community hold? A perfect result would be one bright cell per row *and*
# per column.

# %%
vz.community_class_table(comm.labels, y, names, title=f"Client {CLIENT}: community × true class").show()

# %% [markdown]
# Two scores against the truth (for us, not the client): the GCD clustering accuracy with one Hungarian
# matching (noise counted as one more cluster) and the adjusted Rand index (1 = identical partitions,
# 0 = chance).

# %%
def scores(labels, v):
    pred = np.where(labels < 0, labels.max() + 1, labels)
    old = np.isin(v["y_true"], v["old_classes"])
    return {"acc (v2)": round(cluster_acc_v2(v["y_true"], pred, old)["all"], 3),
            "ARI": round(adjusted_rand_score(v["y_true"], labels), 3)}


scores(comm.labels, v)

# %% [markdown]
# ## 2. K̂ against the true class count, client by client

# %%
comms = {c: communities_of(views[c], graph_of(views[c])) for c in views}
vz.k_estimates(k_true, [comms[c].k_est for c in views],
               title=f"K_hat (markov time {MARKOV_TIME}) vs true classes per client").show()
pd.DataFrame([{"client": c, "samples": len(views[c]["y_true"]), "true K": k_true[c], "raw modules": comms[c].raw_modules,
               "K_hat": comms[c].k_est, **scores(comms[c].labels, views[c])} for c in views])

# %% [markdown]
# ## 3. Markov time: one knob, very different answers
#
# Markov time scales how long the walk runs between codings: below 1 InfoMap splits finer, above 1 it merges.
# A single value rarely suits every client: small clients merge into one or two communities while large ones
# still split — if the communities are all you count (section 6 counts differently).

# %%
rows = [{"client": f"client {c} (true {k_true[c]})", "markov time": mt, "K_hat": communities_of(views[c], graph_of(views[c]), mt).k_est}
        for c in views for mt in MARKOV_TIMES]
by_mt = pd.DataFrame(rows)
fig = px.line(by_mt, x="markov time", y="K_hat", color="client", markers=True, log_x=True,
              title="K_hat vs InfoMap markov time (fixed values)")
fig.show()
by_mt.pivot(index="client", columns="markov time", values="K_hat")

# %% [markdown]
# Two adaptive rules pick a value per client instead.
#
# **`"labelled"`** calibrates the markov time on what the client knows: its labelled samples. For each time on a
# grid it scores how well the communities reproduce the labelled classes (one Hungarian matching over labelled
# samples; splitting a class and merging two classes both cost), then keeps the largest time within a small
# tolerance of the best score — the way GCD methods pick K by accuracy on labelled data.

# %%
rows = []
for c, vc in views.items():
    g = graph_of(vc)
    t_best, fit = choose_markov_time(g, vc["features"], vc["y_visible"], seed=1,
                                     min_size=max(2, math.ceil(MIN_SHARE * len(vc["y_true"]))))
    rows.append({"client": c, "true K": k_true[c], "chosen markov time": t_best,
                 "K_hat there": communities_of(vc, g, t_best).k_est,
                 **{f"fit @ {t:g}": round(sc, 3) for t, sc in fit.items()}})
pd.DataFrame(rows)

# %% [markdown]
# Its blind spot: a client's labelled samples cover only its *old* classes, so the score cannot see whether the
# new classes are split or merged.
#
# **`"auto"`** runs InfoMap at markov time 1 and then merges, one pair at a time, the two communities
# whose prototypes (mean normalised features) have the highest cosine, while it is at least the merge
# threshold. It adapts per client because it looks at the features, not at the graph's size.

# %%
rows = [{"merge threshold": t, **{f"client {c}": communities_of(views[c], graph_of(views[c]), "auto", merge_threshold=t).k_est
                                  for c in views}} for t in MERGE_THRESHOLDS]
pd.DataFrame(rows + [{"merge threshold": "true K", **{f"client {c}": k_true[c] for c in views}}])

# %% [markdown]
# ## 4. The graph degree k
#
# A sparser graph (small k) has fewer wrong edges but falls apart into more pieces; a denser one connects more,
# including across classes.

# %%
rows = [{"k": k_, **{f"client {c}": communities_of(views[c], graph_of(views[c], k=k_)).k_est for c in views}}
        for k_ in K_VALUES]
pd.DataFrame(rows + [{"k": "true K", **{f"client {c}": k_true[c] for c in views}}])

# %% [markdown]
# ## 5. Against k-means given the true K
#
# k-means needs K. Handing it the true local class count (which no real client knows) gives a reference
# point: how well can these features be clustered *if K were known*?

# %%
rows = []
for c, vc in views.items():
    km = KMeans(n_clusters=k_true[c], n_init=10, random_state=0).fit_predict(vc["features"])
    rows.append({"client": c, "true K": k_true[c], "InfoMap K_hat": comms[c].k_est,
                 **{f"InfoMap {k}": s for k, s in scores(comms[c].labels, vc).items()},
                 **{f"k-means(true K) {k}": s for k, s in scores(km, vc).items()}})
pd.DataFrame(rows)

# %% [markdown]
# ## 6. FedLPA's rule: count old classes from the labels, new ones from the communities
#
# Counting communities mixes two problems: InfoMap splits a large old class and merges two similar ones at the
# same markov time. A client already *knows* which old classes it holds — it has their labels. So FedLPA's
# discovery (`lab.gcd.discovery.discover`) builds the graph on the frozen backbone features (refined by the
# labels), lets a community claim an old class only when enough of it is labelled, counts the old classes from
# the labels alone, and counts as new only the unclaimed communities (merged when the model's mean prediction
# puts them on the same new head). Its parameters were chosen on tuning seeds 100–101
# (`bench/results/discovery_study.md`); this partition never entered.

# %%
from lab.gcd.discovery import discover

params = FedGCDConfig().discovery_params()
rows = []
for c, vc in views.items():
    d = discover(vc["features"], vc["probs"], vc["labelled"], vc["y_visible"], vc["old_classes"],
                 vc["probs"].shape[1], prefix_features=vc["prefix_features"], params=params, seed=cfg.seed)
    rows.append({"client": c, "true K": k_true[c], "K_hat (discover)": d.k_est, "old (from labels)": d.k_old,
                 "new (communities)": d.k_new, f"K_hat (count at markov {MARKOV_TIME})": comms[c].k_est,
                 "seconds": round(d.seconds, 2)})
pd.DataFrame(rows)

# %% [markdown]
# ## What to notice
#
# * At markov time 1 InfoMap **over-segments** these graphs: many more raw modules than classes. Larger markov
#   times, noise removal and the prototype merge of `"auto"` all bring K̂ down — each by a different amount on
#   each client.
# * K̂ jumps with the markov time, and the value that fits one client can misfit another when communities are
#   all you count. `"labelled"` and `"auto"` are two adaptive rules, each with a blind spot; section 6 sidesteps
#   the old classes altogether. How often each rule lands within ±1 of the truth, on tuning and on evaluation
#   seeds, is in `bench/results/discovery_study.md`.
# * Compare ARI and accuracy, not only K̂. An extra community of an **old** class costs little: its labelled
#   samples map it to the right head in the next step (notebook 04). A community that **merges** two classes
#   cannot be undone, and extra communities of a **new** class each take a head of their own.
# * k-means handed the true K is a useful reference, and often a strong one — but no client knows its K, which
#   is the whole point of discovering it.
#
# ## Exercise
#
# 1. Find, for each client, the fixed markov time whose K̂ is closest to the true K. Is there one value that is
#    within ±1 on every client?
# 2. Run the same analysis on the FedLPA snapshot (`SNAPSHOT = "fedlpa_alpha0.1_seed0"`). Are its features
#    easier to segment?
# 3. In section 6 set `params = params.replace(merge_new_by_head=False)`. Which clients' K̂ changes, and why?
