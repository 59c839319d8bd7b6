"""Issue 9: InfoMap's markov time chosen again, now that new-class communities are merged. 2-core CPU.

FedLPA's markov time (1.5) was chosen by the discovery study on SimGCD models, with merging by predictions off; the
merging rule (new-class communities whose mean predictions have cosine >= 0.8 become one) was then chosen by
``kest_anatomy.py`` at that markov time. The two were never chosen together, and they pull against each other: a
finer time splits more (the rule can merge the pieces back) and hides fewer new classes inside another community; a
coarser one splits less and hides more. Before the rule, one time could not serve both alphas
(``discovery_levers.MERGE_RUNS``: markov time 2 put K_hat within +-1 on 74 % / 90 % of the seed study's clients,
1.5 on 74 % / 82 %).

The study: the tables' FedLPA config is run to its first discovery (``kest_anatomy.first_discovery``) on tuning
seeds 100-109 and evaluation seeds 0-9, both alphas; every client's InfoMap runs again on the same graph at each
markov time of :data:`MARKOV` (committed backbone: 1-3), and each is finished with every merging threshold of
:data:`MERGE` (on predictions; off included). Per client and setting: K_hat - K, its parts
(``kest_anatomy.anatomy``) and KL(oracle || pi) (``new_split.scores``). The pick, written down before any run
(tuning seeds only): ``new_split.pick``'s rule: among the settings whose K_hat is within +-1 on >= 80 % of the
tuning clients at both alphas, the lowest KL(oracle || pi), mean over both alphas; when none passes, all compete by
KL; FedLPA's setting wins ties. The evaluation seeds only report.

``--train``: a pick other than FedLPA's setting is trained as ``lpa_objective.py`` trains its variants: the tables'
FedLPA config with only the two fields changed, on tuning seeds 100/101 and evaluation seeds 0-9, both alphas, paired
per seed with FedLPA made on the same machine (in ``gcd_markov_merge/``; FedLPA's evaluation-seed runs are copied from
``gcd_replicate/``, made on this machine, and ``run_gcd_tables.warmup_splits`` checks that each pair shares its
warm-up). The rule for adopting it, written down before those runs: the mean All over the 4 tuning runs is above
FedLPA's (the tune stage's rule) and the trained runs keep K_hat within +-1 on >= 80 % of the tuning clients at
both alphas (a Done-when line FedLPA meets). The setting is chosen by criteria other than All, so adopting it would
not widen FedLPA's 5-point grid. The evaluation seeds only report.

``--backbone pretrained-wide`` runs the offline study on item 7's FedLPA on the wide backbone (the discovery its
study chose there: output features, confidence anchors, markov time 6, merging by predictions off; markov times 4-8),
where K_hat within +-1 misses at alpha 1; same pick rule; nothing is trained there.

What it found (``markov_merge[_pretrained-wide].md``): on neither backbone does any setting keep K_hat within +-1 on
80 % of the tuning clients at both alphas; on the committed one FedLPA's own setting comes closest, and the KL pick (a
coarser time) trained better All but lost the K_hat line at alpha 1, so it is not adopted. On the wide backbone the
KL pick is a finer time by a small margin and was not trained. FedLPA's settings stay as they are.

    python bench/markov_merge.py --workers 2            # 40 warm-ups, about 9 min on 2 cores; resumes from its cache
    python bench/markov_merge.py --workers 2 --train    # then 28 runs, about 12 min
    python bench/markov_merge.py --backbone pretrained-wide --workers 2      # about 30 min

Writes ``bench/results/markov_merge[_pretrained-wide].json`` and ``.md``.
"""
from __future__ import annotations

import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kest_anatomy as KA  # noqa: E402
import new_split as NS  # noqa: E402
import replicate_tables as R  # noqa: E402
import run_gcd_tables as T  # noqa: E402

BACKBONES = KA.BACKBONES
#: backbone -> the markov times tried: around the one FedLPA runs with there (1.5 on the committed backbone; 6 on the
#: wide one, where its study chose the output features, confidence anchors and merging off)
MARKOV = {"pretrained": (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0), "pretrained-wide": (4.0, 5.0, 6.0, 7.0, 8.0)}
MERGE = (None, 0.7, 0.75, 0.8, 0.85, 0.9)
FIELDS = ("k_hat", "split", "missed", "kl")            # kept per client and setting (the report's columns)


def paths(backbone: str = BACKBONES[0]) -> tuple:
    """(json, md) of the study on ``backbone``."""
    return KA.study_paths("markov_merge", backbone)


JSON, MD = paths()


def name(markov: float, merge) -> str:
    return f"markov {markov:g}, merge " + ("off" if merge is None else f">= {merge:g}")


