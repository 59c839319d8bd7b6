"""Issue 9: the Done-when re-made on one machine. 2-core CPU, about 35 minutes.

The Done-when lines are read off the tables' runs (``bench/results/gcd/``, evaluation seeds 0-2): FedLPA, the two
federated baselines and the oracle prior, each at its tuned setting. Those runs were made over several sessions, and a
run is bit-identical only on the machine and thread count it was made on (``oracle_mapping.md``: the same config on
another CPU ends a point or more away; ``run_gcd_tables.warmup_splits`` finds no FedLPA pair there that trained one
warm-up on two machines, but a baseline cannot be checked that way, and none of the tables' baseline runs this
script re-made equals its committed run). So each Done-when number may pair runs of different machines, and every
number carries the rounding of the machine it was made on.

This script makes the same runs again (same configs, same seeds, nothing chosen: FedLPA, the two federated baselines
and the oracle prior, both alphas, the seed study's seeds 0-9, the tables' 0-2 among them; 80 runs) on one machine,
into ``bench/results/gcd_replicate/`` with that machine recorded, and reads the Done-when off them beside the
committed reading, on the evaluation seeds (the issue's bar) and on the seed study's: how far each run moves, and
whether a verdict depends on the machine. The tables stay as committed (the
protocol reports one set of runs); this is a replicate that says how much of each line is rounding. It replicates the
tables as they were before FedLPA's coarse route became its default (``run_gcd_tables.BEFORE_ROUTE``): the tables'
FedLPA and oracle runs have been made since with the route, on this script's machine (``bench/coarse_route.py``
reads the Done-when off them and this replicate's baselines).

What it found (``replicate_tables.md``): FedAvg+SimGCD barely moves (hundredths of a point); FedAvg+GCD moves most
(its k-means turns rounding into other clusterings), then the oracle prior and FedLPA (InfoMap and the mapping are
discrete steps too). No verdict on the evaluation seeds changes; on the seed study's seeds the "0.9 x the oracle
prior" line lies within the machines' rounding (met on one set, missed on the other).

``--tables now`` makes the tables as they are (FedLPA and its oracle with the route; the baselines' configs are the
same in both) again, into ``bench/results/gcd_replicate_now/``, and reads them beside the committed runs the summary
reads. Its column "bit for bit" says which committed runs were made on a machine that rounds as the replicate's
(``reproduce_runs.py`` found the tables' FedLPA made on an Intel Xeon and their baselines on an AMD EPYC), so that
on such a machine the replicate reads the issue's bar with FedLPA paired to the committed baselines on one rounding.

``--roundings`` makes no run: it reads the bar on each rounding that holds every run the bar reads, gathered from
the committed tables, both replicates and item 7's studies that made some of the same configs (``ROUNDING_SOURCES``),
each run's rounding as measured: by ``rounding_map.py``'s maps (``--study tables``, ``--study replicate``, item 7's
studies), by ``reproduce_runs.py``'s rows that made a run again bit for bit on any machine (so a run another CPU
makes again there joins its rounding), or by the run's own record where it has one. A replicate is one machine's
set; such a set is one rounding's, whichever session made each run, and sets of two roundings say how much of a
verdict is the machine's.

    python bench/replicate_tables.py --workers 2
    python bench/replicate_tables.py --tables now --workers 2
    python bench/replicate_tables.py --roundings

Writes ``bench/results/replicate_tables[_now|_roundings].json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reproduce_runs as R  # noqa: E402
import run_gcd_tables as T  # noqa: E402

from lab.results import done_when_bar, done_when_value  # noqa: E402
from lab.utils import check_range, write_json_atomic, write_text_atomic  # noqa: E402

#: which tables a replicate makes again: the fields its configs carry beside the tuned ones, its folder of runs,
#: its report's name, and what its committed side is. ``before_route``: the tables before FedLPA's coarse route (the
#: first replicate); ``now``: the tables as they are, FedLPA with the route (the same runs, the same reading)
REPLICATES = {
    "before_route": dict(fields=T.BEFORE_ROUTE, run_dir="gcd_replicate", name="replicate_tables",
                         committed=f"the tables' before FedLPA's coarse route (`gcd/`'s; FedLPA's and the oracle's "
                                   f"in `{T.BEFORE_ROUTE_DIR}/`)"),
    "now": dict(fields={}, run_dir="gcd_replicate_now", name="replicate_tables_now",
                committed="the tables' as they are (`gcd/`'s, FedLPA with its coarse route)"),
}


def paths(which: str = "before_route") -> tuple:
    """The replicate ``which``'s folder of runs, its JSON and its md."""
    r = REPLICATES[which]
    return (os.path.join(T.RES, r["run_dir"]), *(os.path.join(T.RES, r["name"] + ext) for ext in (".json", ".md")))


