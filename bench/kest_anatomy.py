"""Issue 9: what FedLPA's K_hat misses are made of, and a client-level rule against the over-count. 2-core CPU.

The seed study found FedLPA's loss to FedAvg+SimGCD at alpha 1 where its clients' K_hat over-counts
(``run_gcd_tables.k_hat_direction``), and one global markov time could not fix it (``discovery_levers.MERGE_RUNS``).
This script looks at the discovery FedLPA actually makes: the tables' FedLPA config (committed backbone, its tuned
learning rate) is run to its first discovery (after warm-up; by default FedLPA discovers once), and every client's
inputs to :func:`lab.gcd.discovery.discover` are kept. Then, with the true labels read after the fact (a diagnosis,
never a choice), each client's K_hat - K is taken apart:

- ``old``: old classes counted from the labels minus the old classes present;
- ``split``: extra new-class communities whose majority is a new class that another community already has (one new
  class in two communities: the over-count);
- ``missed``: new classes present that are the majority of no new-class community (hidden in another community);
- ``other``: new-class communities whose majority is an old class or a class under 2 % of the client.

so that K_hat - K = old + split + other - missed, client by client.

On the same kept inputs, :func:`lab.gcd.discovery.finish` is re-run with ``merge_new_cosine`` (new-class
communities whose mean predictions, or graph prototypes, agree are merged) over a grid, and the setting is picked
on the tuning seeds only, with the discovery study's criterion: the share of clients with |K_hat - K| <= 1 at the
worse alpha, smoothed over the threshold and its two neighbours; ties: the mean over alphas, then the mean |error|.
Off (``None``) competes unsmoothed. The evaluation seeds only report. The pick goes to
``bench/discovery_levers.py`` (``SPLIT_RUNS``), which trains FedLPA with it beside FedLPA without it; it is
FedLPA's default since (``lab.gcd.discovery.DiscoveryParams``), so the tables' FedLPA discovers with it.

The grid and the criterion were written down before tuning seeds 102-109 were run (a scratch copy of this
analysis had by then been run on evaluation seeds 0-9 and tuning seeds 100/101; it also tried the kNN-graph cut
weight between two communities, and cosine of the model's output features, both below the pick on the tuning seeds).

    python bench/kest_anatomy.py --workers 2     # 40 warm-ups, about 10 min on 2 cores; resumes from its cache

Writes ``bench/results/kest_anatomy.json`` and ``bench/results/kest_anatomy.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_gcd_tables as T  # noqa: E402

from lab.gcd.discovery import MERGE_ON, DiscoveryParams, finish  # noqa: E402
from lab.utils import write_json_atomic, write_text_atomic  # noqa: E402

TUNING = tuple(range(100, 110))          # 100/101 are the protocol's tuning seeds; 102-109 add clients to the pick
EVALUATION = T.SEED_STUDY
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.5, 0.951, 0.05))
GRID = ((None, None),) + tuple((on, t) for on in MERGE_ON for t in THRESHOLDS)
OUT = os.path.join(T.RES, "kest_anatomy.json")
MD = os.path.join(T.RES, "kest_anatomy.md")
PARTS = ("old", "split", "other", "missed")
#: the backbones the discovery studies run on (``--backbone``); the first, committed one's files keep no suffix
BACKBONES = ("pretrained", "pretrained-wide")


def suffix(backbone: str) -> str:
    return "" if backbone == BACKBONES[0] else f"_{backbone}"


def study_paths(stem: str, backbone: str = BACKBONES[0]) -> tuple:
    """(json, md) of a study's report on ``backbone`` (``bench/results/STEM[_BACKBONE].json/.md``)."""
    return tuple(os.path.join(T.RES, stem + suffix(backbone) + ext) for ext in (".json", ".md"))


def setting_name(on, t) -> str:
    return "off" if t is None else f"{on} >= {t:g}"


NAMES = [setting_name(*g) for g in GRID]


class _Found(Exception):
    pass


