"""Federated training: All / Old / New accuracy per round for each method; committed results and live runs."""
import time

import numpy as np
import pandas as pd
import streamlit as st

from lab.results import (ALPHA_CURVE, BACKBONE_STUDIES, GCD_SUMMARY, K_HAT_STUDIES, backbone_done_when_rows,
                         backbone_rows, done_when_rows, group_runs)
from lab.viz.alpha import accuracy_vs_alpha, client_spread_vs_alpha
from lab.viz.gcd import (k_hat_direction_scatter, k_hat_frontier, paired_seed_differences, results_bars,
                         training_curves)

import loaders as L
import result_files as R
from page import METHOD_LABEL, download_csv, footer, guard, page_start, part_footer, show
from widgets import ALPHAS, multiselect, select, select_slider, slider

METHODS = ["simgcd", "gcd", "fedlpa", "local", "central"]

t0 = page_start("Federated training",
                "watch the New panel (classes no client ever labelled): that is where methods part ways; at "
                "small α FedLPA aligns each client to its own discovered prior instead of a uniform one.")


def tuned() -> dict:
    """method -> the settings tuned on the tuning seeds (``bench/results/gcd_tuning.json``), else the library
    defaults; a run off its method's tuned setting is tagged (it belongs to the tuning grid or an ablation)."""
    best = R.tuned_best()
    if best:
        return best
    from lab.gcd.config import DEFAULT_LR

    return {m: {"lr": v} for m, v in DEFAULT_LR.items()}


TUNED = tuned()
ANATOMY_COLUMNS = {"alpha": "α", "k_hat_minus_k": "K̂ − K", "within_1": "within ±1"}
FORMATS = {"alpha": "{:g}", "acc_all": "{:.3f}", "acc_old": "{:.3f}", "acc_new": "{:.3f}", "test_acc_all": "{:.3f}",
           "seconds": "{:.0f}"}


def mean_history(runs: list) -> list:
    """Per-round mean over seeds (rounds present in every run)."""
    by_round = {}
    for r in runs:
        for h in r["history"]:
            by_round.setdefault(h["round"], []).append(h)
    rows = []
    for rnd in sorted(by_round):
        hs = by_round[rnd]
        if len(hs) == len(runs):
            rows.append({"round": rnd, **{m: float(np.mean([h[m] for h in hs]))
                                         for m in ("acc_all", "acc_old", "acc_new")}})
    return rows


def summarize(groups: dict):
    """(histories per run group, bar rows with mean ± std over seeds, per-run table); ``groups``: label -> runs
    of one config (:func:`lab.results.group_runs`)."""
    hist, bars, rows = {}, [], []
    for name, runs in groups.items():
        seeds = len(runs)
        hist[f"{name} · {seeds} seed{'s' if seeds > 1 else ''}"] = mean_history(runs)
        row = {"name": name, "seeds": seeds}
        for m in ("acc_all", "acc_old", "acc_new"):
            v = [r[m] for r in runs]
            row[m], row[m + "_std"] = float(np.mean(v)), float(np.std(v))
        bars.append(row)
        rows += [{"run": name, "method": r["method"], "alpha": r.get("alpha"), "seed": r.get("seed"),
                  "rounds": r.get("rounds"), "acc_all": r["acc_all"], "acc_old": r["acc_old"], "acc_new": r["acc_new"],
                  "test_acc_all": r.get("test_acc_all"), "k_true": str(r.get("k_true")), "k_est": str(r.get("k_est")),
                  "seconds": r.get("seconds"), "file": r.get("_file", "live run")} for r in runs]
    return hist, bars, pd.DataFrame(rows)


def groups_of(recs: list) -> dict:
    return group_runs(recs, TUNED, dict(METHOD_LABEL))


