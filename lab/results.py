"""Reading the committed results files: the numbers the tour, the training page and the notebooks quote.

Nothing here computes a result; it picks rows out of the files that the bench scripts wrote, by rules that
never look at the numbers they pick (except "the best baseline", which is the comparison's definition):

- :func:`gcd_headline` — FedLPA vs the best *federated* baseline at one α, from ``bench/results/gcd_summary.json``
  (``bench/run_gcd_tables.py``: rows of mean ± std over evaluation seeds, per-seed paired differences).
- :func:`dp_headline` — ULS vs ELS held-out loss at one ε, from ``bench/results/dp_tuned_curve.json`` when it
  exists, else ``dp_privacy_utility.json`` (same ``summary`` schema; ``paired`` only in the tuned curve).
- :func:`alpha_curve` — the points of ``bench/results/gcd_alpha_curve.json`` summarised per method and α.
- :func:`masses_rows` — the priors of the runs that take the oracle's lead apart against the oracle's
  (``discovery_study.json``'s ``masses``), beside each run's All from the seed study of ``gcd_summary.json``.
- :func:`k_hat_frontier_rows` — every setting of the discovery-setting studies by its K̂ share at both α.
- :func:`group_runs` — per-run records (``bench/results/gcd/*.json``) grouped by their config minus the seed.

No streamlit, no torch: the dashboard's tour reads these on its first, cold load.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from lab.utils import LabError, repo_root

RESULTS_DIR = os.path.join(repo_root(), "bench", "results")
GCD_SUMMARY = "gcd_summary.json"
DISCOVERY_STUDY = "discovery_study.json"
#: item 7's studies in ``gcd_summary.json``, one per machine its runs were made on (the H200 machine, the lab's
#: 2-core CPU machine, the references beside FedLPA on another 2-core one, and each backbone at its own tuned
#: learning rates on the 2-core one): ``bench/run_gcd_tables.py``'s ``BACKBONE_STUDIES``; rows: :func:`backbone_rows`
BACKBONE_STUDIES = ("backbones", "backbones_2core", "backbones_refs", "backbones_tuned")
COMMITTED_BACKBONE = "pretrained"      # of lab.gcd.config.BACKBONES: the library's discovery defaults were chosen on it
ALPHA_CURVE = "gcd_alpha_curve.json"
DP_FILES = ("dp_tuned_curve.json", "dp_privacy_utility.json")   # first that exists wins
FEDLPA = "fedlpa"
ACC_KEYS = ("acc_all", "acc_old", "acc_new", "test_acc_all")


def discovery_study_file(backbone: str, ext: str = "json") -> str:
    """The file name of ``bench/discovery_study.py``'s study on ``backbone`` (the committed one keeps the plain
    name): its ``choice`` is FedLPA's discovery setting on that backbone."""
    stem = DISCOVERY_STUDY.removesuffix(".json")
    return f"{stem}.{ext}" if backbone == COMMITTED_BACKBONE else f"{stem}_{backbone}.{ext}"


def read_json(path: str) -> dict:
    """A results file as a dict; a missing or unreadable file is a :class:`LabError` naming it."""
    try:
        with open(path) as f:
            d = json.load(f)
    except FileNotFoundError:
        raise LabError(f"{os.path.relpath(path, repo_root())} is not computed yet") from None
    except (OSError, ValueError) as e:
        raise LabError(f"{os.path.relpath(path, repo_root())} could not be read ({e})") from None
    if not isinstance(d, dict):
        raise LabError(f"{os.path.relpath(path, repo_root())} is not a results object")
    return d


def _num(v) -> float:
    if isinstance(v, str):
        return float("inf") if v == "inf" else float(v)
    return float(v)


# --------------------------------------------------------------------------------------------------------
# FedLPA vs the best federated baseline
# --------------------------------------------------------------------------------------------------------