def fedlpa_config(alpha: float, seed: int, backbone: str = "pretrained", **extra):
    """The tables' FedLPA config (its tuned learning rate) at ``alpha`` and ``seed``; on another backbone, item 7's
    FedLPA there (the discovery its backbone's study chose, ``run_gcd_tables.backbone_runs``); ``extra`` on top.
    Its discovery is the one before the coarse route (``run_gcd_tables.BEFORE_ROUTE``): the studies of the first
    discovery search that one, and the route is a second discovery on top of it (``bench/coarse_route.py``)."""
    from lab.gcd.config import FedGCDConfig

    best = T.tuned_best()
    over = {**T.BEFORE_ROUTE} if backbone == "pretrained" else {**T.backbone_runs(backbone)["FedLPA"][1],
                                                                 "backbone": backbone}
    return FedGCDConfig.from_dict(T.config("fedlpa", alpha, seed, False, **{**best["fedlpa"], **over, **extra}))


def first_discovery(alpha: float, seed: int, backbone: str = "pretrained") -> tuple:
    """(the experiment, [(client id, the positional and keyword arguments FedLPA passed to discover, the K_hat it
    got)] in client order) at FedLPA's first discovery of :func:`fedlpa_config`; the run stops there."""
    import torch

    torch.set_num_threads(1)
    from lab.gcd import fedlpa
    from lab.gcd.experiment import Experiment

    exp = Experiment(fedlpa_config(alpha, seed, backbone))
    kept, current = [], []
    orig_method, orig_fn = fedlpa.FedLPAClient.discover, fedlpa.discover

    def method(self):
        current[:] = [self.cid]
        st = orig_method(self)
        if len(kept) == exp.n_clients:
            raise _Found
        return st

    def fn(*args, **kw):
        d = orig_fn(*args, **kw)
        kept.append((current[0], args, kw, d.k_est))
        return d

    fedlpa.FedLPAClient.discover, fedlpa.discover = method, fn
    try:
        exp.run()
    except _Found:
        pass
    finally:
        fedlpa.FedLPAClient.discover, fedlpa.discover = orig_method, orig_fn
    return exp, sorted(kept, key=lambda x: x[0])


def anatomy(d, y_true, old: set, k_true_classes: list) -> dict:
    """K_hat - K taken apart against the truth (see the module docstring)."""
    labels = d.communities.labels
    majority = [int(np.bincount(y_true[labels == c], minlength=max(y_true) + 1).argmax())
                for c in range(len(d.claims))]
    new_maj = [m for m, cl in zip(majority, d.claims) if cl < 0]
    present_new = [c for c in k_true_classes if c not in old]
    return {"k_hat": int(d.k_est), "old": int(d.k_old - sum(c in old for c in k_true_classes)),
            "split": int(sum(new_maj.count(m) - 1 for m in set(new_maj) if m in present_new)),
            "other": int(sum(m not in present_new for m in new_maj)),
            "missed": int(sum(c not in new_maj for c in present_new))}


def oracle_prior(c) -> np.ndarray:
    """The oracle prior of a :func:`client_view` client: its true classes as communities, mapped to heads as FedLPA
    maps its own, at its run's smoothing (the studies score each discovery's prior against it; read after the fact)."""
    from lab.gcd.prior import empirical_prior, oracle_heads

    return empirical_prior(oracle_heads(c.y, c.probs, c.old_classes, c.n_heads), c.n_heads, c.params.smoothing)


def client_view(cid: int, y, k_est: int, args: tuple, kw: dict, n_classes: int) -> SimpleNamespace:
    """One client of :func:`kept_clients` from the arguments FedLPA passed to ``discover`` (``args``, ``kw``) and
    the client's true labels ``y``."""
    from functools import partial

    from lab.gcd.discovery import build_discovery_graph, raw_modules

    feats, probs, labelled, y_visible, old_classes, n_heads = args
    params, s = kw["params"], kw["seed"]
    graph, f, kind = build_discovery_graph(feats, probs, labelled, y_visible, old_classes,
                                           prefix_features=kw["prefix_features"], params=params, seed=s)

    def redo_from(modules, params):
        return finish(modules, f, probs, labelled, y_visible, old_classes, n_heads, params, graph=graph, kind=kind)

    def regraph(params):
        return client_view(cid, y, k_est, args, {**kw, "params": params}, n_classes)

    return SimpleNamespace(cid=cid, y=y, k_est=k_est, probs=probs, params=params, n_heads=n_heads,
                           old_classes=old_classes, redo=partial(redo_from, raw_modules(graph, params, s)),
                           redo_from=redo_from, modules=partial(raw_modules, graph, seed=s), regraph=regraph,
                           present=[c for c in range(n_classes) if (y == c).sum() >= 0.02 * len(y)])


