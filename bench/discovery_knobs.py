"""Issue 9: six discovery knobs no study had searched, each chosen with the markov time and merging. 2-core CPU.

The discovery study searched features, refinement, markov time, labelled share and merging; ``knn_k``,
``min_community``, ``num_trials``, the confidence settings and ``smoothing`` kept their defaults
(``DiscoveryParams``' docstring). ``markov_merge.py`` then found that no (markov time, merging) pair keeps K_hat
within +-1 on 80 % of the tuning clients at both alphas, and that a coarser time gives a better prior and better All
but hides classes at alpha 1. This asks whether a knob that shapes the partition in another way than the markov time
lets a setting keep the K_hat line at both alphas. The anchors of the graph's refinement joined a stop after the
coarse route's adoption (the confidence settings act only where predictions anchor it, which FedLPA's do not);
``smoothing`` joined later still (the last knob no study had searched), and ``mutual`` after it (a graph the issue
names among its candidates that no study had built). The knobs (:data:`KNOBS`, ``--knob``):

- ``num_trials``: InfoMap's restarts (the partition with the shortest codelength wins). FedLPA runs InfoMap once:
  one greedy optimisation of the map equation from one seed, not the map equation's best partition at that time.
  The issue names "stability across InfoMap trials/seeds" among the rules a client can use. A probe on 10 clients
  (tuning seed 100) said restarts change the partition at a coarse time more than at FedLPA's, mostly by finding one
  more module.
- ``knn_k``: neighbours per sample in the similarity graph (the graph is built again). A sparser graph splits the
  flow into more modules at every markov time, a denser one fewer; unlike the markov time it changes which samples
  are linked at all.
- ``min_community``: the share of the client below which a community is noise (its samples join no class) and
  above which an unlabelled community counts as a new class. A client's true K counts the classes holding >= 2 %
  of it (``kest_anatomy.client_view``), whatever this knob is. A higher share drops the small communities that
  over-count at alpha 0.1, and with them a small class at alpha 1.
- ``anchors`` (:data:`COMPOSITE`: ``refine`` with the confidence settings): CLSD's refinement cuts the kNN links
  between anchors of different old classes and joins anchors of one class by must-links. FedLPA anchors its
  labelled samples only (``refine="labels"``, the discovery study's choice on SimGCD warm-up models), so
  ``confidence_quantile`` and ``min_confidence`` do nothing in its runs. With ``refine="confidence"`` an unlabelled
  sample also anchors the old class the model predicts for it when its max probability is at or above that
  predicted class's quantile (relative, per class: at 0.5 half of what the model calls a class anchors it, right or
  wrong; issue 9's review item 4) or, with ``min_confidence``, an absolute threshold. More anchors pin more of the
  old classes' flow; wrong ones pin a new class to an old one (the graph is built again).
- ``smoothing``: the prior's pseudo-count per head, pi_h = (m_h + s) / (n + s H) over the model's H heads (m_h the
  samples the discovery gives head h). It moves no partition and so no K_hat: it is read against the K_hat bar with
  the markov time and merging like the others, and decides only on KL. A larger count lifts the heads a client's
  discovery left empty; at alpha 1, where the discovery under-counts, some of those are classes the client holds.
  The oracle prior it is scored against keeps FedLPA's count (the lab's 0.5), whatever the value studied.
- ``mutual`` (:data:`COMPOSITE`: ``knn_mutual`` with ``knn_k``): the issue's "mutual-kNN graphs". A link is kept only
  when each end lists the other among its k nearest. In a kNN graph a sample on a class border is listed by samples
  of both classes; the mutual graph keeps the links it returns, so less flow crosses between classes (a new class
  hidden inside an old community is what costs FedLPA at alpha 1), and it has fewer links at the same k, so it is read
  at k 10, 20, 30 and 50 beside FedLPA's kNN graph at 10 (the graph is built again).

The study (per knob): the tables' FedLPA config run to its first discovery (``kest_anatomy.first_discovery``) on
tuning seeds 100-109 and evaluation seeds 0-9, both alphas; every client's discovery made again with each value of
the knob at each markov time of :data:`MARKOV` (same seed; a graph knob builds the graph again), each finished with
each merging threshold of :data:`MERGE`. Per client and setting: what ``markov_merge.py`` keeps (K_hat, split,
missed, KL(oracle || pi)). The pick, written down before the runs (tuning seeds only): ``markov_merge.py``'s rule
(``new_split.pick``: among the settings with K_hat within +-1 on >= 80 % of the tuning clients at both alphas, the
lowest mean KL(oracle || pi); when none passes, all compete by KL; FedLPA's setting wins ties). Each job records the
seconds its knob's values cost (InfoMap, and the graph for a graph knob): a FedLPA run's discoveries are a small
part of its wall, which a Done-when line bounds.

With the coarse route (``DiscoveryParams.coarse_k``, FedLPA's default since ``coarse_route.py``'s adoption): both
discoveries the route chooses between, FedLPA's setting and the coarse one, are in every client's record at every
value of the knob, so the study also reads each value routed as the library routes (:func:`routed`; no new run) and
picks among those with the same rule (FedLPA's value wins ties). A routed pick other than FedLPA's value would next be
trained beside FedLPA as ``coarse_route.py --train`` trains its pick, with its adoption rule.

Since the route's adoption FedLPA runs routed, so a setting without the route competes with FedLPA as the library
runs it: every setting and every routed value, by the same rule, FedLPA's routed value winning ties (``"overall"``).
A pick other than FedLPA's that passes the K_hat bar would next be trained as ``markov_merge.py --train`` trains its
pick, with its adoption rule. ``--train`` does that for a routed pick (:func:`trained`): the tables' FedLPA
(the route on) with only the knob's config fields changed, and FedLPA itself, both made here on the tuning seeds
100/101 at both alphas (``gcd_discovery_knobs/``), paired per seed; the adoption rule reads those runs only, so the
evaluation seeds' runs are made only for an adopted pick, with the tables.
A pick that misses the bar is not trained: ``markov_merge.py`` trained the
best-KL setting that missed it (markov 3, merging >= 0.7, one run, knn 10: the same setting here), and it lost that
line in training too.

What it found (``discovery_knobs_<knob>.md``): no setting of any of the first three keeps K_hat within +-1 on 80 % of
the tuning clients at both alphas; FedLPA's own (78 % / 80 %) keeps the best worse-alpha share of each study. Restarts
lower it (74-76 %); a sparser or denser graph and a lower or higher noise share move along the markov time's trade
(a coarser partition gains alpha 0.1 and loses alpha 1). Each KL pick misses the bar and is not trained; on the
restarts knob it is ``markov_merge.py``'s trained pick. The anchors (a stop later): every rule that lets confident
predictions anchor the graph lowers the worse-alpha share or keeps it, and none gives a lower KL than labels only.
The smoothing (a stop later still): every count above the lab's raises the mean KL at both alphas, with the route and
without, at every setting: FedLPA's model has more heads than a client holds classes (15 for at most 10), so a count
spreads mass mostly over heads the client does not have, and what it gives back to held classes the discovery left
without a head does not make up for it. Below the lab's count KL barely moves; the routed pick, 0.25, is below
FedLPA's by 0.0003 nat, so it was trained (``--train``) and lost the adoption rule: FedLPA's count stays.
The mutual graph (a stop later again) is the first partition knob with settings that keep the bar without the route
(markov 2.5 with mutual k 10 or 30, 80 % at the worse alpha), but their prior is worse than FedLPA's routed one (mean KL
0.255 at best against 0.230), and routed, no mutual graph keeps the bar at alpha 1 (74-76 %): the overall pick is
FedLPA's, and nothing is trained.
Read with the coarse route, FedLPA's value is the only one of any partition knob within the bar at both alphas (the
route's own tuning shares; every count of the smoothing is, with the same K_hat, and loses on KL), so the routed picks
are FedLPA's values too. FedLPA's settings stay as they are.

    python bench/discovery_knobs.py --knob num_trials --workers 2   # 40 warm-ups, about 13 min on 2 cores; resumes
    python bench/discovery_knobs.py --knob knn_k --workers 2
    python bench/discovery_knobs.py --knob min_community --workers 2
    python bench/discovery_knobs.py --knob anchors --workers 2
    python bench/discovery_knobs.py --knob smoothing --workers 2 --train   # and 8 runs, about 5 min
    python bench/discovery_knobs.py --knob mutual --workers 2             # about 16 min

Writes ``bench/results/discovery_knobs_<knob>.json`` and ``.md``; trained runs in
``bench/results/gcd_discovery_knobs/``.
"""
from __future__ import annotations

