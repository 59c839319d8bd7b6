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
# # 04 · Local Prior Alignment: pulling predictions towards the client's own class histogram
#
# SimGCD keeps its clusters from collapsing with a **mean-entropy** term: the batch-mean prediction p̄ is
# pulled towards the *uniform* distribution over heads. That is right when every class is equally common —
# and wrong on a non-IID client that holds three classes out of ten. FedLPA's **Local Prior Alignment (LPA)**
# estimates the client's own prior π from its InfoMap communities (notebook 03) and adds a pull of p̄
# towards π.
#
# **What you will learn**
#
# 1. How the prior π is made: communities → heads → a smoothed histogram (`lab.gcd.prior`).
# 2. Three distributions side by side on one skewed client: the **true local histogram**, the **InfoMap prior
#    π** and the model's **mean prediction p̄** — for a FedAvg+SimGCD and a FedLPA global model.
# 3. Why SimGCD's term *is* a prior term: KL(p̄ ‖ uniform) equals its mean-entropy regulariser exactly.
# 4. What each term pulls on: the **uniform pull** vs the **LPA pull**, drawn as the gradient on p̄'s logits.
#
# Uses the two committed snapshots (FedAvg+SimGCD and FedLPA, α = 0.1, seed 0); runs in under a minute.

# %% tags=["parameters"]
SIMGCD_SNAPSHOT = "simgcd_alpha0.1_seed0"   # data/snapshots/<name>.safetensors
FEDLPA_SNAPSHOT = "fedlpa_alpha0.1_seed0"
CLIENT = 1                                  # a skewed client (3 of the 10 classes at α = 0.1, seed 0)
MARKOV_TIME = None                          # None: FedLPA's default (FedGCDConfig().markov_time)
FALLBACK_ROUNDS = 3                         # only if a snapshot is missing: train a short run instead

# %%
# Setup (`lab` is installed by `pip install -r requirements.txt`; ROOT is the repository root).
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lab.gcd.clsd import build_graph
from lab.gcd.communities import find_communities
from lab.gcd.config import FedGCDConfig
from lab.gcd.experiment import run_experiment
from lab.gcd.losses import mean_entropy_term, prior_kl
from lab.gcd.prior import empirical_prior, map_communities_to_heads, oracle_heads, prior_vs_truth_kl, sample_heads
from lab.gcd.snapshots import client_view, load_weights
from lab.utils import repo_root
from lab.viz import gcd as vz

ROOT = Path(repo_root())
torch.set_num_threads(1)


def snapshot(name, method):
    """(weights, config) of a committed snapshot, or of a short run trained now if the file is missing."""
    path = ROOT / "data" / "snapshots" / f"{name}.safetensors"
    if not path.exists():
        import tempfile

        from tqdm.auto import tqdm

        print(f"{path.name} not found: training a {FALLBACK_ROUNDS}-round {method} model instead")
        path = Path(tempfile.mkdtemp()) / f"{method}.safetensors"
        with tqdm(total=FALLBACK_ROUNDS, desc=method, unit="round") as bar:
            run_experiment(FedGCDConfig(method=method, alpha=0.1, rounds=FALLBACK_ROUNDS, warmup_rounds=1,
                                        refresh_every=1, view_bank=2),
                           on_round=lambda r, n, row: bar.update(1), weights_out=str(path))
    return load_weights(str(path))


w_sim, cfg_sim = snapshot(SIMGCD_SNAPSHOT, "simgcd")
w_lpa, cfg_lpa = snapshot(FEDLPA_SNAPSHOT, "fedlpa")
if MARKOV_TIME is None:
    MARKOV_TIME = FedGCDConfig().markov_time
print(f"SimGCD model: {w_sim['head.weight'].shape[0]} heads, {cfg_sim.rounds} rounds; "
      f"FedLPA model: {w_lpa['head.weight'].shape[0]} heads (|old| + k_max_new = {len(cfg_lpa.old_classes)} + "
      f"{cfg_lpa.k_max_new}), {cfg_lpa.rounds} rounds, LPA weight ε = {cfg_lpa.lpa_weight}, form '{cfg_lpa.lpa_form}'")

# %% [markdown]
# FedLPA's model has more heads than classes: the number of new classes is unknown, so it gets an upper bound
# (`k_max_new`) and each client decides which heads its data use.
#
# ## 1. From communities to a prior, step by step (on the FedLPA model)
#
# Exactly the calls a FedLPA client makes in `FedLPAClient.discover()`:
#
# 1. the CLSD graph and its InfoMap communities (notebooks 02–03);
# 2. **community → head**: a community holding labelled samples of seen class c maps to head c; the others go
#    to unused heads by Hungarian matching on their mean predictions; surplus communities to their argmax head;
# 3. every sample takes its community's head (noise samples their own argmax);
# 4. **π** = the smoothed histogram of those heads.

# %%
v = client_view(cfg_lpa, CLIENT, w_lpa)
y, probs = v["y_true"], v["probs"]
names = v["class_names"]
H = probs.shape[1]
graph = build_graph(v["features"], probs, v["labelled"], v["y_visible"], v["old_classes"],
                    k=cfg_lpa.knn_k, quantile=cfg_lpa.confidence_quantile, sim_floor=cfg_lpa.sim_floor)
