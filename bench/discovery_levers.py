"""Issue 9: do other discovery settings move FedLPA's All on the wide backbone? Real runs, 2-core CPU machine.

The discovery study (``bench/discovery_study.py --backbone pretrained-wide``) picks FedLPA's discovery by K_hat on
the tuning seeds; its masses stage says where the prior still goes wrong. Each lever below is one other setting,
picked on the tuning seeds only (their labels: the study's protocol), run like FedLPA's row of item 7
(``bench/run_gcd_tables.py --stage backbone``: same learning rate, evaluation seeds 0-2) and paired per seed with
that row's runs (at the prior the study had chosen then, ``PAIRED_WITH``), made again here, in the same folder: runs
move with the machine instance (a rerun of an item-7 run a day later on a 2-core "AMD EPYC" with the same torch build
moved All by up to 1.4 points), so every run this report pairs is made in this script's folder:

- ``prior fit under the K_hat bar``: among the grid's settings with K_hat within +-1 on >= 80 % of the tuning
  clients at both alphas, the lowest mean KL(oracle || pi) over heads at the worse alpha (the K_hat bar as a
  constraint, the prior's fit as the objective): markov time 3, labelled share 0.3;
- ``new classes kept apart``: the masses stage counts, per held new class, whether its community is its own or
  shared with another new class (``lab.gcd.prior.new_class_fates``). At markov time 6 most new classes at
  alpha 1 share one (Sandal, Sneaker and Ankle boot as one footwear community); at 1.5 few do and the clients
  agree on a new class's head about as often as the oracle's mapping, at the cost of K_hat (over-split).
- ``old claims tested against the labelled fraction``: at 1.5 the over-count is mostly pieces of old classes whose
  labelled share falls just under the study's 0.5 (the labelled fraction itself), so they become new-class
  candidates; at 6 the share cannot refuse a community half of which is a new class. ``claim_z``
  (:func:`lab.gcd.prior.community_claims`) claims when the labels are what a pure piece would hold, up to z binomial
  standard deviations. Markov time and z picked by ``--pick`` on the study's tuning clients with the study's own
  criterion (``pick_claim_rule``; ``bench/results/discovery_levers_pick.json``).
- ``prior picked by total variation``: told the heads, FedLPA gains 8 points (the ceilings); what that removes is
  the mass its prior puts on heads that hold none of the client's classes, which the study's KL(oracle || pi)
  cannot see. The study's pick of the prior, by total variation instead (``pick_priors``). The ceilings that
  suggested the criterion ran on the evaluation seeds, so this lever is also run on the tuning seeds beside FedLPA
  (``TUNING_CHECK``, with the ceilings): whether FedLPA should take it is read there, as the protocol reads
  learning rates.
- ``prior re-picked with the EM priors among the candidates``: the argmax half of ``blend`` counts every ambiguous
  sample for its top head, so a client's mass leaks onto new heads its classes are not on; ``em`` takes the new
  heads' masses from EM under label shift instead (:func:`lab.gcd.prior.em_prior`), ``em_blend`` is em with excess.
  Picked by the study's own rule for the prior (``choose_prior``: mean KL(oracle || pi) over both alphas, tuning
  clients), which prefers ``em_blend`` on this backbone and keeps ``blend`` on the committed one
  (``pick_priors``); also run on the tuning seeds.

The EM lever is also measured on the committed backbone, whose study keeps blend (``COMMITTED_RUNS``): the tables'
FedLPA config with only its prior changed, on every seed of the seed study and on the tuning seeds. Not adopted: the
study's rule chooses the prior, these runs only say what the rule's choice cost or saved there. So is a probe that
followed from the seed study's diagnosis (``run_gcd_tables.k_hat_direction``: at alpha 1 FedLPA loses where its K_hat
over-counts): the same config with only a larger markov time (``MERGE_RUNS``), split by FedLPA's net over-count.
And so is the client-level rule against that over-count that ``bench/kest_anatomy.py`` picked on tuning seeds
100-109 by K_hat alone (the discovery study's criterion): new-class communities whose mean predictions agree are
merged (``SPLIT_RUNS``). The criterion picked it, so it is the library's default now and its runs are the tables'
FedLPA; every lever on the committed backbone stays paired with FedLPA as it was before (``BEFORE_SPLIT``).

Beside them, two ceilings (they read true labels: never methods), the oracle's lead over FedLPA on this backbone
taken apart as the seed study does on the committed one (``lab.gcd.methods.ORACLE_PARTS``): FedLPA told which
heads the client's classes are on, with its own estimated masses on them or with equal masses.

    python bench/discovery_levers.py --pick --workers 2   # picks the last three levers (2 min; the studies' caches)
    python bench/discovery_levers.py --workers 2      # 206 runs, about 5 h 30 min on 2 cores; resumes; then the report

Writes ``bench/results/gcd_levers_2core/`` (one file per run, its config inside) and
``bench/results/discovery_levers.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_gcd_tables as T  # noqa: E402

from lab.gcd.discovery import DiscoveryParams  # noqa: E402
from lab.results import COMMITTED_BACKBONE  # noqa: E402

BACKBONE = "pretrained-wide"
PICK = os.path.join(T.RES, "discovery_levers_pick.json")
CLAIM_LABEL = "old claims tested against the labelled fraction"
TV_LABEL = "prior picked by total variation"
EM_LABEL = "prior re-picked with the EM priors among the candidates"
CLAIM_Z = (1.0, 2.0, 3.0)
#: the labelled share a community needs before it counts towards the client's labelled-fraction estimate (and claims)
CLAIM_FLOOR = 0.1


def picked() -> dict:
    """lever label -> its discovery fields as ``--pick`` chose them (``PICK``); {} before it has run."""
    return {label: p["fields"] for label, p in json.load(open(PICK)).items()} if os.path.exists(PICK) else {}


#: label -> (discovery fields that differ from FedLPA's row on BACKBONE, alphas run)
LEVERS = {"prior fit under the K̂ bar": (dict(markov_time=3.0, min_labelled_share=0.3), (0.1,)),
          "new classes kept apart": (dict(markov_time=1.5), T.TABLE_ALPHAS),
          **{label: (fields, T.TABLE_ALPHAS) for label, fields in picked().items()}}
#: ... and the ceilings beside them (same shape)
CEILINGS = {f"ceiling: {n}": (flags, (0.1,)) for n, flags in T.ORACLE_PARTS.items()}
RUNS = {**LEVERS, **CEILINGS}
OUT = os.path.join(T.RES, "gcd_levers_2core")
#: what every lever is paired with: FedLPA's item-7 row as the levers were made, at the wide study's choice with the
#: prior it had then. The study has since re-chosen its prior among the EM priors too (``em_blend``: that is the EM
#: lever's run, now item 7's FedLPA row); pinned so that the committed lever runs keep their pairs and names
PAIRED_WITH = {"prior_rule": "blend"}


def _study_units(cache: str, backbone: str = BACKBONE) -> tuple:
    """(a discovery study's choice, one unit per study client: its trained snapshots x alphas x tuning and evaluation
    seeds x 5 clients) for the ``--pick`` grids; the wide study's unless ``backbone`` says otherwise."""
    import discovery_study as S

    S.set_backbone(backbone)
    params = json.load(open(S.out_paths()[0]))["choice"]["params"]
    if backbone == BACKBONE:
        params = dict(params, prior=PAIRED_WITH["prior_rule"])
    return params, [(cache, k, al, s, c, params) for k in S.TRAINED for al in S.ALPHAS
                    for s in S.TUNING_SEEDS + S.EVAL_SEEDS for c in range(5)]


