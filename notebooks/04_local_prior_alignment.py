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
# estimates the client's own prior π from what it discovered (notebook 03) and aligns p̄ to π instead.
#
# **What you will learn**
#
# 1. How a client turns communities into heads — and why one labelled sample must not decide a community's head.
# 2. What each prior rule of `lab.gcd.discovery.PRIORS` makes of the same client, against the true histogram.
# 3. Why SimGCD's term *is* a prior term: KL(p̄ ‖ uniform) equals its mean-entropy regulariser exactly.
# 4. What each LPA form pulls on: `add` aligns p̄ to a flattened π, `replace` to π itself.
#
# Uses the two committed snapshots (FedAvg+SimGCD and FedLPA, α = 0.1, seed 0); runs in about a minute.

# %% tags=["parameters"]
SIMGCD_SNAPSHOT = "simgcd_alpha0.1_seed0"   # data/snapshots/<name>.safetensors
FEDLPA_SNAPSHOT = "fedlpa_alpha0.1_seed0"
CLIENT = 1                                  # one client of the α = 0.1 partition
FALLBACK_ROUNDS = 3                         # only if a snapshot is missing: train a short run instead

# %%
# Setup (`lab` is installed by `pip install -r requirements.txt`; ROOT is the repository root).
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lab.gcd.config import FedGCDConfig
from lab.gcd.discovery import PRIORS, discover
from lab.gcd.experiment import run_experiment
from lab.gcd.losses import PRIOR_FORMS, mean_entropy_term, prior_kl
from lab.gcd.prior import empirical_prior, head_kl, oracle_heads
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
params = cfg_lpa.discovery_params()
print(f"FedLPA model: {w_lpa['head.weight'].shape[0]} heads (|old| + k_max_new = {len(cfg_lpa.old_classes)} + "
      f"{cfg_lpa.k_max_new}), LPA form '{cfg_lpa.lpa_form}', weight ε = {cfg_lpa.lpa_weight:g}")
print(f"discovery parameters: {params}")

# %% [markdown]
# FedLPA's model has more heads than classes: the number of new classes is unknown, so it gets an upper bound
# (`k_max_new`) and each client decides which heads its data use.
#
# ## 1. From communities to heads (on the FedLPA model)
#
# Exactly the call a FedLPA client makes: `discover(...)` (`lab.gcd.discovery`). Its steps:
#
# 1. a kNN graph on the frozen backbone features, refined by the visible labels, and its InfoMap communities;
# 2. a community **claims an old head** only when at least `min_labelled_share` of it is labelled — one or two
#    labelled samples inside hundreds of unlabelled ones no longer decide (the review found a pure Shirt
#    community taken to the Trouser head by two labelled Trousers);
# 3. the other communities are new-class candidates: merged when the model's mean prediction puts them on the
#    same new head, then matched to the heads still free on this client (Hungarian on mean predictions);
# 4. K̂ = old classes present (counted from the labels alone) + new-class communities.

# %%
v = client_view(cfg_lpa, CLIENT, w_lpa)
y, probs, names = v["y_true"], v["probs"], v["class_names"]
H = probs.shape[1]
d = discover(v["features"], probs, v["labelled"], v["y_visible"], v["old_classes"], H,
             prefix_features=v["prefix_features"], params=params, seed=cfg_lpa.seed)
comm = d.communities.labels
print(f"client {CLIENT}: {len(y)} samples, true classes {v['k_true'][CLIENT]}, K_hat = {d.k_est} "
      f"({d.k_old} old from labels + {d.k_new} new communities), graph on '{d.features_used}' features, "
      f"{d.seconds:.2f} s")
pd.DataFrame([{"community": c, "size": int((comm == c).sum()),
               "labelled share": round(float((v["labelled"] & (comm == c)).sum() / max(1, (comm == c).sum())), 3),
               "claims": names[d.claims[c]] if d.claims[c] >= 0 else "new", "head": int(d.head_of_comm[c]),
               "true classes": {names[k]: int(n) for k, n in enumerate(np.bincount(y[comm == c], minlength=len(names))) if n}}
              for c in range(len(d.claims))])

