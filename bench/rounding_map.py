"""Which rounding made each run of one of item 7's studies: every warm-up group's first rounds made again here.

A GCD run is bit-identical only on a machine that rounds as the one that made it (``lab.machine``), and the runs of
item 7's 2-core study predate the per-run record of it: their roundings were inferred from warm-up splits
(``run_gcd_tables.warmup_splits``) and four remakes (``reproduce_runs.md``). This script measures them. The runs
the study reads are grouped by warm-up (``run_gcd_tables.warmup_groups``: one config but for what FedLPA reads
after its warm-up, and the same evaluations through it; a baseline is its own group); one run per group is made
again from its record through its warm-up only (``warmup_rounds`` rounds, its config unchanged, so each evaluation
is the full run's; about a third of a run's time) in a fresh process per kernel setting of
``reproduce_runs.KERNELS``, until one setting makes it bit for bit. That setting's ``rounding`` is the group's; a
group no setting here makes was made on a machine that rounds as none of them.

    python bench/rounding_map.py [--study backbones_2core] [--seeds 0,1,2,3,4,5] [--kernels native avx2] [--workers 2]

The runs issue 9's bar reads are mapped the same way (``BAR_MAPS``): ``--study tables`` the committed runs the
Done-when reads (``gcd/``: FedLPA, the federated baselines, the oracle prior and the centralized run, seeds 0-9),
``--study replicate`` the first replicate's (``gcd_replicate/``, ``replicate_tables.py``), whose baselines are the
tables' configs; ``replicate_tables.py --roundings`` reads the bar on each rounding that holds all of its runs.

Writes ``bench/results/rounding_map_<study>.json`` after every remake (a call resumes where the last one stopped,
remakes only the seeds it is given and keeps the others' groups; a map is one machine's, so a call on a machine
that rounds otherwise than the map's refuses it) and ``.md`` from it, with each seed's runs by rounding: a paired
difference between two runs of one seed is one machine's only where both share one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replicate_tables as RT  # noqa: E402
import reproduce_runs as R  # noqa: E402
import run_gcd_tables as T  # noqa: E402

from lab.utils import check_range, write_json_atomic, write_text_atomic  # noqa: E402

#: the run-name prefixes of every method item 7's studies make
PREFIXES = ("fedlpa_", "simgcd_", "gcd_", "central_", "local_")
#: the folders of runs issue 9's bar reads, mapped as a study is: each with the fields its configs carry beside the
#: tuned ones (``replicate_tables.REPLICATES``) and whether it holds the centralized run the bar reads in FedLPA's place
BAR_MAPS = {"tables": dict(folder="gcd", fields={}, central=True),
            "replicate": dict(folder="gcd_replicate", fields=T.BEFORE_ROUTE, central=False)}


def paths(study: str) -> tuple:
    return tuple(os.path.join(T.RES, f"rounding_map_{study}{ext}") for ext in (".json", ".md"))


def folder_of(study: str) -> str:
    """The folder of runs (under ``bench/results``) that ``study`` (item 7's or ``BAR_MAPS``') names."""
    return (BAR_MAPS.get(study) or T.BACKBONE_STUDIES[study])["folder"]


def bar_names(study: str, seeds: tuple) -> dict:
    """Run name -> label of every run issue 9's bar reads (``replicate_tables.bar_configs``) that ``BAR_MAPS[study]``
    holds on ``seeds``, with the centralized run where it holds that (one per seed: alpha does not change it)."""
    spec = BAR_MAPS[study]
    return {T.run_name(c): label for (label, _, _), c in RT.bar_configs(seeds, spec["fields"], spec["central"]).items()}


def study_labels(study: str, seeds: tuple) -> dict:
    """Run name -> label of every run ``study`` reads on ``seeds`` (the study's own seeds, as its summary reads)."""
    folder = os.path.join(T.RES, folder_of(study))
    if study in BAR_MAPS:
        names = bar_names(study, seeds)
    else:
        spec = T.BACKBONE_STUDIES[study]
        names = T.backbone_labels(T.tuned_best(), False, ("pretrained", "pretrained-wide"), spec.get("labels"),
                                  T.study_more_seeds(study), spec.get("tuned", False))
    return {n: lab for n, lab in names.items() if os.path.exists(os.path.join(folder, n + ".json"))
            and json.load(open(os.path.join(folder, n + ".json")))["config"]["seed"] in seeds}


def groups(study: str, seeds: tuple) -> list:
    """The study's runs on ``seeds`` by warm-up (:func:`run_gcd_tables.warmup_groups`), each with its labels and
    the run to make again (its first by name)."""
    labels = study_labels(study, seeds)
    folder = os.path.join(T.RES, folder_of(study))
    out = []
    for key, by_warm in T.warmup_groups(folder, set(labels), PREFIXES).items():
        k = json.loads(key)
        for names in by_warm.values():
            names = sorted(names)
            out.append({"backbone": k["backbone"], "alpha": k["alpha"], "seed": k["seed"], "method": k["method"],
                        "runs": names, "labels": [labels[n] for n in names], "made_again": names[0],
                        "through": k["warmup_rounds"], "tries": []})
    return sorted(out, key=order)


def order(g: dict) -> tuple:
    return g["backbone"], g["alpha"], g["seed"], g["method"], g["runs"]


def rounding(g: dict):
    """The rounding of the kernel setting that made ``g``'s run again bit for bit (None: none yet)."""
    return next((t["machine"]["rounding"] for t in g["tries"] if t["bit_identical"]), None)


def by_run(res: dict) -> dict:
    """Run name -> (label, backbone, alpha, seed, rounding or None) of every run the map holds."""
    return {n: (lab, g["backbone"], g["alpha"], g["seed"], rounding(g)) for g in res["groups"]
            for n, lab in zip(g["runs"], g["labels"])}


def paired(res: dict, anchor: str = "FedLPA") -> list:
    """``anchor`` − each other label, paired per seed, per backbone and alpha: over every mapped seed, and over the
    seeds where both runs share a rounding (a run α does not change, the centralized one, pairs at both alphas)."""
    folder = os.path.join(T.RES, res["folder"])
    runs = {}
    for n, (lab, b, al, s, r) in by_run(res).items():
        acc = 100 * json.load(open(os.path.join(folder, n + ".json")))["acc_all"]
        for a in ({al} if lab != T.CENTRAL else {g["alpha"] for g in res["groups"]}):
            runs[(lab, b, a, s)] = (acc, r)
    out = []
    for b, al in sorted({(b, a) for _, b, a, _ in runs}):
        for lab in sorted({lab for lab, bb, a, _ in runs if (bb, a) == (b, al) and lab != anchor}):
            pairs = [(s, runs[(anchor, b, al, s)], runs[(lab, b, al, s)]) for s in res["seeds"]
                     if (anchor, b, al, s) in runs and (lab, b, al, s) in runs]
            one = [x[0] - y[0] for _, x, y in pairs if x[1] is not None and x[1] == y[1]]
            out.append({"backbone": b, "alpha": al, "other": lab, "n": len(pairs),
                        "all": float(np.mean([x[0] - y[0] for _, x, y in pairs])) if pairs else None,
                        "n_one": len(one), "one": float(np.mean(one)) if one else None,
                        "seeds_one": [s for s, x, y in pairs if x[1] is not None and x[1] == y[1]]})
    return out


def resume(fresh: list, old: dict | None, here: str) -> list:
    """``fresh`` groups with the tries an earlier call on a machine of rounding ``here`` made of the same run."""
    tried = {g["made_again"]: g["tries"] for g in (old or {}).get("groups", []) if g.get("made_on") == here}
    return [{**g, "tries": tried.get(g["made_again"], [])} for g in fresh]


def merged(fresh: list, old: dict | None, seeds: tuple, here: str) -> tuple:
    """(seeds, groups) of the map after a call on ``seeds``: ``fresh`` (resumed, made on ``here``) for those seeds,
    and an earlier call's groups of every other seed kept as they were, so that a map grows seed by seed."""
    kept = [g for g in (old or {}).get("groups", []) if g["seed"] not in seeds]
    made = [{**g, "made_on": here} for g in resume(fresh, old, here)]
    return sorted(set(seeds) | {g["seed"] for g in kept}), sorted(kept + made, key=order)


def cells(res: dict) -> list:
    """Per backbone, alpha and seed: its groups' roundings, and whether every run there shares one."""
    by = {}
    for g in res["groups"]:
        by.setdefault((g["backbone"], g["alpha"], g["seed"]), []).append(g)
    out = []
    for (b, al, s), gs in sorted(by.items()):
        fps = {rounding(g) for g in gs}
        out.append({"backbone": b, "alpha": al, "seed": s, "groups": gs,
                    "one_rounding": len(fps) == 1 and None not in fps,
                    "mapped": all(g["tries"] for g in gs)})
    return out


def lines(res: dict) -> list:
    fp = res.get("kernel_roundings", {})
    out = [f"# Which rounding made each run of `{res['folder']}`", "",
           "Made by `bench/rounding_map.py` (its docstring says how) on "
           f"{res['machine']['cpu']} ({res['machine']['cores']} cores, torch {res['machine']['torch']}), whose "
           "kernel settings round as: " + ", ".join(f"{k} `{r}`" for k, r in fp.items()) + ". "
           f"Seeds {', '.join(map(str, res['seeds']))}. Each group's first run by name was made again through its "
           "warm-up; a group is bit for bit under at most one setting (\"none of those tried\": under none of the "
           "settings tried). The centralized run, which α does not change, is listed under α 0.1 and paired at "
           "both.", ""]
    cs = cells(res)
    mapped = [c for c in cs if c["mapped"]]
    one = [c for c in mapped if c["one_rounding"]]
    n_runs = sum(len(g["runs"]) for c in mapped for g in c["groups"])
    found = {}
    for c in mapped:
        for g in c["groups"]:
            r = rounding(g) or "none of those tried"
            found[r] = found.get(r, 0) + len(g["runs"])
    out += [f"**{len(mapped)} of {len(cs)} cells mapped** ({n_runs} runs, "
            + ", ".join(f"`{r}`: {n}" for r, n in sorted(found.items())) + f"); **{len(one)} of them on one "
            "rounding**, where every paired difference of that seed is one machine's.", "",
            "| backbone | α | seed | runs: rounding (made again: kernels, s) |", "|---|---|---|---|"]
    for c in cs:
        parts = []
        for g in c["groups"]:
            r = rounding(g)
            t = g["tries"][-1] if g["tries"] else None
            how = (f"{t['kernels']}, {t['seconds']:.0f} s" if t and r else "not yet made again" if not t else
                   "not bit for bit under " + " or ".join(x["kernels"] for x in g["tries"]))
            parts.append(f"{' / '.join(g['labels'])}: `{r or '—'}` ({how})")
        out.append(f"| {c['backbone']} | {c['alpha']:g} | {c['seed']} | " + "; ".join(parts) + " |")
    fmt = lambda v: "—" if v is None else f"{v:+.1f}"  # noqa: E731
    out += ["", "## FedLPA − each other run, paired per seed: over every seed, and over the seeds where both share "
            "a rounding", "", "Only the second is one machine's difference; a seed whose two runs round apart "
            "carries the machines' difference too.", "",
            "| backbone | α | FedLPA − | seeds | mean | seeds on one rounding | mean there |",
            "|---|---|---|---|---|---|---|"]
    out += [f"| {p['backbone']} | {p['alpha']:g} | {p['other']} | {p['n']} | {fmt(p['all'])} | {p['n_one']} "
            f"({', '.join(map(str, p['seeds_one'])) or 'none'}) | {fmt(p['one'])} |" for p in paired(res)]
    return out + [""]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="backbones_2core", choices=[k for k, v in T.BACKBONE_STUDIES.items()
                                                                   if v.get("labels")] + list(BAR_MAPS),
                    help="item 7's study whose runs to map (its runs name their labels), or the runs issue 9's bar "
                         "reads (tables: gcd/; replicate: gcd_replicate/)")
    ap.add_argument("--seeds", default="0,1,2,3,4,5", help="comma-separated seeds of the study to map")
    ap.add_argument("--kernels", nargs="+", choices=list(R.KERNELS), default=["native", "avx2"],
                    help="kernel settings to try, in order, until one makes a group's run bit for bit")
    ap.add_argument("--workers", type=int, default=2, help="runs made at once, 1-64")
    a = ap.parse_args(argv)
    try:
        check_range("--workers", a.workers, 1, 64, integer=True)
        seeds = tuple(int(s) for s in a.seeds.split(","))
    except ValueError as e:
        ap.error(str(e) if "--workers" in str(e) else f"--seeds: comma-separated integers, got {a.seeds!r}")
    from lab.machine import machine

    jpath, mpath = paths(a.study)
    here = machine()
    fresh = groups(a.study, seeds)
    if not fresh:
        ap.error(f"--seeds: {a.study} has no run on seeds {a.seeds}")
    old = json.load(open(jpath)) if os.path.exists(jpath) else None
    if old and old["machine"]["rounding"] != here["rounding"]:
        # a map is one machine's: its tries name kernel settings, which round otherwise on another CPU, and this
        # call would replace the seeds it is given (or, for the others, head their groups with this machine's name)
        ap.error(f"--study: {os.path.relpath(jpath)} was made on {old['machine']['cpu']}, native rounding "
                 f"{old['machine']['rounding']}; this machine rounds as {here['rounding']}. Extend it on a machine "
                 "that rounds as the map's, or move the map aside to start this machine's own")
    all_seeds, all_groups = merged(fresh, old, seeds, here["rounding"])
    res = {"what": "each warm-up group's run made again through its warm-up, per kernel setting, until bit for bit",
           "study": a.study, "folder": folder_of(a.study), "seeds": all_seeds, "machine": here,
           "kernel_roundings": (old or {}).get("kernel_roundings", {}) if (old or {}).get("machine") == here else {},
           "groups": all_groups}

    def save():
        for g in res["groups"]:        # stored, so that the summary reads it without this module
            g["rounding"] = rounding(g)
        write_json_atomic(jpath, res)
        write_text_atomic(mpath, "\n".join(lines(res)))

    for k in a.kernels:
        todo = [g for g in res["groups"] if g["seed"] in seeds and rounding(g) is None
                and k not in {t["kernels"] for t in g["tries"]}]
        with ThreadPoolExecutor(a.workers) as ex, tqdm(total=len(todo), desc=f"warm-ups made again ({k})",
                                                       unit="run") as bar:
            futs = {ex.submit(R.remake, R.record_path(os.path.join(res["folder"], g["made_again"])), k,
                              g["through"]): g for g in todo}
            for f in as_completed(futs):
                g, e = futs[f], f.result()
                g["tries"].append({k2: e[k2] for k2 in ("kernels", "machine", "bit_identical", "first_round_apart",
                                                        "seconds")})
                res["kernel_roundings"][k] = e["machine"]["rounding"]
                save()
                bar.update()
    save()
    print("\n".join(lines(res)[:5]))


if __name__ == "__main__":
    main()