def _claim_unit(args):
    """One study client: K_hat and KL(oracle || pi) of every (markov time, z) of the claim-rule grid."""
    import discovery_study as S

    from lab.gcd.discovery import build_discovery_graph, finish, raw_modules
    from lab.gcd.prior import empirical_prior, head_kl, oracle_heads

    cache, kind, alpha, seed, client, params = args
    S.set_backbone(BACKBONE)
    u = S.unit_inputs(cache, kind, alpha, seed, client)
    p0 = S.chosen_params({"params": params}).replace(min_labelled_share=CLAIM_FLOOR)
    graph, f, used = build_discovery_graph(u["feats"], u["probs"], u["lab"], u["yv"], u["old"],
                                           prefix_features=u["prefix"], params=p0, seed=seed)
    po = empirical_prior(oracle_heads(u["y"], u["probs"], u["old"], S.N_HEADS), S.N_HEADS, 0.5)
    rows = []
    for t in S.GRID_T:
        mods = raw_modules(graph, p0.replace(markov_time=t), seed)
        for z in CLAIM_Z:
            p = p0.replace(markov_time=t, claim_z=z)
            d = finish(mods, f, u["probs"], u["lab"], u["yv"], u["old"], S.N_HEADS, p, graph, used)
            rows.append(dict(t=t, z=z, k=d.k_est, kl=head_kl(po, d.prior)))
    return dict(kind=kind, alpha=alpha, seed=seed, k_true=u["k_true"], rows=rows)