RUN_DIR, JSON, MD = paths()         # the first replicate's, which the later studies pair with
LABELS = tuple(T.SEED_CORE)          # FedLPA, the federated baselines, the oracle prior: what the Done-when reads
#: the seeds each reading is over, and whether it reads the wall ratios (the summary's two readings)
SETS = {"eval_seeds": (T.EVAL_SEEDS, True), "seed_study": (T.SEED_STUDY, False)}


def configs(seeds=T.SEED_STUDY, fields=T.BEFORE_ROUTE) -> dict:
    """(label, alpha, seed) -> the tables' config of that run, on the seed study's seeds (the evaluation seeds
    first; seed-major: a run cut short has every method). The replicate is of the tables before the coarse route
    (``fields``: ``run_gcd_tables.BEFORE_ROUTE``; ``{}``: the tables as they are now)."""
    best = T.tuned_best()
    return {(label, al, s): T.config(m, al, s, False, **best[m], **flags, **fields) for s in seeds
            for al in T.TABLE_ALPHAS for label, (m, flags) in T.SEED_CORE.items()}


def _reading(runs: dict, seeds, walls: bool = True) -> list:
    """``run_gcd_tables.done_when`` on one set of runs ((label, alpha, seed) -> run record) over ``seeds``, as the
    summary reads it: with the wall ratios on the evaluation seeds (``walls``), without them on the seed study."""
    refs = tuple(label for label in (T.CENTRAL,) if all((label, al, s) in runs for al in T.TABLE_ALPHAS
                                                         for s in seeds))   # read in FedLPA's place where held
    acc = {al: {label: float(np.mean([runs[label, al, s]["acc_all"] for s in seeds])) for label in LABELS + refs}
           for al in T.TABLE_ALPHAS}
    lpa, sim = T.DISPLAY_NAMES["fedlpa"], T.DISPLAY_NAMES["simgcd"]
    k_hat = {al: T._k_hat_within_1([runs[lpa, al, s] for s in seeds])["share"] for al in T.TABLE_ALPHAS}
    sec = {al: {label: np.mean([runs[label, al, s]["seconds"] for s in seeds]) for label in (lpa, sim)}
           for al in T.TABLE_ALPHAS}
    return T.done_when(acc, k_hat, {f"{al:g}": float(v[lpa] / v[sim]) for al, v in sec.items()} if walls else None)


def record(machine: dict, which: str = "before_route") -> dict:
    """Per run the committed All and the replicate's, and whether the replicate made the committed run again bit for
    bit (then it was made on a machine that rounds as this one); the Done-when read off each set, on the evaluation
    seeds (the issue's bar) and on the seed study's."""
    cfgs = configs(fields=REPLICATES[which]["fields"])
    sides = {"committed": {k: T.load_committed(c) for k, c in cfgs.items()},
             "replicate": {k: T.load(c, paths(which)[0]) for k, c in cfgs.items()}}
    runs = [{"label": label, "alpha": al, "seed": s, "name": T.run_name(cfgs[label, al, s]),
             **{side: sides[side][label, al, s]["acc_all"] for side in sides},
             "bit_identical": T.first_round_apart(sides["replicate"][label, al, s],
                                                  sides["committed"][label, al, s]) is None}
            for label, al, s in cfgs]
    done = {side: {name: _reading(r, *how) for name, how in SETS.items()} for side, r in sides.items()}
    return {"machine": machine, "which": which, "runs": runs, "done_when": done, "differ": differ(done)}