# %% [markdown]
# The same client with the old claim rule (`min_labelled_share = 0`: any labelled sample claims its class's
# head). Which communities change head?

# %%
old_rule = discover(v["features"], probs, v["labelled"], v["y_visible"], v["old_classes"], H,
                    prefix_features=v["prefix_features"], params=params.replace(min_labelled_share=0.0),
                    seed=cfg_lpa.seed)
pd.DataFrame([{"community": c, "claims (share rule)": names[d.claims[c]] if d.claims[c] >= 0 else "new",
               "claims (one label)": names[old_rule.claims[c]] if old_rule.claims[c] >= 0 else "new",
               "majority true class": names[np.bincount(y[comm == c]).argmax()]}
              for c in range(min(len(d.claims), len(old_rule.claims)))])

# %% [markdown]
# ## 2. What each prior rule makes of this client
#
# To compare π with the truth we need to know which head "is" which class on this client. The oracle reading
# (`oracle_heads`, for us only: it reads the true labels) treats the true classes as communities and maps them
# the same way: old class c to head c, new classes to free new heads. The true local histogram then lives on
# the heads too, and KL(true ‖ π) is measured in head space.

# %%
true_heads = oracle_heads(y, probs, v["old_classes"], H)
true_hist = empirical_prior(true_heads, H, params.smoothing)
head_names = [f"head {h}" for h in range(H)]
for c in np.unique(y):
    h = true_heads[y == c][0]
    head_names[h] = f"{h}: {names[c]}" + ("" if c in v["old_classes"] else " (new)")
priors = {rule: fn(d, probs, v["y_visible"], v["old_classes"], H, params.smoothing)[0] for rule, fn in PRIORS.items()}
series = {"true local histogram": np.bincount(true_heads, minlength=H) / len(y)}
series.update({f"π: {rule}" + (" (default)" if rule == params.prior else ""): pi for rule, pi in priors.items()})
vz.prior_bars(series, labels=head_names, title=f"Client {CLIENT}: each prior rule over the {H} heads").show()
pd.DataFrame([{"prior rule": rule, "KL(true ‖ π), nats": round(head_kl(true_hist, pi), 3)}
              for rule, pi in priors.items()])

# %% [markdown]
# And over every client of this partition (the discovery study, `bench/results/discovery_study.md`, does the
# same on tuning seeds, where the default rule was chosen, and on evaluation seeds):

# %%
rows = []
for c in range(cfg_lpa.clients):
    vc = client_view(cfg_lpa, c, w_lpa)
    dc = discover(vc["features"], vc["probs"], vc["labelled"], vc["y_visible"], vc["old_classes"], H,
                  prefix_features=vc["prefix_features"], params=params, seed=cfg_lpa.seed)
    truth = empirical_prior(oracle_heads(vc["y_true"], vc["probs"], vc["old_classes"], H), H, params.smoothing)
    rows.append({"client": c, "true K": vc["k_true"][c], "K_hat": dc.k_est,
                 **{f"KL {rule}": round(head_kl(truth, fn(dc, vc["probs"], vc["y_visible"], vc["old_classes"], H,
                                                          params.smoothing)[0]), 3) for rule, fn in PRIORS.items()}})
pd.DataFrame(rows)

# %% [markdown]
# ## 3. SimGCD's uniform term is a prior term
#
# SimGCD's regulariser, as written in its code, is `−H(p̄) + log K`. That is exactly KL(p̄ ‖ uniform): LPA
# only swaps the target distribution. Checked on this client's p̄:

# %%
p_bar = probs.mean(0)
pb = torch.tensor(p_bar, dtype=torch.float64)
pi = priors[params.prior]
print(f"mean-entropy term  = {mean_entropy_term(pb).item():.6f}")
print(f"KL(p̄ ‖ uniform)    = {prior_kl(pb).item():.6f}")
print(f"KL(p̄ ‖ π)          = {prior_kl(pb, torch.tensor(pi)).item():.6f}   <- the LPA loss on this p̄")