def pick_claim_rule(cache: str, workers: int) -> dict:
    """The claim-rule lever (``claim_z``, :func:`lab.gcd.prior.community_claims`) picked as the discovery study picks
    (``choose`` in ``bench/discovery_study.py``): the study's choice on BACKBONE with a markov time and a z from a
    grid, on its tuning seeds and trained snapshots; score: the share of clients with |K_hat - K| <= 1 at the worse
    alpha, smoothed over neighbouring markov times; ties: the mean over alphas, then the lower mean KL(oracle || pi)
    over heads. The evaluation seeds are then only reported."""
    import discovery_study as S
    import numpy as np

    params, units = _study_units(cache)
    recs = S.run_units(_claim_unit, units, workers, "claim rule")
    cell = {}                           # (seed set, t, z) -> alpha -> [(within 1, kl)]
    for r in recs:
        ss = "tuning" if r["seed"] in S.TUNING_SEEDS else "evaluation"
        for row in r["rows"]:
            cell.setdefault((ss, row["t"], row["z"]), {a: [] for a in S.ALPHAS})[r["alpha"]].append(
                (abs(row["k"] - r["k_true"]) <= 1, row["kl"]))
    stat = {k: {a: (float(np.mean([w for w, _ in v])), float(np.mean([x for _, x in v]))) for a, v in by_a.items()}
            for k, by_a in cell.items()}

    def score(t, z):
        i = S.GRID_T.index(t)
        nb = [S.GRID_T[j] for j in (i - 1, i, i + 1) if 0 <= j < len(S.GRID_T)]
        w = [float(np.mean([stat[("tuning", x, z)][a][0] for x in nb])) for a in S.ALPHAS]
        return min(w), float(np.mean(w)), -float(np.mean([stat[("tuning", t, z)][a][1] for a in S.ALPHAS]))

    t, z = max(((t, z) for t in S.GRID_T for z in CLAIM_Z), key=lambda tz: score(*tz))
    table = [dict(seeds=ss, t=tt, z=zz, **{f"within1_a{a:g}": v[0] for a, v in stat[(ss, tt, zz)].items()},
                  **{f"kl_a{a:g}": v[1] for a, v in stat[(ss, tt, zz)].items()})
             for ss, tt, zz in sorted(stat)]
    return {"fields": dict(markov_time=t, min_labelled_share=CLAIM_FLOOR, claim_z=z), "score": score(t, z),
            "criterion": "bench/discovery_levers.py: pick_claim_rule", "study_choice": params,
            "clients_per_alpha": {ss: len(S.TUNING_SEEDS if ss == "tuning" else S.EVAL_SEEDS) * len(S.TRAINED) * 5
                                  for ss in ("tuning", "evaluation")}, "grid": table}


def _prior_unit(args):
    """One study client at the study's choice: every prior of ``PRIORS`` against the oracle's (KL, TV, empty mass)."""
    import discovery_study as S

    from lab.gcd.discovery import discover

    backbone, cache, kind, alpha, seed, client, params = args
    S.set_backbone(backbone)
    u = S.unit_inputs(cache, kind, alpha, seed, client)
    d = discover(u["feats"], u["probs"], u["lab"], u["yv"], u["old"], S.N_HEADS, prefix_features=u["prefix"],
                 params=S.chosen_params({"params": params}), seed=seed)
    return dict(kind=kind, alpha=alpha, seed=seed, priors=S.all_priors(
        d, u["probs"], u["yv"], u["old"], u["y"], S.oracle_prior(u["y"], u["probs"], u["old"])))


def prior_grid(cache: str, workers: int, backbone: str = BACKBONE) -> tuple:
    """(the study's choice, every prior of ``PRIORS`` against the oracle's at the study's setting on its trained
    snapshots: (seed set, prior) -> alpha -> mean KL(oracle || pi), TV and mass on empty heads, the same as rows)."""
    import discovery_study as S
    import numpy as np

    params, units = _study_units(cache, backbone)
    cell = {}                           # (seed set, prior) -> alpha -> [metrics]
    for r in S.run_units(_prior_unit, [(backbone, *u) for u in units], workers, f"priors ({backbone})"):
        ss = "tuning" if r["seed"] in S.TUNING_SEEDS else "evaluation"
        for name, m in r["priors"].items():
            cell.setdefault((ss, name), {a: [] for a in S.ALPHAS})[r["alpha"]].append(m)
    mean = {k: {a: {m: float(np.mean([x[m] for x in v])) for m in ("kl_head", "tv_head", "mass_on_empty")}
                for a, v in by_a.items()} for k, by_a in cell.items()}
    table = [dict(seeds=ss, prior=n, **{f"{m}_a{a:g}": x for a, v in mean[(ss, n)].items() for m, x in v.items()})
             for ss, n in sorted(cell)]
    return params, mean, table


#: how a prior pick reduces a metric's mean per alpha to one score: the worse alpha, or the mean over both alphas
#: (``choose_prior`` in ``bench/discovery_study.py``: its tuning clients pooled, the same number at each alpha)
REDUCE = {"worse alpha": max, "mean over alphas": lambda v: sum(v) / len(v)}


def pick_prior(grid: tuple, metric: str, candidates, reduce: str) -> dict:
    """The prior among ``candidates`` with the lowest ``metric`` on the tuning clients of ``prior_grid``, its
    per-alpha means reduced by ``REDUCE[reduce]``. The evaluation seeds only report."""
    import discovery_study as S

    params, mean, table = grid
    best = min(candidates, key=lambda n: REDUCE[reduce]([mean[("tuning", n)][a][metric] for a in S.ALPHAS]))
    return {"fields": dict(prior_rule=best), "metric": metric, "reduce": reduce, "candidates": list(candidates),
            "study_choice": params, "grid": table}


#: the priors the TV lever chose among: ``PRIORS`` but uniform, as they were before the EM priors were added
TV_CANDIDATES = ("argmax", "blend", "communities", "equal", "excess", "hybrid", "sorted")


