"""Privacy–utility: user-level DP by example-level sampling (ELS) vs user-level sampling (ULS)."""
import math
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from lab.privacy.sweep import BOUNDS
from lab.viz import privacy as V

import result_files as R
from page import download_csv, footer, guard, page_start, show
from views.privacy_sections import audit as audit_section
from views.privacy_sections import real_llm
from views.privacy_sections import tuned as tuned_comparison
from widgets import select_slider, toggle

t0 = page_start("Privacy–utility",
                "slide the contribution bound k: at the same noise and compute, ELS's user-level ε (up to k of "
                "one user's examples can land in one step) climbs far above ULS's, which samples and clips "
                "whole users, and the textbook group-privacy conversion gives up (∞) — then check in the "
                "curves below whether ULS's smaller ε buys a lower loss.")

st.markdown(
    "**What a user-level guarantee means.** Example-level DP promises that adding or removing *one example* "
    "barely changes what training outputs; but a user (here a Shakespeare character) owns many examples, so a "
    "model can still reveal that user's style. User-level DP promises the same for *everything one user "
    "contributed*: an observer of the trained model cannot tell, beyond the factor e^ε (plus a failure "
    "probability δ), whether a given user took part at all. Capping each user at k examples (the contribution "
    "bound) makes that promise finite: ELS samples examples and must pay for up to k of one user's examples "
    "landing in the same step; ULS samples users and clips each user's whole update, so one user moves a step "
    "by at most the clip norm.")


def dp_file(folder, name):
    path = Path(folder) / name
    if not path.exists():
        return None
    try:
        return R.read_json_files(str(path))[0]
    except IndexError:
        return None


FILES = ("privacy_utility", "bound_sweep", "accounting", "tier1")


@st.cache_data(show_spinner=False, ttl=60)
def dp_results(folder: str, mtimes: tuple) -> dict:
    del mtimes  # cache key only: re-read when a file changes
    return {n: dp_file(folder, f"dp_{n}.json") for n in FILES}


def load_results() -> dict:
    folder = Path(R.RESULTS_DIR)
    stamps = tuple(os.path.getmtime(p) if p.exists() else 0.0 for p in (folder / f"dp_{n}.json" for n in FILES))
    return dp_results(str(folder), stamps)


@st.cache_resource(show_spinner="Counting each user's examples…")
def examples_after_bound() -> dict:
    """k -> (M examples kept after bounding each user to k, N users): from the bound sweep when present,
    else counted from the Shakespeare training users (a few seconds, once)."""
    b = load_results().get("bound_sweep")
    out = {}
    if b:
        for r in b.get("rows", []):
            if r.get("n_train_examples") and r.get("n_train_users"):
                out[int(r["bound"])] = (int(r["n_train_examples"]), int(r["n_train_users"]))
    if all(k in out for k in BOUNDS):
        return out
    from lab.privacy.users import load_user_data

    counts = [len(w) for w in load_user_data().train_windows]
    return {k: (int(sum(min(n, k) for n in counts)), len(counts)) for k in BOUNDS}


def with_summary(d: dict | None, keys: tuple):
    """A sweep file still being written has ``rows`` but no ``summary``: summarise the rows so far."""
    if not d or d.get("summary") or not d.get("rows"):
        return d
    import numpy as np

    from lab.privacy.sweep import as_float

    groups = {}
    for r in d["rows"]:
        if r.get("eval_loss") is None:
            continue
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    summary = []
    for key, rs in groups.items():
        losses = [float(r["eval_loss"]) for r in rs]
        row = dict(zip(keys, key))
        if "epsilon" in keys or "epsilon_target" in keys:
            row["epsilon"] = row.pop("epsilon_target", row.get("epsilon"))
        row.update(mean=float(np.mean(losses)), std=float(np.std(losses)), n=len(losses),
                   noise_multiplier=as_float(rs[0].get("noise_multiplier") or 0.0),
                   n_train_examples=rs[0].get("n_train_examples"))
        summary.append(row)
    out = dict(d, summary=[r for r in summary if r.get("algo") != "nonprivate"])
    npv = [r for r in summary if r.get("algo") == "nonprivate"]
    if npv and "nonprivate" not in out:
        out["nonprivate"] = {"mean": npv[0]["mean"], "std": npv[0]["std"]}
    first = d["rows"][0]
    if "pretrained_loss" not in out and first.get("pretrained_loss") is not None:
        out["pretrained_loss"] = first["pretrained_loss"]
    if "epsilon" not in out and "bound" in keys and first.get("epsilon_target") is not None:
        out["epsilon"] = first["epsilon_target"]
    return out


def figure(fn, data, name, what):
    """Draw a lab.viz.privacy figure from a result file; an incomplete file is a note, not a crash."""
    try:
        fig = fn(data)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as e:
        st.info(f"{what} could not be drawn from its file yet ({type(e).__name__}: {e}); it may still be "
                "being written.")
        return False
    show(fig, name)
    return True


res = dict(load_results())
res["privacy_utility"] = with_summary(res.get("privacy_utility"), ("algo", "epsilon_target"))
res["bound_sweep"] = with_summary(res.get("bound_sweep"), ("algo", "bound"))