@st.fragment
def runs_at_one_alpha(recs: list) -> None:
    """The runs at one α, as curves and bars: a fragment, so that moving its slider or choosing runs reruns this
    part only, not the page's other figures."""
    t0 = time.perf_counter()
    alphas = sorted({float(r.get("alpha", np.nan)) for r in recs})
    c1, c2 = st.columns([1, 2])
    if len(alphas) > 1:
        ra = select_slider("α of the runs shown", alphas, 0.1 if 0.1 in alphas else alphas[0], key="ralpha",
                           where=c1, format_func=lambda a: f"{a:g}")
    else:
        ra = alphas[0]
        c1.markdown(f"α = {ra:g} (the only α in these results)")
    groups = groups_of([r for r in recs if float(r.get("alpha", np.nan)) == ra])
    names = sorted(groups, key=lambda n: ("(" in n, n))
    main = [n for n in names if "(" not in n] or names
    shown = multiselect("Runs (one per config, all its seeds; tagged: off the tuned setting or an ablation)",
                        names, main, key="rruns", where=c2, url=False)
    here = {n: groups[n] for n in names if n in shown}
    if here:
        hist, bars, table = summarize(here)
        show(training_curves(hist, title=f"Accuracy per round at α = {ra:g} (mean over seeds)"), "training_curves")
        show(results_bars(bars), "results_bars")
        st.dataframe(table.style.format(FORMATS, na_rep="–"), hide_index=True)
        download_csv(table, f"gcd_results_alpha{ra:g}.csv", "Download results (CSV)")
    else:
        st.info("Pick at least one run.")
    part_footer(t0)


# ---------------------------------------------------------------------------------------------------------
st.subheader("Results")
recs, source = R.gcd_results()
if not recs:
    st.info("No result files yet (bench/results/gcd/*.json): start a live run "
            "below. `python bench/run_gcd_tables.py` rebuilds the committed tables.")