#: the runs each All line is also read with in FedLPA's place (``run_gcd_tables.done_when``'s fields)
IN_PLACE = tuple(T.IN_PLACE_NAMES)


def differ(done: dict, in_place: tuple = ()) -> list:
    """The Done-when lines whose verdict the replicate's runs change, per set of seeds: each with both readings;
    with ``in_place``, the lines read with those runs in FedLPA's place (where both sides read it), each named."""
    rep = {(name, x["alpha"], x["target"]): x for name in SETS for x in done["replicate"].get(name, [])}
    out = []
    for p in in_place or (None,):
        f = (lambda k: f"{p}_{k}") if p else (lambda k: k)  # noqa: E731
        for name in SETS:
            for x in done["committed"].get(name, []):
                r = rep.get((name, x["alpha"], x["target"]))
                if r is None or None in (x.get(f("met")), r.get(f("met"))) or r[f("met")] == x[f("met")]:
                    continue
                out.append({"seeds": name, "alpha": x["alpha"], "target": x["target"], "unit": x["unit"],
                            **({"in_place": p} if p else {}),
                            **{side: {k: y[f(k)] for k in ("value", "met")} for side, y in (("committed", x),
                                                                                           ("replicate", r))}})
    return out


def _seeds(seeds) -> str:
    return f"seeds {min(seeds)}–{max(seeds)}"


def lines(res: dict) -> list:
    m, rep = res["machine"], REPLICATES[res["which"]]
    d = np.array([100 * (r["replicate"] - r["committed"]) for r in res["runs"]])
    out = ["# Issue 9's Done-when re-made on one machine"
           + ("" if res["which"] == "before_route" else ": the tables as they are"), "",
           f"Made by `bench/replicate_tables.py{'' if res['which'] == 'before_route' else ' --tables ' + res['which']}`"
           f" (why: its docstring). The {len(d)} runs the Done-when reads (the "
           f"tables' on {_seeds(T.EVAL_SEEDS)}, the seed study's on {_seeds(T.SEED_STUDY)}; same configs, nothing "
           f"chosen) made again on {m['cpu']} ({m['cores']} cores, torch {m['torch']}, {m['threads_per_run']} thread "
           f"per run{', rounding `' + m['rounding'] + '`' if m.get('rounding') else ''}) into `{rep['run_dir']}/`; "
           f"the committed runs are {rep['committed']}. All (mean of a run's last 3 "
           "evaluations), mean ± std over seeds, per seed, and how many of the committed runs the replicate made "
           "again bit for bit (every evaluation equal: those were made on a machine that rounds as this one):", "",
           "| α | run | committed | re-made | re-made − committed per seed (points) | mean abs. Δ | bit for bit |",
           "|---|---|---|---|---|---|---|"]
    for al in T.TABLE_ALPHAS:
        for label in LABELS:
            rs = [r for r in res["runs"] if r["alpha"] == al and r["label"] == label]
            dd = [100 * (r["replicate"] - r["committed"]) for r in rs]
            out.append(f"| {al:g} | {label} | " + " | ".join(
                f"{100 * np.mean([r[k] for r in rs]):.1f} ± {100 * np.std([r[k] for r in rs]):.1f}"
                for k in ("committed", "replicate")) + " | " + ", ".join(f"{x:+.1f}" for x in dd)
                + f" | {np.mean(np.abs(dd)):.2f} | {sum(r['bit_identical'] for r in rs)} of {len(rs)} |")
    out += ["", f"Re-made − committed over the {len(d)} runs: mean {d.mean():+.2f} points, mean |Δ| "
            f"{np.abs(d).mean():.2f}, at most {np.abs(d).max():.1f}; {int((d == 0).sum())} of them with the same All, "
            f"{sum(r['bit_identical'] for r in res['runs'])} bit for bit.", "",
            "The Done-when read off each set (the bar is read on the evaluation seeds; wall ratios: each set's own "
            "runs' seconds, on the evaluation seeds, as the summary reads them):", "",
            f"| α | target | bar | committed, {_seeds(T.EVAL_SEEDS)} | re-made, {_seeds(T.EVAL_SEEDS)} | "
            f"committed, {_seeds(T.SEED_STUDY)} | re-made, {_seeds(T.SEED_STUDY)} |", "|---|---|---|---|---|---|---|"]
    dw = {(side, name): {(x["alpha"], x["target"]): x for x in res["done_when"][side][name]}
          for side in res["done_when"] for name in SETS}
    for x in res["done_when"]["committed"]["eval_seeds"]:
        key = (x["alpha"], x["target"])
        got = [dw[side, name].get(key) for name in SETS for side in ("committed", "replicate")]
        out.append(f"| {x['alpha']:g} | {x['target']} | {done_when_bar(x['bar'], x['unit'])} | "
                   + " | ".join(done_when_value(g["value"], g["unit"], g["met"]) if g else "—" for g in got) + " |")
    flips = [f"{f['target']} (α {f['alpha']:g}, {_seeds(SETS[f['seeds']][0])})" for f in res["differ"]]
    out += ["", "Verdicts that differ between the two sets: " + ("; ".join(flips) if flips else "none") + "."]
    return out


