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
# # 05 · FedLPA against the baselines: federated runs, round by round
#
# Notebooks 01–04 took FedLPA apart on one client. Here the whole federation trains: five clients, a shared
# model averaged by the server (FedAvg) every round, evaluated on all unlabelled training samples.
#
# **What you will learn**
#
# 1. The five methods and what each assumes:
#    * **FedAvg+SimGCD** — SimGCD locally (self-distillation + the *uniform* mean-entropy term), FedAvg on the server;
#    * **FedAvg+GCD** — contrastive representation learning only; clusters by semi-supervised k-means at
#      evaluation (needs the total number of classes);
#    * **local** — every client trains alone, no federation (scored on its own data);
#    * **centralized** — all data in one place: the ceiling federated methods aim for;
#    * **FedLPA** — SimGCD plus, on each client, CLSD graph → InfoMap → local prior π → LPA term (notebooks 02–04).
# 2. How to read **All / Old / New** per round, and why the lab reports the mean of the last 3 evaluations
#    over several seeds, never the best round.
# 3. Strong skew (α = 0.1) against weak skew (α = 1.0), and the **ablations** of FedLPA.
#
# The notebook has two parts. **Part A** trains a *small live comparison* (two methods, a few rounds: about two
# minutes) so you see the loop run. **Part B** plots the *full-size evidence*: every method at its tuned
# setting, default rounds, 3 seeds, as written to `bench/results/gcd/` by `bench/run_gcd_tables.py`.

# %% tags=["parameters"]
# Part A: the live run. Full size = LIVE_METHODS with all five methods, LIVE_ROUNDS = 20 (the CLI default),
# LIVE_WARMUP = 5, LIVE_VIEW_BANK = 4 -- about 1-2 minutes per method on an idle 2-core machine.
LIVE_METHODS = ["simgcd", "fedlpa"]   # any of: simgcd, gcd, local, central, fedlpa
LIVE_ALPHA = 0.1
LIVE_ROUNDS = 4
LIVE_WARMUP = 2                       # FedLPA: SimGCD-only rounds before the first InfoMap prior
LIVE_VIEW_BANK = 2                    # augmented views cached per image (fewer = faster start, less augmentation)
SEED = 0
# Part B: where the full-size result records live (relative to the repository root, or absolute)
RESULTS_DIR = "bench/results"

# %%
# Setup (`lab` is installed by `pip install -r requirements.txt`; ROOT is the repository root).
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import display
from tqdm.auto import tqdm

from lab.gcd.config import FedGCDConfig
from lab.gcd.experiment import run_experiment
from lab.utils import repo_root
from lab.viz import gcd as vz

ROOT = Path(repo_root())
torch.set_num_threads(1)   # one thread measured fastest on a shared 2-core machine
NAMES = {"fedlpa": "FedLPA", "simgcd": "FedAvg+SimGCD", "gcd": "FedAvg+GCD", "local": "local", "central": "centralized"}

# %% [markdown]
# ## Part A · A small live comparison
#
# `run_experiment` runs one configured method and returns the same record the CLI writes
# (`python -m lab fedgcd --method ... --out run.json`). Its `on_round` callback reports every evaluation; here it
# drives the progress bar. Each method keeps its own tuned learning rate (`lab.gcd.config.DEFAULT_LR`): comparing
# methods at one shared rate would favour whichever method that rate suits.

# %%
live = {}
with tqdm(total=len(LIVE_METHODS) * LIVE_ROUNDS, desc="live runs", unit="round") as bar:
    for m in LIVE_METHODS:
        cfg = FedGCDConfig(method=m, alpha=LIVE_ALPHA, rounds=LIVE_ROUNDS, seed=SEED, warmup_rounds=LIVE_WARMUP,
                           view_bank=LIVE_VIEW_BANK)

        def on_round(rnd, total, row, m=m):
            bar.set_postfix(method=m, round=f"{rnd}/{total}", all=f"{row['acc_all']:.3f}")
            bar.update(1)

        live[NAMES[m]] = run_experiment(cfg, on_round=on_round)
pd.DataFrame([{"method": k, "All": r["acc_all"], "Old": r["acc_old"], "New": r["acc_new"], "test All": r["test_acc_all"],
               "K_hat per client": r["k_est"], "true K per client": r["k_true"], "seconds": r["seconds"]}
              for k, r in live.items()]).round(3)

# %%
vz.training_curves({k: r["history"] for k, r in live.items()},
                   title=f"Live runs, α = {LIVE_ALPHA:g}, {LIVE_ROUNDS} rounds (seed {SEED})").show()

