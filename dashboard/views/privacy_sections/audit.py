"""Privacy page section: privacy you can check — what ε covers, an empirical one-run audit with canary users
(ε_lower against the claimed ε), and how far the live accountant sits above the exact one.

Reads the committed ``dp_audit.json`` (``bench/run_dp_audit.py``) from ``result_files.RESULTS_DIR``; the figure
is ``lab.viz.privacy.audit_figure``, the statement ``lab.privacy.accounting.privacy_statement``. Nothing is
trained here (``python -m lab dp-audit`` runs one audit; notebook 08 shows a small one live).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from lab.privacy.accounting import privacy_statement
from lab.privacy.audit import audit_summary
from lab.viz import privacy as V

import result_files as R
from page import download_csv, show

FILE = "dp_audit.json"
CAN_AND_CANNOT = ("**What an audit can and cannot prove.** A point above the diagonal would prove, at 95 % "
                  "confidence, that the code leaks more than its accountant claims (a bug in noise, sampling or "
                  "clipping); points below it prove nothing about privacy — they only show that *this* attack, "
                  "with these canaries, could not do better. The non-private runs show the attack has teeth.")


@st.cache_data(show_spinner=False, ttl=60)
def _read(path: str, stamp: float):
    del stamp  # cache key only: re-read when the file changes
    found = R.read_json_files(path)
    return found[0] if found else None


def load() -> dict | None:
    path = Path(R.RESULTS_DIR) / FILE
    return _read(str(path), os.path.getmtime(path) if path.exists() else 0.0)


def fast_path_note() -> str:
    """One sentence for the live accountant's caption: an upper bound by construction, and its margin over the
    exact (reporting) accountant as measured in ``dp_audit.json`` — never a typed number."""
    base = ("Fast accountant: an upper bound on the library's reported ε by construction (the reporting PLD "
            "itself for ULS, the example level and group privacy; a coarser pessimistic grid for ELS's mixture; "
            "the result rounded up). ")
    fp = (load() or {}).get("fast_path")
    if not fp or not fp.get("summary"):
        return base + "Its margin over the exact accountant is not measured yet (`bench/run_dp_audit.py --part fast`)."
    s = fp["summary"]
    pct = lambda r: f"{100 * (r - 1):+.2f} %"  # noqa: E731  (a negative margin would show as one)
    parts = [f"{kind.upper() if kind in ('els', 'uls') else kind} {pct(v['min'])} to {pct(v['max'])}"
             for kind, v in s.items() if kind in ("els", "uls", "example", "group")]
    n = sum(v["n"] for v in s.values())
    default = {p["kind"]: p["ratio"] for p in fp.get("default_view", {}).get("points", []) if p.get("ratio")}
    dv = ", ".join(f"{k.upper()} {pct(default[k])}" for k in ("els", "uls") if k in default)
    return (base + f"Measured above the reported value on {n} page settings: " + "; ".join(parts)
            + (f" (default view: {dv})" if dv else "") + ".")


def _statement() -> None:
    st.markdown("**What ε covers.** Every run record carries this statement (`privacy_statement`):")
    s = privacy_statement("lm", "uls", epsilon=1.0, delta=1e-5, bound=16)
    st.markdown("\n".join([f"- **Unit:** {s['unit']}; **adjacency:** {s['adjacency']}.",
                           f"- **Covered:** {s['covers']}.",
                           "- **Public, not protected:** " + "; ".join(s["public"]) + ".",
                           "- **Not covered:** " + "; ".join(s["not_covered"]) + ".",
                           f"- **Randomness:** {s['randomness']}."]))


def render() -> None:
    st.subheader("Privacy you can check: an audit with canary users")
    _statement()
    st.markdown("An accountant's ε is a proof about the mechanism *as written*. An audit tests the code *as run*: "
                "m canary users join training, each by a secret coin flip; after one run an attacker guesses, for "
                "the canaries it is surest about, which were in, and the number it gets right turns into ε_lower, "
                "a lower bound on the ε this run can have (Steinke, Nasr & Jagielski 2023, with its δ term).")
    data = load()
    if not data or not data.get("runs"):
        st.info("The audit is not computed yet (`bench/results/dp_audit.json`; `python bench/run_dp_audit.py` "
                "writes it, `python -m lab dp-audit` runs one audit).")
        return
    if data.get("partial"):
        missing = data.get("missing")
        st.caption(f"Partial results ({len(data['runs'])} runs): "
                   + (f"not run yet: {'; '.join(missing)}." if missing else "the audits are still running."))
    try:
        show(V.audit_figure(data), "privacy_audit")
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as e:
        st.info(f"The audit figure could not be drawn from its file yet ({type(e).__name__}: {e}).")
    st.markdown(CAN_AND_CANNOT)
    st.dataframe(pd.DataFrame(audit_summary(data["runs"])).rename(columns={
        "epsilon_target": "ε target", "epsilon_claimed": "ε claimed", "epsilon_lower_mean": "ε_lower mean",
        "epsilon_lower_std": "ε_lower std (seeds)", "blackbox_mean": "ε_lower black box (mean)",
        "worst_ratio": "max ε_lower / ε claimed", "all_below_claim": "all below the claim"}), hide_index=True)
    rows = [{"task": r["task"], "algo": r["algo"], "seed": r["seed"], "ε claimed": r["epsilon_claimed"],
             "ε_lower (white box)": r["scores"]["whitebox"]["epsilon_lower"],
             "ε_lower (black box)": r["scores"]["blackbox"]["epsilon_lower"],
             "guesses": r["guesses"], "correct": r["correct"], "canaries": r["canaries"]} for r in data["runs"]]
    df = pd.DataFrame(rows)
    download_csv(df, "privacy_audit.csv", "Download every audited run (CSV)")
