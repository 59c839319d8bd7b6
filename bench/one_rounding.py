"""Item 7's 2-core study read on one rounding: each run its rounding map puts on another rounding than FedLPA's of the
same cell, made again in full under the kernel setting that rounds as FedLPA did.

``bench/rounding_map.py`` measured which rounding made each run of the study (``rounding_map_<study>.json``): most
cells pair FedLPA with runs made on a CPU that rounds another way, and one run can move by points of All between two
roundings (``reproduce_runs.md``). This script makes those runs again, each from its recorded config (nothing chosen
anew), in a fresh process under the kernel setting (``reproduce_runs.KERNELS``) that rounded as the cell's FedLPA
(``kernel_roundings`` of the map, checked again on the remake's own record: a remake that rounds otherwise is an
error, not a result). The committed runs are not replaced: the remakes go to
``bench/results/<folder>_one_rounding/<rounding>/`` under their own names, each recording its machine.

    python bench/one_rounding.py [--study backbones_2core] [--workers 2]

A call makes only the runs not made yet (resumable) and writes ``bench/results/one_rounding_<study>.json``/``.md``:
per backbone, α and label, the paired difference FedLPA − it over the mapped seeds, every pair on FedLPA's rounding
(the committed run where it already was, the remake otherwise), beside the same pairs as committed; the oracle's lead
split (true heads, then true masses) on that rounding; and how far each remake moved from its committed run.
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
import reproduce_runs as R  # noqa: E402
import rounding_map as M  # noqa: E402
import run_gcd_tables as T  # noqa: E402

from lab.utils import check_range, write_json_atomic, write_text_atomic  # noqa: E402

FEDLPA = T.DISPLAY_NAMES["fedlpa"]
#: what each split of the oracle's lead is (the other pairs of ``run_gcd_tables.IN_PLACE_PAIRS`` read as x − y)
SPLIT_NAMES = {(T.ORACLE_HEADS, FEDLPA): "true heads and K (oracle heads − FedLPA)",
               (T.ORACLE, T.ORACLE_HEADS): "true masses on them (oracle prior − oracle heads)"}
#: differences read beside FedLPA − each run: issue 9's lines with the oracle prior or the centralized run in FedLPA's
#: place, and the oracle's lead split in two
OTHERS = tuple((x, y, SPLIT_NAMES.get((x, y), f"{x} − {y}")) for x, y in T.IN_PLACE_PAIRS)


def paths(study: str) -> tuple:
    return tuple(os.path.join(T.RES, f"one_rounding_{study}{ext}") for ext in (".json", ".md"))


def remake_dir(folder: str, rounding: str) -> str:
    return os.path.join(T.RES, f"{folder}_one_rounding", rounding)


def targets(rmap: dict) -> dict:
    """(backbone, alpha, seed) -> the rounding of that cell's FedLPA runs (a cell whose FedLPA runs round apart, or
    are not mapped, has none: nothing there is one machine's to pair with)."""
    by = {}
    for g in rmap["groups"]:
        if FEDLPA in g["labels"]:
            by.setdefault((g["backbone"], g["alpha"], g["seed"]), set()).add(g["rounding"])
    return {c: next(iter(r)) for c, r in by.items() if len(r) == 1 and None not in r}


def runs_at(rmap: dict) -> dict:
    """(backbone, alpha, seed, label) -> (run name, its rounding) of every mapped run; the centralized run, which
    alpha does not change (mapped under the first), stands at every alpha of its seed."""
    alphas = sorted({g["alpha"] for g in rmap["groups"]})
    out = {}
    for g in rmap["groups"]:
        for n, label in zip(g["runs"], g["labels"]):
            for a in (alphas if label == T.CENTRAL else [g["alpha"]]):
                out[(g["backbone"], a, g["seed"], label)] = (n, g["rounding"])
    return out