import json
import os
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kest_anatomy as KA  # noqa: E402
import markov_merge as MM  # noqa: E402
import new_split as NS  # noqa: E402
import run_gcd_tables as T  # noqa: E402

MARKOV = (1.5, 2.0, 2.5, 3.0)           # FedLPA's time and the coarser ones markov_merge.py found better on KL
MERGE = (None, 0.7, 0.8)                # off, markov_merge.py's KL pick's threshold, FedLPA's
#: knob (a DiscoveryParams field) -> (its values, its name in a setting, the first step it changes: "graph" (built
#: again), "infomap" (run again on the same graph), "finish" (the same InfoMap modules, finished otherwise) or
#: "prior" (the same partition and mapping, only pi computed otherwise: no K_hat moves))
KNOBS = {"num_trials": ((1, 3, 10, 30), "restarts", "infomap"),
         "knn_k": ((5, 10, 15, 20, 30), "knn", "graph"),
         "min_community": ((0.01, 0.02, 0.03, 0.04, 0.05), "min share", "finish")}
#: a knob whose values set more than one field: knob -> {value: the DiscoveryParams fields it sets}
COMPOSITE = {"anchors": {"labels": {"refine": "labels"},
                         "conf q0.5": {"refine": "confidence", "confidence_quantile": 0.5},
                         "conf q0.7": {"refine": "confidence", "confidence_quantile": 0.7},
                         "conf q0.9": {"refine": "confidence", "confidence_quantile": 0.9},
                         "conf >= 0.9": {"refine": "confidence", "min_confidence": 0.9},
                         "conf >= 0.99": {"refine": "confidence", "min_confidence": 0.99}}}