# %% [markdown]
# A few rounds from a pretrained backbone are enough to see the loop run, not to rank methods: the gap between
# two methods after four rounds is within the round-to-round noise of a single seed (±3–5 points here).
#
# ## Part B · The full-size evidence
#
# `bench/run_gcd_tables.py` tunes each method's learning rate (and FedLPA's ε and form) once at α = 0.1, seed 0,
# then runs every method at its tuned setting with the default number of rounds: 3 seeds at α = 0.1 and 1.0,
# one seed at α = 0.5, plus FedLPA's ablations. Each run is one JSON record with its per-round `history`.

# %%
res_dir = Path(RESULTS_DIR) if Path(RESULTS_DIR).is_absolute() else ROOT / RESULTS_DIR
files = sorted((res_dir / "gcd").glob("*.json"))
runs = []
for f in files:
    try:
        r = json.loads(f.read_text())
    except ValueError:
        continue
    if isinstance(r, dict) and "history" in r and "method" in r:
        runs.append(r)
tuning = res_dir / "gcd_tuning.json"
best = json.loads(tuning.read_text())["best"] if tuning.exists() else {}
print(f"{len(runs)} run records under {res_dir / 'gcd'}; tuned settings: {best or 'not found (all runs shown)'}")
if not runs:
    print("No full-size results yet: run `python bench/run_gcd_tables.py --stage all` (about 5 minutes on 16 cores,"
          " much longer on 2), then rerun this part.")

# %% [markdown]
# Each record is labelled by its method and, for FedLPA, its ablation. Runs of the tuning grid (other learning
# rates) are left out, so every method appears at its own tuned setting only.

# %%
def run_label(r):
    cfg, m = r.get("config", {}), r["method"]
    tuned = best.get(m, {})
    if any(cfg.get(k) != v for k, v in tuned.items() if k != "lpa_form"):
        return None                                        # a tuning-grid run at another setting
    tags = []
    if not best:
        tags.append(f"lr {cfg.get('lr')}")
    if m == "fedlpa":
        if cfg.get("use_lpa") is False:
            tags.append("--no-lpa")
        if cfg.get("use_confidence") is False:
            tags.append("--no-confidence")
        if cfg.get("oracle_prior"):
            tags.append("--oracle-prior")
        if "lpa_form" in tuned and cfg.get("lpa_form") != tuned["lpa_form"]:
            tags.append(f"form {cfg.get('lpa_form')}")
    return " ".join([NAMES.get(m, m)] + tags)


table = pd.DataFrame([{"run": run_label(r), "method": r["method"], "alpha": r["alpha"], "seed": r["seed"],
                       "All": r["acc_all"], "Old": r["acc_old"], "New": r["acc_new"], "test All": r["test_acc_all"],
                       "rounds": r["rounds"], "seconds": r["seconds"], "record": r} for r in runs])
if len(table):
    table = table[table["run"].notna()]
    def std(x):                          # spread over seeds, as in bench/results/gcd_summary.md (ddof = 0)
        return x.std(ddof=0)

    summary = (table.groupby(["alpha", "run"])[["All", "Old", "New", "test All", "seconds"]]
               .agg(["mean", std, "count"]))
    n_seeds = summary[("All", "count")]
    show = pd.DataFrame({c: summary[(c, "mean")].map("{:.3f}".format)
                         + np.where(n_seeds > 1, " ± " + summary[(c, "std")].fillna(0).map("{:.3f}".format), "")
                         for c in ("All", "Old", "New", "test All")})
    show["seeds"] = summary[("All", "count")]
    show["s/run"] = summary[("seconds", "mean")].round(0)
    display(show)

# %% [markdown]
# ### All / Old / New at strong and weak skew
#
# Mean of the last 3 evaluations per run; error bars are the standard deviation over seeds (none with one seed).

# %%
main_runs = [NAMES[m] for m in ("fedlpa", "simgcd", "gcd", "local", "central")]
for alpha in sorted(table["alpha"].unique()) if len(table) else []:
    sub = table[(table["alpha"] == alpha) & table["run"].isin(main_runs)]
    rows = [{"name": run, **{f"acc_{k.lower()}": g[k].mean() for k in ("All", "Old", "New")},
             **{f"acc_{k.lower()}_std": g[k].std(ddof=0) for k in ("All", "Old", "New")}}
            for run, g in sub.groupby("run", sort=False)]
    rows.sort(key=lambda d: main_runs.index(d["name"]))
    vz.results_bars(rows, title=f"α = {alpha:g}: All / Old / New (mean of the last 3 evaluations; ± std over seeds)").show()