def kept_clients(alpha: float, seed: int, backbone: str = "pretrained") -> tuple:
    """(the experiment, its old classes, one namespace per client in order) at FedLPA's first discovery: the
    client's true labels ``y`` (read after the fact), the classes it holds (``present``, >= 2 %), the K_hat its run
    got, the model's ``probs``, the discovery ``params`` it ran with and ``redo(params)``, which finishes that
    discovery again from the same graph and InfoMap modules under other parameters; ``modules(params)`` runs InfoMap
    again on the same graph (another markov time) and ``redo_from(modules, params)`` finishes from those;
    ``regraph(params)`` is the same client on the graph ``params`` build (another kNN ``k``)."""
    exp, kept = first_discovery(alpha, seed, backbone)
    out = [client_view(cid, exp.data.y_train[exp.train_part.client_indices[cid]], k_est, args, kw, exp.data.n_classes)
           for cid, args, kw, k_est in kept]
    return exp, {int(c) for c in exp.split.old_classes}, out


def one(job) -> dict:
    alpha, seed = job
    exp, old, kept = kept_clients(alpha, seed)
    clients = []
    for c in kept:
        row = {"client": c.cid, "k": len(c.present), "settings": {}}
        for on, t in GRID:
            d = c.redo(c.params.replace(merge_new_cosine=t, merge_new_on=on or c.params.merge_new_on))
            row["settings"][setting_name(on, t)] = anatomy(d, c.y, old, c.present)
        if row["settings"][setting_name(c.params.merge_new_on, c.params.merge_new_cosine)]["k_hat"] != c.k_est:
            raise RuntimeError(f"alpha {alpha} seed {seed} client {c.cid}: re-made K_hat differs from the run's")
        clients.append(row)
    return {"alpha": alpha, "seed": seed, "clients": clients}


def compact(records, keep) -> list:
    """The records as committed: each client's K_hat at every setting of ``GRID`` (a list in its order), and the
    parts of K_hat - K at the settings ``keep`` only (the full records stay in the cache)."""
    return [{**{k: r[k] for k in ("alpha", "seed")},
             "clients": [{"client": c["client"], "k": c["k"], "k_hat": [c["settings"][n]["k_hat"] for n in NAMES],
                          "parts": {n: {p: c["settings"][n][p] for p in PARTS} for n in keep}}
                         for c in r["clients"]]} for r in records]


def _k_hat(client: dict, name: str) -> int:
    return client["k_hat"][NAMES.index(name)]


def _errors(records, seeds, alpha, name) -> np.ndarray:
    return np.array([_k_hat(c, name) - c["k"] for r in records if r["seed"] in seeds
                     and r["alpha"] == alpha for c in r["clients"]])


def within(records, seeds, name) -> dict:
    return {a: float((np.abs(_errors(records, seeds, a, name)) <= 1).mean()) for a in T.TABLE_ALPHAS}


def pick(records) -> dict:
    """The discovery study's criterion on the tuning seeds (module docstring); returns the ranking too."""
    rows = []
    for on in (None,) + MERGE_ON:
        ts = (None,) if on is None else THRESHOLDS
        raw = []
        for t in ts:
            w = within(records, TUNING, setting_name(on, t))
            err = np.mean([np.abs(_errors(records, TUNING, a, setting_name(on, t))).mean() for a in w])
            raw.append((min(w.values()), float(np.mean(list(w.values()))), float(err), w))
        for i, t in enumerate(ts):
            near = [raw[j][0] for j in (i - 1, i, i + 1) if 0 <= j < len(ts)]
            rows.append({"setting": setting_name(on, t), "on": on, "threshold": t, "score": float(np.mean(near)),
                         "mean": raw[i][1], "abs_err": raw[i][2],
                         "within": {f"{a:g}": v for a, v in raw[i][3].items()}})
    rows.sort(key=lambda r: (-r["score"], -r["mean"], r["abs_err"]))
    return {"choice": rows[0], "ranking": rows}