else:
    st.caption(f"From `{source}` ({len(recs)} runs on evaluation seeds; the tuning-seed runs that chose each "
               "method's setting are left out). Accuracy is clustering accuracy with one Hungarian matching; "
               "bars are the mean of the last 3 evaluations, ± std over seeds.")
    runs_at_one_alpha(recs)

    bars, bars_src = R.done_when()
    if bars:
        with st.expander("Does FedLPA earn its claim? Issue 9's bars, read off these runs"):
            st.dataframe(pd.DataFrame(done_when_rows({"done_when": bars})), hide_index=True)
            st.caption(f"From `{bars_src}` (`done_when`): each line on the evaluation seeds, on the seed study's "
                       "seeds, and with the oracle prior's run in FedLPA's place; a line even the oracle misses is "
                       "not expected to be met by a better estimate of π or K̂ alone on these features. The last "
                       "two columns put the centralized run there (every client's data pooled, not federated; both "
                       "sets of seeds): a line it misses asks more than pooling the data buys this model.")

    study, study_src = R.seed_study()
    if study:
        st.markdown("**Is the difference real?** FedLPA − each federated baseline (and the oracle prior), paired per "
                    "evaluation seed: the same partition and initial weights on both sides.")
        summary = R.stamp(GCD_SUMMARY)        # the seed study's figures: built once per summary file
        show(R.figure("paired_seed_differences", lambda: paired_seed_differences(study), summary),
             "paired_seed_differences")
        st.caption(f"From `{study_src}` (`seed_study`): each dot is one seed, the diamond the mean with its 95 % "
                   "interval; an interval across 0 means these seeds cannot tell the two apart. The "
                   "tuned settings are the same as above; no choice was made on these seeds.")
        if any(e.get("ceiling") for e in study["alphas"]):
            with st.expander("Could a better prior close the gap?"):
                st.markdown("The oracle-prior run gives each client its true class proportions (and so the true "
                            "K); every estimate of π and K̂ aims at it. Where even the oracle is behind a "
                            "baseline, a better estimate alone is not expected to pass it.")
                show(R.figure("ceiling_seed_differences", lambda: paired_seed_differences(
                    study, key="ceiling", lead="oracle prior",
                    title="Oracle prior − federated baseline, All, paired per seed"), summary),
                     "ceiling_seed_differences")
                if any(e.get("parts") for e in study["alphas"]):
                    st.markdown("**What is the oracle's lead made of?** Two more runs are told only which heads a "
                                "client's classes are on (so the true K), with FedLPA's own masses on them or "
                                "equal masses; a third, reading no label, puts equal masses on FedLPA's own heads. "
                                "Each row: the first run − the second.")
                    show(R.figure("oracle_parts_seed_differences", lambda: paired_seed_differences(
                        study, key="parts", lead="the first",
                        title="The oracle's lead taken apart, All, paired per seed"), summary),
                         "oracle_parts_seed_differences")
                if any(e.get("k_hat_direction") for e in study["alphas"]):
                    st.markdown("**Does FedLPA's lead follow the direction of its K̂ misses?** Each dot is one "
                                "seed: x its net over-count Σ (K̂ − K) over its clients, y FedLPA − a baseline "
                                "(and the run told the heads − FedLPA). An extra community gets its own head and "
                                "share of π, so one class is trained onto two heads.")
                    show(R.figure("k_hat_direction_scatter", lambda: k_hat_direction_scatter(study), summary),
                         "k_hat_direction_scatter")
                    st.caption("Pearson r of the net over-count with each difference and with the oracle prior's "
                               "All (a run that never sees K̂): " + "; ".join(
                                   f"α = {e['alpha']:g}: " + ", ".join(
                                       f"{k} {v:+.2f}" for k, v in e["k_hat_direction"]["r"].items()
                                       if v is not None)
                                   for e in study["alphas"] if e.get("k_hat_direction"))
                               + ". It reads the true K, after the fact: a diagnosis, never a choice.")
                    anatomy = R.named_files({"a": "kest_anatomy.json"})["a"]
                    if anatomy:
                        st.markdown("**What are the misses made of?** At FedLPA's first discovery, each client's "
                                    "K̂ − K taken apart against the truth (`bench/kest_anatomy.py`): `split` = a "
                                    "new class in two new-class communities (the over-count), `missed` = a new "
                                    "class hidden in another community. With the pick (made on tuning seeds by K̂ "
                                    "alone), new-class communities whose mean predictions agree are merged: "
                                    "FedLPA's default since (the tables here are made with it); `off` is "
                                    "FedLPA before.")
                        st.dataframe(pd.DataFrame(anatomy["parts"]).rename(columns=ANATOMY_COLUMNS),
                                     hide_index=True)
                    frontier = R.k_hat_frontier()
                    if frontier:
                        st.markdown("**Can one discovery rule keep K̂ within ±1 at both α?** Every tuning "
                                    "client's first discovery made again at other settings: the markov time with "
                                    "the merging threshold (`bench/markov_merge.py`), and each with a knob no study "
                                    "had searched (`bench/discovery_knobs.py`); last, a client that counts few "
                                    "categories discovered again at a coarser time (`bench/coarse_route.py`; "
                                    "adopted, FedLPA's default since: the tables are made with it; beside it, the "
                                    "same route for a client whose labels hold few old classes), and a markov "
                                    "time each client chooses by its codelength against shuffled graphs "
                                    "(`bench/codelength_null.py`, not adopted); the route's pick made again on "
                                    "twice the tuning clients (`bench/route_more_tuning.py`, not drawn: its "
                                    "report says what it picked and whether that was adopted). Each "
                                    "dot is one setting or cutoff; the shaded corner is the issue's bar. Hover for "
                                    "its KL(oracle ‖ π): one value for every client trades one α against the other.")
                        show(R.figure("k_hat_frontier", lambda: k_hat_frontier(frontier),
                                      R.stamp(*K_HAT_STUDIES.values())), "k_hat_frontier")
    studies = [(key, *R.backbone_study(key)) for key in BACKBONE_STUDIES]
    studies = [(key, bb, src) for key, bb, src in studies if bb and bb["alphas"]]
    if studies:
        with st.expander("A stronger backbone?"):
            st.markdown("Every method learns on a frozen pretrained backbone. A wider one (4× the parameters, "
                        "pretrained on a GPU) beside the committed one: the same runs on both, on one machine; "
                        "FedLPA at the discovery setting chosen on each backbone's tuning seeds. Where *oracle "
                        "prior − a federated baseline* turns positive, a right prior would put FedLPA ahead on "
                        "those features. One study adds the references (local only: each client alone; "
                        "centralized: all data pooled) beside FedLPA on a machine of their own; another runs each "
                        "backbone at the learning rates tuned on it.")

            def backbone_tables(part):
                bb_runs, bb_diffs = backbone_rows(part)
                st.dataframe(pd.DataFrame([{"α": r["alpha"], "backbone": r["backbone"],
                                            **{f"{label} (seeds)": f"{m:.3f} ± {sd:.3f} ({k})" if k > 1
                                               else f"{m:.3f} ({k})" for label, (m, sd, k) in r["all"].items()},
                                            "FedLPA K̂ within ±1": r["k_hat_within_1"]} for r in bb_runs]),
                             hide_index=True)
                st.dataframe(pd.DataFrame([{"α": d["alpha"], "backbone": d["backbone"],
                                            "difference": d["difference"], "mean": d["mean"], "std": d["std"],
                                            "ahead": f"{d['ahead']}/{d['seeds']}"}
                                           for d in bb_diffs if not d["difference"].endswith("CPU − GPU")]
                                          ).style.format({"mean": "{:+.3f}", "std": "{:.3f}"}, na_rep="–"),
                             hide_index=True)

            for key, bb, bb_src in studies:
                st.markdown(f"**{bb.get('title', key)}** ({bb['runs_expected'] - bb['runs_missing']} of "
                            f"{bb['runs_expected']} runs made)")
                backbone_tables(bb)
                if more := bb.get("more_seeds"):
                    st.markdown(f"The same over more evaluation seeds ({', '.join(map(str, more['seeds']))}: the "
                                "seed study's next ones; no choice read them), where made:")
                    backbone_tables(more)
                for name, bars in backbone_done_when_rows(bb).items():
                    st.markdown(f"Issue 9's Done-when on `{name}`, off this study's runs alone, with the oracle "
                                "prior's and the centralized run in FedLPA's place where made:")
                    st.dataframe(pd.DataFrame(bars), hide_index=True)
            st.caption(f"From `{studies[0][2]}` ({', '.join(f'`{k}`' for k, _, _ in studies)}; `gcd_summary.md`, "
                       "sections Item 7, says which runs are still missing and how far the device alone moves a "
                       "run). All, mean ± std over the evaluation seeds each run has; differences paired per seed; "
                       "runs are compared only within one machine.")

