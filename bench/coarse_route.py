"""Issue 9: a client that finds few categories is discovered again at a coarser time (``DiscoveryParams.coarse_k``).

``markov_merge.py`` and ``discovery_knobs.py`` searched 210 settings of one value for every client (markov time,
merging threshold, InfoMap's restarts, the graph's k, the noise share): none keeps K_hat within +-1 on 80 % of the
tuning clients at both alphas, and every knob that sets the partition's granularity trades alpha 0.1 against alpha 1
along one front. The two ends want different partitions: a client with few classes (strong skew) is over-split at
the time that suits a client of many (FedLPA's setting over-counts at alpha 0.1 by +0.72 on the tuning clients), and
a coarser time (``markov_merge.py``'s KL pick, markov 3 with merging >= 0.7) hides classes at alpha 1. A client
cannot see its alpha, but it sees what its own discovery counts.

The rule (``DiscoveryParams.coarse_k``; it reads only the client's own K_hat): discover as FedLPA does; where that
counts at most ``coarse_k`` categories, discover again on the same graph at ``coarse_markov_time`` with
``coarse_merge_cosine`` (the library's defaults: ``markov_merge.py``'s KL pick). Both discoveries of every client are
already in ``markov_merge.json`` (its FedLPA setting and its pick, the same graph and seed as ``discover`` uses:
tested), so the study needs no new run: for each ``coarse_k`` of :data:`CUTOFFS`, each client's K_hat, its parts and
KL(oracle || pi) are those of the discovery the rule keeps. The pick, fixed before this script was written: the
studies' rule (``new_split.pick``: among cutoffs with K_hat within +-1 on >= 80 % of the tuning clients at both
alphas, the lowest mean KL(oracle || pi); off, FedLPA as it is, competes and wins ties). The evaluation seeds only
report. (Disclosure: the first look at these numbers, a scratch script, printed the evaluation clients' shares beside
the tuning clients'; the rule above is the one every discovery study uses and chose by the tuning clients alone.)

A second signal (added the stop after the adoption; the same rule picks over both families and the tuning clients
alone): coarse where the client's own labels hold at most n old classes (:data:`LABELLED`; the labels the client may
see, ``Experiment.visible_labels``). Why: at alpha 1 the K_hat route also sends the clients whose fine discovery
under-counts, which the coarse time makes count fewer still (the tuning clients' K_hat - K at alpha 1 falls with the
route); the old classes a client's labels hold do not fall when its discovery under-counts, and a skewed client holds
few. (Disclosure: the first look at this signal, a scratch script, printed the evaluation clients' numbers beside the
tuning clients'.) The library has a field for the K_hat route only: a pick from this family would need one before it
could be trained.

``--train``: a pick other than off is trained as ``markov_merge.py --train`` trains its pick (tuning seeds 100/101,
evaluation seeds 0-9, both alphas, paired per seed with FedLPA's runs made on this machine, which are copied from
``gcd_replicate/`` and ``gcd_markov_merge/``), with its adoption rule (mean All over the tuning runs above FedLPA's,
and K_hat within +-1 on >= 80 % of the tuning clients at both alphas).

    python bench/coarse_route.py                    # seconds: reads markov_merge.json
    python bench/coarse_route.py --workers 2 --train

Writes ``bench/results/coarse_route.json`` and ``.md``; trained runs in ``bench/results/gcd_coarse_route/``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kest_anatomy as KA  # noqa: E402
import markov_merge as MM  # noqa: E402
import new_split as NS  # noqa: E402
import run_gcd_tables as T  # noqa: E402

CUTOFFS = tuple(range(3, 10))
#: the other signal: coarse where the client's own labels hold at most this many old classes (of the 5)
LABELLED = (1, 2, 3, 4)
JSON, MD = KA.study_paths("coarse_route")
TRAIN_DIR = os.path.join(T.RES, "gcd_coarse_route")
WALL_DIR = os.path.join(T.RES, "gcd_coarse_route_wall")
OFF = "off"


def name(cutoff) -> str:
    return OFF if cutoff is None else f"coarse when K̂ <= {cutoff}"


def labelled_name(n: int) -> str:
    return f"coarse when labels hold <= {n} old classes"


def names() -> list:
    return [name(None)] + [name(c) for c in CUTOFFS] + [labelled_name(n) for n in LABELLED]


def setting_fields(setting: str) -> dict:
    """The config fields of one of :func:`names` (the route by K_hat: the library has no field for the route by
    labels, which was not adopted)."""
    cut = [c for c in (None, *CUTOFFS) if name(c) == setting]
    if not cut:
        raise ValueError(f"{setting!r} has no library field: only the route by K̂ (coarse_k) is in the library")
    return {"coarse_k": cut[0]}


def labelled_classes(alpha: float, seed: int) -> list:
    """Per client of :func:`kest_anatomy.fedlpa_config`'s run (in order), how many old classes its own labels hold:
    the labels the client may see (``Experiment.visible_labels``), no label of an unlabelled sample."""
    from lab.gcd.experiment import Experiment

    exp = Experiment(KA.fedlpa_config(alpha, seed))
    seen = [exp.visible_labels(k) for k in range(exp.n_clients)]
    return [len(set(v[v >= 0].tolist())) for v in seen]


def settings_used() -> tuple:
    """(FedLPA's setting, the coarse one the library routes to), as named in ``markov_merge.py``."""
    from lab.gcd.discovery import DiscoveryParams

    p = KA.fedlpa_config(T.TABLE_ALPHAS[0], 0).discovery_params()
    lib = DiscoveryParams()
    return MM.name(p.markov_time, p.merge_new_cosine), MM.name(lib.coarse_markov_time, lib.coarse_merge_cosine)


def routed(mm: dict, labelled=labelled_classes) -> list:
    """``markov_merge.json``'s per-client records with, per client, the discovery each setting keeps (order of
    :func:`names`), whether it sent the client coarse (``sent``), the count of FedLPA's own discovery (``k_fine``:
    the route by K_hat goes coarse where it is <= the cutoff) and the old classes the client's labels hold
    (``labelled``, from ``labelled(alpha, seed)``: the route by labels goes coarse where it is <= the cutoff)."""
    fine, coarse = (mm["settings"].index(s) for s in settings_used())
    k = mm["fields"].index("k_hat")
    out = []
    for r in mm["records"]:
        clients, held = [], labelled(r["alpha"], r["seed"])
        for c in r["clients"]:
            f, g = c["settings"][fine], c["settings"][coarse]
            n = held[c["client"]]
            sent = [False] + [f[k] <= cut for cut in CUTOFFS] + [n <= cut for cut in LABELLED]
            clients.append({"client": c["client"], "k": c["k"], "k_fine": f[k], "labelled": n, "sent": sent,
                            "settings": [g if go else f for go in sent]})
        out.append({"alpha": r["alpha"], "seed": r["seed"], "clients": clients})
    return out


def record(mm: dict) -> dict:
    """What is committed: per cutoff and seed set the tables the report shows, the share of clients each cutoff
    sends coarse, the pick, the pick trained (None until its runs are made) and the side-by-side wall pair."""
    recs = routed(mm)
    tuning = MM.summary(recs, KA.TUNING, names())

    def sent(seeds, a, i):
        return float(np.mean([c["sent"][i] for c in NS._clients(recs, seeds, a)]))

    shares = {label: {str(a): {s: sent(seeds, a, i) for i, s in enumerate(names()) if s != OFF}
                      for a in T.TABLE_ALPHAS}
              for label, seeds in (("tuning", KA.TUNING), ("evaluation", KA.EVALUATION))}
    fine, coarse = settings_used()
    return {"fine": fine, "coarse": coarse, "cutoffs": list(CUTOFFS), "settings": names(), "default": OFF,
            "fields": list(MM.FIELDS), "tuning": tuning, "evaluation": MM.summary(recs, KA.EVALUATION, names()),
            "routed_share": shares, "labelled_counts": held(recs), "pick": (p := NS.pick(tuning, OFF)),
            "trained": None if p["setting"] == OFF else MM.trained(p["setting"], TRAIN_DIR, setting_fields),
            "wall_pair": None if p["setting"] == OFF else wall_pair(p["setting"])}


def held(recs) -> dict:
    """Per seed set and alpha: how many clients' labels hold 0, 1, ... old classes (index = the count)."""
    return {label: {str(a): np.bincount([c["labelled"] for c in NS._clients(recs, seeds, a)]).tolist()
                    for a in T.TABLE_ALPHAS}
            for label, seeds in (("tuning", KA.TUNING), ("evaluation", KA.EVALUATION))}


def held_line(counts: dict) -> str:
    return "; ".join(f"α {a}: " + ", ".join(f"{n} hold {i}" for i, n in enumerate(ns) if n)
                     for a, ns in counts["tuning"].items())


def labelled_verdict(res) -> str:
    """What the pick says of the route by labels: its best eligible cutoff against the pick, by the pick's KL."""
    ours = [labelled_name(n) for n in LABELLED]
    ok = [s for s in ours if s in res["pick"]["eligible"]]
    p, kl = res["pick"]["setting"], res["pick"]["kl"]
    if p in ours:
        return f"The route by labels is the pick ({p}): it needs a library field before it can be trained."
    if not ok:
        return "No route by labels keeps K̂ within ±1 on ≥ 80 % of the tuning clients at both α."
    best = min(ok, key=kl.get)
    return (f"The route by labels: eligible {', '.join(ok)}; the best of them ({best}) has mean KL {kl[best]:.4f} "
            f"against the pick's {kl[p]:.4f}, so the rule keeps **{p}**.")


def wall_configs(setting: str) -> tuple:
    """(the pick's config, FedLPA's) of the first tuning seed at alpha 1, which ``--wall-pair`` makes side by side."""
    _, cfg, base = MM.train_configs(setting, fields_of=setting_fields)[("tuning", T.TABLE_ALPHAS[-1])][0]
    return cfg, base


def wall_pair(setting: str) -> dict | None:
    """Seconds and All of the pick's run and FedLPA's made side by side in one session (``--wall-pair``): the trained
    pairs copy FedLPA's runs from earlier sessions, so their wall ratio also reads the machine's speed that day."""
    got = [T.load(c, WALL_DIR) for c in wall_configs(setting)]
    if not all(got):
        return None
    keep = ("seconds", "acc_all")
    return {"pick": {k: got[0][k] for k in keep}, "fedlpa": {k: got[1][k] for k in keep},
            "same_all_as_trained": all(g["acc_all"] == T.load(c, TRAIN_DIR)["acc_all"]
                                       for g, c in zip(got, wall_configs(setting)))}


def lines(res) -> list:
    by = {label: MM._by(res[label]) for label in ("tuning", "evaluation")}
    out = ["# A client that finds few categories, discovered again at a coarser time (issue 9)", "",
           "Made by `bench/coarse_route.py` (why, and how it is picked: its docstring). The rule "
           "(`DiscoveryParams.coarse_k`): discover at FedLPA's setting "
           f"(**{res['fine']}**); where that counts K̂ <= the cutoff, discover again on the same graph at "
           f"**{res['coarse']}**. It reads only the client's own count. Both discoveries of each client are "
           "`markov_merge.json`'s (the tables' FedLPA at its first discovery, tuning seeds "
           f"{KA.TUNING[0]}-{KA.TUNING[-1]}, evaluation seeds {KA.EVALUATION[0]}-{KA.EVALUATION[-1]}, α 0.1 and 1, "
           "5 clients each); KL against the oracle prior, the true labels read after the fact.", "",
           "A second signal competes for the same pick (added a stop after the adoption, with the same rule): "
           "**coarse where the client's own labels hold at most n old classes** (of "
           f"{len(KA.fedlpa_config(T.TABLE_ALPHAS[0], 0).old_classes)}). A client sees which old classes its "
           "labelled samples hold; a skewed client holds few, and the count cannot fall with a discovery that "
           "under-counts, as K̂ does at α 1. Clients per count, tuning: " + held_line(res["labelled_counts"]) + ".",
           "", NS.pick_line(res["pick"], "; off wins ties"), "",
           "| route | K̂ within ±1, tuning | K̂ − K, tuning | KL(oracle ‖ π), tuning | clients sent coarse, tuning | "
           "K̂ within ±1, evaluation | KL, evaluation | sent coarse, evaluation |", "|---|---|---|---|---|---|---|---|"]

    def sent(label, s):
        if s == OFF:
            return "0 % / 0 %"
        return " / ".join(f"{100 * res['routed_share'][label][str(a)][s]:.0f} %" for a in T.TABLE_ALPHAS)

    tun, ev = by["tuning"], by["evaluation"]
    for s in res["settings"]:
        cells = [MM.both_alphas(tun, s, f) for f in ("within_1", "k_hat_minus_k", "kl")] + [sent("tuning", s)]
        cells += [MM.both_alphas(ev, s, f) for f in ("within_1", "kl")] + [sent("evaluation", s)]
        out.append(f"| {'**' + s + '**' if s == res['pick']['setting'] else s} | " + " | ".join(cells) + " |")
    out += ["", labelled_verdict(res)]
    out += MM.trained_lines(res, TRAIN_DIR)
    if w := res.get("wall_pair"):
        out += ["", "Walls: the trained pairs' FedLPA runs were copied from earlier sessions, so the wall ratios above "
                    "also read the machine's speed on two days. Made side by side in this study's session "
                    f"(`--wall-pair`, `{os.path.basename(WALL_DIR)}/`: the first tuning seed at α 1, 2 workers): the "
                    f"pick {w['pick']['seconds']:.1f} s, FedLPA {w['fedlpa']['seconds']:.1f} s "
                    f"({w['pick']['seconds'] / w['fedlpa']['seconds']:.2f}×), each with the All of its trained run"
                    + (" (bit-identical)." if w["same_all_as_trained"] else ": **not** bit-identical to its trained.")]
    if (t := res.get("trained")) and t["adopt"]:
        from lab.gcd.discovery import DiscoveryParams

        out += ["", "**Status.** Adopted by the rule written before its runs: the library's default is "
                    f"`coarse_k = {DiscoveryParams().coarse_k}` since, and every FedLPA run of the tables "
                    "(`run_gcd_tables.py`: tuning grid, tables and ablations, α curve, seed study, heads) was made "
                    f"again with it (`gcd_summary.md`; the runs without it: `{T.BEFORE_ROUTE_DIR}/`). The studies of "
                    "FedLPA's first discovery search the discovery the route starts from (`coarse_k` off)."]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--train", action="store_true", help="train a pick other than off beside FedLPA (docstring)")
    ap.add_argument("--wall-pair", action="store_true", help="make one pick run and its FedLPA run side by side (2 "
                    "workers) to read the wall ratio in one session")
    a = ap.parse_args(argv)
    if a.workers < 1:
        ap.error("--workers must be >= 1")
    mm = json.loads(open(MM.JSON).read())
    p = record(mm)["pick"]["setting"]
    if a.train and p != OFF:
        MM.train(p, a.workers, TRAIN_DIR, setting_fields, copy_from=(MM.TRAIN_DIR,))
    if a.wall_pair and p != OFF:
        T.run_all(list(wall_configs(p)), WALL_DIR, 2, "the pick and FedLPA side by side")
    res = record(mm)
    KA.write_study(res, JSON, MD, lines)
    print(f"pick {p}" + (f", adopted: {res['trained']['adopt']}" if res["trained"] else ""))


if __name__ == "__main__":
    main()