KNOBS["anchors"] = (tuple(COMPOSITE["anchors"]), "anchors", "graph")
KNOBS["smoothing"] = ((0.1, 0.25, 0.5, 2, 8, 32, 128), "smoothing", "prior")
#: the issue's "mutual-kNN graphs": a mutual graph at k keeps fewer links than the kNN graph at k, so it is read at
#: larger k too
COMPOSITE["mutual"] = {"knn 10": {"knn_k": 10, "knn_mutual": False},
                       **{f"mutual {k}": {"knn_k": k, "knn_mutual": True} for k in (10, 20, 30, 50)}}
KNOBS["mutual"] = (tuple(COMPOSITE["mutual"]), "graph", "graph")
#: the steps that reuse InfoMap's modules of the first value
AFTER_INFOMAP = ("finish", "prior")
#: what a knob value's time covers, per step (a knob acting after InfoMap costs no more than FedLPA's discovery: no
#: time kept)
TIMED = {"graph": "the graph and InfoMap at the four markov times", "infomap": "InfoMap at the four markov times"}
FIELDS = MM.FIELDS
TRAIN_DIR = os.path.join(T.RES, "gcd_discovery_knobs")


def paths(knob: str) -> tuple:
    """(json, md) of the study of ``knob``."""
    return KA.study_paths(f"discovery_knobs_{knob}")