def pick_priors(cache: str, committed_cache: str, workers: int) -> dict:
    """Two levers from one grid of priors.

    - ``TV_LABEL``: the study's pick of the prior with the total variation to the oracle's prior in place of
      KL(oracle || pi), at the worse alpha: KL sums over the heads the oracle holds, so mass a prior puts on heads
      no class of the client is on is invisible to it, and the ceilings say that mass is what costs FedLPA most;
    - ``EM_LABEL``: the study's own pick (``choose_prior``: mean KL over both alphas) again, now that ``em`` and
      ``em_blend`` (the new heads' masses by EM under label shift, :func:`lab.gcd.prior.em_prior`) are among the
      candidates. The same pick on the committed backbone's study (``committed_backbone``, from ``committed_cache``)
      says whether the committed tables' FedLPA would change prior."""
    from lab.gcd.discovery import PRIORS

    grid = prior_grid(cache, workers)
    every = [n for n in PRIORS if n != "uniform"]
    em = pick_prior(grid, "kl_head", every, "mean over alphas")
    committed = pick_prior(prior_grid(committed_cache, workers, COMMITTED_BACKBONE), "kl_head", every,
                           "mean over alphas")
    return {TV_LABEL: pick_prior(grid, "tv_head", TV_CANDIDATES, "worse alpha"),
            EM_LABEL: dict(em, committed_backbone=committed)}


#: levers also run on the tuning seeds, beside FedLPA there: a choice between a lever and FedLPA's setting may read
#: those runs' labels (the protocol's rule for learning rates), never the evaluation seeds'. The ceilings too: they
#: suggested the TV lever's criterion, so what they show is checked where a choice may look
TUNING_CHECK = (TV_LABEL, EM_LABEL, *CEILINGS)
#: the EM lever is item 7's FedLPA now; how large is its lead over FedLPA at blend? More evaluation seeds of the seed
#: study (3 seeds leave a paired difference inside the seed spread), at the same settings; no choice is made on them
MORE_SEEDS, MORE = T.BACKBONE_MORE_SEEDS, (EM_LABEL,)
#: the EM lever on the committed backbone, whose study keeps blend (by 0.004 in KL), so the Done-when table does not
#: change: what would em_blend have done there? Reported, never adopted (the study's rule decides, not these runs);
#: on every seed of the seed study and on the tuning seeds, paired with FedLPA at blend made again in ``OUT``
COMMITTED_LABEL = "the EM lever on the committed backbone (its study keeps blend: not adopted)"
COMMITTED_RUNS = {COMMITTED_LABEL: (dict(prior_rule="em_blend"), T.TABLE_ALPHAS)}
#: at alpha 1 the committed tables' FedLPA loses to FedAvg+SimGCD on the seeds where its clients' K_hat over-counts
#: (``run_gcd_tables.k_hat_direction``, read from the seed study's runs after the fact). A probe, not a lever picked by
#: a rule: does the same FedLPA with a larger markov time (fewer communities) recover those seeds, and what does it
#: cost where K_hat was not over? Every seed of the seed study and the tuning seeds, paired like ``COMMITTED_RUNS``
MERGE_RUNS = {f"probe: markov time {t:g} (fewer communities)": (dict(markov_time=t), T.TABLE_ALPHAS)
              for t in (2.0, 3.0)}
SPLIT_LABEL = "lever: new-class communities merged when their predictions agree"
#: what the levers on the committed backbone are paired with: the tables' FedLPA as it was when they were made,
#: before ``SPLIT_RUNS``' rule became the library's default (pinned, so that those runs keep their pairs and names;
#: the SPLIT lever's runs are the tables' FedLPA since)
BEFORE_SPLIT = {"merge_new_cosine": None}
BEFORE_SPLIT_TEXT = "without merging by predictions (the tables' FedLPA before that became the default)"
ANATOMY = os.path.join(T.RES, "kest_anatomy.json")


def split_runs() -> dict:
    """The client-level rule against the over-count that ``bench/kest_anatomy.py`` picked on tuning seeds 100-109
    (``merge_new_cosine``), run on the committed backbone like ``MERGE_RUNS``; {} before that pick exists or when
    it is off."""
    if not os.path.exists(ANATOMY):
        return {}
    ch = json.load(open(ANATOMY))["pick"]["choice"]
    if ch["threshold"] is None:
        return {}
    return {SPLIT_LABEL: (dict(merge_new_cosine=ch["threshold"], merge_new_on=ch["on"]), T.TABLE_ALPHAS)}


SPLIT_RUNS = split_runs()


def retune_configs() -> dict:
    """lr -> FedLPA's tuning runs (``run_gcd_tables.tune``'s grid, seeds and alphas) with ``SPLIT_RUNS``' fields: the
    learning rate FedLPA would be tuned to if the pick became its default (the protocol re-tunes a changed method)."""
    fields = next(iter(SPLIT_RUNS.values()), ({},))[0]
    if not fields:
        return {}
    return {g["lr"]: [T.config("fedlpa", al, s, False, **g, **T.BEFORE_ROUTE, **fields) for al in T.TUNING_ALPHAS
                      for s in T.TUNING_SEEDS]
            for g in T.TUNE_GRID["fedlpa"]}