# %% [markdown]
# ## 4. The two LPA forms: what each pulls on
#
# Write p̄ = softmax(θ) and ask each term which way it pushes θ: the negative gradient −∂L/∂θ. A positive bar
# means the objective wants *more* mean prediction on that head. `lab.gcd.losses.PRIOR_FORMS` gives each form's
# weights on KL(p̄ ‖ U) and KL(p̄ ‖ π):
#
# * `add` keeps SimGCD's uniform term (weight `memax_weight`) and adds ε·KL(p̄ ‖ π): its optimum is
#   p̄ ∝ U^(w/(w+ε)) π^(ε/(w+ε)) — a flattened π that still pushes mass onto heads the client does not have;
# * `replace` swaps the uniform term for ε·KL(p̄ ‖ π): its optimum is π itself.

# %%
def pull(form):
    w_u, w_pi = PRIOR_FORMS[form](cfg_lpa.memax_weight, cfg_lpa.lpa_weight)
    theta = torch.log(torch.tensor(p_bar, dtype=torch.float64)).requires_grad_()
    p = torch.softmax(theta, 0)
    loss = w_u * prior_kl(p) + w_pi * prior_kl(p, torch.tensor(pi))
    loss.backward()
    return -theta.grad.numpy()


fig = vz.prior_bars({f"form '{f}'": pull(f) for f in ("none", "add", "replace")}, labels=head_names,
                    title=f"Client {CLIENT}: which way each objective pushes the mean prediction "
                          "('none' = SimGCD's uniform term)")
fig.update_layout(yaxis_title="push on p̄'s logits (−∂L/∂θ)")
fig.show()

# %% [markdown]
# ## 5. Two global models on the same client
#
# The same client through the FedAvg+SimGCD model (uniform pull only) and the FedLPA model. Each model's heads
# are read as classes with the oracle mapping above; whatever mass a model puts on heads of classes this client
# does not hold is "other heads".

# %%
def class_mass(view):
    """The model's mean prediction per true class present on the client (oracle head reading) + other heads."""
    yy, pp = view["y_true"], view["probs"]
    th = oracle_heads(yy, pp, view["old_classes"], pp.shape[1])
    dist = pp.mean(0)
    present = np.unique(yy)
    mass = [dist[th[yy == c][0]] for c in present]
    return np.array(mass + [1 - sum(mass)]), [names[c] for c in present] + ["other heads"]


v_sim = client_view(cfg_sim, CLIENT, w_sim)
m_sim, labels = class_mass(v_sim)
m_lpa, _ = class_mass(v)
hist = np.append(np.bincount(y)[np.unique(y)] / len(y), 0.0)
vz.prior_bars({"true local histogram": hist, "p̄ FedAvg+SimGCD": m_sim, "p̄ FedLPA": m_lpa}, labels=labels,
              title=f"Client {CLIENT}: mean prediction per class, two global models").show()

# %% [markdown]
# ## What to notice
#
# * A **global** model's mean prediction on a skewed client spreads mass over heads of classes the client does
#   not hold ("other heads"): the uniform term asks for exactly that on every client, every batch.
# * The claim rule matters where a community mixes a few labelled samples of one class with many unlabelled
#   samples of another: compare the two claim columns of section 1 with the majority true class.
# * The prior rules differ most on the new classes (no labels there): compare their bars on the "(new)" heads
#   and their KL column over all clients. The default rule was chosen on tuning seeds
#   (`bench/results/discovery_study.md`), never on this partition.
# * `replace` aligns p̄ to π exactly — right when π is right, and it merges classes when π misses one. Whether it
#   buys accuracy, with which rule, is measured in notebook 05 over evaluation seeds — do not read a gain into
#   one client.
#
# ## Exercise
#
# 1. Try every `CLIENT`. On which one is the default π furthest from the truth, and which step (graph,
#    communities, claims, merge, prior rule) went wrong there?
# 2. Set `min_labelled_share` to 0.5 in `params.replace(...)`. Which communities lose their claim, and what
#    happens to K̂? Then add `claim_z=3.0` with the share back at 0.1: a community now claims only when its labels
#    are what a pure piece of an old class would hold (the client's labelled fraction, up to binomial noise).
#    Which mixed communities does that refuse that the share alone let through?
# 3. In section 4 raise `cfg_lpa.lpa_weight` for the `add` form. How large must ε be before the push on heads
#    this client does not hold disappears?