def name(knob: str, markov: float, merge, value) -> str:
    return f"{MM.name(markov, merge)}, {KNOBS[knob][1]} {value}"


def fields(knob: str, value) -> dict:
    """The ``DiscoveryParams`` fields one value of a knob sets."""
    return dict(COMPOSITE[knob][value]) if knob in COMPOSITE else {knob: value}


def grid(knob: str) -> list:
    """(markov time, merging threshold, knob value) of every setting, in the order of a client's record."""
    return [(m, t, v) for m in MARKOV for v in KNOBS[knob][0] for t in MERGE]


def names(knob: str) -> list:
    return [name(knob, *g) for g in grid(knob)]


def value(knob: str):
    """The knob's value in FedLPA's runs (of a composite knob, the value whose fields FedLPA's run has)."""
    p = KA.fedlpa_config(T.TABLE_ALPHAS[0], 0).discovery_params()
    if knob not in COMPOSITE:
        return getattr(p, knob)
    return next(v for v, f in COMPOSITE[knob].items() if all(getattr(p, k) == x for k, x in f.items()))


def default(knob: str) -> str:
    """The setting FedLPA runs with."""
    p = KA.fedlpa_config(T.TABLE_ALPHAS[0], 0).discovery_params()
    return name(knob, p.markov_time, p.merge_new_cosine, value(knob))


def one(job) -> dict:
    """One (alpha, seed, knob): per client, [K_hat, split, missed, KL(oracle || pi)] at every setting (order of
    :func:`names`), and the seconds each knob value cost (:data:`TIMED`), summed over the job's clients."""
    alpha, seed, knob = job
    values, _, step = KNOBS[knob]
    exp, old, kept = KA.kept_clients(alpha, seed)
    clients, seconds = [], dict.fromkeys(map(str, values) if step in TIMED else (), 0.0)
    for c in kept:
        oracle = KA.oracle_prior(c)
        row = {"client": c.cid, "k": len(c.present), "settings": []}
        views, modules = {}, {}
        for v in values:
            t0 = time.perf_counter()
            views[v] = c.regraph(c.params.replace(**fields(knob, v))) if step == "graph" else c
            for m in MARKOV:
                modules[m, v] = (modules[m, values[0]] if step in AFTER_INFOMAP and v != values[0]
                                 else views[v].modules(c.params.replace(markov_time=m, **fields(knob, v))))
            if step in TIMED:
                seconds[str(v)] += time.perf_counter() - t0
        for m, t, v in grid(knob):
            p = c.params.replace(markov_time=m, merge_new_cosine=t, **fields(knob, v))
            s = NS.scores(views[v].redo_from(modules[m, v], p), oracle, c.y, old, c.present)
            row["settings"].append([s[f] for f in FIELDS])
        if row["settings"][names(knob).index(default(knob))][0] != c.k_est:
            raise RuntimeError(f"alpha {alpha} seed {seed} client {c.cid}: re-made K_hat differs from the run's")
        clients.append(row)
    return {"alpha": alpha, "seed": seed, "clients": clients, "seconds": seconds}


def routed_name(knob: str, value) -> str:
    return f"routed, {KNOBS[knob][1]} {value}"


