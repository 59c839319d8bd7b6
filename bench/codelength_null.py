"""Issue 9, item 2: InfoMap's markov time chosen per client by its codelength against a shuffled-graph null. 2-core CPU.

The issue names "codelength against a shuffled-graph null" among the rules a client could use to find its K without
the true K; no study had built it. InfoMap reports, for a partition, how many bits per step the map equation saves
against one module (``one_level_codelength - codelength``). A graph with no structure still "saves" at a markov time
that splits it into pieces; the same graph with its links shuffled keeps every sample's degree and loses its
classes. The rule (:func:`chosen_time`): at each markov time of a grid, InfoMap on the client's graph and on
:data:`NULLS` shuffles of it (:func:`null_links`: the links' ends paired at random, each sample keeping its number
of links; seeded per client); the client discovers at the time whose savings exceed the shuffles' mean savings most
(the finer time wins ties), and finishes as FedLPA does at that time with a merging threshold. A rule per (grid,
threshold): the times :data:`TIMES` (1 to 4) or FedLPA's study range 1.5 to 3, each with merging off, >= 0.7 or >=
0.8. It reads the client's graph only: no label, no true K.

The study: the tables' FedLPA config run to its first discovery (``kest_anatomy.first_discovery``) on tuning seeds
100-109 and evaluation seeds 0-9, both alphas; per client, InfoMap again at every time of :data:`TIMES` on the same
graph (same seed) and on the shuffles, each finished with each threshold; beside the rules, FedLPA's setting and
FedLPA as the library runs it (with the coarse route, ``DiscoveryParams.coarse_k``: both discoveries it chooses
between are among these). The pick, written down before the runs (tuning seeds only): the discovery studies' rule
(``new_split.pick``: K_hat within +-1 on >= 80 % of the tuning clients at both alphas, then the lowest mean
KL(oracle || pi)), FedLPA as the library runs it winning ties; a rule picked over it would next be trained as
``markov_merge.py --train`` trains its pick.

What it found (``codelength_null.md``): on every client the shuffles find no structure at any of these times (one
module; their savings are zero to rounding), so the rule reduces to "the time that saves most", and the savings fall
as the time grows on almost every client: each rule discovers at the finest time of its grid, i.e. it is a fixed
time (FedLPA's own without the route, on the 1.5-3 grid): against this null, codelength cannot tell one of these
times from another. The pick is FedLPA as the library runs it; nothing is trained.

    python bench/codelength_null.py --workers 2     # 40 first discoveries, about 20 min on 2 cores; resumes

Writes ``bench/results/codelength_null.json`` and ``.md``.
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kest_anatomy as KA  # noqa: E402
import markov_merge as MM  # noqa: E402
import new_split as NS  # noqa: E402
import run_gcd_tables as T  # noqa: E402

TIMES = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
GRIDS = {"1-4": TIMES, "1.5-3": (1.5, 2.0, 2.5, 3.0)}
MERGE = (None, 0.7, 0.8)
NULLS = 2
JSON, MD = KA.study_paths("codelength_null")


def null_links(graph, rng) -> np.ndarray:
    """The graph's active links with their ends paired at random (each sample keeps its number of link ends; a link
    that would join a sample to itself is dropped), weights kept: (E', 3) for InfoMap."""
    act = graph.active()
    ends = np.concatenate([graph.src[act], graph.dst[act]])
    rng.shuffle(ends)
    a, b, w = ends[:act.sum()], ends[act.sum():], graph.weight[act]
    keep = a != b
    return np.column_stack([a[keep], b[keep], w[keep]]).astype(np.float64)


def savings(links: np.ndarray, markov_time: float, seed: int) -> float:
    """Bits per step InfoMap's two-level partition saves against one module, at ``markov_time``."""
    from infomap import Infomap

    im = Infomap(two_level=True, silent=True, seed=max(1, int(seed)), num_trials=1, markov_time=float(markov_time))
    im.add_links(links)
    r = im.run()
    return float(r.one_level_codelength - r.codelength)


def chosen_time(times, sav: dict, sav0: dict) -> float:
    """The time whose savings exceed the shuffles' mean savings most (``sav``, ``sav0``: time -> bits, list of
    bits); the finer time wins ties."""
    return max(times, key=lambda t: (sav[t] - float(np.mean(sav0[t])), -t))


def one(job) -> dict:
    """One (alpha, seed): per client and time of :data:`TIMES`, the savings on the graph and its shuffles, and the
    discovery at that time finished with each threshold ([K_hat, split, missed, KL(oracle || pi)])."""
    alpha, seed = job
    exp, old, kept = KA.kept_clients(alpha, seed)
    clients = []
    for c in kept:
        graph, s = c.modules.args[0], c.modules.keywords["seed"]
        act = graph.active()
        links = np.column_stack([graph.src[act], graph.dst[act], graph.weight[act]]).astype(np.float64)
        rng = np.random.default_rng([seed, c.cid])
        nulls = [null_links(graph, rng) for _ in range(NULLS)]
        oracle = KA.oracle_prior(c)
        row = {"client": c.cid, "k": len(c.present), "sav": [], "sav0": [], "finished": []}
        for t in TIMES:
            mods = c.modules(c.params.replace(markov_time=t))
            row["sav"].append(savings(links, t, s + 1))
            row["sav0"].append([savings(x, t, s + 1) for x in nulls])
            row["finished"].append([[NS.scores(c.redo_from(mods, c.params.replace(markov_time=t, merge_new_cosine=m)),
                                               oracle, c.y, old, c.present)[f] for f in MM.FIELDS] for m in MERGE])
        if row["finished"][TIMES.index(c.params.markov_time)][MERGE.index(c.params.merge_new_cosine)][0] != c.k_est:
            raise RuntimeError(f"alpha {alpha} seed {seed} client {c.cid}: re-made K_hat differs from the run's")
        clients.append(row)
    return {"alpha": alpha, "seed": seed, "clients": clients}


def rule_name(grid: str, merge) -> str:
    return f"null-chosen time in {grid}, merge " + ("off" if merge is None else f">= {merge:g}")


def fedlpa_names() -> tuple:
    p = KA.fedlpa_config(T.TABLE_ALPHAS[0], 0).discovery_params()
    return f"FedLPA: {MM.name(p.markov_time, p.merge_new_cosine)}", "FedLPA as the library runs it (with the route)"


def names() -> list:
    return list(fedlpa_names()) + [rule_name(g, m) for g in GRIDS for m in MERGE]


def settings(client: dict) -> tuple:
    """(each setting's [K_hat, split, missed, KL] in the order of :func:`names`, the time each rule chose)."""
    from lab.gcd.discovery import DiscoveryParams

    lib, p = DiscoveryParams(), KA.fedlpa_config(T.TABLE_ALPHAS[0], 0).discovery_params()

    def at(t, m):
        return client["finished"][TIMES.index(t)][MERGE.index(m)]

    own = at(p.markov_time, p.merge_new_cosine)
    out = [own, at(lib.coarse_markov_time, lib.coarse_merge_cosine) if own[0] <= lib.coarse_k else own]
    sav = dict(zip(TIMES, client["sav"]))
    sav0 = dict(zip(TIMES, client["sav0"]))
    chosen = {g: chosen_time(times, sav, sav0) for g, times in GRIDS.items()}
    return out + [at(chosen[g], m) for g in GRIDS for m in MERGE], chosen


def record(records) -> dict:
    """What is committed: the per-client records, each setting's tables and the pick, the times the rules chose, and
    what the shuffles saved."""
    per = [[settings(c) for c in r["clients"]] for r in records]
    flat = [{**{k: r[k] for k in ("alpha", "seed")},
             "clients": [{"client": c["client"], "k": c["k"], "settings": rows, "chosen": at}
                         for c, (rows, at) in zip(r["clients"], ps)]} for r, ps in zip(records, per)]
    tuning = MM.summary(flat, KA.TUNING, names())
    chosen = {label: {g: {f"{a:g}": {f"{t:g}": sum(c["chosen"][g] == t for c in NS._clients(flat, seeds, a))
                                    for t in GRIDS[g]} for a in T.TABLE_ALPHAS} for g in GRIDS}
              for label, seeds in (("tuning", KA.TUNING), ("evaluation", KA.EVALUATION))}
    clients = [c for r in records for c in r["clients"]]
    return {"times": list(TIMES), "grids": {g: list(t) for g, t in GRIDS.items()}, "merge": list(MERGE), "nulls": NULLS,
            "settings": names(), "default": fedlpa_names()[0], "tuning": tuning,
            "evaluation": MM.summary(flat, KA.EVALUATION, names()),
            "pick": NS.pick(tuning, fedlpa_names()[1]), "chosen": chosen,
            "null_savings_max": max(abs(x) for c in clients for s0 in c["sav0"] for x in s0),
            "savings_fall": sum(all(a > b for a, b in zip(c["sav"], c["sav"][1:])) for c in clients),
            "clients": len(clients), "records": records}


def finest_only(res) -> bool:
    """Whether every rule chose the finest time of its grid on every client."""
    return all(n == 0 for per in res["chosen"].values() for g, by_a in per.items() for counts in by_a.values()
               for t, n in counts.items() if float(t) != min(res["grids"][g]))


def lines(res) -> list:
    out = NS.opening(res, "The markov time chosen per client by its codelength against a shuffled graph",
                     "codelength_null.py", "the rule, and how it is picked",
                     " run to its first discovery; every client's InfoMap run again at each markov time ("
                     + ", ".join(f"{t:g}" for t in res["times"]) + f") on its graph and on {res['nulls']} shuffles of "
                     "it, finished with each merging threshold; tuning seeds "
                     f"{KA.TUNING[0]}-{KA.TUNING[-1]}, evaluation seeds {KA.EVALUATION[0]}-{KA.EVALUATION[-1]}, α 0.1 "
                     "and 1, 5 clients each. KL: against the oracle prior; the true labels are read after the fact, "
                     "for the report and the pick on the tuning seeds only.")
    out += ["", NS.pick_line(res["pick"], "; FedLPA as the library runs it wins ties"), "",
            f"What the shuffles saved: at most {res['null_savings_max']:.1e} bits per step over every client and time "
            f"(one module: nothing to save). The graph's own savings fall with every step of the time on "
            f"{res['savings_fall']} of {res['clients']} clients; the time each rule chose"
            + (" (the finest of its grid on every client):" if finest_only(res) else ":"), "",
            "| grid | seeds | α | clients per chosen time |", "|---|---|---|---|"]
    for label in ("tuning", "evaluation"):
        for g, per_alpha in res["chosen"][label].items():
            for a, counts in per_alpha.items():
                out.append(f"| {g} | {label} | {a} | " + ", ".join(f"{t}: {n}" for t, n in counts.items()) + " |")
    return out + ["", "## Every setting (α 0.1 / α 1)", ""] + MM.setting_table(res, res["settings"],
                                                                            res["pick"]["setting"])


def main(argv=None):
    a = KA.study_args(__doc__, "codelength_null_cache", argv)
    KA.write_study(record(KA.cached_runs(one, a.cache, a.workers, "first discoveries")), JSON, MD, lines)


if __name__ == "__main__":
    main()