def retune_lines(retune: dict) -> list:
    """The re-tuned grid beside FedLPA's grid without the lever (the tune stage's runs of it, ``T.BEFORE_MERGE_DIR``),
    mean All over the same 4 runs each."""
    mean = lambda rs: sum(r["acc_all"] for r in rs) / len(rs)  # noqa: E731
    got = {lr: [T.load(c, OUT) for c in cs] for lr, cs in retune.items()}
    before_dir = os.path.join(T.RES, T.BEFORE_MERGE_DIR)
    was = {lr: [T.load({**c, **BEFORE_SPLIT}, before_dir) for c in cs] for lr, cs in retune.items()}
    got = {lr: mean(rs) for lr, rs in got.items() if all(rs) and all(was[lr])}
    was = {lr: mean(was[lr]) for lr in got}
    if not got:
        return []
    best, before = max(got, key=got.get), max(was, key=was.get)
    return ["", "With the lever, FedLPA's learning rate re-tuned as `run_gcd_tables.py --stage tune` tunes each method "
                f"({len(T.TUNE_GRID['fedlpa'])} settings, tuning seeds {', '.join(map(str, T.TUNING_SEEDS))}, α "
                f"{', '.join(f'{a:g}' for a in T.TUNING_ALPHAS)}; mean All of the 4 runs), beside FedLPA's grid "
                f"without it (the tune stage's runs before the lever became the default, `{T.BEFORE_MERGE_DIR}/`). "
                f"Best: lr {best:g} with the lever, lr {before:g} without.", "",
            "| lr | with the lever | without |", "|---|---|---|",
            *[f"| {lr:g} | {100 * v:.1f} | {100 * was[lr]:.1f} |" for lr, v in got.items()]]


def configs(best: dict, seeds=T.EVAL_SEEDS, labels=None, backbone: str = BACKBONE, table: dict = RUNS) -> dict:
    """(label, alpha) -> [(seed, the lever's config, FedLPA's config in item 7, the oracle prior's config)] for the
    levers and ceilings ``labels`` of ``table`` (default: all of ``RUNS``), on ``backbone``."""
    out = {}
    runs = T.backbone_runs(backbone)
    paired = PAIRED_WITH if backbone == BACKBONE else BEFORE_SPLIT if backbone == COMMITTED_BACKBONE else {}
    for label, (over, alphas) in table.items():
        if labels is not None and label not in labels:
            continue
        for al in alphas:
            for s in seeds:
                base, oracle = (T.config("fedlpa", al, s, False, **best["fedlpa"],
                                         **{**runs[r][1], **(paired if r == "FedLPA" else {})}, backbone=backbone)
                                for r in ("FedLPA", T.ORACLE))
                out.setdefault((label, al), []).append((s, {**base, **over}, base, oracle))
    return out


def pick_lines() -> list:
    """The report's account of how ``--pick`` chose its levers, with the study's own choice beside them."""
    if not os.path.exists(PICK):
        return []
    claim, tv = (json.load(open(PICK))[k] for k in (CLAIM_LABEL, TV_LABEL))
    f, n = claim["fields"], claim["clients_per_alpha"]
    lines = ["", f"How `{CLAIM_LABEL}` was picked (`--pick`, `{os.path.basename(PICK)}`): markov time × z on the "
                 f"discovery study's trained snapshots, {n['tuning']} tuning clients per α; picked markov time "
                 f"{f['markov_time']:g}, z {f['claim_z']:g} (labelled-share floor {f['min_labelled_share']:g}). The "
                 f"evaluation clients ({n['evaluation']} per α) only report:", "",
             "| seeds | markov time | z | K̂ within ±1, α 0.1 | α 1 | KL(oracle ‖ π), α 0.1 | α 1 |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seeds']} | {r['t']:g} | {r['z']:g} | {r['within1_a0.1']:.0%} | {r['within1_a1']:.0%} | "
              f"{r['kl_a0.1']:.2f} | {r['kl_a1']:.2f} |" for r in claim["grid"] if r["t"] == f["markov_time"]]
    study = json.load(open(os.path.join(T.RES, "discovery_study_pretrained-wide.json")))
    kinds, chosen = study["protocol"]["choice_on_kinds"], study["choice"]["params"]
    kr, pr = study["k_rules"]["chosen: discover()"], study["priors"][chosen["prior"]]
    at = lambda tab, a, ss, m: sum(tab[k][a][ss][m] for k in kinds) / len(kinds)  # noqa: E731  (equal n per kind)
    lines += [f"| {ss}, the study's choice (no test) | {chosen['markov_time']:g} | – | "
              f"{at(kr, '0.1', ss, 'within1'):.0%} | {at(kr, '1.0', ss, 'within1'):.0%} | "
              f"{at(pr, '0.1', ss, 'kl_head'):.2f} | {at(pr, '1.0', ss, 'kl_head'):.2f} |"
              for ss in ("evaluation", "tuning")]
    lines += ["", f"How `{TV_LABEL}` was picked (`--pick`): each prior at the study's setting against the oracle's "
                  "by total variation (TV, which counts the mass on heads that hold none of the client's classes; "
                  "KL(oracle ‖ π) does not see it) at the worse α on the tuning clients. The study picked "
                  f"`{tv['study_choice']['prior']}` by KL; this picks `{tv['fields']['prior_rule']}`. The evaluation "
                  "clients only report:", "",
              "| seeds | prior | TV, α 0.1 | α 1 | mass on empty heads, α 0.1 | α 1 | KL(oracle ‖ π), α 0.1 | α 1 |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seeds']} | {r['prior']} | {r['tv_head_a0.1']:.3f} | {r['tv_head_a1']:.3f} | "
              f"{r['mass_on_empty_a0.1']:.3f} | {r['mass_on_empty_a1']:.3f} | {r['kl_head_a0.1']:.3f} | "
              f"{r['kl_head_a1']:.3f} |" for r in tv["grid"]]
    return lines + em_pick_lines()