def todo(rmap: dict) -> list:
    """The runs to make again: (run name, rounding to make it on, kernel setting that rounds so here), one per run
    and rounding, for every run mapped on another rounding than a cell's FedLPA it pairs with."""
    setting, tg = {r: k for k, r in rmap["kernel_roundings"].items()}, targets(rmap)
    want = {}
    for (b, a, s, _), (n, r) in runs_at(rmap).items():
        t = tg.get((b, a, s))
        if t is not None and r != t:
            want[(n, t)] = setting.get(t)
    return sorted((n, t, k) for (n, t), k in want.items())


def acc(path: str) -> float:
    return 100 * json.load(open(path))["acc_all"]


def on_rounding(rmap: dict, made: dict) -> dict:
    """(backbone, alpha, seed) -> {label: All} of every run there on the cell's FedLPA rounding: the committed run
    where it has it, else its remake (``made``: (run, rounding) -> record path) where made."""
    folder = os.path.join(T.RES, rmap["folder"])
    tg, out = targets(rmap), {}
    for (b, a, s, label), (n, r) in runs_at(rmap).items():
        t = tg.get((b, a, s))
        path = (os.path.join(folder, n + ".json") if r == t and t is not None else made.get((n, t)))
        if path:
            out.setdefault((b, a, s), {})[label] = acc(path)
    return out


def committed(rmap: dict) -> dict:
    """The same cells as :func:`on_rounding`, every run as committed, whatever its rounding."""
    folder = os.path.join(T.RES, rmap["folder"])
    out = {}
    for (b, a, s, label), (n, _) in runs_at(rmap).items():
        out.setdefault((b, a, s), {})[label] = acc(os.path.join(folder, n + ".json"))
    return out


def _at(cells: dict, b: str, a: float, label: str) -> dict:
    """seed -> ``label``'s All at (b, a), on the seeds ``cells`` has it."""
    return {s: c[label] for (bb, aa, s), c in sorted(cells.items()) if (bb, aa) == (b, a) and label in c}


def _pair(cells: dict, b: str, a: float, x: str, y: str) -> tuple:
    """(the seeds both x and y have at (b, a), ``run_gcd_tables._paired`` of x − y on them or None)."""
    xs, ys = _at(cells, b, a, x), _at(cells, b, a, y)
    common = [s for s in xs if s in ys]
    return common, (T._paired(xs, ys, common, y) if common else None)


def pair(cells: dict, b: str, a: float, x: str, y: str) -> dict | None:
    """x − y per seed where both are in ``cells`` at (b, a): seeds, mean, population std, seeds x is ahead."""
    common, p = _pair(cells, b, a, x, y)
    return p and {"seeds": common, "per_seed": [round(v, 2) for v in p["diff"]["values"]],
                  "mean": p["diff"]["mean"], "std": p["diff"]["std"], "ahead": p["ahead"]}


def stats(cells: dict, b: str, a: float, label: str) -> dict | None:
    """``label``'s All at (b, a) over the seeds ``cells`` has it: seeds, mean, population std."""
    v = _at(cells, b, a, label)
    return {"seeds": list(v), **{k: T._stats(list(v.values()))[k] for k in ("mean", "std")}} if v else None


def ratio(cells: dict, b: str, a: float) -> dict | None:
    """FedLPA's mean All over the oracle prior's, on the seeds both have (issue 9's "≥ 0.9 × the oracle")."""
    common, p = _pair(cells, b, a, FEDLPA, T.ORACLE)
    return p and {"seeds": common, "ratio": p["ratio_to"]}


