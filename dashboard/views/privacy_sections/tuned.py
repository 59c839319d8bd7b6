"""Privacy page section: ELS vs ULS, each at its own tuned contribution bound, clip and step size, against the
old fixed-k = 16 comparison, and the paper's two bound rules against the grid's best k.

Reads ``dp_tuned_curve.json`` and ``dp_tuning.json`` (``bench/run_dp_tuning.py``; protocol in
``bench/README.md``) from ``result_files.RESULTS_DIR``; figures are ``lab.viz.privacy``'s. A file still being
written (``"partial": true``) is drawn from the runs it has, with a caption saying so.
"""
from __future__ import annotations


import pandas as pd
import streamlit as st

from lab.privacy.tuned import comparison_rows, rules_rows, settings_rows
from lab.viz import privacy as V

import result_files as R
from page import download_csv, show

FILES = {"curve": "dp_tuned_curve.json", "tuning": "dp_tuning.json"}


def what(curve: dict) -> str:
    """The one-paragraph caveat, with the run settings read from the curve file."""
    return ("**What this shows and what it does not.** Each algorithm gets the same tuning budget on a seed the "
            f"curve never uses, and the curve compares them on {len(curve.get('seeds') or [])} other seeds with "
            "paired per-seed differences; it shows which sampling wins *here* — one small char LM, Shakespeare's "
            f"users, {curve.get('steps')} steps of {curve.get('batch')} example-gradients — not for large models, "
            "other user-size distributions or longer training, and the ε covers the training run only, not the "
            "tuning that chose k, lr and clip.")


def load() -> dict:
    return R.named_files(FILES)


def _figure(fn, data, name):
    try:
        show(fn(data), name)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as e:
        st.info(f"{name.replace('_', ' ')} could not be drawn from its file yet ({type(e).__name__}: {e}); it may "
                "still be being written.")


def render() -> None:
    st.subheader("The fair comparison: each algorithm at its own tuned bound")
    st.markdown("The curves above put both algorithms at one contribution bound, k = 16. That bound suits ULS far "
                "better than ELS, so the gap they show is partly the bound's doing. Here each algorithm has its "
                "own k, learning rate and clip, tuned with the same budget (`bench/README.md`); the dashed lines "
                "keep the k = 16 comparison as the contrast: what happens if you do not calibrate k.")
    res = load()
    curve, tuning = res["curve"], res["tuning"]
    if not curve:
        st.info("The tuned comparison is not computed yet (`bench/results/dp_tuned_curve.json`; "
                "`python bench/run_dp_tuning.py --stage all` writes it).")
        return
    if curve.get("subset"):
        st.caption(f"{'Partial results' if curve.get('partial') else 'Every curve run is in'} "
                   f"({len(curve.get('rows', []))} evaluation runs). What ran: "
                   f"{curve['subset']['ran']}. What was cut: {curve['subset']['cut']}. Did not finish: "
                   f"{', '.join(curve.get('missing') or []) or 'nothing'}.")
    elif curve.get("partial"):
        st.caption(f"Partial results: the runs are still going ({len(curve.get('rows', []))} evaluation runs so far).")
    _figure(V.tuned_curve_figure, curve, "tuned_curve")
    df = pd.DataFrame(comparison_rows(curve))
    if len(df):
        st.dataframe(df, hide_index=True)
        download_csv(df, "dp_tuned_curve.csv", "Download the tuned comparison (CSV)", key="dp_tuned_csv")
    _figure(V.paired_gap_figure, curve, "paired_gap")
    st.markdown(what(curve))
    if tuning and tuning.get("tuned"):
        st.markdown("**Choosing k.** The paper's rules — ELS: the median number of examples per user; ULS: the k "
                    "with the smallest predicted noise-to-signal ratio — against the best k of the tuning grid.")
        _figure(V.bound_rules_figure, tuning, "bound_rules")
        rt = pd.DataFrame(rules_rows(curve))
        if len(rt):
            st.dataframe(rt, hide_index=True)
        with st.expander("Tuned settings, and where each optimum sits in its grid"):
            st.dataframe(pd.DataFrame(settings_rows(tuning)), hide_index=True)
        _figure(V.uls_nsr_figure, tuning, "uls_nsr")