def names(backbone: str = BACKBONES[0]) -> list:
    """Every setting of the study on ``backbone``, in the order of a client's record."""
    return [name(m, t) for m in MARKOV[backbone] for t in MERGE]


def default(backbone: str = BACKBONES[0]) -> str:
    """The setting FedLPA runs with on ``backbone`` (item 7's on the wide one)."""
    c = KA.fedlpa_config(T.TABLE_ALPHAS[0], 0, backbone)
    return name(c.markov_time, c.merge_new_cosine)


def one(job) -> dict:
    """One (alpha, seed): per client, [K_hat, split, missed, KL(oracle || pi)] at every setting, in the order of
    :func:`names`."""
    alpha, seed, *backbone = job
    backbone = backbone[0] if backbone else BACKBONES[0]
    exp, old, kept = KA.kept_clients(alpha, seed, backbone)
    clients = []
    for c in kept:
        oracle = KA.oracle_prior(c)
        row = {"client": c.cid, "k": len(c.present), "settings": []}
        for m in MARKOV[backbone]:
            p = c.params.replace(markov_time=m)
            modules = c.modules(p)
            for t in MERGE:
                s = NS.scores(c.redo_from(modules, p.replace(merge_new_cosine=t)), oracle, c.y, old, c.present)
                row["settings"].append([s[f] for f in FIELDS])
        if row["settings"][names(backbone).index(default(backbone))][0] != c.k_est:
            raise RuntimeError(f"alpha {alpha} seed {seed} client {c.cid}: re-made K_hat differs from the run's")
        clients.append(row)
    return {"alpha": alpha, "seed": seed, "clients": clients}


def summary(records, seeds, settings) -> list:
    """Per setting (``settings``: the records' order) and alpha over ``seeds``: K_hat within +-1, mean K_hat - K,
    split, missed, KL."""
    rows = []
    for i, setting in enumerate(settings):
        for a in T.TABLE_ALPHAS:
            cs = NS._clients(records, seeds, a)
            v = np.array([c["settings"][i] for c in cs], dtype=float)
            err = v[:, 0] - np.array([c["k"] for c in cs])
            rows.append({"setting": setting, "alpha": a, "clients": len(cs),
                         "within_1": float((np.abs(err) <= 1).mean()), "k_hat_minus_k": float(err.mean()),
                         **{f: float(v[:, j].mean()) for j, f in enumerate(FIELDS) if f != "k_hat"}})
    return rows


def record(records, backbone: str = BACKBONES[0]) -> dict:
    """What is committed: the per-client records, the tables the report shows, the pick and, on the committed
    backbone, the pick trained (:func:`trained`)."""
    settings, base = names(backbone), default(backbone)
    tuning = summary(records, KA.TUNING, settings)
    res = {**({} if backbone == BACKBONES[0] else {"backbone": backbone}), "markov_times": list(MARKOV[backbone]),
           "merge": list(MERGE), "settings": settings, "fields": list(FIELDS), "default": base, "tuning": tuning,
           "evaluation": summary(records, KA.EVALUATION, settings), "pick": NS.pick(tuning, base),
           "records": records}
    p = res["pick"]["setting"]
    res["trained"] = None if p == base or backbone != BACKBONES[0] else trained(p)
    return res


TRAIN_DIR = os.path.join(T.RES, "gcd_markov_merge")
TRAIN_SEEDS = {"tuning": T.TUNING_SEEDS, "evaluation": T.SEED_STUDY}
K_BAR = NS.K_BAR


def setting_fields(setting: str) -> dict:
    """The config fields of one of the committed backbone's :func:`names`."""
    m, t = next((m, t) for m in MARKOV[BACKBONES[0]] for t in MERGE if name(m, t) == setting)
    return {"markov_time": m, "merge_new_cosine": t}


def train_configs(setting: str, best=None, fields_of=setting_fields) -> dict:
    """(seed set, alpha) -> [(seed, the setting's config, FedLPA's config)] on the committed backbone; ``fields_of``
    gives a setting's config fields (another study's settings: ``coarse_route.py``)."""
    best = best or T.tuned_best()
    out = {}
    for label, seeds in TRAIN_SEEDS.items():
        for al in T.TABLE_ALPHAS:
            for s in seeds:
                base = T.config("fedlpa", al, s, False, **best["fedlpa"], **T.BEFORE_ROUTE)
                out.setdefault((label, al), []).append((s, {**base, **fields_of(setting)}, base))
    return out