def em_pick_lines() -> list:
    """The report's account of the EM pick: the study's own criterion on both backbones."""
    pick = json.load(open(PICK)).get(EM_LABEL)
    if pick is None:
        return []

    def score(p, name):
        (row,) = [r for r in p["grid"] if r["seeds"] == "tuning" and r["prior"] == name]
        return REDUCE[p["reduce"]]([row["kl_head_a0.1"], row["kl_head_a1"]])

    wide, committed = pick, pick["committed_backbone"]
    chosen = wide["study_choice"]["prior"]
    lines = ["", f"How `{EM_LABEL}` was picked (`--pick`): the study's own rule (`choose_prior`: the lowest "
                 "KL(oracle ‖ π), mean over both α, tuning clients) among every prior but uniform, now with `em` "
                 "(the new heads' masses by EM under label shift, `lab.gcd.prior.em_prior`) and `em_blend` (em and "
                 "excess, as blend is argmax and excess); their rows are in the table above. TV candidates: "
                 f"{', '.join(TV_CANDIDATES)} (the priors before the EM ones).", "",
             "| backbone | the study's prior | its score | pick | its score |", "|---|---|---|---|---|"]
    for name, p in ((BACKBONE, wide), ("pretrained (committed)", committed)):
        c, f = p["study_choice"]["prior"], p["fields"]["prior_rule"]
        lines.append(f"| {name} | {c} | {score(p, c):.3f} | {f} | {score(p, f):.3f} |")
    same = committed["fields"]["prior_rule"] == committed["study_choice"]["prior"]
    study = json.load(open(os.path.join(T.RES, "discovery_study_pretrained-wide.json")))["choice"]["params"]["prior"]
    now = ("the wide study, re-run, has chosen it too: this lever's runs are item 7's FedLPA row now "
           "(`gcd_summary.md`)"
           if study == wide["fields"]["prior_rule"] else
           f"the wide study still holds `{study}` (`bench/discovery_study.py --backbone {BACKBONE} --stage priors`)")
    lines += ["", f"On the committed backbone the rule {'keeps' if same else 'changes'} the tables' prior. On the wide "
                  f"backbone it prefers `{wide['fields']['prior_rule']}`, and {now}. The other levers stay paired with "
                  f"FedLPA at `{chosen}`, as they were made."]
    return lines


def report(cfgs: dict, tuning: dict | None = None, more: dict | None = None, committed: dict | None = None,
           merge: dict | None = None, split: dict | None = None) -> list:
    lines = ["# Discovery levers on the wide backbone (2-core CPU machine)", "",
             f"Made by `python bench/discovery_levers.py` (what each lever is and how it was picked, and what the "
             f"ceilings are told: its docstring). "
             f"All (mean of the last 3 evaluations), mean ± std over the evaluation seeds; paired per seed with "
             f"FedLPA at the discovery study's choice with the prior it had when the levers were made, "
             f"{PAIRED_WITH['prior_rule']} (item 7's run until the study re-chose its prior, made again in "
             f"`{os.path.basename(OUT)}/`).", "",
             *lever_header(PAIRED_WITH["prior_rule"])]
    lines += lever_rows(cfgs)
    if tuning:
        lines += ["", "On the tuning seeds (a lever a choice may compare with FedLPA's setting by its All, and the "
                      f"ceilings that suggested it: `TUNING_CHECK`), seeds {', '.join(map(str, T.TUNING_SEEDS))}:", "",
                  f"| lever or ceiling | α | fields | All | FedLPA ({PAIRED_WITH['prior_rule']}) | − FedLPA | ahead | "
                  "K̂ within ±1 |",
                  "|---|---|---|---|---|---|---|---|", *lever_rows(tuning)]
    if more:
        both = {k: cfgs[k] + v for k, v in more.items()}
        lines += ["", f"Over more evaluation seeds ({', '.join(map(str, T.EVAL_SEEDS + MORE_SEEDS))}: the table's and "
                      "the seed study's next ones, `MORE`; no choice was made on them):", "",
                  *lever_header(PAIRED_WITH["prior_rule"]), *lever_rows(both)]
    # what knowing the exact masses adds on top of a ceiling: the oracle prior's run, paired per seed
    rows = []
    for (label, al), runs in cfgs.items():
        if label not in CEILINGS:
            continue
        pairs = [(s, T.load(c, OUT), T.load(o, OUT)) for s, c, _, o in runs]
        pairs = [(s, r, o) for s, r, o in pairs if r and o]
        if pairs:
            p = T._paired({s: o["acc_all"] for s, _, o in pairs}, {s: r["acc_all"] for s, r, _ in pairs},
                          [s for s, _, _ in pairs], label)
            rows.append(f"| {T.ORACLE} − {label.removeprefix('ceiling: ')} | {al:g} | {100 * p['diff']['mean']:+.1f} ± "
                        f"{100 * p['diff']['std']:.1f} | {p['ahead']}/{len(pairs)} |")
    lines += pick_lines() + committed_lines(committed or {})
    lines += committed_lever_lines(merge or {}, MERGE_INTRO, "probe") + committed_lever_lines(split or {}, SPLIT_INTRO,
                                                                                              "lever")
    lines += retune_lines(retune_configs()) if split else []
    if rows:
        lines += ["", f"What the exact masses add on top of a ceiling: `{T.ORACLE}` (item 7's run, made again "
                      "here) − the ceiling, paired per seed:", "", "| difference | α | mean ± std | oracle ahead |",
                  "|---|---|---|---|", *rows]
    return lines