def gcd_headline(summary: dict, alpha: float = 0.1) -> dict:
    """FedLPA's All accuracy against the best federated baseline at ``alpha``.

    ``summary``: the ``gcd_summary.json`` object (``rows``: label, method, alpha, federated, acc_* stats;
    ``paired``: alpha, vs, seeds, diff). FedLPA's row is the ``fedlpa`` row whose label every FedLPA variant
    extends ("FedLPA" vs "FedLPA, oracle prior"); the best federated baseline is the federated row of any
    other method with the highest mean All at ``alpha``. ``diff`` is the paired per-seed difference
    FedLPA − baseline when the file has it, else None.

    Returns ``{"alpha", "fedlpa": row, "baseline": row, "diff": stats | None, "seeds": [...]}`` where a row is
    the file's row (``label``, ``acc_all``: {mean, std, n, values}, ...)."""
    rows = [r for r in summary.get("rows", []) if math.isclose(_num(r.get("alpha", math.nan)), alpha)]
    if not rows:
        raise LabError(f"no rows at alpha={alpha:g} in the GCD summary")
    ours = [r for r in rows if r.get("method") == FEDLPA]
    if not ours:
        raise LabError(f"no FedLPA row at alpha={alpha:g} in the GCD summary")
    main = min(ours, key=lambda r: len(r["label"]))
    others = [r for r in rows if r.get("federated") and r.get("method") != FEDLPA]
    if not others:
        raise LabError(f"no federated baseline at alpha={alpha:g} in the GCD summary")
    best = max(others, key=lambda r: r["acc_all"]["mean"])
    diff = None
    for p in summary.get("paired", []):
        if p.get("vs") == best["label"] and math.isclose(_num(p.get("alpha", math.nan)), alpha):
            diff = dict(p["diff"], seeds=p.get("seeds"))
    return {"alpha": alpha, "fedlpa": main, "baseline": best, "diff": diff, "seeds": main.get("seeds")}


# --------------------------------------------------------------------------------------------------------
# ULS vs ELS at one epsilon
# --------------------------------------------------------------------------------------------------------

def dp_file(results_dir: str = RESULTS_DIR) -> str:
    """The privacy results file the headline reads: the tuned curve when it exists, else the first sweep."""
    for name in DP_FILES:
        p = os.path.join(results_dir, name)
        if os.path.exists(p):
            return p
    return os.path.join(results_dir, DP_FILES[-1])