#: where runs of the bar's configs were made, read by ``--roundings``: each folder's name in the report, its folder,
#: and the rounding map that measured its runs (``rounding_map_<name>.json``; None: only the runs' own records)
ROUNDING_SOURCES = (("the tables", "gcd", "tables"), ("the first replicate", "gcd_replicate", "replicate"),
                    ("the replicate of the tables as they are", "gcd_replicate_now", None),
                    ("item 7's references study", "gcd_backbones_refs", "backbones_refs"),
                    ("item 7's study at each backbone's own rates", "gcd_backbones_tuned", None),
                    ("item 7's 2-core study", "gcd_backbones_2core", "backbones_2core"))


def run_roundings(folder: str, rmap) -> tuple[dict, dict]:
    """(run name -> rounding, rounding -> the CPU that showed it) of ``folder``'s runs whose rounding is measured:
    by the rounding map ``rmap`` where it made the run again bit for bit, else by a row of ``reproduce_runs.json``
    that made it again bit for bit, else by the run's own record (the runs made since ``lab.machine`` carry one)."""
    out, cpus = {}, {}
    for f in sorted(os.listdir(os.path.join(T.RES, folder))):
        r = json.load(open(os.path.join(T.RES, folder, f))) if f.endswith(".json") else {}
        if (fp := (r.get("machine") or {}).get("rounding")) and "config" in r:
            out[f[:-len(".json")]], cpus[fp] = fp, r["machine"]["cpu"]
    for row in json.load(open(R.JSON))["rows"] if os.path.exists(R.JSON) else []:
        if row["bit_identical"] and row["run"].startswith(folder + "/"):   # made again in full, on any machine
            out[row["run"][len(folder) + 1:]], cpus[row["machine"]["rounding"]] = (row["machine"]["rounding"],
                                                                                    row["machine"]["cpu"])
    path = os.path.join(T.RES, f"rounding_map_{rmap}.json")
    if rmap is not None and os.path.exists(path):
        m = json.load(open(path))
        for g in m["groups"]:
            if g["rounding"]:
                out.update(dict.fromkeys(g["runs"], g["rounding"]))
                cpus[g["rounding"]] = m["machine"]["cpu"]
    return out, cpus