def routed(records, knob: str) -> tuple:
    """(names, records) of the knob's values with the coarse route as the library runs it (``DiscoveryParams``'
    ``coarse_k``, ``coarse_markov_time``, ``coarse_merge_cosine``): per value, FedLPA's setting where it counts more
    than ``coarse_k``, else the coarse setting at that value; both discoveries are in the records."""
    from lab.gcd.discovery import DiscoveryParams

    lib, p = DiscoveryParams(), KA.fedlpa_config(T.TABLE_ALPHAS[0], 0).discovery_params()
    settings, values = names(knob), KNOBS[knob][0]
    pairs = [(settings.index(name(knob, p.markov_time, p.merge_new_cosine, v)),
              settings.index(name(knob, lib.coarse_markov_time, lib.coarse_merge_cosine, v))) for v in values]
    recs = [{**{k: r[k] for k in ("alpha", "seed")},
             "clients": [{"client": c["client"], "k": c["k"],
                          "settings": [c["settings"][g] if c["settings"][f][0] <= lib.coarse_k else c["settings"][f]
                                       for f, g in pairs]} for c in r["clients"]]} for r in records]
    return [routed_name(knob, v) for v in values], recs


def record(records, knob: str) -> dict:
    """What is committed: the per-client records, the tables the report shows, the pick and each value's time, and
    the same per value with the route (:func:`routed`) and its pick."""
    settings, base = names(knob), default(knob)
    tuning = MM.summary(records, KA.TUNING, settings)
    n = sum(len(r["clients"]) for r in records)
    r_names, r_recs = routed(records, knob)
    r_tuning = MM.summary(r_recs, KA.TUNING, r_names)
    res = {"knob": knob, "values": list(KNOBS[knob][0]), "markov_times": list(MARKOV), "merge": list(MERGE),
            "settings": settings, "fields": list(FIELDS), "default": base, "tuning": tuning,
            "evaluation": MM.summary(records, KA.EVALUATION, settings), "pick": NS.pick(tuning, base),
            "routed": {"settings": r_names, "tuning": r_tuning,
                       "evaluation": MM.summary(r_recs, KA.EVALUATION, r_names),
                       "pick": NS.pick(r_tuning, routed_name(knob, value(knob)))},
            # since the route's adoption FedLPA runs routed: a setting without the route competes with that
            "overall": NS.pick(tuning + r_tuning, routed_name(knob, value(knob))),
            "ms_per_client": {v: 1000 * sum(r["seconds"][v] for r in records) / n for v in records[0]["seconds"]},
            "records": records}
    v = routed_value(res)
    return res if v is None else {**res, "trained": trained(knob, v)}


def lines(res) -> list:
    knob, label = res["knob"], KNOBS[res["knob"]][1]
    tuning = MM._by(res["tuning"])
    out = NS.opening(res, f"A discovery knob no study had searched: `{knob}`, chosen with the markov time and merging",
                     f"discovery_knobs.py --knob {knob}", "why, and how it is picked",
                     " run to its first discovery; every client's discovery made again (same seed) with each "
                     f"`{knob}` ({label}: " + ", ".join(map(str, res["values"])) + ") at each markov time, finished "
                     "with each merging threshold (off included); tuning seeds "
                     f"{KA.TUNING[0]}-{KA.TUNING[-1]}, evaluation seeds {KA.EVALUATION[0]}-{KA.EVALUATION[-1]}, α 0.1 "
                     "and 1, 5 clients each. KL: against the oracle prior (the true classes as communities); the true "
                     "labels are read after the fact, for the report and the pick on the tuning seeds only. FedLPA's "
                     f"setting: **{res['default']}**.")
    step = KNOBS[knob][2]
    out += ["", NS.pick_line(res["pick"], "; FedLPA's setting wins ties") + trained_there(res), "",
            (f"Time per client for {TIMED[step]} (mean over every client, this machine): "
             + ", ".join(f"{label} {v} {ms:.0f} ms" for v, ms in res["ms_per_client"].items()) + "."
             if step in TIMED else "The knob acts after InfoMap (the same modules, finished otherwise): it costs no "
             "time."), "",
            f"## Per {label} value: the best any markov time and merging threshold do with it (tuning seeds)", "",
            f"| {label} | best K̂ within ±1 at the worse α | its setting | lowest mean KL(oracle ‖ π) | its setting |",
            "|---|---|---|---|---|"]
    for v in res["values"]:
        mine = [s for s in res["settings"] if s.endswith(f", {label} {v}")]
        worse = {s: min(tuning[(s, a)]["within_1"] for a in T.TABLE_ALPHAS) for s in mine}
        kl = {s: res["pick"]["kl"][s] for s in mine}
        top, low = max(mine, key=worse.get), min(mine, key=kl.get)
        out.append(f"| {v} | {100 * worse[top]:.0f} % | {top} | {kl[low]:.3f} | {low} |")
    rt = res["routed"]
    out += ["", f"## Per {label} value, with the coarse route (the library's default since the route's adoption)", "",
            "FedLPA's setting where a client's discovery counts more than the route's cutoff, the coarse setting at "
            "the same value where it counts fewer, as `DiscoveryParams.coarse_k` runs it (both are in each client's "
            "record: no new run). " + NS.pick_line(rt["pick"], f"; FedLPA's {label} wins ties"), ""]
    out += MM.setting_table(rt, rt["settings"], rt["pick"]["setting"], "value, routed")
    ov = res["overall"]
    out += ["", "Against FedLPA as the library runs it (the route on, FedLPA's " + label + "), every setting of this "
            "report with the route and without it competes by the same rule: **" + ov["setting"] + "** (mean KL "
            + f"{ov['kl'][ov['setting']]:.4f}; eligible: " + ", ".join(
                f"{s} {ov['kl'][s]:.4f}" for s in sorted(ov["eligible"], key=ov["kl"].get)) + ")."]
    out += ["", "## Every setting (α 0.1 / α 1)", ""] + MM.setting_table(res, res["settings"], res["default"])
    return out + trained_lines(res)


