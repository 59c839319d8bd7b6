"""Prior alignment: does the global model's mean prediction on a client follow that client's own classes?"""
import numpy as np
import pandas as pd
import streamlit as st

from lab.gcd.snapshots import MATCH_SAMPLES
from lab.viz.gcd import prior_bars

import loaders as L
from page import METHOD_LABEL, download_csv, footer, guard, page_start, settings_line, show
from sidebar import inactive_sidebar
from widgets import default_markov_time, select, select_slider


def kl(p, q, eps=1e-3):
    p = np.asarray(p, float) + 1e-12
    q = (np.asarray(q, float) + eps) / (np.asarray(q, float) + eps).sum()
    p = p / p.sum()
    return float(np.sum(p * np.log(p / q)))


t0 = page_start("Prior alignment",
                "on a skewed client the true histogram has a few tall bars; SimGCD's mean prediction is "
                "pulled toward uniform, while LPA aligns it to the InfoMap prior, which should track the "
                "true histogram (compare the KL numbers).")

inactive_sidebar("each trained snapshot fixes its own data set, α, clients and seed (the line above the "
                 "figure says which).")
pairs = L.snapshot_pairs()
with guard():
    if not pairs:
        st.info("No trained snapshots in `data/snapshots/` yet (they are written by `python -m lab fedgcd` runs "
                "with a weights file). Showing the client's true histogram against the InfoMap communities of "
                "the pretrained backbone's features, each community read as its majority class.")
        client = select_slider("Client", list(range(5)), 0, key="pclient")
        ckey = ("fashion_mnist", "dirichlet", 0.1, 5, 0, client, "backbone", 4000)
        settings_line(f"Fashion-MNIST · Dirichlet α = {ckey[2]:g} · {ckey[3]} clients · seed {ckey[4]} → client "
                      f"{client} · features: pretrained backbone · markov time {default_markov_time()}")
        cl = L.client_arrays(*ckey)
        true, read = L.community_histogram(ckey, 10, 0.5, 0.0, default_markov_time(), 0.02)
        series = {"true class histogram": true, "InfoMap communities (majority-class reading)": read}
        show(prior_bars(series, labels=cl["class_names"], title=f"Client {client} (α = 0.1, 5 clients)"),
             "prior_bars")
    else:
        keys = list(pairs)
        c1, c2 = st.columns([2, 1])
        ckey_ = select("Trained models (from data/snapshots)", keys, key="psnap", where=c1)
        models = pairs[ckey_]
        any_path = next(iter(models.values()))
        cfg = L.load_snapshot(any_path)[1]
        client = select_slider("Client", list(range(cfg.clients)), 0, key="pclient", where=c2)
        settings_line(f"the snapshots' own: {cfg.dataset} · Dirichlet α = {cfg.alpha:g} · {cfg.clients} clients · "
                      f"seed {cfg.seed} → client {client} · models: "
                      f"{', '.join(METHOD_LABEL.get(m, m) for m in models)} (data/snapshots/)")
        with st.spinner("Reading the client through the trained models…"):
            views = {m: L.snapshot_client(p, client) for m, p in models.items()}
            maps = {m: L.head_classes(p) for m, p in models.items()}
        first = next(iter(views.values()))
        names, n_cls = first["class_names"], first["n_classes"]
        y = first["y_true"]
        true = np.bincount(y, minlength=n_cls) / len(y)
        series = {"true class histogram": np.append(true, 0.0)}
        if "fedlpa" in views:
            series["InfoMap prior (FedLPA's discovery)"] = L.to_class_space(views["fedlpa"]["prior"], maps["fedlpa"],
                                                                             n_cls)
        why = {"simgcd": " (uniform pull)", "fedlpa": " (LPA)"}
        for m in ("simgcd", "fedlpa", "gcd", "local", "central"):
            if m in views:
                series[f"mean prediction, {METHOD_LABEL.get(m, m)}{why.get(m, '')}"] = L.to_class_space(
                    views[m]["mean_pred"], maps[m], n_cls)
        show(prior_bars(series, labels=list(names) + ["unmatched heads"],
                        title=f"Client {client}: distributions over classes ({ckey_})"), "prior_bars")
        st.caption(f"Heads are read as classes through one Hungarian matching on {MATCH_SAMPLES:,} unlabelled "
                   "training samples (as the evaluation does); "
                   "FedLPA has more heads than classes (|old| + K_max), their leftover mass is 'unmatched heads'.")
        truth = series["true class histogram"]
        rows = [{"distribution": k, "KL(true ‖ this)": kl(truth, v) if k != "true class histogram" else 0.0,
                 **{n: float(v[i]) for i, n in enumerate(list(names) + ["unmatched heads"])}}
                for k, v in series.items()]
        if "fedlpa" in views:
            v = views["fedlpa"]
            st.metric("FedLPA's K̂ on this client (InfoMap)", v["k_est"], delta=f"{v['k_est'] - v['k_true']:+d} vs true",
                      delta_color="off")
        df = pd.DataFrame(rows)
        st.dataframe(df.style.format(precision=3), hide_index=True)
        download_csv(df, f"prior_alignment_client{client}.csv", "Download distributions (CSV)")
        if "fedlpa" in views:
            v = views["fedlpa"]
            st.subheader("What each prior rule makes of this client")
            st.caption("The same discovery (graph, communities, claims, heads) read by each rule of "
                       "`lab.gcd.discovery.PRIORS`: only the rule differs. The rule in use was chosen on tuning "
                       "seeds (`bench/discovery_study.py`); which rule buys accuracy is measured over evaluation "
                       "seeds (`bench/results/discovery_levers.md`), not on one client.")
            by_rule = {f"{rule}{' (in use)' if rule == v['prior_rule'] else ''}":
                       L.to_class_space(pi, maps["fedlpa"], n_cls) for rule, pi in v["priors"].items()}
            show(prior_bars({"true class histogram": truth, **by_rule}, labels=list(names) + ["unmatched heads"],
                            title=f"Client {client}: each prior rule, read as classes"), "prior_rules")
            st.dataframe(pd.DataFrame([{"prior rule": k, "KL(true ‖ π)": kl(truth, p)} for k, p in by_rule.items()])
                         .style.format(precision=3), hide_index=True)

footer(t0)
