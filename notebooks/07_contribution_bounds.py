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
# # 07 · Contribution bounds: data discarded vs noise added
#
# User-level DP needs a cap on how much any one user contributes: the **contribution bound** k, the most
# examples a user may bring (notebook 06). The choice of k is a trade-off:
#
# * a **small k** throws data away — every user beyond k examples is cut back, and the heaviest users lose most;
# * a **large k** keeps the data but makes each user weigh more: ELS must add more noise for the same
#   user-level ε, and ULS averages each user's gradient over more examples while seeing fewer users per step.
#
# **What you will learn**
#
# 1. How much data each k discards on the Shakespeare users, and whose data it is.
# 2. How the noise needed for a fixed user-level ε grows with k for ELS, and what happens for ULS.
# 3. How to read the contribution-bound sweep (held-out loss vs k for ELS and ULS), and why its best k sits in
#    the interior — or why it does not.
#
# About two minutes live; the full-size sweep is read from `bench/results/dp_bound_sweep.json`.

# %% tags=["parameters"]
EPSILON = 4.0                           # user-level target
DELTA = 1e-5
STEPS = 100                             # T of the tier-2 runs (the default DPRunConfig.steps at the time of writing)
BOUNDS = [1, 2, 4, 8, 16, 32, 64]       # the sweep's bounds
ELS_CAL_BOUNDS = [1, 4, 16]             # live ELS calibrations (each takes seconds to tens of seconds; add 64 for the full picture)
# Live sweep points (tiny: they only show the call). Full size: LIVE_BOUNDS = BOUNDS, LIVE_ALGOS = ("els", "uls"),
# LIVE_STEPS = STEPS, LIVE_EVAL_WINDOWS = None, several seeds -- about 1 minute per point on an idle core.
LIVE_BOUNDS = [2, 32]
LIVE_ALGOS = ("uls",)
LIVE_STEPS = 30
LIVE_EVAL_WINDOWS = 300
RESULTS_DIR = "bench/results"            # stored sweeps (relative to the repository root)

# %%
import numpy as np
import pandas as pd
import plotly.express as px
import torch
from IPython.display import display
from tqdm.auto import tqdm

from lab.privacy import accounting as A
from lab.privacy.config import DPRunConfig
from lab.privacy.runner import DEFAULTS
from lab.privacy.sweep import bound_sweep, stored
from lab.privacy.users import bound_contributions, load_user_data
from lab.viz import privacy as vp

torch.set_num_threads(1)
B = DPRunConfig(task="lm").batch_size  # expected example-gradients per step of every tier-2 run
users = load_user_data()
n_per_user = np.array([len(w) for w in users.train_windows])
print(f"{len(n_per_user)} training users, {n_per_user.sum()} examples; expected example-gradients per step B = {B}")

# %% [markdown]
# ## 1. Data discarded
#
# `bound_contributions` keeps at most k windows per user, chosen with randomness that does not depend on the data
# (seeded only by the bound), so the choice itself leaks nothing.

# %%
rows = []
for k in BOUNDS:
    w, owner = bound_contributions(users.train_windows, k)
    rows.append({"bound k": k, "examples kept M": len(w), "share of data kept": len(w) / n_per_user.sum(),
                 "users cut back": int((n_per_user > k).sum()), "users with all their data": int((n_per_user <= k).sum())})
kept = pd.DataFrame(rows)
display(kept.round(3))
px.line(kept, x="bound k", y="share of data kept", markers=True, log_x=True,
        title="Share of the private examples that survive the bound").show()

# %% [markdown]
# Whose data goes? The ten largest users at the middle bound: the bound flattens every big speaker to the same k.