def trained(setting: str, out_dir: str = TRAIN_DIR, fields_of=setting_fields) -> dict | None:
    """The trained pick against FedLPA, per seed set and alpha (None until every run is made), and the adoption
    rule of the module docstring."""
    rows = []
    for (label, al), runs in train_configs(setting, fields_of=fields_of).items():
        got = [(s, T.load(c, out_dir), T.load(b, out_dir)) for s, c, b in runs]
        if not all(r and b for _, r, b in got):
            return None
        rows.append(pair_row(label, al, got))
    mean, ok = adopt([r for r in rows if r["seeds"] == "tuning"])
    return {"setting": setting, "fields": fields_of(setting), "rows": rows, "tuning_mean_all": mean,
            "adopt": ok, "warmup_splits": T.warmup_splits(out_dir),
            "done_when": done_when_with(setting, out_dir, fields_of)}


def pair_row(label: str, alpha: float, got: list) -> dict:
    """One seed set and alpha of a trained pick: ``got`` = [(seed, the pick's run, FedLPA's run)]; All of each, the
    pick − FedLPA paired per seed, and K_hat within +-1 of each."""
    a, b = ({s: x[i]["acc_all"] for s, *x in got} for i in (0, 1))
    return {"seeds": label, "alpha": alpha, "all": T._stats(list(a.values())),
            "fedlpa": T._stats(list(b.values())), "paired": T._paired(a, b, list(a), "FedLPA"),
            "k_hat": T._k_hat_within_1([r for _, r, _ in got]),
            "k_hat_fedlpa": T._k_hat_within_1([x for _, _, x in got])}


def pair_cells(r: dict) -> str:
    """A :func:`pair_row` as report cells: pick All, FedLPA All, the paired difference, ahead, both K_hat shares."""
    a, b, d = r["all"], r["fedlpa"], r["paired"]["diff"]
    return (f"{100 * a['mean']:.1f} ± {T._spread(a)} | {100 * b['mean']:.1f} ± {T._spread(b)} | "
            f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f} | {r['paired']['ahead']}/{a['n']} | "
            f"{100 * r['k_hat']['share']:.0f} % | {100 * r['k_hat_fedlpa']['share']:.0f} % |")


def done_when_with(setting: str, out_dir: str = TRAIN_DIR, fields_of=setting_fields) -> dict:
    """Issue 9's Done-when read off ``replicate_tables.py``'s runs (this machine's), as they are (``"fedlpa"``) and
    with the pick's run in FedLPA's place (``"pick"``); on the evaluation seeds and the seed study's. A report only:
    the adoption rule reads the tuning runs."""
    cfgs = R.configs()
    runs = {k: T.load(c, R.RUN_DIR) for k, c in cfgs.items()}
    lpa = T.DISPLAY_NAMES["fedlpa"]
    picked = {k: T.load({**cfgs[k], **fields_of(setting)}, out_dir) if k[0] == lpa else r
              for k, r in runs.items()}
    return {side: {name: R._reading(r, *how) for name, how in R.SETS.items()}
            for side, r in (("fedlpa", runs), ("pick", picked))}


def adopt(tuning_rows) -> tuple:
    """The adoption rule (module docstring) on the trained rows of the tuning seeds: (mean All of the pick and of
    FedLPA over every tuning run, whether the pick is adopted)."""
    mean = {k: float(np.mean([v for r in tuning_rows for v in r[k]["values"]])) for k in ("all", "fedlpa")}
    return mean, bool(mean["all"] > mean["fedlpa"] and all(r["k_hat"]["share"] >= K_BAR for r in tuning_rows))


def train(setting: str, workers: int, out_dir: str = TRAIN_DIR, fields_of=setting_fields, copy_from=()) -> None:
    """Makes the runs :func:`trained` reads; FedLPA's runs made on this machine (``replicate_tables.py``'s, and
    those in the folders ``copy_from``) are copied, not made again."""
    os.makedirs(out_dir, exist_ok=True)
    cfgs = [x for runs in train_configs(setting, fields_of=fields_of).values() for _, v, b in runs for x in (v, b)]
    for c in cfgs:
        for folder in (R.RUN_DIR, *copy_from):
            src = os.path.join(folder, T.run_name(c) + ".json")
            if os.path.exists(src) and T.load(c, out_dir) is None:
                shutil.copyfile(src, os.path.join(out_dir, T.run_name(c) + ".json"))
    T.run_all(cfgs, out_dir, workers, "the pick, trained")


def _by(rows) -> dict:
    return {(r["setting"], r["alpha"]): r for r in rows}


#: how a summary field reads in a report cell
CELL = {"within_1": lambda v: f"{100 * v:.0f} %", "k_hat_minus_k": lambda v: f"{v:+.2f}", "kl": lambda v: f"{v:.3f}"}