# ---------------------------------------------------------------------------------------------------------
st.subheader("Accuracy against α", anchor="alpha")
curve, curve_src, _ = R.alpha_curve()
if not curve:
    st.info(f"The accuracy-against-α runs are not computed yet (`{curve_src}`; "
            "`python bench/run_gcd_tables.py --stage curve` writes it).")
else:
    from lab.gcd.methods import METHODS

    alphas = sorted({r["alpha"] for r in curve})
    seeds = sorted({x for r in curve for x in r["seeds"]})
    st.caption(f"From `{curve_src}`: {len(alphas)} values of α ({', '.join(f'{a:g}' for a in alphas)}) × "
               f"{len({r['method'] for r in curve})} methods at their tuned settings × seeds {seeds}. Left: small α, "
               "each client holds a few classes; right: close to IID. Dashed: not federated (references).")
    dashed = {m for m, M in METHODS.items() if not M.federated}
    show(R.figure("accuracy_vs_alpha", lambda: accuracy_vs_alpha(curve, dashed=dashed), R.stamp(ALPHA_CURVE)),
         "accuracy_vs_alpha")
    show(R.figure("client_spread_vs_alpha", lambda: client_spread_vs_alpha(curve), R.stamp(ALPHA_CURVE)),
         "client_spread_vs_alpha")
    st.caption("Each dot is one client of one seed (size: its sample count, colour: how many classes it holds); "
               "the red dashed line is the worst client. Centralized training has no clients of its own.")
    adf = pd.DataFrame([{"method": r["display_name"], "alpha": r["alpha"], "seeds": len(r["seeds"]),
                         **{f"{k}_{q}": (r[k] or {}).get(q) for k in ("acc_all", "acc_old", "acc_new")
                            for q in ("mean", "std")}} for r in curve])
    download_csv(adf, "accuracy_vs_alpha.csv", "Download accuracy against α (CSV)")

