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

    python bench/replicate_tables.py --workers 2
    python bench/replicate_tables.py --tables now --workers 2

Writes ``bench/results/replicate_tables[_now].json`` and ``bench/results/replicate_tables[_now].md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
    acc = {al: {label: float(np.mean([runs[label, al, s]["acc_all"] for s in seeds])) for label in LABELS}
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


def differ(done: dict) -> list:
    """The Done-when lines whose verdict the replicate's runs change, per set of seeds: each with both readings."""
    rep = {(name, x["alpha"], x["target"]): x for name in SETS for x in done["replicate"][name]}
    return [{"seeds": name, "alpha": x["alpha"], "target": x["target"], "unit": x["unit"],
             **{side: {k: y[k] for k in ("value", "met")} for side, y in (("committed", x), ("replicate", r))}}
            for name in SETS for x in done["committed"][name]
            if (r := rep.get((name, x["alpha"], x["target"]))) is not None and r["met"] != x["met"]]


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=1, help="runs made at once, 1-64")
    ap.add_argument("--tables", choices=list(REPLICATES), default="before_route",
                    help="which tables to make again: before FedLPA's coarse route (the first replicate, "
                         "gcd_replicate/) or as they are now (gcd_replicate_now/)")
    a = ap.parse_args(argv)
    try:
        check_range("--workers", a.workers, 1, 64, integer=True)
    except ValueError as e:
        ap.error(str(e))
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