def both_alphas(by: dict, setting: str, field: str) -> str:
    """One report cell: ``field`` of ``setting`` at alpha 0.1 / alpha 1 (``by``: :func:`_by` of summary rows)."""
    return " / ".join(CELL[field](by[(setting, a)][field]) for a in T.TABLE_ALPHAS)


def setting_table(summaries: dict, settings, bold: str, first: str = "setting") -> list:
    """A report's table of settings (``summaries``: {"tuning": rows, "evaluation": rows}): K_hat within +-1, K_hat - K
    and KL on the tuning clients, K_hat within +-1 and KL on the evaluation clients, each at alpha 0.1 / alpha 1;
    ``bold`` marked."""
    by = {seeds: _by(summaries[seeds]) for seeds in ("tuning", "evaluation")}
    out = [f"| {first} | K̂ within ±1, tuning | K̂ − K, tuning | KL(oracle ‖ π), tuning | K̂ within ±1, evaluation | "
           "KL, evaluation |", "|---|---|---|---|---|---|"]
    for s in settings:
        cells = [both_alphas(by["tuning"], s, f) for f in ("within_1", "k_hat_minus_k", "kl")]
        cells += [both_alphas(by["evaluation"], s, f) for f in ("within_1", "kl")]
        out.append(f"| {'**' + s + '**' if s == bold else s} | " + " | ".join(cells) + " |")
    return out


def lines(res) -> list:
    p = res["pick"]
    out = NS.opening(res, "InfoMap's markov time chosen again, with new-class communities merged", "markov_merge.py",
                     "why, and how it is picked",
                     " run to its first discovery; every client's InfoMap run again at each markov time on the same "
                     "graph and finished with each merging threshold (cosine of the communities' mean predictions; "
                     f"off included); tuning seeds {KA.TUNING[0]}-{KA.TUNING[-1]}, evaluation seeds "
                     f"{KA.EVALUATION[0]}-{KA.EVALUATION[-1]}, α 0.1 and 1, 5 clients each. KL: against the oracle "
                     "prior (the true classes as communities); the true labels are read after the fact, for the report "
                     f"and the pick on the tuning seeds only. FedLPA's setting: **{res['default']}**.")
    out += ["", NS.pick_line(p, "; FedLPA's setting wins ties"), "",
            "## K̂ within ±1 of K, share of clients (α 0.1 / α 1)", "",
            "Rows: markov time; columns: merging threshold. Tuning seeds, then evaluation seeds.", ""]
    for label in ("tuning", "evaluation"):
        by = _by(res[label])
        out += [f"| {label} | " + " | ".join("off" if t is None else f"≥ {t:g}" for t in res["merge"]) + " |",
                "|---|" + "---|" * len(res["merge"])]
        for m in res["markov_times"]:
            cells = [f"{100 * by[(name(m, t), 0.1)]['within_1']:.0f} / {100 * by[(name(m, t), 1.0)]['within_1']:.0f}"
                     for t in res["merge"]]
            out.append(f"| markov {m:g} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## KL(oracle ‖ π), mean over clients (α 0.1 / α 1)", ""]
    for label in ("tuning", "evaluation"):
        by = _by(res[label])
        out += [f"| {label} | " + " | ".join("off" if t is None else f"≥ {t:g}" for t in res["merge"]) + " |",
                "|---|" + "---|" * len(res["merge"])]
        for m in res["markov_times"]:
            cells = [f"{by[(name(m, t), 0.1)]['kl']:.3f} / {by[(name(m, t), 1.0)]['kl']:.3f}" for t in res["merge"]]
            out.append(f"| markov {m:g} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## What K̂ − K is made of at FedLPA's setting and at the pick (mean per client)", "",
            "`split`: extra new-class communities of a new class another one already has; `missed`: held new classes "
            "that are the majority of no new-class community (hidden in another).", "",
            "| setting | seeds | α | K̂ within ±1 | K̂ − K | split | missed | KL(oracle ‖ π) |",
            "|---|---|---|---|---|---|---|---|"]
    for setting in dict.fromkeys((res["default"], p["setting"])):
        for label in ("tuning", "evaluation"):
            by = _by(res[label])
            for a in T.TABLE_ALPHAS:
                r = by[(setting, a)]
                out.append(f"| {setting} | {label} | {a:g} | {100 * r['within_1']:.0f} % | {r['k_hat_minus_k']:+.2f} | "
                           f"{r['split']:.2f} | {r['missed']:.2f} | {r['kl']:.3f} |")
    return out + trained_lines(res)


