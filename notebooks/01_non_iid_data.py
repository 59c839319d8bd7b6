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
# # 01 · Non-IID data: the category-discovery split and Dirichlet partitions
#
# **What you will learn**
#
# 1. What *generalized category discovery* (GCD) asks: some classes are **old** (a fraction of their samples
#    carry labels), the others are **new** (never labelled); the model must sort *all* unlabelled samples,
#    old and new, into categories.
# 2. How the lab cuts Fashion-MNIST into that setting: old classes 0–4, new classes 5–9, half of each old
#    class labelled.
# 3. How a **Dirichlet(α) label-skew partition** deals the samples to clients: α = 100 is close to IID,
#    α = 0.1 or 0.05 leaves each client with a handful of classes.
# 4. Why this matters for the rest of the walk-through: under skew each client holds its *own* number of
#    categories and its *own* class histogram — the two things FedLPA estimates locally (notebooks 02–04).
#
# Everything here runs in a few seconds: the data are the committed Fashion-MNIST subset
# (600 training + 100 test images per class).

# %% tags=["parameters"]
# Parameters (papermill-style: a runner may override these). This notebook is instant at any setting.
DATASET = "fashion_mnist"          # or "digits" (scikit-learn's 8x8 digits)
CLIENTS = 5                        # the lab's default federation
ALPHAS = [100.0, 1.0, 0.1, 0.05]   # Dirichlet concentration, from near-IID to extreme skew
OLD_CLASSES = (0, 1, 2, 3, 4)      # classes with labelled samples; the rest are "new"
LABELLED_FRACTION = 0.5            # share of each old class whose label is visible
MIN_CLIENT_SIZE = 50               # redraw the Dirichlet shares until every client has this many samples
SEED = 0

# %%
# Setup (`lab` is installed by `pip install -r requirements.txt`).
import numpy as np
import pandas as pd

from lab.data.images import load_dataset
from lab.data.partition import make_partition
from lab.data.split import gcd_split
from lab.viz import gcd as vz

# %% [markdown]
# ## 1. The images
#
# `load_dataset` returns an `ImageData`: uint8 images, int labels and class names. Two samples per class:

# %%
data = load_dataset(DATASET)
print(f"{data.name}: {len(data.y_train)} training and {len(data.y_test)} test images of shape "
      f"{data.image_shape}, {data.n_classes} classes")
picks = np.concatenate([np.flatnonzero(data.y_train == c)[:2] for c in range(data.n_classes)])
tags = ["old" if c in OLD_CLASSES else "new" for c in data.y_train[picks]]
vz.sample_images(data.x_train[picks], titles=[f"{data.class_names[c]} ({t})" for c, t in zip(data.y_train[picks], tags)],
                 cols=10, title="Two training images per class").show()

# %% [markdown]
# ## 2. The GCD split: old and new classes, labelled and unlabelled samples
#
# `gcd_split` marks which training samples carry a visible label: `LABELLED_FRACTION` of every old class,
# chosen with a seed; no new-class sample is ever labelled. The model is judged on **all unlabelled samples**
# — the unlabelled half of the old classes *and* every new-class sample — with one Hungarian matching of
# predicted clusters to true classes ("v2" accuracy, reported as **All / Old / New**).

# %%
split = gcd_split(data.y_train, OLD_CLASSES, LABELLED_FRACTION, seed=SEED)
y = data.y_train
table = pd.DataFrame({
    "class": data.class_names,
    "kind": ["old" if c in split.old_classes else "new" for c in range(data.n_classes)],
    "train samples": np.bincount(y, minlength=data.n_classes),
    "labelled": np.bincount(y[split.labelled], minlength=data.n_classes),
    "unlabelled (evaluated)": np.bincount(y[split.unlabelled], minlength=data.n_classes),
})
table

# %% [markdown]
# ## 3. Dirichlet label skew, α from 100 down to 0.05
#
# For each class `c` the partition draws client shares `p_c ~ Dirichlet(α·1)` and deals that class's samples
# by those shares. Large α gives every client about the same share of every class; small α gives most of a
# class to one or two clients. The labelled and unlabelled samples of a class are cut with the **same**
# shares (`strata=split.labelled`), so every client keeps the global labelled fraction of its old classes.
#
# Read each heatmap row as one client's data set.

# %%
parts = {}
for a in ALPHAS:
    parts[a] = make_partition("dirichlet", y, CLIENTS, alpha=a, min_size=MIN_CLIENT_SIZE,
                              strata=split.labelled, seed=SEED)
    vz.partition_heatmap(parts[a].counts, data.class_names,
                         title=f"Samples per client and class, α = {a:g}").show()

# %% [markdown]
# ## 4. What non-IID does to each client's label histogram
#
# The same partitions as shares of each client's own data. New classes are hatched.
# At α = 100 every bar looks like the global histogram (10 % per class); at small α each client is dominated
# by two or three classes — and which ones differs from client to client.

# %%
for a in (max(ALPHAS), min(ALPHAS)):
    vz.label_histograms(parts[a].counts, data.class_names, old_classes=list(split.old_classes),
                        title=f"Each client's label histogram, α = {a:g}").show()