# ---------------------------------------------------------------------------------------------------------
st.subheader("Run live")
st.caption("Small runs on 2 CPU cores: about 30–40 s for the first Fashion-MNIST round (features are cached), "
           "then seconds per round; digits (8×8) take about a second per round. Finished runs are kept, so "
           "revisiting a setting is instant.")
st.caption("The same run on Flower, with the same numbers for the same seed: add `--engine flower-sim` (simulation) "
           "or `--engine flower --superlink HOST:PORT` (a real deployment; `python -m lab flower-local --nodes 5` "
           "starts one here) to `python -m lab fedgcd ...` — see the README, 'Beyond one machine'.")
c1, c2, c3 = st.columns([2, 1, 1])
methods = multiselect("Methods", METHODS, ["simgcd", "fedlpa"], key="t_methods", where=c1, format_func=METHOD_LABEL.get)
t_ds = select("Data set", ["fashion_mnist", "digits"], key="t_ds", where=c2)
t_alpha = select_slider("α", ALPHAS, 0.1, key="t_alpha", where=c3, format_func=lambda a: f"{a:g}")
c4, c5, c6 = st.columns(3)
rounds = slider("Rounds", 1, 20, 3, key="t_rounds", where=c4)
clients = slider("Clients", 2, 10, 5, key="t_clients", where=c5)
warm = slider("FedLPA warm-up rounds", 0, 10, 1, key="t_warm", where=c6,
              help="SimGCD rounds before CLSD + InfoMap + LPA start (the CLI default is 5)")


@st.cache_resource
def run_store() -> dict:
    """cfg.key() -> result record of finished live runs (shared by sessions, lives as long as the server)."""
    return {}


def configs():
    from lab.gcd.config import FedGCDConfig

    return [FedGCDConfig(method=m, dataset=t_ds, alpha=float(t_alpha), rounds=int(rounds), clients=int(clients),
                         warmup_rounds=int(warm), seed=0) for m in methods]


with guard():
    cfgs = configs()
    for c in cfgs:
        c.validate()
    store = run_store()
    go = st.button("Run", type="primary", disabled=not cfgs, key="t_run")
    chart = st.empty()
    done = {}
    if go:
        L.set_threads()
        from lab.gcd.experiment import run_experiment

        bar = st.progress(0.0, text="starting…")
        for i, cfg in enumerate(cfgs):
            key = cfg.key()
            if key in store:
                done[cfg.method] = store[key]
                continue
            live = []

            def on_round(rnd, total, row, i=i, cfg=cfg, live=live):
                live.append(row)
                bar.progress(min(1.0, (i + rnd / total) / len(cfgs)),
                             text=f"{METHOD_LABEL[cfg.method]}: round {rnd}/{total}, All {row['acc_all']:.3f}")
                chart.plotly_chart(training_curves({**{METHOD_LABEL[m]: r["history"] for m, r in done.items()},
                                                    METHOD_LABEL[cfg.method]: live}, title="Live: accuracy per round"),
                                   width="stretch", key=f"live_{cfg.method}_{rnd}")

            store[key] = run_experiment(cfg, on_round=on_round)
            done[cfg.method] = store[key]
        bar.progress(1.0, text="done")
    else:
        done = {c.method: store[c.key()] for c in cfgs if c.key() in store}
    if done:
        chart.plotly_chart(training_curves({METHOD_LABEL[m]: r["history"] for m, r in done.items()},
                                           title=f"Live runs at α = {t_alpha:g} ({t_ds}, {rounds} rounds)"),
                           width="stretch", key="live_final")
        _, _, table = summarize(groups_of(list(done.values())))
        st.dataframe(table.drop(columns=["file"]).style.format(FORMATS, na_rep="–"), hide_index=True)
        download_csv(table, "live_runs.csv", "Download live runs (CSV)", key="dl_live")
    elif cfgs:
        st.caption("Press Run to train these settings.")

footer(t0)