def reading(rmap: dict, made: dict) -> dict:
    one, mixed = on_rounding(rmap, made), committed(rmap)
    rows, means = [], []
    for b, a in sorted({(b, a) for b, a, _ in mixed}):
        labels = sorted({label for (bb, aa, _), v in mixed.items() if (bb, aa) == (b, a) for label in v})
        for x, y, what in [(FEDLPA, label, f"FedLPA − {label}") for label in labels if label != FEDLPA] + list(OTHERS):
            rows.append({"backbone": b, "alpha": a, "what": what, "x": x, "y": y,
                         "one_rounding": pair(one, b, a, x, y), "committed": pair(mixed, b, a, x, y)})
        means += [{"backbone": b, "alpha": a, "label": label, "one_rounding": stats(one, b, a, label),
                   "committed": stats(mixed, b, a, label)} for label in labels]
        means.append({"backbone": b, "alpha": a, "label": "FedLPA / oracle prior", "one_rounding": ratio(one, b, a),
                      "committed": ratio(mixed, b, a)})
    return {"rows": [r for r in rows if r["committed"]], "means": [m for m in means if m["committed"]]}


def fmt(p: dict | None) -> str:
    return "—" if p is None else (f"{p['mean']:+.1f} ± {p['std']:.1f} ({p['ahead']}/{len(p['seeds'])} ahead; seeds "
                                  + ", ".join(map(str, p["seeds"])) + ")")


def mean(m: dict | None) -> str:
    if m is None:
        return "—"
    seeds = f" (seeds {', '.join(map(str, m['seeds']))})"
    return (f"{m['ratio']:.3f}×" if "ratio" in m else f"{m['mean']:.1f} ± {m['std']:.1f}") + seeds


def lines(res: dict) -> list:
    n_made = sum(1 for m in res["made"] if m.get("acc_all") is not None)
    out = [f"# `{res['folder']}` read on one rounding", "",
           "Made by `bench/one_rounding.py` (its docstring says how) on "
           f"{res['machine']['cpu']} ({res['machine']['cores']} cores, torch {res['machine']['torch']}). The rounding "
           f"map (`rounding_map_{res['study']}.md`) puts {len(res['made'])} runs on another rounding than a FedLPA "
           f"they pair with; **{n_made} of them made again** in full from their recorded configs under the kernel "
           "setting that rounds as that FedLPA (each remake's own record checked to round so). The committed runs "
           "stay as they are; the remakes are in "
           f"`{res['folder']}_one_rounding/`. Seeds {', '.join(map(str, res['seeds']))}; All in points, paired per "
           "seed, mean ± population std.", "",
           "| backbone | α | difference | on FedLPA's rounding | as committed (two roundings where the map says) |",
           "|---|---|---|---|---|"]
    out += [f"| {r['backbone']} | {r['alpha']:g} | {r['what']} | {fmt(r['one_rounding'])} | {fmt(r['committed'])} |"
            for r in res["reading"]["rows"]]
    out += ["", "Each run's All (the ratio: FedLPA's mean over the oracle prior's, on the seeds both have):", "",
            "| backbone | α | run | on FedLPA's rounding | as committed |", "|---|---|---|---|---|"]
    out += [f"| {m['backbone']} | {m['alpha']:g} | {m['label']} | {mean(m['one_rounding'])} | {mean(m['committed'])} |"
            for m in res["reading"]["means"]]
    moved = [m for m in res["made"] if m.get("acc_all") is not None]
    if moved:
        d = np.array([m["acc_all"] - m["committed_acc_all"] for m in moved]) * 100
        out += ["", f"How far a run moves between the two roundings (remake − committed All, {len(d)} runs): mean "
                    f"|Δ| {np.abs(d).mean():.2f} points, at most {np.abs(d).max():.2f}; "
                    f"{int((d == 0).sum())} equal; first round apart: "
                    + ", ".join(f"{k} ({v})" for k, v in sorted(
                        {str(r): sum(m["first_round_apart"] == r for m in moved)
                         for r in {m["first_round_apart"] for m in moved}}.items())) + ".", "",
                "| run | label | made on | committed All | remake All | first round apart | s |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| `{m['run']}` | {m['label']} | `{m['rounding']}` ({m['kernels']}) | "
                f"{100 * m['committed_acc_all']:.2f} | {100 * m['acc_all']:.2f} | {m['first_round_apart'] or '—'} | "
                f"{m['seconds']} |" for m in moved]
    return out + [""]