def trained_there(res) -> str:
    """Where the pick leaves the knob at FedLPA's value it is a setting ``markov_merge.py`` studied: what its
    training said there."""
    knob = res["knob"]
    m, t, v = next(g for g in grid(knob) if name(knob, *g) == res["pick"]["setting"])
    mm = json.loads(open(MM.JSON).read())
    if res["pick"]["setting"] == res["default"] or v != value(knob) or mm["pick"]["setting"] != MM.name(m, t) \
            or not mm.get("trained"):
        return ""
    return (f" With {KNOBS[knob][1]} at FedLPA's value it is `markov_merge.py`'s pick ({MM.name(m, t)}), trained "
            "there beside FedLPA: " + ("adopted." if mm["trained"]["adopt"] else "**not adopted**")
            + " (`markov_merge.md`).")


def config_fields(knob: str, v) -> dict:
    """The run config's fields that set one value of a knob (``lab.gcd.config.DISCOVERY_FIELDS``, read backwards)."""
    from lab.gcd.config import DISCOVERY_FIELDS

    to_config = {d: c for c, d in DISCOVERY_FIELDS.items()}
    return {to_config[k]: x for k, x in fields(knob, v).items()}


def routed_value(res):
    """The knob's value the routed pick names (None where it is FedLPA's own)."""
    v = next(v for v in res["values"] if routed_name(res["knob"], v) == res["routed"]["pick"]["setting"])
    return None if v == value(res["knob"]) else v


def train_configs(knob: str, v) -> list:
    """[(alpha, seed, the value's config, FedLPA's config)] on the tuning seeds: the tables' FedLPA (the route on)
    with only the knob's fields changed, and FedLPA itself, both made here (a pair on one machine)."""
    best = T.tuned_best()["fedlpa"]
    return [(al, s, {**base, **config_fields(knob, v)}, base) for al in T.TABLE_ALPHAS for s in T.TUNING_SEEDS
            for base in [T.config("fedlpa", al, s, False, **best)]]