def trained_lines(res, out_dir: str = TRAIN_DIR) -> list:
    t = res.get("trained")
    if t is None:
        if res["pick"]["setting"] == res["default"]:
            return []
        return ["", "The pick is not FedLPA's setting; " + (
            "`--train` trains picks on the committed backbone only (its runs pair with `replicate_tables.py`'s)."
            if res.get("backbone") else "its runs are not all made yet (`--train`).")]
    return trained_section(t, f"The tables' FedLPA with only those fields changed, paired per seed with FedLPA on one "
                              f"machine (`{os.path.basename(out_dir)}/`; FedLPA's evaluation runs are "
                              f"`{os.path.basename(R.RUN_DIR)}/`'s).") + done_when_lines(t["done_when"])


def trained_section(t: dict, pairing: str) -> list:
    """A trained pick's report section (``t``: :func:`trained`'s record; ``pairing``: which FedLPA runs it is paired
    with, and where): per seed set and alpha the pick against FedLPA, and the adoption rule's verdict."""
    fields = ", ".join(f"{k} {v}" for k, v in t["fields"].items())
    out = ["", f"## The pick, trained (`--train`: {fields})", "",
           f"{pairing} All = mean of the last 3 evaluations; mean ± std over seeds (population std); K̂ within ±1 "
           "over every client of those runs.", "",
           "| seeds | α | pick All | FedLPA All | pick − FedLPA | ahead | K̂ within ±1, pick | FedLPA |",
           "|---|---|---|---|---|---|---|---|"]
    for r in t["rows"]:
        seeds = f"{r['seeds']} ({min(TRAIN_SEEDS[r['seeds']])}–{max(TRAIN_SEEDS[r['seeds']])})"
        out.append(f"| {seeds} | {r['alpha']:g} | " + pair_cells(r))
    m = t["tuning_mean_all"]
    n_tune = 2 * len(TRAIN_SEEDS["tuning"])
    out += ["", f"Adoption rule (tuning runs only; module docstring): mean All over the {n_tune} "
                f"tuning runs {100 * m['all']:.1f} against FedLPA's {100 * m['fedlpa']:.1f}, and K̂ within ±1 on "
                f"≥ {100 * K_BAR:.0f} % of the tuning clients at both α: **"
            + ("adopted" if t["adopt"] else "not adopted") + "**. "
            + ("Every pair trained its warm-up alike (one machine's runs: `run_gcd_tables.warmup_splits` finds none)."
               if not t["warmup_splits"] else f"Pairs whose warm-ups differ: {t['warmup_splits']}.")]
    return out


DONE_WHEN_OPENING = ("Issue 9's Done-when on this machine's runs (`replicate_tables.md`'s re-made set), with FedLPA's "
                     "runs and with the pick's in their place (a report: no choice reads it):")


def done_when_lines(dw: dict, opening: str = DONE_WHEN_OPENING) -> list:
    """The Done-when with FedLPA's runs and with the pick's in their place (``opening``: which runs, where)."""
    from lab.results import done_when_bar, done_when_value

    sets = list(R.SETS)
    at = {(side, n): {(x["alpha"], x["target"]): x for x in dw[side][n]} for side in dw for n in sets}
    out = ["", opening, "",
           "| α | target | bar | " + " | ".join(f"{who}, {R._seeds(R.SETS[n][0])}" for n in sets
                                               for who in ("FedLPA", "the pick")) + " |",
           "|---|---|---|" + "---|" * (2 * len(sets))]
    for x in dw["fedlpa"][sets[0]]:
        key = (x["alpha"], x["target"])
        got = [at[side, n].get(key) for n in sets for side in ("fedlpa", "pick")]
        out.append(f"| {x['alpha']:g} | {x['target']} | {done_when_bar(x['bar'], x['unit'])} | "
                   + " | ".join(done_when_value(g["value"], g["unit"], g["met"]) if g else "—" for g in got) + " |")
    return out


def _train_step(res: dict, args, backbone: str) -> dict:
    """``--train`` (committed backbone): make the pick's runs and read them."""
    if args.train and backbone == BACKBONES[0] and res["pick"]["setting"] != res["default"]:
        train(res["pick"]["setting"], args.workers)
        res["trained"] = trained(res["pick"]["setting"])
        print(f"adopted: {res['trained']['adopt']}")
    return res


def main(argv=None):
    KA.study_main(__doc__, "markov_merge_cache", one, record, lines, paths, "first discoveries", argv, BACKBONES,
                  flags={"--train": "train a pick other than FedLPA's setting beside FedLPA (committed backbone; "
                                    "module docstring)"}, then=_train_step)


if __name__ == "__main__":
    main()