comm = find_communities(graph, v["features"], markov_time=MARKOV_TIME, y_visible=v["y_visible"],
                        min_size=max(2, math.ceil(cfg_lpa.min_community * len(y))), seed=cfg_lpa.seed + 1)
head_of_comm = map_communities_to_heads(comm.labels, probs, v["y_visible"], H)
heads = sample_heads(comm.labels, probs, head_of_comm)
prior = empirical_prior(heads, H, cfg_lpa.prior_smoothing)
print(f"client {CLIENT}: {len(y)} samples, true classes {v['k_true'][CLIENT]}, K_hat = {comm.k_est}; "
      f"community -> head: {dict(enumerate(head_of_comm.tolist()))}")

# %% [markdown]
# What went into each community, and which head it got. The labelled samples decide the head of a community
# (step 2), so look at the `labelled` column next to the true classes.

# %%
pd.DataFrame([{"community": c, "size": int((comm.labels == c).sum()), "head": int(head_of_comm[c]),
               "true classes": {names[k]: int(n) for k, n in enumerate(np.bincount(y[comm.labels == c], minlength=len(names))) if n},
               "labelled": {names[k]: int(n) for k, n in enumerate(np.bincount(v["y_visible"][(comm.labels == c) & v["labelled"]],
                                                                                minlength=len(names))) if n}}
              for c in range(comm.k_est)])

# %% [markdown]
# To compare π with the truth we need to know which head "is" which class on this client. The oracle reading
# (`oracle_heads`, for us only) treats the true classes as communities and maps them the same way: old class c
# to head c, new classes by Hungarian matching. The true local histogram then lives on the heads too.

# %%
true_heads = oracle_heads(y, probs, v["old_classes"], H)
true_hist = np.bincount(true_heads, minlength=H) / len(y)
head_names = [f"head {h}" for h in range(H)]
for c in np.unique(y):
    h = true_heads[y == c][0]
    head_names[h] = f"{h}: {names[c]}" + ("" if c in v["old_classes"] else " (new)")
p_bar = probs.mean(0)
vz.prior_bars({"true local histogram": true_hist, "InfoMap prior π": prior, "mean prediction p̄": p_bar,
               "uniform (SimGCD's target)": np.full(H, 1 / H)}, labels=head_names,
              title=f"Client {CLIENT}, FedLPA model: distributions over its {H} heads").show()
print(f"KL(true ‖ π), read in class space: {prior_vs_truth_kl(y, heads, prior, len(names)):.3f} nats")

# %% [markdown]
# ## 2. SimGCD's uniform term is a prior term
#
# SimGCD's regulariser, as written in its code, is `−H(p̄) + log K`. That is exactly KL(p̄ ‖ uniform): LPA
# only swaps the target distribution. Checked on this client's p̄:

# %%
pb = torch.tensor(p_bar, dtype=torch.float64)
print(f"mean-entropy term  = {mean_entropy_term(pb).item():.6f}")
print(f"KL(p̄ ‖ uniform)    = {prior_kl(pb).item():.6f}")
print(f"KL(p̄ ‖ π)          = {prior_kl(pb, torch.tensor(prior)).item():.6f}   <- the LPA loss on this p̄")

# %% [markdown]
# ## 3. The two pulls
#
# Write p̄ = softmax(θ) and ask each term which way it pushes θ: the negative gradient −∂L/∂θ. A positive bar
# means the term wants *more* mean prediction on that head.
#
# * **Uniform pull** (SimGCD, weight `memax_weight`): up on every head below 1/H — including heads of classes
#   this client does not have.
# * **LPA pull** (weight ε): up on heads where p̄ is below π, down where it is above.
# * FedLPA's default form `add` keeps the uniform term and adds ε·LPA (replacing it collapsed the model in this
#   lab's measurements — see `shared/FIELD_NOTES.md`), so the total is the sum of the two.

# %%
def pull(weight, target):
    theta = torch.log(torch.tensor(p_bar, dtype=torch.float64)).requires_grad_()
    loss = weight * prior_kl(torch.softmax(theta, 0), None if target is None else torch.tensor(target))
    loss.backward()
    return -theta.grad.numpy()


uniform_pull = pull(cfg_lpa.memax_weight, None)
lpa_pull = pull(cfg_lpa.lpa_weight, prior)
fig = vz.prior_bars({f"uniform pull (×{cfg_lpa.memax_weight:g})": uniform_pull, f"LPA pull (×{cfg_lpa.lpa_weight:g})": lpa_pull,
                     "total (form 'add')": uniform_pull + lpa_pull}, labels=head_names,
                    title=f"Client {CLIENT}: which way each term pushes the mean prediction (−gradient on its logits)")
fig.update_layout(yaxis_title="push on p̄'s logits (−∂L/∂θ)")
fig.show()