SEED_SETS = (("tuning", TUNING), ("evaluation 0-2", T.EVAL_SEEDS), ("evaluation 0-9", EVALUATION))


def parts_rows(records, names) -> list:
    """Per setting, seed set and alpha: the mean per client of K_hat - K and of each of its parts, and the share of
    clients within +-1."""
    rows = []
    for name in names:
        for label, seeds in SEED_SETS:
            for a in T.TABLE_ALPHAS:
                cs = [c["parts"][name] for r in records if r["seed"] in seeds and r["alpha"] == a
                      for c in r["clients"]]
                err = _errors(records, seeds, a, name)
                rows.append({"setting": name, "seeds": label, "alpha": a, "k_hat_minus_k": float(err.mean()),
                             **{p: float(np.mean([c[p] for c in cs])) for p in PARTS},
                             "within_1": float((np.abs(err) <= 1).mean())})
    return rows


def lines(res: dict) -> list:
    ch = res["pick"]["choice"]
    out = ["# K̂'s anatomy at FedLPA's first discovery, and a client-level rule against the over-count (issue 9)", "",
           "Generated by `bench/kest_anatomy.py` (numbers read from `kest_anatomy.json`). The tables' FedLPA config "
           "(committed backbone, its tuned learning rate) run to its first discovery on tuning seeds "
           f"{TUNING[0]}-{TUNING[-1]} and evaluation seeds {EVALUATION[0]}-{EVALUATION[-1]}, α 0.1 and 1, 5 clients "
           "each; K = classes with ≥ 2 % of the client. The parts read the true labels after the fact: a diagnosis.",
           "", "## What K̂ − K is made of (mean per client)", "",
           "`split`: a new class in two or more new-class communities (each extra one counts); `missed`: a new class "
           "that is the majority of no new-class community; `old`: old classes counted from the labels minus those "
           "present; `other`: a new-class community whose majority is an old class or a class under 2 % of the "
           "client. K̂ − K = old + split + other − missed.", "",
           "| setting | seeds | α | K̂ − K | old | split | other | missed | within ±1 |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in res["parts"]:
        out.append(f"| {r['setting']} | {r['seeds']} | {r['alpha']:g} | {r['k_hat_minus_k']:+.2f} | {r['old']:+.2f} | "
                   f"{r['split']:.2f} | {r['other']:.2f} | {r['missed']:.2f} | {100 * r['within_1']:.0f} % |")
    out += ["", "## The pick (tuning seeds only)", "",
            "Criterion: the share of clients with |K̂ − K| ≤ 1 at the worse α, smoothed over the threshold and its two "
            "neighbours; ties: the mean over α, then the mean |K̂ − K|; off competes unsmoothed. "
            f"Chosen: **{ch['setting']}** (`merge_new_cosine={ch['threshold']}`, `merge_new_on=\"{ch['on']}\"`).", "",
            "| setting | score (smoothed, worse α) | within ±1 α 0.1 | α 1 | mean abs err |", "|---|---|---|---|---|"]
    rank = res["pick"]["ranking"]
    off = next(r for r in rank if r["threshold"] is None)
    for r in rank[:8] + ([off] if off not in rank[:8] else []):
        out.append(f"| {r['setting']} | {100 * r['score']:.1f} % | {100 * r['within']['0.1']:.0f} % | "
                   f"{100 * r['within']['1']:.0f} % | {r['abs_err']:.2f} |")
    lib = DiscoveryParams()
    adopted = setting_name(lib.merge_new_on, lib.merge_new_cosine) == ch["setting"]
    out += ["", "Trained with the pick, beside FedLPA without it: `bench/results/discovery_levers.md`, section "
                "\"Lever: new-class communities merged when their predictions agree\"."
            + (" The pick is FedLPA's default (`lab.gcd.discovery.DiscoveryParams`), so the tables' FedLPA "
               "(`gcd_summary.md`) discovers with it." if adopted else "")]
    return out


def study_args(doc: str, cache: str, argv=None, backbones=(), flags=None, choices=None):
    """The command line of the studies that finish FedLPA's discoveries again (this one, ``new_split.py``,
    ``warmup_length.py``, ``markov_merge.py``, ``discovery_knobs.py``): ``--workers`` and ``--cache`` (one JSON per
    alpha and seed, so a study resumes), ``--backbone`` among ``backbones`` where a study runs on more than one, a
    study's own switches (``flags``: name -> help) and options (``choices``: name -> (allowed values, help); the
    first is the default)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), cache))
    for flag, text in (flags or {}).items():
        ap.add_argument(flag, action="store_true", help=text)
    for flag, (allowed, text) in (choices or {}).items():
        ap.add_argument(flag, choices=allowed, default=allowed[0], help=text)
    if backbones:
        ap.add_argument("--backbone", choices=backbones, default=backbones[0])
    a = ap.parse_args(argv)
    if a.workers < 1:
        ap.error("--workers must be >= 1")
    return a


def cached_runs(fn, cache: str, workers: int, desc: str, extra: tuple = (), seeds: tuple = ()) -> list:
    """``fn((alpha, seed, *extra))`` for tuning seeds, then evaluation seeds (or ``seeds``), both alphas, in parallel
    processes; each result kept in ``cache`` and read from there when it is (the records in that order)."""
    os.makedirs(cache, exist_ok=True)
    jobs = [(al, s, *extra) for s in seeds or TUNING + EVALUATION for al in T.TABLE_ALPHAS]
    path = {j: os.path.join(cache, f"a{j[0]:g}_s{j[1]}.json") for j in jobs}
    todo = [j for j in jobs if not os.path.exists(path[j])]
    with ProcessPoolExecutor(workers) as ex, tqdm(total=len(todo), desc=desc, unit="run") as bar:
        for j, r in zip(todo, ex.map(fn, todo)):
            write_json_atomic(path[j], r)
            bar.update(1)
    return [json.load(open(path[j])) for j in jobs]


def write_study(res: dict, json_path: str, md_path: str, lines) -> None:
    """A study's record and its report (``lines(res)``), each written whole or not at all."""
    write_json_atomic(json_path, res)
    write_text_atomic(md_path, "\n".join(lines(res)) + "\n")
    print(f"wrote {json_path} and {md_path}")


def study_main(doc: str, cache: str, fn, record, lines, paths, desc: str, argv=None, backbones=("pretrained",),
               flags=None, then=None):
    """The front door of ``new_split.py``, ``warmup_length.py`` and ``markov_merge.py``: ``fn`` per alpha and seed
    (cached; on a backbone other than the first of ``backbones``, its name is the job's third item), then ``record``
    of all, and ``then(res, args, backbone)`` where given (a study's own step, switched by its ``flags``), written
    with its report where ``paths`` says; prints the pick."""
    a = study_args(doc, cache, argv, backbones if len(backbones) > 1 else (), flags)
    backbone = getattr(a, "backbone", backbones[0])
    extra = () if backbone == backbones[0] else (backbone,)      # the first backbone's jobs and files keep no name
    res = record(cached_runs(fn, a.cache + suffix(backbone), a.workers, desc, extra), *extra)
    if then is not None:
        res = then(res, a, backbone)
    write_study(res, *paths(*extra), lines)
    print(f"pick {res['pick']['setting']}")


def main(argv=None):
    a = study_args(__doc__, "kest_anatomy_cache", argv)
    full = cached_runs(one, a.cache, a.workers, "first discoveries")
    chosen = pick(compact(full, ()))
    keep = list(dict.fromkeys(("off", chosen["choice"]["setting"])))
    records = compact(full, keep)
    res = {"tuning_seeds": list(TUNING), "evaluation_seeds": list(EVALUATION), "grid": NAMES, "pick": chosen,
           "parts": parts_rows(records, keep), "records": records}
    write_study(res, OUT, MD, lines)
    print(f"chose {res['pick']['choice']['setting']}")


if __name__ == "__main__":
    main()
