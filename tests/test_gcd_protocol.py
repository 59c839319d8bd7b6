"""The committed GCD results follow the protocol of ``bench/README.md``: the same tuning grid for every method,
tuning seeds disjoint from evaluation seeds, each method's table row made only of evaluation-seed runs at the
setting its own grid chose (never the best evaluation round or another method's setting)."""
import glob
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lab.gcd.discovery import DiscoveryParams
from lab.gcd.methods import ABLATIONS, ORACLE_PARTS, ablation_of

RES = Path(__file__).resolve().parents[1] / "bench" / "results"
# rows of the summary that are a method at its tuned setting (ablations and the pooled reference are not)
PLAIN = {"FedAvg+SimGCD": "simgcd", "FedAvg+GCD": "gcd", "FedLPA": "fedlpa", "local only": "local",
         "centralized": "central"}


@pytest.fixture(scope="module")
def files():
    tuning = json.loads((RES / "gcd_tuning.json").read_text())
    summary = json.loads((RES / "gcd_summary.json").read_text())
    return tuning, summary


def test_every_method_gets_the_same_grid_and_its_best_point(files):
    tuning, _ = files
    grids = {}
    for g in tuning["grid"]:
        grids.setdefault(g["method"], {})[g["lr"]] = g["acc_all"]
    assert len({tuple(sorted(v)) for v in grids.values()}) == 1, grids       # one grid for all
    for m, g in grids.items():
        assert tuning["best"][m]["lr"] == max(g, key=g.get), m               # the grid's own argmax
    assert not set(tuning["tuning_seeds"]) & {0, 1, 2}


def test_table_rows_are_evaluation_runs_at_the_tuned_setting(files):
    tuning, summary = files
    eval_seeds = set(summary["eval_seeds"])
    assert not eval_seeds & set(tuning["tuning_seeds"])
    checked = 0
    for row in summary["rows"]:
        m = PLAIN.get(row["label"])
        if m is None:
            continue
        lr = tuning["best"][m]["lr"]
        runs = {}
        alpha = "*" if m == "central" else f"{row['alpha']:g}"   # pooled data: one run serves every alpha
        for f in glob.glob(str(RES / "gcd" / f"{m}_a{alpha}_s*.json")):
            r = json.loads(Path(f).read_text())
            c = r["config"]
            if c["lr"] == lr and r["seed"] in eval_seeds and (m != "fedlpa" or (
                    ablation_of(c) is None and c["prior_rule"] == DiscoveryParams().prior
                    and c.get("merge_new_cosine") == DiscoveryParams().merge_new_cosine)):
                runs[r["seed"]] = r["acc_all"]
        assert sorted(runs) == sorted(row["seeds"]) == sorted(eval_seeds), (row["label"], row["alpha"], runs)
        assert row["acc_all"]["mean"] == pytest.approx(np.mean(list(runs.values())), abs=1e-9), row["label"]
        checked += 1
    assert checked >= 10                                                     # 5 methods x 2 alpha


def test_library_defaults_are_the_protocol_choice(files):
    """What a user gets without --lr (CLI, notebooks, the dashboard's fallback) is the tuned setting, not a
    rate chosen elsewhere (an earlier default had been picked on evaluation seed 0)."""
    from lab.gcd.config import DEFAULT_LR, FedGCDConfig

    tuning, _ = files
    assert {m: b["lr"] for m, b in tuning["best"].items()} == DEFAULT_LR
    assert all(FedGCDConfig(method=m).learning_rate == lr for m, lr in DEFAULT_LR.items())