def found(committed_path: str, made_path: str, rounding: str) -> dict:
    """A remake already made (a call resumes from the records it finds): its All, the committed run's, the first round
    the two part and its seconds; All None where there is none on ``rounding``."""
    if not os.path.exists(made_path):
        return {"acc_all": None}
    made, ref = json.load(open(made_path)), json.load(open(committed_path))
    if made["machine"]["rounding"] != rounding:
        raise SystemExit(f"{made_path} rounds as {made['machine']['rounding']}, not {rounding}: remove it")
    return {"acc_all": made["acc_all"], "committed_acc_all": ref["acc_all"],
            "first_round_apart": T.first_round_apart(made, ref), "seconds": round(made["seconds"], 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="backbones_2core",
                    choices=[s for s in T.BACKBONE_STUDIES if os.path.exists(M.paths(s)[0])],
                    help="item 7's study to read on one rounding (one bench/rounding_map.py has mapped)")
    ap.add_argument("--workers", type=int, default=2, help="runs made at once, 1-64")
    a = ap.parse_args(argv)
    try:
        check_range("--workers", a.workers, 1, 64, integer=True)
    except ValueError as e:
        ap.error(str(e))
    from lab.machine import machine

    rmap = json.load(open(M.paths(a.study)[0]))
    jobs = todo(rmap)
    if missing := sorted({t for _, t, k in jobs if k is None}):
        ap.error(f"--study: FedLPA's rounding {', '.join(missing)} is none of this map's kernel settings "
                 f"({rmap['kernel_roundings']}): make the runs on a machine that rounds so")
    jpath, mpath = paths(a.study)
    label = {n: lab for (_, _, _, lab), (n, _) in runs_at(rmap).items()}
    backbone = {n: b for (b, _, _, _), (n, _) in runs_at(rmap).items()}
    res = {"what": "runs of another rounding than their cell's FedLPA made again on FedLPA's", "study": a.study,
           "folder": rmap["folder"], "seeds": rmap["seeds"], "machine": machine(),
           "made": [{"run": n, "label": label[n], "rounding": t, "kernels": k,
                     **found(os.path.join(T.RES, rmap["folder"], n + ".json"),
                             os.path.join(remake_dir(rmap["folder"], t), n + ".json"), t)} for n, t, k in jobs]}

    def save():
        made = {(m["run"], m["rounding"]): os.path.join(remake_dir(res["folder"], m["rounding"]), m["run"] + ".json")
                for m in res["made"] if m["acc_all"] is not None}
        res["reading"] = reading(rmap, made)
        write_json_atomic(jpath, res)
        write_text_atomic(mpath, "\n".join(lines(res)))

    # the wide backbone's runs first: they take about three times as long, and two workers should end together
    left = sorted((m for m in res["made"] if m["acc_all"] is None), key=lambda m: backbone[m["run"]] == "pretrained")
    with ThreadPoolExecutor(a.workers) as ex, tqdm(total=len(left), desc="runs made on FedLPA's rounding",
                                                   unit="run") as bar:
        futs = {}
        for m in left:
            os.makedirs(remake_dir(res["folder"], m["rounding"]), exist_ok=True)
            futs[ex.submit(R.remake, R.record_path(os.path.join(res["folder"], m["run"])), m["kernels"], None,
                           remake_dir(res["folder"], m["rounding"]))] = m
        for f in as_completed(futs):
            m, e = futs[f], f.result()
            if e["machine"]["rounding"] != m["rounding"]:
                os.remove(os.path.join(remake_dir(res["folder"], m["rounding"]), m["run"] + ".json"))
                raise SystemExit(f"{m['run']}: made under {m['kernels']} it rounds as {e['machine']['rounding']}, "
                                 f"not {m['rounding']}: this machine's settings round otherwise than the map's")
            m.update({k: e[k] for k in ("acc_all", "committed_acc_all", "first_round_apart", "seconds")})
            save()
            bar.update()
    save()
    print("\n".join(lines(res)[:4]))


if __name__ == "__main__":
    main()