def bar_configs(seeds=T.SEED_STUDY, fields=None, central: bool = True) -> dict:
    """(label, alpha, seed) -> config of every run the bar reads (:func:`configs`; ``fields`` None: the tables as
    they are), with the centralized run the summary reads in FedLPA's place (``central``; one config per seed,
    listed under both alphas)."""
    (m, extra), best = next(iter(T.SEED_REFS.values())), T.tuned_best()
    refs = {(T.CENTRAL, al, s): T.config(m, al, s, False, **best[m], **extra) for s in seeds
            for al in T.TABLE_ALPHAS} if central else {}
    return {**configs(seeds, fields={} if fields is None else fields), **refs}


def rounding_sets() -> dict:
    """Rounding -> {"cpu", "runs": (label, alpha, seed) -> (source, run record)}: every run of :func:`bar_configs`
    found on that rounding. A config two sources hold on one rounding is one run bit for bit; the first source of
    ``ROUNDING_SOURCES`` gives it."""
    cfgs, sets = bar_configs(), {}
    for source, folder, rmap in ROUNDING_SOURCES:
        fps, cpus = run_roundings(folder, rmap)
        for key, cfg in cfgs.items():
            if (fp := fps.get(T.run_name(cfg))) is not None:
                st = sets.setdefault(fp, {"cpu": cpus[fp], "runs": {}})
                st["runs"].setdefault(key, (source, T.load(cfg, os.path.join(T.RES, folder))))
    return sets


def rounding_record() -> dict:
    """The bar read on each rounding that holds every run it reads (on the evaluation seeds, and on the seed study's
    where it holds those too), beside the committed reading; the wall lines are left to the table (a rounding does
    not make a run slower, and a set gathered from several sessions would read their speeds)."""
    committed = {k: T.load_committed(c) for k, c in bar_configs().items()}
    done_c = {name: _reading(committed, seeds, False) for name, (seeds, _) in SETS.items()}
    out = []
    for fp, st in sorted(rounding_sets().items()):
        runs = {k: rec for k, (_, rec) in st["runs"].items()}
        have = {name: all((label, al, s) in runs for label in LABELS for al in T.TABLE_ALPHAS for s in seeds)
                for name, (seeds, _) in SETS.items()}
        done = {name: _reading(runs, seeds, False) for name, (seeds, _) in SETS.items() if have[name]}
        src = {}                 # runs per label and source (the centralized run, under both alphas, once)
        for (label, _, _), (source, rec) in sorted(st["runs"].items()):
            src.setdefault(label, {}).setdefault(source, set()).add(T.run_name(rec["config"]))
        src = {label: {source: len(n) for source, n in by.items()} for label, by in src.items()}
        both = {"committed": {n: done_c[n] for n in done}, "replicate": done}
        out.append({"rounding": fp, "cpu": st["cpu"], "from": src, "complete": have, "done_when": done,
                    "differ": differ(both), "differ_in_place": differ(both, IN_PLACE)})
    return {"sources": [list(x) for x in ROUNDING_SOURCES], "committed": done_c, "roundings": out}