def committed_lines(committed: dict) -> list:
    """The EM lever on the committed backbone (``COMMITTED_RUNS``): the Done-when seeds, every seed of the seed study,
    the tuning seeds."""
    ev, tu = committed.get("evaluation", {}), committed.get("tuning", {})
    first = {k: [r for r in v if r[0] in T.EVAL_SEEDS] for k, v in ev.items()}
    rows = lever_rows(first) + lever_rows(ev) + lever_rows(tu)
    if not rows:
        return []
    return ["", f"The EM lever on the committed backbone (`{COMMITTED_BACKBONE}`), the tables' backbone: its "
                "study's rule keeps `blend` there (the table above), so the Done-when table does not change; what "
                "em_blend would have done is measured, not adopted. Evaluation seeds "
                f"{', '.join(map(str, T.EVAL_SEEDS))} (the Done-when table's), then all "
                f"{len(T.SEED_STUDY)} of the seed study's, then the tuning seeds "
                f"{', '.join(map(str, T.TUNING_SEEDS))}; FedLPA at blend, {BEFORE_SPLIT_TEXT}, made again here:", "",
            *lever_header("blend"), *rows]


def committed_lever_lines(runs: dict, intro: str, name: str) -> list:
    """A lever or probe on the committed backbone (``MERGE_RUNS``, ``SPLIT_RUNS``): the Done-when seeds, every seed of
    the seed study, the tuning seeds; then, over the seed study's seeds, the pairs split by FedLPA's net over-count
    there (Σ (K̂ − K) over the seed's clients, in FedLPA's own run: the split of ``run_gcd_tables.k_hat_direction``)."""
    ev, tu = runs.get("evaluation", {}), runs.get("tuning", {})
    first = {k: [r for r in v if r[0] in T.EVAL_SEEDS] for k, v in ev.items()}
    rows = lever_rows(first) + lever_rows(ev) + lever_rows(tu)
    if not rows:
        return []
    split = []
    for (label, al), got in ev.items():
        got = [(s, T.load(c, OUT), T.load(b, OUT)) for s, c, b, _ in got]
        got = [(s, r, b) for s, r, b in got if r and b]
        net = T.net_overcount
        for group, keep in T.OVERCOUNT_GROUPS:
            g = [(s, r, b) for s, r, b in got if keep(net(b))]
            if g:
                d = T._stats([r["acc_all"] - b["acc_all"] for _, r, b in g])
                nb, nr = (sum(net(x[i]) for x in g) / len(g) for i in (2, 1))
                split.append(f"| {label} | {al:g} | {group}: {', '.join(str(s) for s, _, _ in g)} | {nb:+.1f} | "
                             f"{nr:+.1f} | {100 * d['mean']:+.1f} ± {T._spread(d)} | "
                             f"{sum(v > 0 for v in d['values'])}/{len(g)} |")
    return ["", intro + " Evaluation seeds "
                f"{', '.join(map(str, T.EVAL_SEEDS))}, then all {len(T.SEED_STUDY)} of the seed study's, then the "
                f"tuning seeds {', '.join(map(str, T.TUNING_SEEDS))}; FedLPA at blend (markov time "
                f"{DiscoveryParams().markov_time:g}), {BEFORE_SPLIT_TEXT}, made again here:", "",
            *lever_header("blend"), *rows,
            "", f"The seed study's seeds split by FedLPA's net over-count (mean Σ (K̂ − K) per seed, FedLPA's and the "
                f"{name}'s):", "",
            f"| {name} | α | seeds | net K̂ − K, FedLPA | {name} | {name} − FedLPA | ahead |",
            "|---|---|---|---|---|---|---|",
            *split]


MERGE_INTRO = (f"Probe: fewer communities on the committed backbone (`{COMMITTED_BACKBONE}`). At α 1 the tables' "
               "FedLPA (as it was then) lost to FedAvg+SimGCD on the seeds where its clients' K̂ over-counted on net "
               "(`gcd_summary.md`, the seed study's last table). The same FedLPA with only a larger markov time "
               "(InfoMap finds fewer, larger communities): does it recover those seeds, and what does it cost on the "
               "others? Not a lever picked by a rule (the split it tests was seen on the evaluation seeds): measured, "
               "not adopted.")