def headline_epsilon(pu: dict) -> float:
    """The ε the headline quotes, by a rule blind to the losses: among the finite ε that both ELS and ULS
    have, those with the most seeds; of these, the middle one (the lower of two middles)."""
    seen = {}
    for r in pu.get("summary", []):
        e = _num(r["epsilon"])
        if math.isfinite(e) and r.get("algo") in ("els", "uls"):
            seen.setdefault(e, {})[r["algo"]] = int(r.get("n", 1))
    both = {e: min(v.values()) for e, v in seen.items() if len(v) == 2}
    if not both:
        raise LabError("the privacy results have no finite epsilon with both ELS and ULS")
    most = max(both.values())
    eps = sorted(e for e, n in both.items() if n == most)
    return eps[(len(eps) - 1) // 2]


def dp_headline(pu: dict, epsilon: float | None = None) -> dict:
    """ULS vs ELS held-out loss (nats per character, lower is better) at ``epsilon`` (default
    :func:`headline_epsilon`). ``diff`` = ULS − ELS: the file's paired per-seed statistics when it has them
    (``paired``), else the difference of the two means (``paired: False``)."""
    eps = headline_epsilon(pu) if epsilon is None else float(epsilon)
    rows = {r["algo"]: r for r in pu.get("summary", []) if math.isclose(_num(r["epsilon"]), eps)}
    if "els" not in rows or "uls" not in rows:
        raise LabError(f"the privacy results have no ELS and ULS rows at epsilon={eps:g}")
    diff = None
    for p in pu.get("paired", []) or []:
        if math.isclose(_num(p["epsilon"]), eps):
            diff = dict(p["diff"], seeds=p.get("seeds"), paired=True)
    if diff is None:
        diff = {"mean": rows["uls"]["mean"] - rows["els"]["mean"], "paired": False}
    return {"epsilon": eps, "els": rows["els"], "uls": rows["uls"], "diff": diff,
            "delta": pu.get("delta"), "bound": pu.get("bound")}


def headlines(results_dir: str = RESULTS_DIR, alpha: float = 0.1) -> dict:
    """Both headline numbers with the files they came from; a missing file gives ``{"error": message}``."""
    out = {}
    for key, path, fn in (("gcd", os.path.join(results_dir, GCD_SUMMARY), lambda d: gcd_headline(d, alpha)),
                          ("dp", dp_file(results_dir), dp_headline)):
        try:
            out[key] = dict(fn(read_json(path)), source=os.path.relpath(path, repo_root()))
        except (LabError, KeyError, TypeError, ValueError) as e:
            out[key] = {"error": str(e), "source": os.path.relpath(path, repo_root())}
    return out


# --------------------------------------------------------------------------------------------------------
# Accuracy against alpha
# --------------------------------------------------------------------------------------------------------

def alpha_curve(curve: dict) -> list:
    """Per (method, α): mean, std, min and max over seeds of All / Old / New / test All, plus the per-client
    accuracies of every seed (``clients``: dicts with seed, client, acc, size, k_true). Sorted by method
    order of appearance, then α."""
    groups = {}
    for p in curve.get("points", []):
        groups.setdefault((p["method"], float(p["alpha"])), []).append(p)
    order = list(dict.fromkeys(m for m, _ in groups))
    out = []
    for (m, a), ps in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        row = {"method": m, "display_name": ps[0].get("display_name", m), "alpha": a,
               "seeds": [p["seed"] for p in ps]}
        for k in ACC_KEYS:
            v = np.array([p[k] for p in ps if p.get(k) is not None], float)
            row[k] = ({"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()),
                       "n": int(len(v))} if len(v) else None)
        clients = []
        for p in ps:
            accs = p.get("per_client_acc") or []
            sizes = p.get("client_sizes") or [None] * len(accs)
            ks = p.get("k_true") or [None] * len(accs)
            clients += [{"seed": p["seed"], "client": i, "acc": float(acc), "size": s, "k_true": k}
                        for i, (acc, s, k) in enumerate(zip(accs, sizes, ks)) if acc is not None and acc == acc]
        row["clients"] = clients
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------------------
# The oracle's lead taken apart: each run's prior against the oracle's
# --------------------------------------------------------------------------------------------------------

def masses_rows(masses: dict, seed_study: dict | None, kind: str = "r6", seeds: str = "evaluation") -> list:
    """One row per (run, α): mean KL(oracle || pi) over all heads, on the heads the client holds and on its
    new heads only (``bench/discovery_study.py --stage masses``, model ``kind``, clients of the ``seeds`` set),
    and that run's All (mean, seeds) in ``seed_study`` (``gcd_summary.json``; None where it has not run).
    Run labels are the seed study's without its "FedLPA, " prefix."""
    acc = {}
    for e in (seed_study or {}).get("alphas", []):
        for label, v in {**e["all"], **e.get("parts_all", {})}.items():
            acc[(label.removeprefix("FedLPA, "), float(e["alpha"]))] = (v["mean"], len(e["seeds"]))
    rows = []
    for a, by_ss in masses.get(kind, {}).items():
        for label, kl in by_ss[seeds]["kl"].items():
            run = acc.get((label, float(a)))
            rows.append({"run": label, "alpha": float(a), "kl_all": kl["all"], "kl_held": kl["held"],
                         "kl_held_new": kl["held_new"], "acc_all": run[0] if run else None,
                         "acc_seeds": run[1] if run else 0})
    return rows


#: the studies that searched FedLPA's discovery settings on its own first discoveries (``bench/markov_merge.py``,
#: ``bench/discovery_knobs.py``, ``bench/coarse_route.py``, ``bench/codelength_null.py``): name -> results file;
#: rows: :func:`k_hat_frontier_rows`
K_HAT_STUDIES = {"markov time × merging": "markov_merge.json",
                 "markov × merging × InfoMap restarts": "discovery_knobs_num_trials.json",
                 "markov × merging × the graph's k": "discovery_knobs_knn_k.json",
                 "markov × merging × the noise share": "discovery_knobs_min_community.json",
                 "markov × merging × the graph's anchors": "discovery_knobs_anchors.json",
                 "markov × merging × a mutual kNN graph": "discovery_knobs_mutual.json",
                 "coarse when a client counts or holds few classes": "coarse_route.json",
                 "markov time by codelength against shuffled graphs": "codelength_null.json"}


def k_hat_frontier_rows(studies: dict, seeds: str = "tuning") -> list:
    """One row per (study, setting) of the discovery-setting studies (``studies``: name -> parsed file, see
    :data:`K_HAT_STUDIES`; missing ones skipped): the share of the ``seeds`` clients with K_hat within +-1 of their
    true class count at alpha 0.1 and at alpha 1, the mean KL(oracle || pi) over both alphas, and whether it is
    FedLPA's own setting or the study's pick. Issue 9's K_hat line asks for >= 80 % at both alphas with one rule;
    the true K is read after the fact (tuning clients choose, evaluation clients only report)."""
    rows = []
    for study, res in studies.items():
        if not res:
            continue
        by = {}
        for r in res[seeds]:
            by.setdefault(r["setting"], {})[float(r["alpha"])] = r
        for setting, at in by.items():
            rows.append({"study": study, "setting": setting, "within_1_alpha_0.1": at[0.1]["within_1"],
                         "within_1_alpha_1": at[1.0]["within_1"], "kl": float(np.mean([r["kl"] for r in at.values()])),
                         "fedlpa": setting == res["default"], "pick": setting == res["pick"]["setting"]})
    return rows


def done_when_value(value, unit: str, met) -> str:
    """One Done-when cell: ``value`` in its ``unit`` ("points": All as a fraction, shown in points; "share"; "ratio")
    and its verdict; "—" where the line is not measured (``value`` None)."""
    if value is None:
        return "—"
    v = (f"{100 * value:+.1f} points" if unit == "points" else f"{value:.0%}" if unit == "share"
         else f"{value:.3f}×")
    return f"{v} ({'met' if met else 'missed'})"


def done_when_bar(bar: float, unit: str) -> str:
    """A Done-when line's bar in its unit (see :func:`done_when_value`)."""
    if unit != "points":
        return f"{bar:.0%}" if unit == "share" else f"{bar:g}×"
    p = round(100 * bar)
    return f"{p:+d} point{'' if abs(p) == 1 else 's'}" if p else "0 points"


ORACLE_COLUMN = "oracle prior in FedLPA's place"
#: the runs each Done-when line is also read with in FedLPA's place, per set of seeds: (the reading's field prefix,
#: ``"eval_seeds"`` or ``"seed_study"``) -> display column
IN_PLACE_COLUMNS = {("oracle", "eval_seeds"): ORACLE_COLUMN,
                    ("oracle", "seed_study"): "oracle prior in FedLPA's place, seed study",
                    ("central", "eval_seeds"): "centralized (pooled, not federated) in FedLPA's place",
                    ("central", "seed_study"): "centralized in FedLPA's place, seed study"}


def done_when_rows(summary: dict) -> list:
    """Issue 9's Done-when lines as ``bench/run_gcd_tables.py`` read them off its runs (``gcd_summary.json`` →
    ``done_when``), one display row each: the line, its bar, the value and verdict on the evaluation seeds, on the
    seed study's seeds ("—" where that line is not measured there), and on each set of seeds with the oracle prior's
    run and the centralized reference's run in FedLPA's place (``IN_PLACE_COLUMNS``; a column where that reading
    has the run, "—" on a line that does not apply to it): a line the oracle misses is not expected to be met by a
    better prior alone, one that pooled training misses asks more than pooling the data buys this model."""
    dw = summary.get("done_when") or {}
    more = {(x["alpha"], x["target"]): x for x in dw.get("seed_study", [])}
    rows = []
    for x in dw.get("eval_seeds", []):
        m = more.get((x["alpha"], x["target"])) or {"value": None, "met": None}
        rows.append({"α": x["alpha"], "target": x["target"], "bar": done_when_bar(x["bar"], x["unit"]),
                     "evaluation seeds": done_when_value(x["value"], x["unit"], x["met"]),
                     "seed study": done_when_value(m["value"], x["unit"], m["met"])})
    for (ref, part), column in IN_PLACE_COLUMNS.items():
        if any(f"{ref}_value" in x for x in dw.get(part, [])):
            got = {(x["alpha"], x["target"]): x for x in dw[part]}
            for r, x in zip(rows, dw["eval_seeds"]):
                c = got.get((x["alpha"], x["target"]), {})
                r[column] = done_when_value(c.get(f"{ref}_value"), x["unit"], c.get(f"{ref}_met"))
    return rows


def backbone_done_when_rows(study: dict | None) -> dict:
    """Issue 9's bar read on each backbone of one of item 7's studies (``gcd_summary.json`` → the study's
    ``done_when``, made by ``bench/run_gcd_tables.py``'s ``backbone_done_when`` off that machine's runs alone):
    backbone -> :func:`done_when_rows`, the seed study's columns named for the study's own seeds past the table's
    (``more_seeds``), which are not the seed study's."""
    more = ((study or {}).get("more_seeds") or {}).get("seeds")
    name = f"seeds {min(more)}–{max(more)}" if more else "more seeds"
    return {n: [{k.replace("seed study", name): v for k, v in r.items()} for r in done_when_rows({"done_when": read})]
            for n, read in ((study or {}).get("done_when") or {}).items()}


def heads_rows(hv: dict | None) -> list:
    """One row per (α, run) of ``bench/run_gcd_tables.py --stage heads`` (``gcd_summary.json`` →
    ``heads_vs_features``), over its evaluation seeds: All of its final models by their heads and by
    semi-supervised k-means with the true K on their pooled features (mean, std over seeds; in [0, 1]), k-means −
    heads paired per seed, the same for k-means seeded by the heads with K read off them (``head_seeded``, a
    readout needing no true K: :func:`lab.gcd.sskmeans.head_seeded_kmeans`; ``k_hat``: its cluster count; None in
    files made before it), and the re-run's All − its table run's (re-runs are bit-identical on the same machine
    only). FedAvg+GCD has no heads: its row holds its own federated k-means where the heads would be, and no
    differences."""
    if not hv:
        return []
    stat = lambda v: (float(np.mean(v)), float(np.std(v)))  # noqa: E731
    seeds = set(hv.get("eval_seeds") or {r["seed"] for r in hv["runs"]})   # the readout study's extra seeds: apart
    runs = [r for r in hv["runs"] if r["seed"] in seeds]
    gcd = [g for g in hv["gcd"] if g["seed"] in seeds]
    rows = []
    for a in sorted({r["alpha"] for r in runs} | {g["alpha"] for g in gcd}):
        labels = dict.fromkeys(r["label"] for r in runs if r["alpha"] == a)
        for label in labels:
            rs = [r for r in runs if r["alpha"] == a and r["label"] == label]
            h, k = [r["heads"]["acc_all"] for r in rs], [r["kmeans"]["acc_all"] for r in rs]
            rerun = [r["acc_all_last3"] - r["table_acc_all"] for r in rs if r.get("table_acc_all") is not None]
            hs = [r["head_seeded"]["acc_all"] for r in rs if "head_seeded" in r]
            seeded = ({"head_seeded": stat(hs), "head_seeded_minus_heads": stat(np.subtract(hs, h)),
                       "k_hat": stat([r["head_seeded"]["k_hat"] for r in rs])} if len(hs) == len(rs)
                      else dict.fromkeys(("head_seeded", "head_seeded_minus_heads", "k_hat")))
            rows.append({"alpha": a, "run": label, "seeds": len(rs), "heads": stat(h), "kmeans": stat(k),
                         "kmeans_minus_heads": stat(np.subtract(k, h)), **seeded,
                         "rerun_minus_table": stat(rerun) if rerun else None})
        g = [r for r in gcd if r["alpha"] == a]
        if g:
            rows.append({"alpha": a, "run": g[0]["label"], "seeds": len(g),
                         "heads": stat([r["federated_kmeans"]["acc_all"] for r in g]),
                         "kmeans": stat([r["pooled_kmeans"]["acc_all"] for r in g]), "kmeans_minus_heads": None,
                         "head_seeded": None, "head_seeded_minus_heads": None, "k_hat": None,
                         "rerun_minus_table": None})
    return rows


# --------------------------------------------------------------------------------------------------------
# Per-run records grouped by config
# --------------------------------------------------------------------------------------------------------

def backbone_rows(study: dict | None) -> tuple[list, list]:
    """Issue 9 item 7 (``gcd_summary.json`` → ``backbones``, made by ``bench/run_gcd_tables.py --stage summary``).
    Runs: one row per (α, backbone): each core run's All (mean, std over the evaluation seeds it has, their number;
    in [0, 1]) and FedLPA's K̂ within ±1 (share, or None). Differences: one row per paired comparison, per seed:
    FedLPA − each run and the oracle prior − each federated baseline (and − the run told the true heads, where made)
    on one backbone, each run on a new backbone − on the committed one, and the committed backbone's runs on CPU −
    on GPU (the device alone); std None over one seed (no spread measured)."""
    if not study:
        return [], []
    runs, diffs = [], []
    for e in study["alphas"]:
        for n, by in e["all"].items():
            kh = e["k_hat_within_1"].get(n)
            runs.append({"alpha": e["alpha"], "backbone": n, "k_hat_within_1": kh["share"] if kh else None,
                         "all": {label: (st["mean"], st["std"], st["n"]) for label, st in by.items()}})
        kinds = [("FedLPA − {vs}", e["fedlpa_vs"]), ("FedLPA, oracle prior − {vs}", e.get("oracle_vs", {})),
                 ("{vs}: {n} − pretrained", e["vs_committed"]),
                 ("{vs}: CPU − GPU", {"pretrained": e.get("cpu_vs_gpu", [])})]
        for what, by_backbone in kinds:
            for n, ps in by_backbone.items():
                diffs += [{"alpha": e["alpha"], "backbone": n, "difference": what.format(vs=p["vs"], n=n),
                           "mean": p["diff"]["mean"], "std": p["diff"]["std"] if p["diff"]["n"] > 1 else None,
                           "ahead": p["ahead"], "seeds": p["diff"]["n"]} for p in ps]
    return runs, diffs


def config_group(rec: dict) -> str:
    """A record's group: its config without the seed (JSON, sorted keys); records without a config fall
    back to method and α."""
    cfg = dict(rec.get("config") or {"method": rec.get("method"), "alpha": rec.get("alpha")})
    cfg.pop("seed", None)
    return json.dumps(cfg, sort_keys=True, default=str)


def run_label(rec: dict, best: dict | None = None, display_names: dict | None = None) -> str:
    """Display name + what sets this run apart from its method's tuned setting (``best``: method ->
    settings, ``gcd_tuning.json``'s ``best``): an ablation flag or a hyper-parameter off the tuned value."""
    cfg = rec.get("config") or {}
    m = rec.get("method", cfg.get("method"))
    name = rec.get("display_name") or (display_names or {}).get(m, m)
    tags = []
    if m == FEDLPA:
        from lab.gcd.methods import ablation_of   # lazily: lab.gcd imports torch, the tour's cold load does not

        tags += [t for t in [ablation_of(cfg)] if t]
    for hp, want in ((best or {}).get(m) or {}).items():
        v = cfg.get(hp)
        if v is not None and v != want:
            tags.append(f"{hp} {v:g}" if isinstance(v, float) else f"{hp} {v}")
    if rec.get("demo"):
        tags.append("demo")
    return name + (f" ({', '.join(tags)})" if tags else "")


def group_runs(records: list, best: dict | None = None, display_names: dict | None = None) -> dict:
    """label -> records of one config (all seeds), labels from :func:`run_label`; two configs that would get
    the same label are told apart by their α and then by a short config digest."""
    by_cfg = {}
    for r in records:
        by_cfg.setdefault(config_group(r), []).append(r)
    out = {}
    for key, rs in by_cfg.items():
        label = run_label(rs[0], best, display_names)
        if label in out:
            import hashlib

            label = f"{label} [{hashlib.sha256(key.encode()).hexdigest()[:6]}]"
        out[label] = sorted(rs, key=lambda r: r.get("seed", 0))
    return out