def rounding_lines(res: dict) -> list:
    read = [r for r in res["roundings"] if r["done_when"]]
    out = ["# Issue 9's bar on one rounding", "",
           "Made by `bench/replicate_tables.py --roundings` (why: its docstring), from runs already made: every run "
           "the bar reads (the tables' configs as they are: FedLPA, the federated baselines, the oracle prior and the "
           "centralized run read in FedLPA's place, "
           f"both α, {_seeds(T.SEED_STUDY)}) gathered by the rounding it was made on, from "
           + ", ".join(f"{s} (`{f}/`, " + (f"`rounding_map_{m}.md`" if m else "each run's record") + ")"
                       for s, f, m in res["sources"])
           + ". A rounding is read where it holds every run of a set of seeds. The wall lines are the table's (a "
           "rounding does not make a run slower).", "",
           "| rounding | CPU | runs found, and where from | read |", "|---|---|---|---|"]
    for r in res["roundings"]:
        src = "; ".join(f"{label}: " + ", ".join(f"{n} from {s}" for s, n in by.items())
                        for label, by in r["from"].items())
        seeds = [_seeds(SETS[n][0]) for n, ok in r["complete"].items() if ok]
        out.append(f"| `{r['rounding']}` | {r['cpu']} | {src} | {', '.join(seeds) or 'no: runs missing'} |")
    head = [f"committed, {_seeds(SETS[n][0])}" for n in SETS]
    cols = [(r, n) for r in read for n in SETS if n in r["done_when"]]
    sets = [res["committed"][n] for n in SETS] + [r["done_when"][n] for r, n in cols]
    got = [{(x["alpha"], x["target"]): x for x in xs} for xs in sets]
    header = lambda first: ["| α | target | " + first + "bar | " + " | ".join(  # noqa: E731
        head + [f"`{r['rounding']}`, {_seeds(SETS[n][0])}" for r, n in cols]) + " |",
        "|---|---|" + "---|" * (len(head) + len(cols) + 1 + bool(first))]

    def cell(g, p):
        v = g and g.get(f"{p}_value" if p else "value")
        return "—" if v is None else done_when_value(v, g["unit"], g[f"{p}_met" if p else "met"])

    out += ["", "The Done-when read off each (means over seeds; the committed runs mix roundings):", "",
            *header("")]
    for x in res["committed"]["eval_seeds"]:
        key = (x["alpha"], x["target"])
        out.append(f"| {x['alpha']:g} | {x['target']} | {done_when_bar(x['bar'], x['unit'])} | "
                   + " | ".join(cell(g.get(key), None) for g in got) + " |")
    out += ["", "Each All line read with another run in FedLPA's place (the oracle prior; the centralized run, pooled "
            "and not federated, where the set holds it on every seed):", "", *header("in FedLPA's place | ")]
    for p in IN_PLACE:
        for x in res["committed"]["eval_seeds"]:
            if x.get(f"{p}_value") is not None:
                key = (x["alpha"], x["target"])
                out.append(f"| {x['alpha']:g} | {x['target']} | {T.IN_PLACE_NAMES[p]} | "
                           f"{done_when_bar(x['bar'], x['unit'])} | "
                           + " | ".join(cell(g.get(key), p) for g in got) + " |")
    out.append("")
    for r in read:
        flips = [T.flip_line(f, _seeds(SETS[f["seeds"]][0])) for f in r["differ"] + r["differ_in_place"]]
        out.append(f"Verdicts that differ from the committed runs on `{r['rounding']}` ({r['cpu']}): "
                   + ("; ".join(flips) if flips else "none") + ".")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=1, help="runs made at once, 1-64")
    ap.add_argument("--tables", choices=list(REPLICATES), default="before_route",
                    help="which tables to make again: before FedLPA's coarse route (the first replicate, "
                         "gcd_replicate/) or as they are now (gcd_replicate_now/)")
    ap.add_argument("--roundings", action="store_true",
                    help="make no run: read the bar on each rounding that holds every run it reads (gathered from "
                         "ROUNDING_SOURCES' folders by the rounding maps, reproduce_runs.py's rows and the runs' "
                         "records)")
    a = ap.parse_args(argv)
    try:
        check_range("--workers", a.workers, 1, 64, integer=True)
    except ValueError as e:
        ap.error(str(e))
    if a.roundings:
        json_path, md_path = (os.path.join(T.RES, T.ROUNDINGS + ext) for ext in (".json", ".md"))
        res = rounding_record()
        write_json_atomic(json_path, res)
        write_text_atomic(md_path, "\n".join(rounding_lines(res)) + "\n")
        print(f"wrote {json_path} and {md_path}")
        return
    run_dir, json_path, md_path = paths(a.tables)
    T.run_all(list(configs(fields=REPLICATES[a.tables]["fields"]).values()), run_dir, a.workers,
              "tables' runs again")
    mpath = os.path.join(run_dir, T.MACHINE_FILE)
    if not os.path.exists(mpath):        # where the folder's runs were made
        write_json_atomic(mpath, T.machine())
    res = record(json.load(open(mpath)), a.tables)
    write_json_atomic(json_path, res)
    write_text_atomic(md_path, "\n".join(lines(res)) + "\n")
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
