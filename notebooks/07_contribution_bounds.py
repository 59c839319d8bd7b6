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
# 4. What changes when each algorithm gets its *own* best k, learning rate and clip (the fair comparison), how
#    the paper's two rules for choosing k fare against a grid search, and what that comparison can and cannot show.
#
# About two minutes live; the full-size sweep is read from `bench/results/dp_bound_sweep.json`.

# %% tags=["parameters"]
EPSILON = 4.0                           # user-level target
DELTA = 1e-5
STEPS = 100                             # T of the tier-2 runs (the default DPRunConfig.steps at the time of writing)
BOUNDS = [1, 2, 4, 8, 16, 32, 64]       # the sweep's bounds
ELS_CAL_BOUNDS = [1, 16]                # live ELS calibrations (each takes seconds to tens of seconds; add 4 and 64 for the full picture)
# Live sweep points (tiny: they only show the call). Full size: LIVE_BOUNDS = BOUNDS, LIVE_ALGOS = ("els", "uls"),
# LIVE_STEPS = STEPS, LIVE_EVAL_WINDOWS = None, several seeds -- about 1 minute per point on an idle core.
LIVE_BOUNDS = [2, 32]
LIVE_ALGOS = ("uls",)
LIVE_STEPS = 10
LIVE_EVAL_WINDOWS = 200
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
# ## 4. Calibrating k: each algorithm at its own best bound
#
# Sections 2–3 hold the learning rate and clip fixed while k moves, and notebook 06's first comparison put *both*
# algorithms at k = 16. That bound suits ULS far better than ELS, so part of the gap it shows is the bound's doing.
# `bench/run_dp_tuning.py` gives each algorithm its own (k, lr, clip), found with the same number of runs on a
# tuning seed the curve never uses (protocol: `bench/README.md`), and evaluates on three other seeds.
#
# The paper offers two rules for k *without* a grid search:
#
# * **ELS**: k = the median number of examples per user;
# * **ULS**: the k with the smallest *predicted noise-to-signal ratio* of the update,
#   NSR(k) = σ(k) / (q(k)·N·ρ̂(k)): the noise per coordinate over the signal, where ρ̂(k) predicts how well the
#   users' clipped gradients agree from three numbers measured on the pretrained model — the mean gradient's
#   squared norm ‖μ‖², the spread between users τ² and within a user s² (`lab/privacy/bounds.py`).
#
# Both rules computed live (the ULS one at this notebook's `EPSILON`, with the gradient statistics stored by the
# tuning run and a coarse calibration of σ):

# %%
from lab.privacy import bounds as Bd
from lab.privacy.tuned import comparison_rows, rules_rows, settings_rows

print(f"ELS rule: median examples per training user = {np.median(n_per_user):g}  ->  k = {Bd.els_rule_bound(n_per_user)}")
tuning = stored("dp_tuning.json", RESULTS_DIR)
if tuning and tuning.get("rules"):
    gs = tuning["rules"]["uls"]["stats"]
    rule = Bd.uls_rule_bound(n_per_user, EPSILON, delta=DELTA, steps=STEPS, batch=B, stats=gs, bounds=Bd.BOUND_GRID,
                             noise=lambda k, q: A.calibrate_noise(EPSILON, DELTA, q, STEPS, algo="uls",
                                                                  discretization=1e-2))
    print(f"ULS rule at ε = {EPSILON}: k = {rule['bound']}  (gradient statistics {gs})")
    display(pd.DataFrame({"bound k": list(rule["nsr"]), "σ (ULS)": list(rule["sigma"].values()),
                          "predicted NSR": list(rule["nsr"].values())}).round(4))
else:
    print("bench/results/dp_tuning.json not found yet: `python bench/run_dp_tuning.py --stage all` writes it.")

# %% [markdown]
# The stored result: both algorithms at their tuned settings (solid) and, dashed, both at k = 16 with the old
# settings — the contrast that shows what happens if you do not calibrate k. Then the paired per-seed
# differences (below zero: ULS better on that seed), the tuned settings with where each optimum sits in its grid,
# and the rules against the grid's best k.

# %%
curve = stored("dp_tuned_curve.json", RESULTS_DIR)
if curve and curve.get("summary"):
    if curve.get("subset"):
        print(f"{'Partial curve' if curve.get('partial') else 'Complete curve'} ({len(curve['rows'])} evaluation runs).\nWhat ran: {curve['subset']['ran']}.\n"
              f"What was cut: {curve['subset']['cut']}.\nDid not finish: {', '.join(curve.get('missing') or []) or 'nothing'}.")
    elif curve.get("partial"):
        print(f"dp_tuned_curve.json is still being written ({len(curve['rows'])} runs so far).")
    print(f"Each run: {curve['steps']} steps of {curve['batch']} expected example-gradients, δ = {curve['delta']:g}, "
          f"evaluation seeds {curve['seeds']}.")
    vp.tuned_curve_figure(curve).show()
    display(pd.DataFrame(comparison_rows(curve)))
    vp.paired_gap_figure(curve).show()
else:
    print("bench/results/dp_tuned_curve.json not found yet: `python bench/run_dp_tuning.py --stage all` writes it.")
if tuning and tuning.get("tuned"):
    display(pd.DataFrame(settings_rows(tuning)))
    vp.bound_rules_figure(tuning).show()
    vp.uls_nsr_figure(tuning).show()
if curve and curve.get("rules"):
    display(pd.DataFrame(rules_rows(curve)))
if curve and curve.get("tuned_vs_fixed_k16"):  # the bench line: tuned defaults vs k = 16 on seeds no tuning saw
    display(pd.DataFrame([{"algorithm": r["algo"].upper(), "ε": r["epsilon"], "unseen seeds": r["unseen_seeds"],
                           "tuned − k16 per unseen seed": ", ".join(f"{v:+.4f}" for v in r["diff_unseen"]["values"]),
                           "at least as good": r["at_least_as_good_on_unseen"]} for r in curve["tuned_vs_fixed_k16"]]))

# %% [markdown]
# **What this comparison shows and what it does not.** It shows which sampling gives the lower held-out loss when
# each gets the same tuning budget on a seed the table never uses — for this small char LM, these Shakespeare
# users and this compute (the steps and batch printed above); it does not show how the gap behaves for large
# models, other user-size distributions or longer training, and its ε covers the training runs only, not the
# tuning that chose k, lr and clip (which read the same private users).
#
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
# * A comparison at one shared k answers "which algorithm suits *this* k", not "which algorithm is better". Compare
#   the solid and dashed curves of section 4: how much of the k = 16 gap survives when each algorithm has its own k?
#
# ## Exercise
#
# 1. Lower `EPSILON` to 1. How do the two noise curves move, and where would you now expect the best k?
# 2. The ULS update noise depends on the number of users per step. What happens to it with twice as many users
#    (imagine N doubled, same M)? What does that say about ULS on large populations?
# 3. Run the live sweep with `LIVE_ALGOS = ("els", "uls")`, `LIVE_BOUNDS = [1, 4, 16, 64]` and `LIVE_STEPS = 100`
#    (several minutes). Does it reproduce the stored sweep's shape?
# 4. Set `EPSILON` to 1 and to 16 and rerun section 4's first cell. How does the ULS rule's k move with ε, and why
#    (which factor of NSR(k) changes)? Does the tuned k in `dp_tuning.json` move the same way?