# --- live accountant ---------------------------------------------------------------------------------
st.subheader("Accountant, live")
c1, c2, c3, c4, c5 = st.columns(5)
k = select_slider("Contribution bound k", list(BOUNDS), 16, key="bound", where=c1)
sigma = select_slider("Noise multiplier σ", [0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0], 1.0, key="sigma",
                      where=c2)
steps = select_slider("Steps T", [100, 300, 1000, 3000], 300, key="steps", where=c3)
n_users = examples_after_bound()[k][1]  # delta is capped at 1/N: above it, releasing one user's data outright is "DP"
delta = select_slider("δ", [d for d in (1e-4, 1e-5, 1e-6, 1e-7) if d <= 1 / n_users], 1e-5, key="delta", where=c4,
                      format_func=lambda d: f"{d:.0e}", help=f"at most 1/N = 1/{n_users:,} training users")
batch = select_slider("Example-gradients per step B", [16, 32, 64, 128, 256], 64, key="batch", where=c5)

with guard():
    from lab.privacy.accounting import epsilon_fast

    M, N = examples_after_bound()[k]
    q = min(1.0, batch / M)
    with st.spinner("Accounting…"):
        eps = {kind: epsilon_fast(kind, sigma, q, steps, delta, k) for kind in ("els", "group", "example", "uls")}
    fmt = lambda e: "∞" if not math.isfinite(e) else f"{e:.3g}"  # noqa: E731
    m = st.columns(5)
    m[0].metric("Sampling rate q = B/M", f"{q:.4f}", help=f"M = {M:,} examples kept from {N:,} training users "
                "at this k; ELS samples each example with prob. q, ULS each user (with its ≤ k examples)")
    m[1].metric("ELS user ε (tight)", fmt(eps["els"]),
                help="mixture-of-Gaussians PLD: a user's ≤ k examples land in a step ~ Binomial(k, q)")
    m[2].metric("ELS user ε (group)", fmt(eps["group"]), help="k × example-level ε, the textbook "
                "conversion; ∞ when it cannot reach this δ")
    m[3].metric("ELS example ε", fmt(eps["example"]), help="protects one example, not a user")
    m[4].metric("ULS user ε", fmt(eps["uls"]), help="Poisson-sampled Gaussian over users (clip per user)")
    st.caption(f"All at σ = {sigma:g}, δ = {delta:.0e}, T = {steps} steps; noise std = σ × clip norm. "
               + audit_section.fast_path_note())
    if toggle("Draw ε against σ for this k (a few seconds per new setting)", not any(res.values()), key="curve"):
        @st.cache_data(show_spinner="Accounting a σ grid…")
        def curve(k, q, steps, delta):
            sig = [0.5, 0.7, 1.0, 1.5, 2.0, 3.0]
            return {"sigma": sig,
                    "ELS user (mixture PLD)": [epsilon_fast("els", s, q, steps, delta, k) for s in sig],
                    "ELS user (group privacy)": [epsilon_fast("group", s, q, steps, delta, k) for s in sig],
                    "ULS user": [epsilon_fast("uls", s, q, steps, delta, k) for s in sig],
                    "ELS example": [epsilon_fast("example", s, q, steps, delta, k) for s in sig]}
        show(V.epsilon_curve_figure(curve(k, q, steps, delta)), "epsilon_vs_sigma")

# --- committed sweeps ----------------------------------------------------------------------------------
st.subheader("Held-out loss against user-level ε")
with guard():
    pu = res.get("privacy_utility")
    if pu:
        if pu.get("partial"):
            st.caption(f"Partial results: the sweep is still running ({len(pu.get('rows', []))} runs so far).")
        figure(V.privacy_utility_figure, pu, "privacy_utility", "The privacy–utility curve")
        df = pd.DataFrame(pu.get("summary", []))
        if len(df):
            st.dataframe(df, hide_index=True)
            download_csv(df, "privacy_utility.csv", "Download privacy–utility table (CSV)")
    else:
        st.info("The privacy–utility sweep is not computed yet (`bench/results/dp_privacy_utility.json`; "
                "`python -m lab dp-sweep` writes it).")

    b = res.get("bound_sweep")
    acc = res.get("accounting")
    t1 = res.get("tier1")
    if b:
        st.subheader("The contribution bound trade-off")
        if b.get("partial"):
            st.caption(f"Partial results: the sweep is still running ({len(b.get('rows', []))} runs so far).")
        figure(V.bound_sweep_figure, b, "bound_sweep", "The bound sweep")
        download_csv(pd.DataFrame(b.get("summary", [])), "bound_sweep.csv", "Download bound sweep (CSV)")
    if acc:
        st.subheader("What the tight accountant buys")
        figure(V.accounting_figure, acc, "accounting", "The accounting comparison")
    if t1:
        st.subheader("The synthetic testbed: when does each sampling win?")
        figure(V.tier1_figure, t1, "tier1", "The tier-1 comparison")
    missing = [f"dp_{n}.json" for n, v in (("bound_sweep", b), ("accounting", acc), ("tier1", t1)) if not v]
    if missing:
        st.info(f"Not computed yet: {', '.join(missing)} (in bench/results/).")

tuned_comparison.render()  # each algorithm at its own tuned k, lr, clip (issue 15)
real_llm.render()  # SmolLM2-135M + LoRA beside the char model (issue 12)
audit_section.render()  # what epsilon covers, the canary audit, the fast accountant's margin (issue 11)
footer(t0)