# %% [markdown]
# ### Accuracy per round
#
# The per-round curves, averaged over seeds, at the strongest and the weakest skew. Watch for curves that peak
# early and sink — a reason never to report the best round.

# %%
def mean_history(records):
    df = pd.DataFrame([h for r in records for h in r["history"]])
    return df.groupby("round", as_index=False).mean().to_dict("records")


alphas = sorted(table["alpha"].unique()) if len(table) else []
for alpha in ([alphas[0], alphas[-1]] if len(alphas) > 1 else alphas):
    sub = table[(table["alpha"] == alpha) & table["run"].isin(main_runs)]
    hist = {run: mean_history(list(g["record"])) for run, g in sub.groupby("run", sort=False)}
    hist = dict(sorted(hist.items(), key=lambda kv: main_runs.index(kv[0])))
    vz.training_curves(hist, title=f"α = {alpha:g}: accuracy per round (mean over seeds)").show()

# %% [markdown]
# ### Ablations of FedLPA (α = 0.1)
#
# * `--no-lpa`: the same clients and discovery, but the uniform target only — is the LPA term doing anything?
# * `--no-confidence`: the plain kNN graph, no must-links or cuts (notebook 02).
# * `--oracle-prior`: π = the true local histogram — what a perfect discovery step would give.
# * `form …`: the other way of using π (`replace` swaps out the uniform term; `add` keeps it).

# %%
abl = table[(table["alpha"] == 0.1) & (table["method"] == "fedlpa")] if len(table) else table
if len(abl):
    rows = [{"name": run, **{f"acc_{k.lower()}": g[k].mean() for k in ("All", "Old", "New")},
             **{f"acc_{k.lower()}_std": g[k].std(ddof=0) for k in ("All", "Old", "New")}}
            for run, g in abl.groupby("run")]
    sim = table[(table["alpha"] == 0.1) & (table["run"] == NAMES["simgcd"])]
    if len(sim):
        rows.append({"name": NAMES["simgcd"], **{f"acc_{k.lower()}": sim[k].mean() for k in ("All", "Old", "New")}})
    vz.results_bars(sorted(rows, key=lambda d: d["name"]), title="α = 0.1: FedLPA and its ablations").show()
    hist = {run: mean_history(list(g["record"])) for run, g in abl.groupby("run")}
    vz.training_curves(hist, metrics=("acc_all",), title="α = 0.1: FedLPA ablations, All per round").show()

# %% [markdown]
# ### Did the clients find their number of categories?
#
# Each FedLPA record keeps every client's last K̂ next to its true class count (classes with ≥ 2 % of its samples).

# %%
lpa = table[table["run"] == NAMES["fedlpa"]] if len(table) else table
if len(lpa):
    r0 = lpa.sort_values(["alpha", "seed"]).iloc[0]["record"]
    vz.k_estimates(r0["k_true"], r0["k_est"], title=f"FedLPA, α = {r0['alpha']:g}, seed {r0['seed']}: K_hat vs true K").show()
    ok = pd.DataFrame([{"alpha": r["alpha"], "within ±1": abs(e - t) <= 1} for r in lpa["record"]
                       for e, t in zip(r["k_est"], r["k_true"])])
    display(ok.groupby("alpha")["within ±1"].agg(["mean", "sum", "count"]).rename(
        columns={"mean": "share of clients", "sum": "clients", "count": "of"}))

# %% [markdown]
# ## What to notice
#
# * Read **Old** and **New** separately: methods trade them off. Supervision on the old classes is easy; the
#   new classes — never labelled anywhere — are where category discovery is won or lost.
# * Compare each federated method with **local** (no collaboration) and **centralized** (no skew): the gap to
#   centralized is the price of non-IID data, and a federated method below local is not worth federating.
# * The skew hurts: compare α = 0.1 with α = 1.0 for the same method.
# * Judge FedLPA's gain against FedAvg+SimGCD with the **error bars**: a difference smaller than the spread over
#   seeds is not a result. The `--no-lpa` ablation isolates the LPA term; `--oracle-prior` shows how much a
#   better prior could still give.
#
# ## Exercise
#
# 1. Add `"gcd"`, `"local"` and `"central"` to `LIVE_METHODS` and raise `LIVE_ROUNDS` to 10. Does the live
#    ranking match the full-size one?
# 2. Set `LIVE_ALPHA = 1.0` for the live run. Which method gains most from weaker skew?
# 3. From the records in Part B, compute each method's *best* round instead of the mean of the last 3. Which
#    ranking changes, and why is the best round a biased estimate?