# %% [markdown]
# ## 4. Two global models on the same client
#
# The same client through the FedAvg+SimGCD model (10 heads, uniform pull only) and the FedLPA model. To put
# both on one axis, each model's heads are read as classes with the oracle mapping above; whatever mass a model
# puts on heads of classes this client does not hold is "other heads".

# %%
def class_mass(view, dist=None):
    """A distribution over heads (default: the model's mean prediction) read per true class present on the
    client (oracle head reading), plus the mass on all other heads."""
    yy, pp = view["y_true"], view["probs"]
    th = oracle_heads(yy, pp, view["old_classes"], pp.shape[1])
    d = pp.mean(0) if dist is None else np.asarray(dist)
    present = np.unique(yy)
    mass = [d[th[yy == c][0]] for c in present]
    return np.array(mass + [1 - sum(mass)]), [names[c] for c in present] + ["other heads"]


v_sim = client_view(cfg_sim, CLIENT, w_sim)
m_sim, labels = class_mass(v_sim)
m_lpa, _ = class_mass(v)
hist = np.append(np.bincount(y)[np.unique(y)] / len(y), 0.0)
vz.prior_bars({"true local histogram": hist, "p̄ FedAvg+SimGCD": m_sim, "p̄ FedLPA": m_lpa}, labels=labels,
              title=f"Client {CLIENT}: mean prediction per class, two global models").show()

# %% [markdown]
# And on every client (FedLPA model's heads for π): how far from the client's true histogram are the uniform
# target, the InfoMap prior π and each model's p̄? Total variation distance, read per class as above:
# 0 = identical, 1 = disjoint.

# %%
rows = []
tv = lambda a, b: round(0.5 * float(np.abs(a - b).sum()), 3)  # noqa: E731  total variation distance
for c in range(cfg_lpa.clients):
    vs, vl = client_view(cfg_sim, c, w_sim), client_view(cfg_lpa, c, w_lpa)
    yc, pc = vl["y_true"], vl["probs"]
    hc = np.append(np.bincount(yc)[np.unique(yc)] / len(yc), 0.0)
    g = build_graph(vl["features"], pc, vl["labelled"], vl["y_visible"], vl["old_classes"],
                    k=cfg_lpa.knn_k, quantile=cfg_lpa.confidence_quantile, sim_floor=cfg_lpa.sim_floor)
    cm = find_communities(g, vl["features"], markov_time=MARKOV_TIME, y_visible=vl["y_visible"],
                          min_size=max(2, math.ceil(cfg_lpa.min_community * len(yc))), seed=cfg_lpa.seed + 1)
    pi = empirical_prior(sample_heads(cm.labels, pc, map_communities_to_heads(cm.labels, pc, vl["y_visible"], pc.shape[1])),
                         pc.shape[1], cfg_lpa.prior_smoothing)
    rows.append({"client": c, "true K": vl["k_true"][c], "K_hat": cm.k_est,
                 "TV(true, uniform)": tv(hc, class_mass(vl, np.full(pc.shape[1], 1 / pc.shape[1]))[0]),
                 "TV(true, π)": tv(hc, class_mass(vl, pi)[0]),
                 "TV(true, p̄) SimGCD": tv(hc, class_mass(vs)[0]), "TV(true, p̄) FedLPA": tv(hc, class_mass(vl)[0]),
                 "p̄ on other heads, SimGCD": round(class_mass(vs)[0][-1], 3),
                 "p̄ on other heads, FedLPA": round(class_mass(vl)[0][-1], 3)})
pd.DataFrame(rows)

# %% [markdown]
# ## What to notice
#
# * A **global** model's mean prediction on a skewed client spreads mass over heads of classes the client does
#   not hold ("other heads"): the uniform term asks for exactly that on every client, every batch.
# * The InfoMap prior π is built without a single label of a new class, yet it is far closer to the true
#   histogram than the uniform target (compare the `TV(true, uniform)` and `TV(true, π)` columns) — the premise
#   of LPA.
# * π is only as good as the community → head mapping. Look at the community table of section 1: a community
#   takes the head of the majority class of whatever labelled samples it holds — even a handful among hundreds of
#   unlabelled samples of a new class — and π then credits that new class's mass to an old head. Split
#   communities of one new class take several heads: the KL(true ‖ π) readout adds their mass up again, the
#   per-class TV table counts the extra heads as "other heads".
# * With the `add` form the uniform pull stays in the objective: LPA *tilts* the regulariser rather than replacing
#   it. Compare the two `TV(true, p̄)` columns: on which clients is FedLPA's mean prediction closer to the local
#   histogram than SimGCD's, and by how much? Whether the tilt buys accuracy is measured in notebook 05 — do not
#   read a gain into one client or one seed.
#
# ## Exercise
#
# 1. Try every `CLIENT`. On which one is π furthest from the truth, and which earlier step (graph, communities,
#    mapping) went wrong there?
# 2. In section 3 replace the `add` form by `replace` (drop the uniform pull, give LPA weight `memax_weight`).
#    Which heads would no longer be pushed up at all? Why might that collapse clusters during training?
# 3. Change `MARKOV_TIME` to 1.0 (over-segmentation). How does π change, and which heads do the extra
#    communities take?