# %% [markdown]
# A few numbers per α:
#
# * **classes per client** — `Partition.k_true()`: classes holding at least 2 % of that client's samples.
#   This is the "true K" a client would have to discover in notebook 03.
# * **distance to the global histogram** — total variation ½·Σ|p_client − p_global|: 0 for IID, up to 1.
# * **new-class share** — how much of a client's data no client can ever label.

# %%
rows = []
glob_hist = np.bincount(y, minlength=data.n_classes) / len(y)
is_new = ~np.isin(np.arange(data.n_classes), split.old_classes)
for a, p in parts.items():
    hist = p.counts / p.counts.sum(1, keepdims=True)
    rows.append({"alpha": a, "client sizes": p.sizes().tolist(), "classes per client (>=2%)": p.k_true(),
                 "mean TV distance": round(float(0.5 * np.abs(hist - glob_hist).sum(1).mean()), 3),
                 "new-class share per client": np.round(hist[:, is_new].sum(1), 2).tolist()})
pd.DataFrame(rows)

# %% [markdown]
# The labelled fraction survives the partition: for every client and old class, labelled / all samples stays
# close to `LABELLED_FRACTION` (up to rounding on tiny counts), whatever α.

# %%
p = parts[min(ALPHAS)]
old = list(split.old_classes)
frac = np.stack([np.bincount(y[idx][split.labelled[idx]], minlength=data.n_classes)[old]
                 / np.maximum(1, np.bincount(y[idx], minlength=data.n_classes)[old])
                 for idx in p.client_indices])
pd.DataFrame(np.round(frac, 2), columns=[data.class_names[c] for c in old],
             index=[f"client {k}" for k in range(p.n_clients)]).where(p.counts[:, old] > 0)

# %% [markdown]
# Every federated run in the lab builds exactly this split and partition from its config
# (`lab.gcd.experiment.prepare`), so the clients you see here are the clients of notebooks 02–05.

# %%
from lab.gcd.config import FedGCDConfig
from lab.gcd.experiment import prepare

a0 = ALPHAS[-2] if len(ALPHAS) > 1 else ALPHAS[0]
_, split_run, part_run = prepare(FedGCDConfig(dataset=DATASET, clients=CLIENTS, alpha=a0, seed=SEED,
                                              old_classes=OLD_CLASSES, labelled_fraction=LABELLED_FRACTION,
                                              min_client_size=MIN_CLIENT_SIZE))
same = (np.array_equal(part_run.counts, parts[a0].counts) and np.array_equal(split_run.labelled, split.labelled))
print(f"prepare(FedGCDConfig(alpha={a0:g})) gives the same split and partition: {same}")

# %% [markdown]
# ## 5. What skew does to federated category discovery
#
# The committed runs of `bench/run_gcd_tables.py` train every method at its tuned setting at every α and seed
# the file lists (`bench/results/gcd_alpha_curve.json`, printed below). Left: All / Old / New accuracy against α (log axis;
# small α = strong skew), the band spans the seeds. Right: every client of every run: the average hides who
# loses under skew.

# %%
import os

from lab.gcd.methods import METHODS
from lab.results import ALPHA_CURVE, RESULTS_DIR, alpha_curve, read_json
from lab.viz.alpha import accuracy_vs_alpha, client_spread_vs_alpha

curve_file = os.path.join(RESULTS_DIR, ALPHA_CURVE)
if os.path.exists(curve_file):
    raw = read_json(curve_file)
    curve = alpha_curve(raw)
    print(f"α values {raw['alphas']}, seeds {raw['seeds']}, {len(raw['points'])} runs")
    accuracy_vs_alpha(curve, dashed={m for m, M in METHODS.items() if not M.federated}).show()   # references
    client_spread_vs_alpha(curve).show()
else:
    print(f"{curve_file} is not computed yet: `python bench/run_gcd_tables.py --stage curve` writes it.")

# %% [markdown]
# ## What to notice
#
# * At α = 100 every client is a small copy of the whole data set; at α ≤ 0.1 a client holds 2–6 classes
#   and the set differs per client. A model that assumes "10 categories, 10 % each" on every client is wrong
#   on almost all of them.
# * Some clients are dominated by **new** classes they can never label (look at the new-class share), while
#   others are mostly old classes: the local discovery problem is different on each client.
# * Client sizes become very unequal at small α (e.g. ~100 vs ~2,800 samples): FedAvg weighs clients by size,
#   so small clients' classes pull less on the global model.
#
# ## Exercise
#
# 1. Set `SEED = 1` and rerun: which numbers change a lot at α = 0.1 and which stay put?
# 2. Try `CLIENTS = 10`. How does "classes per client" move at α = 0.1? What does that predict for the
#    number of categories each client must discover?
# 3. Replace the Dirichlet partition by the pathological one, `make_partition("shards", y, CLIENTS,
#    classes_per_client=2)`, and draw its heatmap. How is it different from α = 0.05?