def trained(knob: str, v, out_dir: str = TRAIN_DIR) -> dict | None:
    """The routed pick trained on the tuning seeds beside FedLPA, and ``markov_merge.py``'s adoption rule on those
    runs (None until all are made); whether FedLPA made here equals the tables' committed run of the same name."""
    runs = [(al, s, T.load(c, out_dir), T.load(b, out_dir), T.load_committed(b)) for al, s, c, b in
            train_configs(knob, v)]
    if not all(r and b for _, _, r, b, _ in runs):
        return None
    rows = [MM.pair_row("tuning", al, [(s, r, b) for a, s, r, b, _ in runs if a == al]) for al in T.TABLE_ALPHAS]
    mean, ok = MM.adopt(rows)
    same = [c is not None and c["acc_all"] == b["acc_all"] for *_, b, c in runs]
    return {"value": v, "fields": config_fields(knob, v), "rows": rows, "tuning_mean_all": mean, "adopt": ok,
            "fedlpa_equal_to_tables": int(sum(same)), "fedlpa_runs": len(same),
            "warmup_splits": T.warmup_splits(out_dir)}


def trained_lines(res) -> list:
    t = res.get("trained")
    if t is None:
        return [] if routed_value(res) is None else ["", "The routed pick is not FedLPA's value; its runs are not all "
                                                      "made yet (`--train`)."]
    f = ", ".join(f"{k} {v}" for k, v in t["fields"].items())
    out = ["", f"## The routed pick, trained on the tuning seeds (`--train`: {f})", "",
           f"The tables' FedLPA (the route on) with only that field changed, and FedLPA itself, both made on this "
           f"machine (`{os.path.basename(TRAIN_DIR)}/`), paired per seed; FedLPA made here equals the tables' run "
           f"of the same name on {t['fedlpa_equal_to_tables']} of {t['fedlpa_runs']}. All = mean of the last 3 "
           "evaluations; K̂ within ±1 over every client of those runs.", "",
           "| α | pick All | FedLPA All | pick − FedLPA | ahead | K̂ within ±1, pick | FedLPA |",
           "|---|---|---|---|---|---|---|"]
    out += [f"| {r['alpha']:g} | " + MM.pair_cells(r) for r in t["rows"]]
    m = t["tuning_mean_all"]
    n = 2 * len(T.TUNING_SEEDS)
    return out + ["", f"Adoption rule (`markov_merge.py`'s, tuning runs only): mean All over the {n} tuning runs "
                  f"{100 * m['all']:.1f} against FedLPA's {100 * m['fedlpa']:.1f}, and K̂ within ±1 on "
                  f"≥ {100 * MM.K_BAR:.0f} % of the tuning clients at both α: **"
                  + ("adopted" if t["adopt"] else "not adopted") + "**. The evaluation seeds' runs would only report; "
                  "they are made for an adopted pick, with the tables. "
                  + ("Every pair trained its warm-up alike (`run_gcd_tables.warmup_splits` finds none)."
                     if not t["warmup_splits"] else f"Pairs whose warm-ups differ: {t['warmup_splits']}.")]


def main(argv=None):
    a = KA.study_args(__doc__, "discovery_knobs_cache", argv, flags={"--train": "train the routed pick beside "
                      "FedLPA on the tuning seeds where it is not FedLPA's value (module docstring)"},
                      choices={"--knob": (tuple(KNOBS), "the DiscoveryParams field studied (module docstring)")})
    records = KA.cached_runs(one, f"{a.cache}_{a.knob}", a.workers, "first discoveries", (a.knob,))
    res = record(records, a.knob)
    if a.train and (v := routed_value(res)) is not None:
        T.run_all([x for *_, c, b in train_configs(a.knob, v) for x in (c, b)], TRAIN_DIR, a.workers,
                  "the routed pick, trained")
        res = record(records, a.knob)
    KA.write_study(res, *paths(a.knob), lines)
    print(f"pick {res['pick']['setting']}; routed {res['routed']['pick']['setting']}"
          + (f", adopted: {res['trained']['adopt']}" if res.get("trained") else ""))


if __name__ == "__main__":
    main()