# %%
k_mid = BOUNDS[len(BOUNDS) // 2]
big = np.argsort(-n_per_user)[:10]
px.bar(pd.DataFrame({"user": [f"{users.train_users[u][1].title()} ({users.train_users[u][0]})" for u in big] * 2,
                     "examples": list(np.minimum(n_per_user[big], k_mid)) + list(np.maximum(n_per_user[big] - k_mid, 0)),
                     "": ["kept"] * 10 + ["discarded"] * 10}),
       x="user", y="examples", color="", title=f"The ten largest users at k = {k_mid}").show()

# %% [markdown]
# ## 2. Noise added
#
# Both algorithms use the same compute: B example-gradients per step in expectation, so the sampling rate is
# q = B / M — over examples for ELS, over users for ULS (then q·M = B examples in expectation). As k grows, M grows
# and q falls. For a fixed user-level (ε, δ) and T steps, calibrate σ:
#
# * **ULS**: the subsampled Gaussian at rate q — k enters only through q, and a lower rate amplifies privacy more,
#   so σ *falls* as k grows;
# * **ELS**: the mixture of Gaussians for users with up to k examples — σ *grows* with k.
#
# (Coarse discretisation here for speed: the σ found still meets the target.)

# %%
rows = []
for k in tqdm(BOUNDS, desc="calibrating σ", unit="bound"):
    M = int(kept.loc[kept["bound k"] == k, "examples kept M"].iloc[0])
    q = min(1.0, B / M)
    row = {"bound k": k, "M": M, "q": q, "σ ULS": A.calibrate_noise(EPSILON, DELTA, q, STEPS, algo="uls", discretization=1e-2),
           "σ ELS": (A.calibrate_noise(EPSILON, DELTA, q, STEPS, algo="els", bound=k, discretization=1e-2)
                     if k in ELS_CAL_BOUNDS else np.nan)}
    rows.append(row)
noise = pd.DataFrame(rows)
noise.round(4)

# %% [markdown]
# σ is in units of the clip norm C, and each algorithm divides the noisy sum by a different count. What actually
# lands on the model is the noise standard deviation in the *averaged* gradient, per coordinate:
#
# * ELS: σ·C_ELS / B  (B = q·M expected examples);
# * ULS: σ·C_ULS / (q·N)  (q·N expected users, N users) — and q·N = B·N/M shrinks as k grows, because each user
#   now carries more examples into one clipped gradient.
#
# With the tuned clip norms (`lab.privacy.runner.DEFAULTS`):

# %%
N = len(n_per_user)
noise["noise in update, ELS"] = noise["σ ELS"] * DEFAULTS["els"]["clip"] / B
noise["noise in update, ULS"] = noise["σ ULS"] * DEFAULTS["uls"]["clip"] / (noise["q"] * N)
noise["users per step (ULS)"] = noise["q"] * N
print(f"clip norms: ELS C = {DEFAULTS['els']['clip']}, ULS C = {DEFAULTS['uls']['clip']}")
display(noise.round(4))
px.line(noise.melt("bound k", value_vars=["noise in update, ELS", "noise in update, ULS"], var_name="",
                   value_name="noise std").dropna(),
        x="bound k", y="noise std", color="", markers=True, log_x=True, log_y=True,
        title=f"Noise per coordinate of the averaged update at user-level ε = {EPSILON}").show()

# %% [markdown]
# The stored accounting sweep tells the same story at one fixed σ: the user-level ε of ELS grows with k while the
# ULS ε does not depend on it (`bench/results/dp_accounting.json`).

# %%
acc = stored("dp_accounting.json", RESULTS_DIR)
if acc:
    vp.accounting_figure(acc).show()

# %% [markdown]
# ## 3. The sweep: held-out loss vs k
#
# A live miniature of the sweep — the very function that writes the stored one (`lab.privacy.sweep.bound_sweep`),
# here with a few steps, so it only shows the call:

# %%
with tqdm(total=len(LIVE_BOUNDS) * len(LIVE_ALGOS), desc="sweep points", unit="run") as bar:
    live = bound_sweep(bounds=LIVE_BOUNDS, algos=LIVE_ALGOS, seeds=(0,), epsilon=EPSILON, delta=DELTA, steps=LIVE_STEPS,
                       eval_windows=LIVE_EVAL_WINDOWS, on_row=lambda rows: bar.update(1))
display(pd.DataFrame(live["summary"]).round(4))
vp.bound_sweep_figure(live, algos=LIVE_ALGOS).show()

# %% [markdown]
# The full-size sweep (`bench/results/dp_bound_sweep.json`): both algorithms, the default number of steps, tuned
# clip norms, at one user-level ε.

# %%
b = stored("dp_bound_sweep.json", RESULTS_DIR)
if b and "summary" not in b:            # the sweep writes its runs as it goes ("partial": true)
    print(f"dp_bound_sweep.json is a partial sweep ({len(b.get('rows', []))} runs so far): rerun when it finishes.")
elif b:
    vp.bound_sweep_figure(b).show()
    tab = pd.DataFrame(b["summary"]).pivot_table(index="bound", columns="algo", values="mean")
    display(tab.round(4))
    print("best k per algorithm:", {a: int(tab[a].idxmin()) for a in tab.columns})
else:
    print("bench/results/dp_bound_sweep.json not found yet: `python -m lab dp-sweep --kind bound ...` writes it "
          "(see bench/run_dp_tables.py).")

# %% [markdown]
# ## What to notice
#
# * The data side is lopsided: a small k keeps almost every *user* whole but discards most *examples*, because a
#   few characters speak most of the lines.
# * The noise side differs by algorithm. ELS pays for k in its accountant (σ grows with k) but its update is
#   averaged over the same B examples whatever k. ULS's σ even falls with k, but each step then averages over
#   fewer users, so its update gets noisier too — faster than ELS's in the table above.
# * So the best k is where "more data" stops paying for "more noise" — an interior k when both effects are real,
#   the largest k when the data gain dominates, the smallest when the noise does. Read the stored sweep and decide
#   which case holds here, within the seeds' error bars.
#
# ## Exercise
#
# 1. Lower `EPSILON` to 1. How do the two noise curves move, and where would you now expect the best k?
# 2. The ULS update noise depends on the number of users per step. What happens to it with twice as many users
#    (imagine N doubled, same M)? What does that say about ULS on large populations?
# 3. Run the live sweep with `LIVE_ALGOS = ("els", "uls")`, `LIVE_BOUNDS = [1, 4, 16, 64]` and `LIVE_STEPS = 100`
#    (several minutes). Does it reproduce the stored sweep's shape?