def test_seed_study_pairs_each_seed_with_itself_from_the_run_files(files):
    """The supplement over more seeds: every per-seed difference is FedLPA's run (or, for the ceiling, the
    oracle-prior run) minus the other run of the SAME seed (recomputed here from the run files), no seed is a
    tuning seed, and the interval is the t interval."""
    from scipy import stats

    tuning, summary = files
    study = summary["seed_study"]
    assert not set(study["seeds"]) & set(tuning["tuning_seeds"])
    # label -> (method, the ABLATIONS / ORACLE_PARTS label of its config; None = the method as designed)
    label_of = {"FedAvg+SimGCD": ("simgcd", None), "FedAvg+GCD": ("gcd", None), "FedLPA": ("fedlpa", None),
                **{f"FedLPA, {a}": ("fedlpa", a) for a in ("oracle prior", "equal masses", *ORACLE_PARTS)}}

    def runs(label, alpha):
        """seed -> the run record of this label at its tuned setting."""
        m, abl = label_of[label]
        flags = {**ABLATIONS, **ORACLE_PARTS}.get(abl, {})
        want = {"oracle_prior": flags.get("oracle_prior", False),
                "prior_rule": flags.get("prior_rule", DiscoveryParams().prior)}
        out = {}
        for f in glob.glob(str(RES / "gcd" / f"{m}_a{alpha:g}_s*.json")):
            r = json.loads(Path(f).read_text())
            c = r["config"]
            if c["lr"] != tuning["best"][m]["lr"] or c.get("oracle_prior", False) != want["oracle_prior"]:
                continue
            if m == "fedlpa" and (c["prior_rule"] != want["prior_rule"] or ablation_of(c) != abl
                                  or c.get("merge_new_cosine") != DiscoveryParams().merge_new_cosine):
                continue
            assert r["seed"] not in out, f                  # one run per seed: the label names one config
            out[r["seed"]] = r
        return out

    def acc(label, alpha):
        return {s: r["acc_all"] for s, r in runs(label, alpha).items()}

    checked = 0
    for e in study["alphas"]:
        # FedLPA − each other run, and the ceiling: the oracle-prior run − each federated baseline
        for first, pairs in (("FedLPA", e["paired"]), ("FedLPA, oracle prior", e["ceiling"])):
            lead = acc(first, e["alpha"])
            for p in pairs:
                other = acc(p["vs"], e["alpha"])
                want = [lead[s] - other[s] for s in e["seeds"]]
                assert p["diff"]["values"] == pytest.approx(want, abs=1e-12), (e["alpha"], first, p["vs"])
                d = np.asarray(want)
                half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
                assert p["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
                assert p["ahead"] == int((d > 0).sum())
                checked += 1
        assert [p["vs"] for p in e["ceiling"]] == ["FedAvg+SimGCD", "FedAvg+GCD"]   # the federated baselines
        # the oracle's lead taken apart: "first − second", both recounted from the run files on parts_seeds
        assert set(e["parts_seeds"]) <= set(e["seeds"])
        assert [p["vs"] for p in e["parts"]] == [
            "oracle heads, own masses − FedLPA", "oracle prior − oracle heads, own masses",
            "oracle heads, equal masses − FedLPA", "oracle prior − oracle heads, equal masses",
            "equal masses − FedLPA"]
        for p in e["parts"]:
            first, second = (acc(x if x == "FedLPA" else f"FedLPA, {x}", e["alpha"]) for x in p["vs"].split(" − "))
            want = [first[s] - second[s] for s in e["parts_seeds"]]
            assert p["diff"]["values"] == pytest.approx(want, abs=1e-12), (e["alpha"], p["vs"])
            assert p["ahead"] == sum(w > 0 for w in want)
            checked += 1
        lpa = runs("FedLPA", e["alpha"])                               # K̂ − K per client, from the run files
        got = Counter(k - t for s in e["seeds"] for k, t in zip(lpa[s]["k_est"], lpa[s]["k_true"]))
        assert {int(x): c for x, c in e["k_hat_errors"].items()} == dict(got)
        assert e["k_hat_within_1"]["hits"] == sum(c for x, c in got.items() if abs(x) <= 1)
        # the seeds split by their net over-count Σ (K̂ − K), each group's pairs and r recounted from the run files
        kd, f = e["k_hat_direction"], acc("FedLPA", e["alpha"])
        net = {s: sum(k - t for k, t in zip(lpa[s]["k_est"], lpa[s]["k_true"])) for s in e["seeds"]}
        assert {int(s): n for s, n in kd["net_overcount"].items()} == net
        over, rest = kd["groups"]
        assert over["seeds"] == [s for s in e["seeds"] if net[s] > 0]
        assert rest["seeds"] == [s for s in e["seeds"] if net[s] <= 0]
        want = {"FedLPA − FedAvg+SimGCD": lambda s: f[s] - acc("FedAvg+SimGCD", e["alpha"])[s],
                "FedLPA − FedAvg+GCD": lambda s: f[s] - acc("FedAvg+GCD", e["alpha"])[s],
                "told the heads − FedLPA": lambda s: acc("FedLPA, oracle heads, own masses", e["alpha"])[s] - f[s]}
        assert set(kd["per_seed"]) == set(want)
        x = [net[s] for s in e["seeds"]]
        for name, d in want.items():
            for g in (over, rest):
                if g["seeds"]:
                    assert g["diffs"][name]["values"] == pytest.approx([d(s) for s in g["seeds"]], abs=1e-12)
            assert kd["r"][name] == pytest.approx(np.corrcoef(x, [d(s) for s in e["seeds"]])[0, 1])
        assert kd["r"]["FedLPA"] == pytest.approx(np.corrcoef(x, [f[s] for s in e["seeds"]])[0, 1])
    assert checked >= 20                                     # (3 others + 2 baselines + 5 parts) x 2 alpha


def test_masses_report_puts_each_runs_prior_beside_that_runs_accuracy(files):
    """``discovery_study.json``'s masses (each run's prior against the oracle's) are read beside the seed study's
    All of the SAME run: every run of the report has its accuracy, the oracle's prior is the oracle (KL 0), and a
    part-oracle run is not given FedLPA's number."""
    from lab.results import masses_rows

    _, summary = files
    masses = json.loads((RES / "discovery_study.json").read_text())["masses"]
    rows = masses_rows(masses, summary["seed_study"])
    study = {e["alpha"]: {**e["all"], **e["parts_all"]} for e in summary["seed_study"]["alphas"]}
    assert {r["run"] for r in rows} == {"FedLPA", "equal masses", "oracle prior", *ORACLE_PARTS}
    for r in rows:
        label = r["run"] if r["run"] == "FedLPA" else f"FedLPA, {r['run']}"
        assert r["acc_all"] == study[r["alpha"]][label]["mean"], r
        if r["run"] == "oracle prior":
            assert r["kl_all"] == r["kl_held"] == r["kl_held_new"] == 0
    # the evaluation clients only (the tuning clients are reported in the JSON, never in this table)
    assert masses_rows(masses, None, seeds="tuning")[0]["kl_all"] != rows[0]["kl_all"]


def test_heads_diagnostic_reruns_the_table_configs(files):
    """``--stage heads`` re-runs configs to score their final models by k-means on features. Each re-run is the
    config of a table run (label, tuned lr, evaluation seed), the table run's All stands beside it as that run
    recorded it, and the machine is named (a re-run is bit-identical on the same machine only). FedAvg+GCD's rows
    are its records' own numbers."""
    tuning, summary = files
    hv = json.loads((RES / "gcd_heads_vs_features.json").read_text())
    assert summary["heads_vs_features"] == hv
    eval_seeds = set(summary["eval_seeds"])
    readout_seeds = set(hv["readout_seeds"])
    assert eval_seeds < readout_seeds
    want = {"FedLPA": ("fedlpa", None), "FedAvg+SimGCD": ("simgcd", None),
            "FedLPA, oracle prior": ("fedlpa", "oracle prior")}
    readout = {"FedLPA", "FedAvg+SimGCD"}                  # also re-run on the readout study's seeds
    assert Counter(r["label"] for r in hv["runs"]) == {
        label: 2 * len(readout_seeds if label in readout else eval_seeds) for label in want}
    for r in hv["runs"]:
        # the resumable stage's per-run file is this record (without the table run's All, attached later)
        cached = json.loads((RES / "gcd_heads" / f"{r['run']}.json").read_text())
        assert cached == {k: v for k, v in r.items() if k != "table_acc_all"}, r["run"]
        rec = json.loads((RES / "gcd" / f"{r['run']}.json").read_text())
        m, abl = want[r["label"]]
        c = rec["config"]
        assert (rec["method"], c["lr"], rec["seed"], rec["alpha"]) == (m, tuning["best"][m]["lr"], r["seed"],
                                                                       r["alpha"]), r
        assert r["seed"] in (readout_seeds if r["label"] in readout else eval_seeds)
        if m == "fedlpa":
            assert ablation_of(c) == abl and c["prior_rule"] == DiscoveryParams().prior, r
            assert c["merge_new_cosine"] == DiscoveryParams().merge_new_cosine, r
        assert r["table_acc_all"] == rec["acc_all"], r
    assert hv["machine"]["cpu"] and hv["machine"]["threads_per_run"] == 1
    assert len(hv["gcd"]) == 2 * len(readout_seeds)
    for g in hv["gcd"]:
        rec = json.loads((RES / "gcd" / f"{g['run']}.json").read_text())
        assert rec["method"] == "gcd" and rec["config"]["lr"] == tuning["best"]["gcd"]["lr"]
        assert rec["seed"] in readout_seeds
        assert g["federated_kmeans"]["acc_all"] == rec["acc_all"]
        assert g["pooled_kmeans"]["acc_all"] == rec["pooled_reference"]["acc_all"]
    # the summary's rows (bench markdown, notebook 05): k-means − heads of the SAME model, seed by seed
    from lab.results import heads_rows

    rows = heads_rows(hv)
    assert len(rows) == 2 * (len(want) + 1)
    assert {row["seeds"] for row in rows} == {len(eval_seeds)}          # the table: evaluation seeds only
    for row in rows:
        if row["kmeans_minus_heads"] is None:               # FedAvg+GCD: no heads, its federated k-means instead
            g = [x for x in hv["gcd"] if x["alpha"] == row["alpha"] and x["seed"] in eval_seeds]
            assert row["heads"][0] == pytest.approx(np.mean([x["federated_kmeans"]["acc_all"] for x in g]))
            continue
        by_seed = {r["seed"]: r for r in hv["runs"] if r["label"] == row["run"] and r["alpha"] == row["alpha"]
                   and r["seed"] in eval_seeds}
        d = [r["kmeans"]["acc_all"] - r["heads"]["acc_all"] for r in by_seed.values()]
        assert row["kmeans_minus_heads"] == pytest.approx((np.mean(d), np.std(d)), abs=1e-12), row
        assert row["heads"][0] == pytest.approx(np.mean([r["heads"]["acc_all"] for r in by_seed.values()]))
        rerun = [r["acc_all_last3"] - r["table_acc_all"] for r in by_seed.values()]
        assert row["rerun_minus_table"] == pytest.approx((np.mean(rerun), np.std(rerun)), abs=1e-12), row
        # the head-seeded readout: K read off the model's own heads (never more than it has, every old class kept)
        d = [r["head_seeded"]["acc_all"] - r["heads"]["acc_all"] for r in by_seed.values()]
        assert row["head_seeded_minus_heads"] == pytest.approx((np.mean(d), np.std(d)), abs=1e-12), row
        n_heads = 10 if row["run"] == "FedAvg+SimGCD" else 15
        assert all(5 <= r["head_seeded"]["k_hat"] <= n_heads for r in by_seed.values()), row


def test_readout_study_pairs_the_same_seeds(files):
    """The readout study (``gcd_summary.json`` → ``readout_study``): per alpha, every readout seed, and each
    difference is first − second of the SAME seed's re-runs (FedLPA − FedAvg+SimGCD by heads and by the seeded
    readout, each method's seeded − heads, FedLPA seeded − FedAvg+GCD's table run)."""
    _, summary = files
    hv = summary["heads_vs_features"]
    study = summary["readout_study"]
    assert [e["alpha"] for e in study] == sorted({r["alpha"] for r in hv["runs"]})
    score = {}
    for r in hv["runs"]:
        score[(r["alpha"], f"{r['label']} by heads", r["seed"])] = r["heads"]["acc_all"]
        score[(r["alpha"], f"{r['label']} by seeded", r["seed"])] = r["head_seeded"]["acc_all"]
    for g in hv["gcd"]:
        score[(g["alpha"], "FedAvg+GCD (federated k-means)", g["seed"])] = g["federated_kmeans"]["acc_all"]
    for e in study:
        assert e["seeds"] == hv["readout_seeds"]
        assert len(e["paired"]) == 5
        for p in e["paired"]:
            a, b = p["vs"].split(" − ")
            want = [score[(e["alpha"], a, s)] - score[(e["alpha"], b, s)] for s in e["seeds"]]
            assert p["diff"]["values"] == pytest.approx(want, abs=1e-12), p["vs"]
            assert p["ahead"] == sum(d > 0 for d in want)


def test_every_run_the_tables_name_is_committed(files):
    """A default that moves (FedLPA's discovery, a field FedLPA alone reads) re-makes FedLPA's runs and must leave every
    other method's under its name: each config the tune stage, the tables, the α curve and the seed study build, for
    every method, names a committed run file (else ``--stage summary`` silently drops or re-runs it)."""
    from tests.test_backbones import _script

    t = _script("bench/run_gcd_tables.py")
    tuning, _ = files
    cfgs = [t.config(m, al, s, False, **g) for m, grid in t.TUNE_GRID.items() for g in grid
            for al in t.TUNING_ALPHAS for s in t.TUNING_SEEDS]
    cfgs += t.table_configs(tuning["best"], False) + t.seed_configs(tuning["best"], False)
    cfgs += t.curve_configs(tuning["best"], False)
    missing = [t.run_name(c) for c in cfgs if t.load(c, str(RES / "gcd")) is None]
    assert not missing and {c["method"] for c in cfgs} == set(t.TUNE_GRID), missing[:5]
    # FedLPA's runs there are the library's discovery; a baseline's carry the field unused, off
    assert {c["merge_new_cosine"] for c in cfgs if c["method"] == "fedlpa"} == {DiscoveryParams().merge_new_cosine}
    assert {c["merge_new_cosine"] for c in cfgs if c["method"] != "fedlpa"} == {None}


def test_committed_runs_keep_their_names_when_a_config_field_is_added():
    """A field added to ``FedGCDConfig`` after runs were made (``LATE_FIELDS``, e.g. ``claim_z``) leaves the key of a
    config at the old value unchanged: every committed run file, its stored config read back with today's defaults,
    is still found under its own name (else the tables would silently re-run or lose every committed run). A config
    that sets the new field gets a new key."""
    from lab.gcd.config import FedGCDConfig

    runs = {f: json.loads(Path(f).read_text()) for f in sorted(glob.glob(str(RES / "gcd*" / "*.json")))}
    runs = {f: r["config"] for f, r in runs.items() if isinstance(r, dict) and "config" in r}
    old = [f for f, c in runs.items() if "claim_z" not in c]
    assert len(old) > 100 and len(runs) > len(old)          # runs made before the field, and after it
    for f, stored in runs.items():
        c = FedGCDConfig.from_dict(stored)
        assert Path(f).stem == f"{c.method}_a{c.alpha:g}_s{c.seed}_{c.key()}", f
    c = FedGCDConfig.from_dict(json.loads(Path(old[0]).read_text())["config"])
    assert FedGCDConfig(**{**c.to_dict(), "claim_z": 2.0}).key() != c.key()
    # a late field whose default has since moved (merge_new_cosine: off when added, 0.8 now): a stored config
    # without it describes a run made before it existed, so it reads back off, not at today's default
    assert FedGCDConfig().merge_new_cosine == 0.8 != FedGCDConfig.LATE_FIELDS["merge_new_cosine"]
    assert "merge_new_cosine" not in json.loads(Path(old[0]).read_text())["config"] and c.merge_new_cosine is None


def test_done_when_reads_issue_9s_bars_against_the_strongest_baseline_and_with_the_oracle_in_fedlpas_place():
    from tests.test_backbones import _script

    t = _script("bench/run_gcd_tables.py")
    sim, gcd, oracle = t.DISPLAY_NAMES["simgcd"], t.DISPLAY_NAMES["gcd"], t.ORACLE
    acc = {0.1: {"FedLPA": 0.70, sim: 0.60, gcd: 0.655, oracle: 0.77},   # +10 over one baseline, +4.5 over the other
           1.0: {"FedLPA": 0.660, sim: 0.669, gcd: 0.661, oracle: 0.70}}
    got = {(x["alpha"], x["target"].split(" ")[2]): x
           for x in t.done_when(acc, {0.1: 0.8, 1.0: 0.79}, {"0.1": 1.5, "1": 1.51})}
    want = {(0.1, "every"): (0.045, False, 0.115, True), (0.1, "0.9"): (0.70 / 0.77, True, None, None),
            (1.0, "FedAvg+SimGCD"): (-0.009, True, 0.031, True), (1.0, "federated"): (-0.001, False, 0.039, True),
            (0.1, "within"): (0.8, True, None, None), (1.0, "within"): (0.79, False, None, None),
            (0.1, "time"): (1.5, True, None, None), (1.0, "time"): (1.51, False, None, None)}
    assert set(got) == set(want)
    for k, (v, met, ov, omet) in want.items():
        x = got[k]
        assert x["value"] == pytest.approx(v) and x["met"] is met, k
        assert (x["oracle_value"] is None) if ov is None else x["oracle_value"] == pytest.approx(ov), k
        assert x["oracle_met"] is omet, k
        assert "central_value" not in x, k              # no centralized run in acc: no such reading


def test_the_seed_studys_centralized_reference_is_its_run_files_on_the_same_seeds(files):
    """The seed study's centralized reference: at each alpha the mean and std of the centralized runs (the tuned
    lr, one run per seed, the alpha-0.1 file serving every alpha) over exactly the seeds of the study's other runs;
    not among the paired differences; the Done-when's seed-study reading takes its mean in FedLPA's place. The
    committed study is the one the script makes from the committed runs."""
    from tests.test_backbones import _script

    tuning, summary = files
    study = summary["seed_study"]
    t = _script("bench/run_gcd_tables.py")
    assert json.loads(json.dumps(t.seed_study(tuning["best"], str(RES / "gcd"), False))) == study
    runs = {}
    for f in glob.glob(str(RES / "gcd" / "central_a*_s*.json")):
        r = json.loads(Path(f).read_text())
        if r["config"]["lr"] == tuning["best"]["central"]["lr"] and r["seed"] in study["seeds"]:
            assert r["alpha"] == 0.1 and r["seed"] not in runs, f
            runs[r["seed"]] = r["acc_all"]
    for e in study["alphas"]:
        v = [runs[s] for s in e["seeds"]]
        got = e["refs_all"]["centralized"]
        assert got["mean"] == pytest.approx(np.mean(v), abs=1e-12) and got["std"] == pytest.approx(np.std(v))
        assert "centralized" not in e["all"] and all("centralized" not in p["vs"] for p in e["paired"])
        gcd = e["all"]["FedAvg+GCD"]["mean"]
        (line,) = [x for x in summary["done_when"]["seed_study"] if x["alpha"] == e["alpha"]
                   and ("every" in x["target"] if e["alpha"] == 0.1 else "federated" in x["target"])]
        assert line["central_value"] == pytest.approx(np.mean(v) - gcd, abs=1e-12)


def test_done_when_reads_the_all_lines_with_the_centralized_run_in_fedlpas_place():
    """The pooled reference is read in FedLPA's place on the All lines against the same bars (the strongest
    federated baseline at alpha 0.1), not on the oracle ratio, K_hat or wall lines; the display rows show it."""
    from lab.results import IN_PLACE_COLUMNS, done_when_rows
    from tests.test_backbones import _script

    t = _script("bench/run_gcd_tables.py")
    sim, gcd, oracle, central = t.DISPLAY_NAMES["simgcd"], t.DISPLAY_NAMES["gcd"], t.ORACLE, t.CENTRAL
    acc = {0.1: {"FedLPA": 0.60, sim: 0.60, gcd: 0.655, oracle: 0.77, central: 0.69},   # +3.5 over GCD: missed
           1.0: {"FedLPA": 0.660, sim: 0.669, gcd: 0.661, oracle: 0.70, central: 0.661}}
    got = {(x["alpha"], x["target"].split(" ")[2]): x for x in t.done_when(acc, {0.1: 0.8, 1.0: 0.79}, {"0.1": 1.0})}
    want = {(0.1, "every"): (0.035, False), (0.1, "0.9"): (None, None), (1.0, "FedAvg+SimGCD"): (-0.008, True),
            (1.0, "federated"): (0.0, True)}
    for k, (cv, cmet) in want.items():
        x = got[k]
        assert (x["central_value"] is None) if cv is None else x["central_value"] == pytest.approx(cv), k
        assert x["central_met"] is cmet, k
    assert all("central_value" not in x for k, x in got.items() if k not in want)
    rows = done_when_rows({"done_when": {"eval_seeds": list(got.values())}})
    ev, more = IN_PLACE_COLUMNS["central", "eval_seeds"], IN_PLACE_COLUMNS["central", "seed_study"]
    assert [r[ev] for r in rows[:4]] == ["+3.5 points (missed)", "—", "-0.8 points (met)", "+0.0 points (met)"]
    assert all(r[ev] == "—" for r in rows[4:]) and all(more not in r for r in rows)   # no seed study: no column
    # the seed study's reading goes to its own column, matched by line (here: its alpha-1 lines only, met there)
    study = [x for x in t.done_when({1.0: {**acc[1.0], central: 0.71}}, {}) if "central_value" in x]
    rows = done_when_rows({"done_when": {"eval_seeds": list(got.values()), "seed_study": study}})
    assert [r[more] for r in rows] == ["—", "—", "+4.1 points (met)", "+4.9 points (met)", "—", "—", "—"]
    # the oracle's reading too, each set of seeds in its own column
    oracle_more = IN_PLACE_COLUMNS["oracle", "seed_study"]
    assert [r[oracle_more] for r in rows] == ["—", "—", "+3.1 points (met)", "+3.9 points (met)", "—", "—", "—"]
    assert [r[IN_PLACE_COLUMNS["oracle", "eval_seeds"]] for r in rows[:4]] == [
        "+11.5 points (met)", "—", "+3.1 points (met)", "+3.9 points (met)"]


def test_the_committed_done_when_is_the_one_its_tables_give():
    """gcd_summary's Done-when section is read off its own rows (a stale or hand-edited one fails here)."""
    from tests.test_backbones import _script

    t = _script("bench/run_gcd_tables.py")
    s = json.loads((RES / "gcd_summary.json").read_text())
    assert s["done_when"] == t.done_when_of(s["rows"], s["wall_ratio_fedlpa_simgcd"], s["seed_study"])
    assert len(s["done_when"]["eval_seeds"]) == 8 and len(s["done_when"]["seed_study"]) == 6
    md = (RES / "gcd_summary.md").read_text()
    for x in s["done_when"]["eval_seeds"]:
        assert f"| {x['alpha']:g} | {x['target']} |" in md