SPLIT_INTRO = (f"Lever: new-class communities merged when their predictions agree, on the committed backbone "
               f"(`{COMMITTED_BACKBONE}`). Taken apart at FedLPA's first discovery (`kest_anatomy.md`), the "
               "over-count is a new class split over two new-class communities, which the warm-up model also keeps on "
               "two heads, so merging by head leaves both. The tables' FedLPA config with `merge_new_cosine` (and "
               "`merge_new_on`) as `bench/kest_anatomy.py` picked them on tuning seeds 100-109 by K̂ alone (the "
               "discovery study's criterion): new-class communities whose mean predictions have cosine at least the "
               "threshold are merged. Adopted: it is the library's default since, so these runs are the tables' "
               "FedLPA (`gcd_summary.md`).")


def lever_header(paired: str) -> list:
    """The head of a table of :func:`lever_rows`, FedLPA's column named for the prior it ran with."""
    return [f"| lever | α | fields | All | FedLPA ({paired}) | lever − FedLPA | ahead | K̂ within ±1 |",
            "|---|---|---|---|---|---|---|---|"]


def lever_rows(cfgs: dict) -> list:
    """One table row per (lever, alpha): All of the lever's runs and of FedLPA's, paired per seed."""
    lines = []
    for (label, al), runs in cfgs.items():
        got = [(s, T.load(c, OUT), T.load(b, OUT)) for s, c, b, _ in runs]
        got = [(s, r, b) for s, r, b in got if r and b]
        if not got:
            continue
        a = {s: r["acc_all"] for s, r, _ in got}
        b = {s: r["acc_all"] for s, _, r in got}
        p = T._paired(a, b, list(a), "FedLPA")
        k = T._k_hat_within_1([r for _, r, _ in got])
        sa, sb = T._stats(list(a.values())), T._stats(list(b.values()))
        every = {**RUNS, **COMMITTED_RUNS, **MERGE_RUNS, **SPLIT_RUNS}
        fields = ", ".join(f"{f} {v}" for f, v in every[label][0].items())
        lines.append(f"| {label} | {al:g} | {fields} | {100 * sa['mean']:.1f} ± {T._spread(sa)} ({sa['n']}) | "
                     f"{100 * sb['mean']:.1f} ± {T._spread(sb)} | {100 * p['diff']['mean']:+.1f} ± "
                     f"{100 * p['diff']['std']:.1f} | {p['ahead']}/{len(a)} | "
                     f"{k['share']:.0%} ({k['hits']}/{k['clients']}) |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--report-only", action="store_true", help="write the report from the runs made so far")
    ap.add_argument("--pick", action="store_true",
                    help="only pick the three levers chosen from a grid (the claim rule, the prior by total "
                         "variation, the prior with the EM priors among the candidates) on the discovery study's "
                         "tuning clients, write discovery_levers_pick.json, then stop")
    ap.add_argument("--cache", default=None,
                    help=f"the wide discovery study's cache (default: <tmp>/discovery_study_cache_{BACKBONE})")
    ap.add_argument("--committed-cache", default=None,
                    help="the committed backbone's discovery study cache, for the EM pick there "
                         "(default: <tmp>/discovery_study_cache)")
    a = ap.parse_args(argv)
    if a.workers < 1:
        ap.error("--workers must be >= 1")
    if a.pick:
        import tempfile

        from lab.utils import write_json_atomic

        cache = a.cache or os.path.join(tempfile.gettempdir(), f"discovery_study_cache_{BACKBONE}")
        committed = a.committed_cache or os.path.join(tempfile.gettempdir(), "discovery_study_cache")
        write_json_atomic(PICK, {CLAIM_LABEL: pick_claim_rule(cache, a.workers),
                                 **pick_priors(cache, committed, a.workers)})
        print(f"wrote {PICK}: {picked()}; now run without --pick")
        return
    best = T.tuned_best()
    cfgs, tuning = configs(best), configs(best, T.TUNING_SEEDS, TUNING_CHECK)
    more = configs(best, MORE_SEEDS, MORE)
    committed, merge, split = ({ss: configs(best, seeds, backbone=COMMITTED_BACKBONE, table=table)
                                for ss, seeds in (("evaluation", T.SEED_STUDY), ("tuning", T.TUNING_SEEDS))}
                               for table in (COMMITTED_RUNS, MERGE_RUNS, SPLIT_RUNS))
    if not a.report_only:
        os.makedirs(OUT, exist_ok=True)
        oracles = [o for (label, _), runs in cfgs.items() if label in CEILINGS for *_, o in runs]
        pairs = [x for cs in retune_configs().values() for x in cs]
        pairs += [x for c in (cfgs, tuning, more, *committed.values(), *merge.values(), *split.values())
                  for runs in c.values() for _, lever, base, _ in runs for x in (lever, base)]
        T.run_all(pairs + oracles, OUT, a.workers, "levers")
    from lab.utils import write_text_atomic

    path = os.path.join(T.RES, "discovery_levers.md")
    write_text_atomic(path, "\n".join(report(cfgs, tuning, more, committed, merge, split)) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
