"""The backbone table (``lab.gcd.config.BACKBONES``): a run loads the weights its config names, at their widths,
with the prefix frozen; the committed record agrees with the table; and pretraining on a fixed step budget
gives the same weights for the same seed, also when a probe sized it (issue 9, item 7: the wide backbone is made by
``bench/device_backbone.sh`` on a GPU)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import linked_data_dir
from lab.data.images import DEBIAN_FMNIST_DIR
from lab.gcd.config import BACKBONES, FedGCDConfig
from lab.gcd.experiment import build_model
from lab.gcd.methods import POOLED_REFERENCE
from lab.gcd.models import CNNBackbone
from lab.results import backbone_rows

ROOT = Path(__file__).resolve().parents[1]


def _script(rel: str):
    """A script of the repository (not a package module), loaded from its path under ROOT."""
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


IMAGES = SimpleNamespace(image_shape=(28, 28))


@pytest.mark.parametrize("name", [n for n, bb in BACKBONES.items() if bb])
def test_the_committed_record_states_the_widths_of_the_table(name):
    bb = BACKBONES[name]
    rec = json.loads((ROOT / "data" / f"{bb.stem}.json").read_text())
    assert tuple(rec["widths"]) == bb.widths
    if rec.get("budget", "").endswith(" steps"):      # a step budget is what `--steps N` rebuilds: it must be met
        assert rec["budget"] == f"{rec['steps']} steps"
    CNNBackbone(bb.widths).load_state_dict(
        {k.removeprefix("backbone."): v for k, v in load_file(ROOT / "data" / f"{bb.stem}.safetensors").items()})


def test_a_run_loads_the_backbone_its_config_names_at_its_widths(tmp_path, monkeypatch):
    """A wide backbone planted under a data folder: ``pretrained-wide`` loads exactly its tensors (not the
    committed backbone's, not a fresh init), and the prefix is frozen; ``pretrained`` still loads the committed."""
    wide = BACKBONES["pretrained-wide"]
    d = linked_data_dir(tmp_path, leave_out=(f"{wide.stem}.safetensors",))
    torch.manual_seed(7)
    planted = {f"backbone.{k}": v.clone() for k, v in CNNBackbone(wide.widths).state_dict().items()}
    save_file(planted, str(d / f"{wide.stem}.safetensors"))
    monkeypatch.setenv("LAB_DATA_DIR", str(d))

    for name, expect in (("pretrained-wide", planted),
                         ("pretrained", load_file(ROOT / "data" / f"{BACKBONES['pretrained'].stem}.safetensors"))):
        model = build_model(FedGCDConfig(method="fedlpa", backbone=name), IMAGES, 15, "cpu")
        got = model.backbone.state_dict()
        assert model.backbone.out_dim == BACKBONES[name].widths[-1]
        assert set(got) == {k.removeprefix("backbone.") for k in expect}
        for k, v in expect.items():
            assert torch.equal(got[k.removeprefix("backbone.")], v), (name, k)
        assert model.prefix_frozen
        assert not any(p.requires_grad for blk in model.backbone.frozen_prefix() for p in blk.parameters())
    assert build_model(FedGCDConfig(method="simgcd", backbone="scratch"), IMAGES, 10, "cpu").backbone.out_dim == 64


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(os.path.join(DEBIAN_FMNIST_DIR, "train-images-idx3-ubyte.gz")),
                    reason="the Debian package dataset-fashion-mnist (the pretraining images) is not installed")
def test_pretraining_on_a_step_budget_is_reproducible(tmp_path):
    """The same seed and step budget give byte-identical weights; another seed does not (so the comparison
    can tell); the record states the budget."""
    def pretrain(out, seed):
        subprocess.run([sys.executable, str(ROOT / "data" / "pretrain_backbone.py"), "--steps", "2", "--batch", "16",
                        "--widths", "4,4,8", "--seed", str(seed), "--eval-every", "1e9", "--out", str(out)],
                       check=True, capture_output=True, cwd=ROOT)
        return (Path(f"{out}.safetensors")).read_bytes()

    a, b, c = pretrain(tmp_path / "a", 0), pretrain(tmp_path / "b", 0), pretrain(tmp_path / "c", 1)
    assert a == b
    assert a != c
    rec = json.loads((tmp_path / "a.json").read_text())
    assert rec["steps"] == 2 and rec["budget"] == "2 steps" and rec["widths"] == [4, 4, 8]
    assert rec["budget_probe"] is None and isinstance(rec["knn10_prefix_final"], float)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(os.path.join(DEBIAN_FMNIST_DIR, "train-images-idx3-ubyte.gz")),
                    reason="the Debian package dataset-fashion-mnist (the pretraining images) is not installed")
def test_a_budget_sized_by_a_probe_is_a_step_budget_the_record_can_rebuild(tmp_path):
    """``--steps auto`` times throw-away steps first, then trains from the seed: the step count it records,
    passed back as ``--steps N``, gives the same bytes (the probe left no trace in the weights)."""
    def pretrain(out, *budget):
        subprocess.run([sys.executable, str(ROOT / "data" / "pretrain_backbone.py"), *budget, "--batch", "16",
                        "--widths", "4,4,8", "--eval-every", "1e9", "--out", str(out)],
                       check=True, capture_output=True, cwd=ROOT)
        return Path(f"{out}.safetensors").read_bytes(), json.loads(Path(f"{out}.json").read_text())

    auto, rec = pretrain(tmp_path / "auto", "--steps", "auto", "--seconds", "1.5", "--probe-seconds", "0.5")
    assert rec["budget_probe"]["target_seconds"] == 1.5 and rec["budget"] == f"{rec['steps']} steps"
    rebuilt, _ = pretrain(tmp_path / "n", "--steps", str(rec["steps"]))
    assert rebuilt == auto


@pytest.mark.parametrize("rate, seconds, steps", [(61.6, 4, 200), (10.0, 419.9, 4100), (0.2, 30, 6), (0.01, 5, 1)])
def test_a_probed_rate_names_a_budget_rounded_down_to_a_hundred(rate, seconds, steps):
    script = _script("data/pretrain_backbone.py")
    assert script.steps_for(rate, seconds) == steps


@pytest.mark.slow
def test_backbone_knn_scores_the_output_as_the_record_did_and_the_prefix_a_run_builds_its_graph_on():
    """The summary compares backbones by ``backbone_knn``: on the committed weights its output score is the
    record's, and its prefix score is that of the frozen-prefix maps a run hands to FedLPA's discovery."""
    from lab.data.images import load_fashion_mnist
    from lab.gcd.metrics import backbone_knn, knn_accuracy
    from lab.gcd.models import to_input

    sub = load_fashion_mnist()
    model = build_model(FedGCDConfig(method="fedlpa"), IMAGES, 10, "cpu")
    rec = json.loads((ROOT / "data" / f"{BACKBONES['pretrained'].stem}.json").read_text())
    assert backbone_knn(model.backbone, sub.x_train, sub.y_train, sub.x_test, sub.y_test,
                        spaces=("output",)) == {"output": rec["knn10_final"]}
    xa, ya, xb, yb = sub.x_train[:1500], sub.y_train[:1500], sub.x_test[:500], sub.y_test[:500]
    maps = lambda x: model.prefix_features(to_input(x), dtype=torch.float32).flatten(1).numpy()  # noqa: E731
    got = backbone_knn(model.backbone, xa, ya, xb, yb, spaces=("prefix",))["prefix"]
    assert got == knn_accuracy(maps(xa), ya, maps(xb), yb)


@pytest.mark.parametrize("args, names", [
    (["--steps", "abc"], ["--steps", "'auto'"]),
    (["--steps", "-1"], ["--steps", ">= 0"]),
    (["--steps", "auto", "--seconds", "0"], ["--seconds must be > 0"]),
    (["--steps", "auto", "--seconds", "10", "--probe-seconds", "20"], ["--probe-seconds must be in (0, --seconds=10)"]),
])
def test_a_bad_pretraining_budget_is_one_line_naming_it(args, names, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "data" / "pretrain_backbone.py"), *args, "--out",
                        str(tmp_path / "bb")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert all(n in r.stderr.strip().splitlines()[-1] for n in names)
    assert not list(tmp_path.iterdir())


def _tables_script(tmp_path, monkeypatch):
    mod = _script("bench/run_gcd_tables.py")
    monkeypatch.setattr(mod, "RES", str(tmp_path))
    monkeypatch.setattr(mod, "frozen_knn", lambda name: {"output": 0.8, "prefix": 0.9})   # seconds of CPU spared
    return mod


def test_the_backbone_section_pairs_runs_per_seed_counts_the_missing_and_sets_the_device_apart(tmp_path,
                                                                                               monkeypatch):
    """Planted run files: the oracle prior − each federated baseline and CPU − GPU are paired per seed (on the
    seeds both sides have), CPU runs are read from their own folder only, the missing runs are counted, and a
    one-seed difference shows no spread rather than a spread of 0."""
    mod = _tables_script(tmp_path, monkeypatch)
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    acc = {"FedLPA": 0.55, "FedAvg+SimGCD": 0.50, "FedAvg+GCD": 0.66, "FedLPA, oracle prior": 0.75}

    def plant(folder, label, backbone, seed, all_):
        m, extra = mod.backbone_runs(backbone)[label]
        cfg = mod.config(m, 0.1, seed, False, **best[m], **extra, backbone=backbone)
        (tmp_path / folder).mkdir(exist_ok=True)
        pooled = {"pooled_reference": {"acc_all": all_ + 0.04}} if m == "gcd" else {}    # its k-means on pooled
        (tmp_path / folder / f"{mod.run_name(cfg)}.json").write_text(                    # features, a reference
            json.dumps({"acc_all": all_, "k_est": [3, 5], "k_true": [3, 3], "config": cfg, "history": [], **pooled}))

    for seed in (0, 1):
        for label, a in acc.items():
            plant(mod.BACKBONE_DIR, label, "pretrained", seed, a - 0.01 * seed)
            plant(mod.BACKBONE_DIR, label, "pretrained-wide", seed, a + 0.02 * seed)
    for label, a in acc.items():          # seed 0 on the CPU; seed 1's CPU runs are not made
        plant(mod.BACKBONE_CPU_DIR, label, "pretrained", 0, a + 0.03)
    plant(mod.BACKBONE_CPU_DIR, "FedAvg+GCD", "pretrained-wide", 0, 0.10)    # not the committed backbone: unread
    plant(mod.BACKBONE_CPU_DIR, "FedLPA", "pretrained", 2, 0.90)             # no GPU run of seed 2: unpaired

    study = mod.backbone_study(best, False)
    assert study["runs_expected"] == 48 and study["runs_missing"] == 48 - 16 and study["warmup_splits"] == []
    (e,) = study["alphas"]
    gcd = next(p for p in e["oracle_vs"]["pretrained-wide"] if p["vs"] == "FedAvg+GCD")
    assert gcd["diff"]["values"] == pytest.approx([0.75 - 0.66, 0.75 - 0.66])
    assert [p["vs"] for p in e["oracle_vs"]["pretrained"]] == ["FedAvg+SimGCD", "FedAvg+GCD"]
    device = {p["vs"]: p["diff"]["values"] for p in e["cpu_vs_gpu"]}
    assert set(device) == set(acc) and all(v == pytest.approx([0.03]) for v in device.values())
    assert e["k_hat_within_1"]["pretrained"]["share"] == 0.5
    # the pooled clustering of FedAvg+GCD's features is read off its runs' records (no run of its own)
    assert e["all"]["pretrained-wide"][POOLED_REFERENCE]["mean"] == pytest.approx(0.66 + 0.04 + 0.01)
    pooled = next(p for p in e["fedlpa_vs"]["pretrained-wide"] if p["vs"] == POOLED_REFERENCE)
    assert pooled["diff"]["values"] == pytest.approx([0.55 - 0.70, 0.55 - 0.70])

    runs, diffs = backbone_rows(study)        # what notebook 05 shows: the same pairs, no spread over one seed
    assert [(r["alpha"], r["backbone"]) for r in runs] == [(0.1, "pretrained"), (0.1, "pretrained-wide")]
    row = {(d["backbone"], d["difference"]): d for d in diffs}
    assert row["pretrained-wide", "FedLPA, oracle prior − FedAvg+GCD"]["mean"] == pytest.approx(0.09)
    assert row["pretrained", "FedAvg+GCD: CPU − GPU"]["std"] is None
    assert row["pretrained-wide", "FedLPA: pretrained-wide − pretrained"]["mean"] == pytest.approx(0.015)

    text = "\n".join(mod.backbone_lines(study))
    assert "32 of the 48 runs below are not made yet" in text
    assert "| 0.1 | pretrained-wide | FedLPA, oracle prior − FedAvg+GCD | +9.0 ± 0.0 | 2/2 |" in text
    assert "| 0.1 | FedAvg+GCD | +3.0 ± — | +3.0 |" in text


def _discovery_study():
    return _script("bench/discovery_study.py")


def test_the_references_study_pairs_fedlpa_with_local_only_and_centralized_on_its_own_machine(tmp_path,
                                                                                             monkeypatch):
    """Item 7 asks for every method on each backbone: the references study runs FedLPA (as the core studies do),
    local only (per alpha) and centralized (one run per seed: alpha changes nothing there, so both alphas read it)
    into its own folder, and pairs FedLPA with each per seed; the core studies' runs are unchanged by it. The line
    on runs made on another machine too counts them on the table's seeds and past them (``BACKBONE_MORE_SEEDS``)."""
    mod = _tables_script(tmp_path, monkeypatch)
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    refs = mod.BACKBONE_STUDIES["backbones_refs"]
    assert mod.backbone_runs("pretrained") == {label: r for label, r in mod.backbone_runs("pretrained").items()
                                               if label not in mod.BACKBONE_REFS}           # core: no reference
    runs = mod.backbone_runs("pretrained-wide", refs["labels"])
    assert runs["FedLPA"] == mod.backbone_runs("pretrained-wide")["FedLPA"]    # the core studies' FedLPA config
    assert {m for m, _ in runs.values()} == {"fedlpa", "local", "central"} and mod.LIB_DISCOVERY not in runs
    cfgs = mod.backbone_configs(best, False, ("pretrained", "pretrained-wide"), labels=refs["labels"])
    per_method = {m: sum(c["method"] == m for c in cfgs) for m in ("fedlpa", "local", "central")}
    assert per_method == {"fedlpa": 12, "local": 12, "central": 6}       # 3 seeds x 2 backbones (x 2 alphas)

    folder = tmp_path / refs["folder"]
    folder.mkdir()
    acc = {"fedlpa": 0.60, "local": 0.50, "central": 0.70}
    for c in cfgs:
        a = acc[c["method"]] + 0.01 * c["seed"] + (0.05 if c["backbone"] == "pretrained-wide" else 0)
        (folder / f"{mod.run_name(c)}.json").write_text(
            json.dumps({"acc_all": a, "k_est": [3], "k_true": [3], "config": c, "history": []}))
    (tmp_path / "gcd").mkdir()          # two of the runs were made on another machine too (the tables' folder)
    fedlpa0, local0 = [next(c for c in cfgs if c["method"] == m and c["seed"] == 0 and c["alpha"] == 0.1
                            and c["backbone"] == "pretrained") for m in ("fedlpa", "local")]
    fedlpa3 = next(c for c in mod.backbone_configs(best, False, ("pretrained",), mod.BACKBONE_MORE_SEEDS[:1],
                                                    labels=refs["labels"]) if c["method"] == "fedlpa")
    (folder / f"{mod.run_name(fedlpa3)}.json").write_text(json.dumps(
        {"acc_all": 0.63, "k_est": [3], "k_true": [3], "config": fedlpa3, "history": []}))    # a seed past the table's
    for c, moved in ((fedlpa0, 0.02), (local0, 0.0), (fedlpa3, 0.04)):
        rec = json.loads((folder / f"{mod.run_name(c)}.json").read_text())
        rec["acc_all"] -= moved
        (tmp_path / "gcd" / f"{mod.run_name(c)}.json").write_text(json.dumps(rec))
    study = mod.backbone_study(best, False, "backbones_refs")
    assert study["runs_missing"] == 0 and study["runs_expected"] == 30
    assert {e["run"]: (e["n"], round(e["mean_abs"], 6), e["equal"]) for e in study["elsewhere"]} == {
        "FedLPA": (2, 3.0, 0), "local only": (1, 0.0, 1)}
    assert [e["alpha"] for e in study["alphas"]] == [0.1, 1.0]
    for e in study["alphas"]:
        pairs = {p["vs"]: p for p in e["fedlpa_vs"]["pretrained-wide"]}
        assert set(pairs) == {"local only", "centralized"}
        assert pairs["centralized"]["diff"]["values"] == pytest.approx([-0.10] * 3)
        assert pairs["local only"]["diff"]["values"] == pytest.approx([0.10] * 3)
        wide = {p["vs"]: p["diff"]["values"] for p in e["vs_committed"]["pretrained-wide"]}
        assert wide["centralized"] == pytest.approx([0.05] * 3)
        assert e["k_hat_direction"] == {}          # a diagnosis of FedLPA's lead over the federated baselines
    lines = "\n".join(mod.backbone_lines(study, "backbones_refs"))
    assert "FedLPA − centralized" in lines and refs["note"] in lines


def test_the_2core_study_reads_issue_9s_bar_on_each_backbone_with_the_centralized_run_in_fedlpas_place(tmp_path,
                                                                                                     monkeypatch):
    """The lab's 2-core study also makes the centralized run (one per seed serves both alphas) and reads issue 9's
    All lines on each backbone off its own runs: FedLPA's value, the oracle prior's and the centralized run's in its
    place, each against the strongest federated baseline of its line; a run short of a seed of the set is left out
    of that set's reading (its cells "—"), and a set of seeds on which the baselines were not made reads nothing."""
    mod = _tables_script(tmp_path, monkeypatch)
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    runs = mod.backbone_runs("pretrained-wide", mod.BACKBONE_STUDIES["backbones_2core"]["labels"])
    assert mod.CENTRAL in runs and mod.BACKBONE_RUNS.keys() <= runs.keys()
    acc = {0.1: {"FedLPA": 0.60, "FedAvg+SimGCD": 0.50, "FedAvg+GCD": 0.66, mod.ORACLE: 0.70, mod.CENTRAL: 0.72},
           1.0: {"FedLPA": 0.64, "FedAvg+SimGCD": 0.66, "FedAvg+GCD": 0.65, mod.ORACLE: 0.69, mod.CENTRAL: 0.72}}
    folder = tmp_path / mod.BACKBONE_2CORE_DIR
    folder.mkdir()
    for al, by in acc.items():
        for label, a in by.items():
            for seed in (0, 1, 2, 3):
                if (seed == 3 and label != "FedLPA") or (al == 1.0 and label == mod.ORACLE and seed == 2):
                    continue            # seed 3: FedLPA's only; the oracle's alpha 1 seed 2 is not made
                m, extra = runs[label]
                cfg = mod.config(m, al, seed, False, **best[m], **extra, backbone="pretrained-wide")
                (folder / f"{mod.run_name(cfg)}.json").write_text(json.dumps(
                    {"acc_all": a + 0.01 * (seed - 1), "k_est": [3, 5], "k_true": [3, 3], "config": cfg,
                     "history": []}))
    study = mod.backbone_study(best, False, "backbones_2core")
    (read,) = study["done_when"].values()
    assert list(study["done_when"]) == ["pretrained-wide"] and read["seed_study"] == []
    got = {(x["alpha"], x["target"][:28]): x for x in read["eval_seeds"]}
    plus5, ratio = got[0.1, "FedLPA ≥ every federated bas"], got[0.1, "FedLPA ≥ 0.9 × the oracle pr"]
    assert (plus5["value"], plus5["oracle_value"], plus5["central_value"]) == pytest.approx((-0.06, 0.04, 0.06))
    assert (plus5["met"], plus5["oracle_met"], plus5["central_met"]) == (False, False, True)
    assert ratio["value"] == pytest.approx(0.6 / 0.7) and ratio["central_value"] is None
    simgcd, gcd = got[1.0, "FedLPA ≥ FedAvg+SimGCD − 1 p"], got[1.0, "FedLPA ≥ federated FedAvg+GC"]
    assert (simgcd["value"], simgcd["central_value"], gcd["central_value"]) == pytest.approx((-0.02, 0.06, 0.07))
    assert simgcd["oracle_value"] is None and gcd["oracle_value"] is None     # two seeds: not the bar's mean
    assert got[1.0, "FedLPA's K̂ within ±1 on ≥ 8"]["value"] == 0.5
    text = "\n".join(mod.backbone_lines(study, "backbones_2core"))
    assert ("| 0.1 | pretrained-wide | FedLPA ≥ every federated baseline + 5 points | +5 points | -6.0 points "
            "(missed) | — | +4.0 points (missed) | +6.0 points (met) |") in text
    assert "| 1 | pretrained-wide | FedLPA ≥ federated FedAvg+GCD | 0 points | -1.0 points (missed) | — | — |" in text


def test_the_discovery_study_on_another_backbone_reads_its_features_and_writes_beside_the_committed_study(tmp_path):
    """``bench/discovery_study.py --backbone pretrained-wide``: its snapshots train on that backbone, its features
    (the prefix maps FedLPA's graph is built on) come from it, and its files never overwrite the committed study's."""
    ds = _discovery_study()
    (tmp_path / "c").mkdir()
    (tmp_path / "w").mkdir()
    committed = (ds.out_paths(), ds.snapshot_path("r6", 0.1), ds.prefix_all(str(tmp_path / "c")).shape)
    ds.set_backbone("pretrained-wide")
    assert ds.snapshot_cfg("r20", 1.0).backbone == "pretrained-wide"
    wide = (ds.out_paths(), ds.snapshot_path("r6", 0.1), ds.prefix_all(str(tmp_path / "w")).shape)
    assert [os.path.basename(p) for p in committed[0]] == ["discovery_study.json", "discovery_study.md"]
    assert not set(wide[0]) & set(committed[0]) and wide[1] != committed[1]
    # the prefix (two conv blocks at 7x7) has the second block's width: 32 committed, 64 wide
    assert (committed[2][1], wide[2][1]) == (32 * 49, 64 * 49) and committed[2][0] == wide[2][0]


@pytest.mark.slow
def test_the_discovery_study_names_a_backbone_it_cannot_run_on(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "discovery_study.py"), "--backbone", "scratch",
                        "--cache", str(tmp_path / "cache")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--backbone" in r.stderr.strip().splitlines()[-1] and "pretrained-wide" in r.stderr
    assert not list(tmp_path.iterdir())


def test_fedlpa_on_a_backbone_takes_the_discovery_its_study_chose_there_and_keeps_the_library_run_beside(tmp_path,
                                                                                                        monkeypatch):
    """``discovery_study_<backbone>.json``'s choice (tuning seeds of that backbone) becomes FedLPA's discovery on
    it; the oracle prior (its heads and prior are told) and the baselines keep their configs; FedLPA at the
    library's defaults stays beside it, paired per seed; K̂ is the tuned FedLPA's. The committed backbone keeps its
    configs, every FedLPA run of item 7 discovers without the later coarse route, and a choice a run's config cannot
    express is an error naming it."""
    mod = _tables_script(tmp_path, monkeypatch)
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    choice = {"features": "output", "refine": "confidence", "markov_time": 6.0, "min_labelled_share": 0.5,
              "merge_new_by_head": True, "prior": "blend"}
    (tmp_path / "discovery_study_pretrained-wide.json").write_text(json.dumps({"choice": {"params": choice}}))
    (tmp_path / "discovery_study.json").write_text(json.dumps({"choice": {"params": {"markov_time": 9.0}}}))
    chosen = {"graph_features": "output", "graph_refine": "confidence", "markov_time": 6.0, "min_labelled_share": 0.5}
    # a study that recorded the library it ran with, the merging of new-class communities already on
    (tmp_path / "discovery_study_pretrained-wide.json").write_text(json.dumps(
        {"choice": {"params": choice}, "library_defaults": {"merge_new_cosine": 0.8}}))
    assert mod.discovery_tuned("pretrained-wide") == {**chosen, **mod.BEFORE_ROUTE}
    # one made before that field existed never saw it on: its runs keep it off
    (tmp_path / "discovery_study_pretrained-wide.json").write_text(json.dumps({"choice": {"params": choice}}))
    tuned = {**chosen, "merge_new_cosine": None, **mod.BEFORE_ROUTE}
    assert mod.discovery_tuned("pretrained-wide") == tuned and mod.discovery_tuned("pretrained") == {}
    runs = mod.backbone_runs("pretrained-wide")
    assert runs["FedLPA"][1] == tuned
    assert runs[mod.LIB_DISCOVERY] == ("fedlpa", {**mod.BACKBONE_RUNS["FedLPA"][1], **mod.BEFORE_ROUTE})
    assert runs[mod.ORACLE] == ("fedlpa", {**mod.BACKBONE_RUNS[mod.ORACLE][1], "merge_new_cosine": None,
                                           **mod.BEFORE_ROUTE})
    assert all(runs[label] == mod.BACKBONE_RUNS[label] for label in mod.BACKBONE_RUNS
               if label not in ("FedLPA", mod.ORACLE))
    assert mod.backbone_runs("pretrained") == {label: (m, {**extra, **mod.BEFORE_ROUTE} if m == "fedlpa" else extra)
                                               for label, (m, extra) in mod.BACKBONE_RUNS.items()}

    def plant(label, seed, all_, k_est, warm=0.5):
        m, extra = runs[label]
        cfg = mod.config(m, 0.1, seed, False, **best[m], **extra, backbone="pretrained-wide")
        (tmp_path / mod.BACKBONE_2CORE_DIR).mkdir(exist_ok=True)
        (tmp_path / mod.BACKBONE_2CORE_DIR / f"{mod.run_name(cfg)}.json").write_text(json.dumps(
            {"acc_all": all_, "k_est": k_est, "k_true": [3, 3], "config": cfg,
             "history": [{"round": 1, "acc_all": warm}, {"round": 6, "acc_all": all_}]}))

    for seed in (0, 1):
        plant("FedLPA", seed, 0.60 + 0.01 * seed, [3, 4])
        plant(mod.LIB_DISCOVERY, seed, 0.55, [6, 6], warm=0.5 - 0.01 * seed)   # seed 1: another machine's warm-up
        plant("FedAvg+GCD", seed, 0.58, [0])
    study = mod.backbone_study(best, False, "backbones_2core")
    assert study["warmup_splits"] == [{"alpha": 0.1, "seed": 1, "backbone": "pretrained-wide",
                                       "runs": [["FedLPA"], [mod.LIB_DISCOVERY]]}]
    assert (f"- α 0.1, seed 1, `pretrained-wide`: “FedLPA” against “{mod.LIB_DISCOVERY}”"
            in mod.backbone_lines(study, "backbones_2core"))
    (e,) = study["alphas"]
    lib = next(p for p in e["fedlpa_vs"]["pretrained-wide"] if p["vs"] == mod.LIB_DISCOVERY)
    assert lib["diff"]["values"] == pytest.approx([0.05, 0.06])
    assert e["k_hat_within_1"]["pretrained-wide"]["share"] == 1.0 and not e["cpu_vs_gpu"]
    text = "\n".join(mod.backbone_lines(study, "backbones_2core"))
    assert "on `pretrained-wide`: graph_features output, graph_refine confidence" in text
    assert "--study backbones_2core" in text
    assert "more_seeds" not in study and "Over more evaluation seeds" not in text

    # the seed study's next seeds (``--seeds``) get their own table over all seeds made; the Done-when seeds' stays.
    # The 2-core study's are all of the seed study's (the other studies' the next three): a seed past those three
    further = mod.study_more_seeds("backbones_2core")
    assert further == mod.SEED_STUDY[len(mod.EVAL_SEEDS):]
    assert mod.study_more_seeds("backbones") == mod.BACKBONE_MORE_SEEDS
    assert mod.study_more_seeds("backbones_refs") == further       # the references over the seed study's seeds too
    more = further[-1]
    plant("FedLPA", more, 0.70, [3, 3])
    plant(mod.LIB_DISCOVERY, more, 0.62, [6, 6], warm=0.49)       # another machine's warm-up there too
    study = mod.backbone_study(best, False, "backbones_2core")
    assert [g["seed"] for g in study["warmup_splits"]] == [1, more]
    (e,) = study["alphas"]
    assert e["all"]["pretrained-wide"]["FedLPA"]["n"] == 2
    (m,) = study["more_seeds"]["alphas"]
    assert study["more_seeds"]["seeds"] == list(mod.SEED_STUDY)
    assert m["all"]["pretrained-wide"]["FedLPA"]["n"] == 3
    assert "FedAvg+GCD" not in m["all"]["pretrained-wide"]      # no run on a new seed: its row would repeat
    lib = next(p for p in m["fedlpa_vs"]["pretrained-wide"] if p["vs"] == mod.LIB_DISCOVERY)
    assert lib["diff"]["values"] == pytest.approx([0.05, 0.06, 0.08])
    assert m["k_hat_within_1"]["pretrained-wide"]["clients"] == 6
    text = "\n".join(mod.backbone_lines(study, "backbones_2core"))
    assert "Over more evaluation seeds (0, 1, 2, 3, 4, 5, 6, 7, 8, 9:" in text and "| +6.3 ± 1.2 | 3/3 |" in text
    # the seed study's K̂-direction diagnosis on the seeds of the widest table (more than 2 of FedLPA's runs)
    assert e["k_hat_direction"] == {}
    kd = m["k_hat_direction"]["pretrained-wide"]
    assert kd["net_overcount"] == {"0": 1, "1": 1, str(more): 0}
    assert [g["seeds"] for g in kd["groups"]] == [[0, 1], [more]]
    assert kd["r"]["FedLPA"] == pytest.approx(np.corrcoef([1, 1, 0], [0.60, 0.61, 0.70])[0, 1])
    assert "| 0.1 | pretrained-wide | over-count: 0, 1 | +1.0 |" in text

    (tmp_path / "discovery_study_pretrained-wide.json").write_text(
        json.dumps({"choice": {"params": dict(choice, prefix_dim=64)}}))
    with pytest.raises(ValueError, match="prefix_dim"):
        mod.discovery_tuned("pretrained-wide")


def test_the_2core_study_splits_the_oracles_lead_with_a_run_told_the_heads_that_keeps_fedlpas_masses(tmp_path,
                                                                                                     monkeypatch):
    """The 2-core study (only it) also makes the seed study's "oracle heads, own masses" on each backbone: told each
    client's true heads and K, its masses FedLPA's own, at FedLPA's discovery on that backbone (its config is
    FedLPA's but for the oracle flag), so that FedLPA − it is what the true heads give and the oracle prior − it
    what the true masses give, both paired per seed."""
    mod = _tables_script(tmp_path, monkeypatch)
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    (tmp_path / "discovery_study_pretrained-wide.json").write_text(json.dumps({"choice": {"params": {
        "features": "output", "refine": "confidence", "markov_time": 6.0, "min_labelled_share": 0.5}}}))
    labels = mod.BACKBONE_STUDIES["backbones_2core"]["labels"]
    told = mod.SEED_PARTS[mod.ORACLE_HEADS][1]
    assert told == {"oracle_prior": "support"}
    for b in ("pretrained", "pretrained-wide"):
        runs = mod.backbone_runs(b, labels)
        assert runs[mod.ORACLE_HEADS] == ("fedlpa", {**runs["FedLPA"][1], **told})
    assert runs["FedLPA"][1]["markov_time"] == 6.0
    assert mod.ORACLE_HEADS not in mod.backbone_runs("pretrained-wide")                # the GPU study's runs
    assert mod.ORACLE_HEADS not in mod.backbone_runs("pretrained-wide", mod.REFS_LABELS)

    def plant(label, seed, all_):
        m, extra = runs[label]
        cfg = mod.config(m, 0.1, seed, False, **best[m], **extra, backbone="pretrained-wide")
        (tmp_path / mod.BACKBONE_2CORE_DIR).mkdir(exist_ok=True)
        (tmp_path / mod.BACKBONE_2CORE_DIR / f"{mod.run_name(cfg)}.json").write_text(json.dumps(
            {"acc_all": all_, "k_est": [3, 3], "k_true": [3, 3], "config": cfg,
             "history": [{"round": 1, "acc_all": 0.5}, {"round": 6, "acc_all": all_}]}))

    for seed, (fedlpa, heads, oracle) in enumerate([(0.60, 0.62, 0.70), (0.58, 0.57, 0.72)]):
        plant("FedLPA", seed, fedlpa)
        plant(mod.ORACLE_HEADS, seed, heads)
        plant(mod.ORACLE, seed, oracle)
    study = mod.backbone_study(best, False, "backbones_2core")
    (e,) = study["alphas"]
    by_heads = next(p for p in e["fedlpa_vs"]["pretrained-wide"] if p["vs"] == mod.ORACLE_HEADS)
    assert by_heads["diff"]["values"] == pytest.approx([-0.02, 0.01])
    by_masses = next(p for p in e["oracle_vs"]["pretrained-wide"] if p["vs"] == mod.ORACLE_HEADS)
    assert by_masses["diff"]["values"] == pytest.approx([0.08, 0.15]) and by_masses["ahead"] == 2
    text = "\n".join(mod.backbone_lines(study, "backbones_2core"))
    assert f"| 0.1 | pretrained-wide | {mod.ORACLE} − {mod.ORACLE_HEADS} | +11.5 ± 3.5 | 2/2 |" in text
    assert f"| 0.1 | pretrained-wide | FedLPA − {mod.ORACLE_HEADS} | -0.5 ± 1.5 | 1/2 |" in text


@pytest.mark.slow
@pytest.mark.parametrize("args, names", [(["--alphas", "0.5"], ["--alphas", "0.1, 1.0"]),
                                         (["--seeds", "1,x"], ["--seeds", "0, 1, 2, 3, 4, 5"]),
                                         (["--study", "backbones_2core", "--seeds", "10"],
                                          ["--seeds", "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"])])
def test_the_backbone_stage_names_a_part_it_cannot_run(args, names, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run_gcd_tables.py"), "--stage", "backbone", *args,
                        "--out-dir", str(tmp_path / "runs")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert all(n in r.stderr.strip().splitlines()[-1] for n in names)
    assert not list(tmp_path.iterdir())


def test_each_discovery_lever_is_fedlpas_item_7_run_with_only_its_own_fields_changed():
    """``bench/discovery_levers.py`` pairs each lever (and ceiling) with FedLPA's item-7 run made again in its own
    folder: the two configs differ in the lever's fields and nothing else (learning rate, backbone, the study's
    other discovery choices, seed); the oracle prior it pairs the ceilings with is item 7's oracle config (its
    heads and prior are told: discovery does not enter it); every run the committed report pairs is a committed
    file of that one folder."""
    mod = _script("bench/discovery_levers.py")
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    cfgs = mod.configs(best)
    assert {label for label, _ in cfgs} == set(mod.LEVERS) | set(mod.CEILINGS)
    t = mod.T
    for (label, alpha), runs in cfgs.items():
        for seed, lever, fedlpa, oracle in runs:
            assert {k for k in lever if lever[k] != fedlpa.get(k)} == set(mod.RUNS[label][0])
            assert fedlpa["backbone"] == "pretrained-wide"
            # the study's choice, with the prior it had when the levers were made
            assert {**t.discovery_tuned("pretrained-wide"), **mod.PAIRED_WITH}.items() <= fedlpa.items()
            assert (fedlpa["alpha"], fedlpa["seed"]) == (alpha, seed)
            item7 = t.backbone_configs(best, False, ["pretrained-wide"], seeds=(seed,), alphas=(alpha,),
                                       methods=("fedlpa",))
            (item7_oracle,) = [c for c in item7 if c["oracle_prior"] is True]
            assert t.run_name(oracle) == t.run_name(item7_oracle)
            if label == mod.EM_LABEL:           # the study re-chose its prior: this lever is item 7's FedLPA row
                item7_fedlpa = t.config("fedlpa", alpha, seed, False, **best["fedlpa"],
                                        **t.backbone_runs("pretrained-wide")["FedLPA"][1], backbone="pretrained-wide")
                assert t.run_name(lever) == t.run_name(item7_fedlpa)
            assert t.load(lever, mod.OUT) and t.load(fedlpa, mod.OUT)
    def same_pairs(seeds, labels) -> dict:
        """The pairs of ``labels`` on ``seeds``, each as on the evaluation seeds, and committed."""
        out = mod.configs(best, seeds, labels)
        assert {label for label, _ in out} == set(labels)
        for (label, alpha), runs in out.items():
            assert sorted(s for s, *_ in runs) == sorted(seeds)
            for seed, lever, fedlpa, _ in runs:
                assert {k for k in lever if lever[k] != fedlpa.get(k)} == set(mod.RUNS[label][0])
                assert (fedlpa["alpha"], fedlpa["seed"]) == (alpha, seed)
                assert t.load(lever, mod.OUT) and t.load(fedlpa, mod.OUT)
        return out

    # the tuning-seed check: the same pairs on the tuning seeds only, for the levers it names
    assert not set(t.TUNING_SEEDS) & set(t.EVAL_SEEDS)
    tuning = same_pairs(t.TUNING_SEEDS, mod.TUNING_CHECK)
    # more evaluation seeds for the EM lever: the seed study's, never a tuning seed, paired the same way
    assert set(mod.MORE_SEEDS) <= set(t.SEED_STUDY) - set(t.EVAL_SEEDS) - set(t.TUNING_SEEDS)
    more = same_pairs(mod.MORE_SEEDS, mod.MORE)
    report = mod.report(cfgs, tuning, more)
    assert len([row for row in report if row.startswith("| ") and "(3)" in row]) == len(cfgs)
    assert len([row for row in report if row.startswith("| ") and "(2)" in row]) == len(tuning)
    n = len(t.EVAL_SEEDS) + len(mod.MORE_SEEDS)
    assert len([row for row in report if row.startswith("| ") and f"({n})" in row]) == len(more)
    assert len([row for row in report if row.startswith(f"| {t.ORACLE} − ")]) == len(mod.CEILINGS)


def _committed_pairs(mod, table: dict, field: str) -> dict:
    """``bench/discovery_levers.py``'s pairs on the committed backbone for ``table``: each is the Done-when table's
    FedLPA config itself (made again in the levers' folder) against that config with only ``field`` changed, on
    every seed of the seed study and on the tuning seeds, both files committed. Returns {seed set: configs}."""
    t = mod.T
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    got = {}
    for ss, seeds in (("evaluation", t.SEED_STUDY), ("tuning", t.TUNING_SEEDS)):
        got[ss] = mod.configs(best, seeds, backbone="pretrained", table=table)
        assert set(got[ss]) == {(label, al) for label in table for al in t.TABLE_ALPHAS}
        for (label, alpha), runs in got[ss].items():
            assert sorted(s for s, *_ in runs) == sorted(seeds)
            for seed, lever, fedlpa, _ in runs:
                assert t.run_name(fedlpa) == t.run_name(t.config("fedlpa", alpha, seed, False, **best["fedlpa"],
                                                                 **mod.BEFORE_SPLIT, **t.BEFORE_ROUTE))
                assert {k for k in lever if lever[k] != fedlpa[k]} == {field}
                assert lever[field] == table[label][0][field] and fedlpa["backbone"] == "pretrained"
                assert t.load(lever, mod.OUT) and t.load(fedlpa, mod.OUT)
    return got


def test_the_em_lever_on_the_committed_backbone_is_the_tables_fedlpa_with_only_its_prior_changed():
    """The committed-backbone check (``COMMITTED_RUNS``) pairs em_blend per seed with the Done-when table's FedLPA
    config (the library's default prior, blend). It is a measurement, not a choice: the committed study's pick
    keeps the library's default."""
    from lab.gcd.discovery import DiscoveryParams

    mod = _script("bench/discovery_levers.py")
    t = mod.T
    pick = json.loads(Path(mod.PICK).read_text())[mod.EM_LABEL]["committed_backbone"]
    assert pick["fields"]["prior_rule"] == DiscoveryParams().prior == "blend"
    assert mod.COMMITTED_RUNS[mod.COMMITTED_LABEL][0] == {"prior_rule": "em_blend"}
    rows = mod.committed_lines(_committed_pairs(mod, mod.COMMITTED_RUNS, "prior_rule"))
    for n in (len(t.EVAL_SEEDS), len(t.SEED_STUDY), len(t.TUNING_SEEDS)):
        assert len([r for r in rows if r.startswith(f"| {mod.COMMITTED_LABEL} |") and f"({n})" in r]) == 2


def _check_overcount_split(mod, table: dict, got: dict, lines: list, prefix: str):
    """The split table of ``committed_lever_lines`` groups the seed study's seeds by the net over-count Σ (K̂ − K) of
    FedLPA's own run there (the lever's own K̂ must not decide which group a seed is in), recounted from the runs."""
    t = mod.T
    split = {tuple(c.strip() for c in r.split("|")[1:4]): r for r in lines if r.startswith(prefix) and
             ("over-count:" in r)}
    for (label, alpha), runs in got["evaluation"].items():
        net = {}
        for s, lever, fedlpa, _ in runs:
            r = t.load(fedlpa, mod.OUT)
            net[s] = sum(e - k for e, k in zip(r["k_est"], r["k_true"]))
        for name, keep in (("over-count", lambda n: n > 0), ("no over-count", lambda n: n <= 0)):
            seeds = [s for s, *_ in runs if keep(net[s])]
            if seeds:
                key = (label, f"{alpha:g}", f"{name}: {', '.join(map(str, seeds))}")
                assert key in split, key
                cells = [c.strip() for c in split[key].split("|")]    # its 4th column: FedLPA's, not the probe's
                assert cells[4] == f"{sum(net[s] for s in seeds) / len(seeds):+.1f}", split[key]
    assert len(split) >= 2 * len(table)


def test_the_markov_probe_splits_the_seeds_by_fedlpas_own_net_over_count():
    """The probe (``MERGE_RUNS``) is the Done-when table's FedLPA with only a larger markov time than the library's,
    split by FedLPA's own net over-count."""
    from lab.gcd.discovery import DiscoveryParams

    mod = _script("bench/discovery_levers.py")
    assert all(f[0]["markov_time"] > DiscoveryParams().markov_time for f in mod.MERGE_RUNS.values())
    got = _committed_pairs(mod, mod.MERGE_RUNS, "markov_time")
    _check_overcount_split(mod, mod.MERGE_RUNS, got, mod.committed_lever_lines(got, mod.MERGE_INTRO, "probe"),
                           "| probe:")


def test_the_split_lever_is_the_anatomys_pick_on_the_tables_fedlpa_with_only_that_field_changed():
    """``SPLIT_RUNS`` is what ``bench/kest_anatomy.py`` picked on the tuning seeds (``kest_anatomy.json``), applied to
    the Done-when table's FedLPA config and nothing else, on every seed of the seed study and the tuning seeds."""
    mod = _script("bench/discovery_levers.py")
    choice = json.loads(Path(mod.ANATOMY).read_text())["pick"]["choice"]
    assert choice["threshold"] is not None and choice["on"] == "predictions"
    fields = {"merge_new_cosine": choice["threshold"], "merge_new_on": "predictions"}
    assert mod.SPLIT_RUNS == {mod.SPLIT_LABEL: (fields, mod.T.TABLE_ALPHAS)}
    got = _committed_pairs(mod, mod.SPLIT_RUNS, "merge_new_cosine")
    lines = mod.committed_lever_lines(got, mod.SPLIT_INTRO, "lever")
    _check_overcount_split(mod, mod.SPLIT_RUNS, got, lines, "| lever:")
    # the learning rate re-tuned with the lever: the tables' tuning grid, seeds and alphas, only the lever's field
    # changed, every run committed, and the report's table is what those runs say
    retune = mod.retune_configs()
    grid = [g["lr"] for g in mod.T.TUNE_GRID["fedlpa"]]
    assert list(retune) == grid
    for lr, cs in retune.items():
        plain = [mod.T.config("fedlpa", al, s, False, lr=lr, **mod.BEFORE_SPLIT, **mod.T.BEFORE_ROUTE)
                 for al in mod.T.TUNING_ALPHAS for s in mod.T.TUNING_SEEDS]
        assert [{k for k in c if c[k] != p[k]} for c, p in zip(cs, plain)] == [{"merge_new_cosine"}] * len(cs)
        assert all(mod.T.load(c, mod.OUT) for c in cs)
        assert all(mod.T.load(p, os.path.join(mod.T.RES, mod.T.BEFORE_MERGE_DIR)) for p in plain)
        # the lever became the library's default: its runs are the tune stage's FedLPA grid (before the route)
        grid_runs = [mod.T.config("fedlpa", al, s, False, lr=lr, **mod.T.BEFORE_ROUTE) for al in mod.T.TUNING_ALPHAS
                     for s in mod.T.TUNING_SEEDS]
        assert [mod.T.run_name(c) for c in cs] == [mod.T.run_name(c) for c in grid_runs]
        assert all(mod.T.load(c, os.path.join(mod.T.RES, mod.T.BEFORE_ROUTE_DIR)) for c in grid_runs)
    lines += mod.retune_lines(retune)
    assert sum(line.startswith("| ") and line.split("|")[1].strip() in {f"{lr:g}" for lr in grid}
               for line in lines) == len(grid)
    report = (ROOT / "bench" / "results" / "discovery_levers.md").read_text()
    assert all(line in report for line in lines)


def test_picked_levers_follow_their_criterion_on_the_tuning_clients_only():
    """The three levers ``--pick`` chose (``bench/results/discovery_levers_pick.json``) are the argmax of their stated
    score recomputed from the pick's own grid, tuning rows only (an evaluation row may never choose), and they are
    the fields the lever runs were made with."""
    import numpy as np

    lv, study = _script("bench/discovery_levers.py"), _discovery_study()
    pick = json.loads(Path(lv.PICK).read_text())
    claim, tv = pick[lv.CLAIM_LABEL], pick[lv.TV_LABEL]
    rows = {(r["t"], r["z"]): r for r in claim["grid"] if r["seeds"] == "tuning"}
    assert {r["seeds"] for r in claim["grid"]} == {"tuning", "evaluation"}

    def score(t, z):              # the study's criterion: worse alpha, smoothed over neighbouring markov times
        i = study.GRID_T.index(t)
        nb = [study.GRID_T[j] for j in (i - 1, i, i + 1) if 0 <= j < len(study.GRID_T)]
        w = [np.mean([rows[(x, z)][f"within1_a{a:g}"] for x in nb]) for a in study.ALPHAS]
        return min(w), np.mean(w), -np.mean([rows[(t, z)][f"kl_a{a:g}"] for a in study.ALPHAS])

    f = claim["fields"]
    assert (f["markov_time"], f["claim_z"]) == max(rows, key=lambda tz: score(*tz))
    assert f["min_labelled_share"] == lv.CLAIM_FLOOR
    from lab.gcd.discovery import PRIORS, DiscoveryParams

    em = pick[lv.EM_LABEL]
    committed = em["committed_backbone"]
    assert tv["candidates"] == list(lv.TV_CANDIDATES)
    assert set(em["candidates"]) == set(committed["candidates"]) == set(PRIORS) - {"uniform"}
    for prior_pick, metric, reduce in ((tv, "tv_head", "worse alpha"), (em, "kl_head", "mean over alphas"),
                                       (committed, "kl_head", "mean over alphas")):   # lowest wins
        tuning = [r for r in prior_pick["grid"] if r["seeds"] == "tuning" and r["prior"] in prior_pick["candidates"]]
        assert (prior_pick["metric"], prior_pick["reduce"]) == (metric, reduce)
        assert prior_pick["fields"]["prior_rule"] == min(tuning, key=lambda r: lv.REDUCE[reduce](
            [r[f"{metric}_a0.1"], r[f"{metric}_a1"]]))["prior"]
    # the study's rule keeps the committed tables' prior (the library default) with the EM priors among the candidates
    assert committed["fields"]["prior_rule"] == DiscoveryParams().prior == committed["study_choice"]["prior"]
    for label in (lv.CLAIM_LABEL, lv.TV_LABEL, lv.EM_LABEL):
        assert lv.LEVERS[label][0] == pick[label]["fields"]


def test_the_gcd_stages_write_beside_their_script_not_under_the_installed_labs_checkout(tmp_path):
    """Run from another checkout than the one ``lab`` is installed from, a stage writes its results (and the tables'
    snapshots) into the script's own checkout, not into the installed one."""
    for rel in ("bench/run_gcd_tables.py", "bench/discovery_study.py"):
        (tmp_path / "bench").mkdir(exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
        spec = importlib.util.spec_from_file_location(Path(rel).stem + "_elsewhere", tmp_path / rel)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert Path(mod.RES) == tmp_path / "bench" / "results", rel
        if rel == "bench/run_gcd_tables.py":       # where the tables stage writes the snapshots under data/
            assert Path(mod.CHECKOUT) == tmp_path


def test_the_grid_on_another_backbone_runs_item_7s_configs_and_leaves_the_tables_tuning_alone(tmp_path,
                                                                                              monkeypatch):
    """``--stage tune --backbone pretrained-wide``: every method's grid point is item 7's run of that backbone at
    that learning rate (FedLPA at the discovery its study chose there), so the committed runs at the tables' rates
    are points of it; the choice is each complete grid's own argmax, written to the backbone's file only."""
    mod = _tables_script(tmp_path, monkeypatch)
    wide = "pretrained-wide"
    (tmp_path / f"discovery_study_{wide}.json").write_text(
        (ROOT / "bench" / "results" / f"discovery_study_{wide}.json").read_text())
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    extras = mod.tune_extras(wide)
    name = {m: mod.run_name(mod.config(m, 0.1, 0, False, **best[m], **extras[m])) for m in mod.TUNE_GRID}
    made = {m: [d for d in ("gcd_backbones_2core", "gcd_backbones_refs")
                if (ROOT / "bench" / "results" / d / f"{name[m]}.json").exists()] for m in mod.TUNE_GRID}
    assert all(made.values()), made
    assert mod.tune_extras("pretrained") == {m: {} for m in mod.TUNE_GRID}
    # a planted argmax per method: SimGCD's at the widened grid's lowest point, FedLPA's on the committed choice
    lrs = [g["lr"] for g in mod.tune_grid(wide)["fedlpa"]]
    assert lrs == sorted(lrs) and lrs[0] < mod.LRS[0] and lrs[-1] > mod.LRS[-1] and set(mod.LRS) < set(lrs)
    assert all([g["lr"] for g in grid] == lrs for grid in mod.tune_grid(wide).values())
    assert mod.tune_grid("pretrained") == mod.TUNE_GRID
    peak = {**{m: lrs[0] for m in mod.TUNE_GRID}, "fedlpa": best["fedlpa"]["lr"]}
    assert best["simgcd"]["lr"] != peak["simgcd"]

    def fake_run_all(cfgs, out_dir, workers, desc):
        for c in cfgs:
            assert c["backbone"] == wide and c["seed"] in mod.TUNING_SEEDS, c
            acc = 0.6 - abs(np.log(c["lr"] / peak[c["method"]])) / 10 + c["seed"] / 1e4 + (c["alpha"] == 1) / 50 \
                + (c["method"] == "fedlpa") / 100
            (Path(out_dir) / f"{mod.run_name(c)}.json").write_text(
                json.dumps({"acc_all": acc, "alpha": c["alpha"], "seed": c["seed"], "config": c}))

    monkeypatch.setattr(mod, "run_all", fake_run_all)
    runs = tmp_path / f"gcd_tuning_{wide}"
    runs.mkdir()
    # FedAvg+GCD half made: its lowest points only (a grid being widened), the best of them its last
    fake_run_all([mod.config("gcd", al, s, False, lr=lr, **extras["gcd"]) for lr in lrs[:3]
                  for al in mod.TUNING_ALPHAS for s in mod.TUNING_SEEDS], runs, 1, "")
    chosen = ("simgcd", "fedlpa", "local")
    got = mod.tune(SimpleNamespace(methods=chosen, quick=False, workers=1), str(runs), wide)
    rec = json.loads((tmp_path / f"gcd_tuning_{wide}.json").read_text())
    assert got == rec["best"] == {m: {"lr": peak[m]} for m in chosen}      # the others not complete
    assert rec["backbone"] == wide and rec["fixed"]["fedlpa"] == extras["fedlpa"] and rec["lrs"] == lrs
    assert sorted(g["lr"] for g in rec["grid"] if g["method"] == "gcd") == lrs[:3]
    per_method = len(lrs) * len(mod.TUNING_SEEDS) * len(mod.TUNING_ALPHAS)
    assert len(list(runs.iterdir())) == len(chosen) * per_method + per_method * 3 // len(lrs)
    assert not (tmp_path / "gcd_tuning.json").exists()
    # the summary's section: each grid beside the committed one, and whether item 7's runs are at its choice
    (tmp_path / "gcd_tuning.json").write_text((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())
    bt = mod.backbone_tuning(best, wide)
    text = "\n".join(mod.backbone_tuning_lines(bt))
    simgcd = next(line for line in text.splitlines() if line.startswith("| FedAvg+SimGCD |"))
    assert simgcd.split(" | ")[1] == "**62.0** (—)" and simgcd.count("**") == 2        # lr 0.01: the first cell
    assert simgcd.split(" | ")[2].endswith(f"({100 * bt['committed_grid']['simgcd'][mod.LRS[0]]:.1f})")
    assert simgcd.endswith(f"| {peak['simgcd']:g} | {best['simgcd']['lr']:g} | no: they would be made again at "
                           "its choice |")
    fedlpa = next(line for line in text.splitlines() if line.startswith("| FedLPA |"))
    assert fedlpa.endswith(f"| {peak['fedlpa']:g} | {best['fedlpa']['lr']:g} | yes |")
    gcd = next(line for line in text.splitlines() if line.startswith("| FedAvg+GCD |")).split(" | ")
    assert "**" not in "".join(gcd) and [c.startswith("—") for c in gcd[1:len(lrs) + 1]] == [False] * 3 + [True] * 4
    assert gcd[len(lrs) + 1:len(lrs) + 2] == ["—"] and gcd[-1] == "not yet (its grid is not complete) |"
    assert (f"FedAvg+GCD {per_method * 3 // len(lrs)}/{per_method}, centralized "
            f"0/{per_method // len(mod.TUNING_ALPHAS)}") in text and "--methods gcd,central" in text
    assert f"widened by {lrs[0]:g} and {lrs[-1]:g} for every method" in text
    # each choice per alpha, beside the committed backbone's at its own choice (α 1 planted 2 points up, FedLPA 1)
    ours = {r.split(" | ")[0]: r.split(" | ")[1:] for r in text.split("| at its choice |")[1].splitlines()[2:]
            if r.startswith("| ")}
    committed = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["grid"]
    there = {m: [100 * np.mean([v for k, v in g["runs"].items() if k.startswith(f"a{al:g}_")])
                 for al in mod.TUNING_ALPHAS] for m in chosen
             for g in committed if g["method"] == m and g["lr"] == best[m]["lr"]}
    assert ours["| FedAvg+SimGCD"] == [f"61.0 ({there['simgcd'][0]:.1f})", f"63.0 ({there['simgcd'][1]:.1f}) |"]
    assert ours["| local only"][1] == f"63.0 ({there['local'][1]:.1f}) |"
    assert ours["| FedLPA − FedAvg+SimGCD"] == [f"+1.0 ({there['fedlpa'][0] - there['simgcd'][0]:+.1f})",
                                               f"+1.0 ({there['fedlpa'][1] - there['simgcd'][1]:+.1f}) |"]
    assert set(ours) == {"| FedAvg+SimGCD", "| FedLPA", "| local only", "| FedLPA − FedAvg+SimGCD"}
    # the centralized run is one run at every alpha: both columns read its runs
    central = next(g["runs"] for g in committed if g["method"] == "central" and g["lr"] == best["central"]["lr"])
    assert mod.per_alpha(committed, "central", best["central"]["lr"]) == {
        al: float(np.mean(list(central.values()))) for al in mod.TUNING_ALPHAS}
    # a federated method's end asks for a wider grid, a reference's does not
    ends = next(line for line in text.splitlines() if line.startswith("At an end of the grid:"))
    assert f"FedAvg+SimGCD ({lrs[0]:g}, the grid's lowest)." in ends and "FedLPA" not in ends and "local" not in ends
    ref = next(line for line in text.splitlines() if line.startswith("A reference at an end of the grid:"))
    assert f": local only ({lrs[0]:g}, the grid's lowest)." in ref and "SimGCD (" not in ref


@pytest.mark.slow
@pytest.mark.parametrize("args, names", [(["--stage", "tables", "--backbone", "pretrained-wide"],
                                          ["--backbone", "--stage tune"]),
                                         (["--stage", "tune", "--backbone", "wide"],
                                          ["--backbone", "pretrained-wide"]),
                                         # with no weights (an empty LAB_DATA_DIR): the flag, the file, the command
                                         (["--stage", "tune", "--backbone", "pretrained-wide"],
                                          ["--backbone", "backbone_simclr_wide.safetensors", "are missing",
                                           "device_backbone.sh"]),
                                         (["--stage", "backbone", "--backbones", "pretrained-wide"],
                                          ["--backbones", "backbone_simclr_wide.safetensors", "are missing"])])
def test_the_tune_stage_names_a_backbone_it_cannot_tune_on(args, names, tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    env = {**os.environ, **({"LAB_DATA_DIR": str(empty)} if "are missing" in names else {})}
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run_gcd_tables.py"), *args,
                        "--out-dir", str(tmp_path / "runs")], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert all(n in r.stderr.strip().splitlines()[-1] for n in names)
    assert [p.name for p in tmp_path.iterdir()] == ["no_data"] and not list(empty.iterdir())   # nothing written


def test_the_study_at_each_backbones_own_rates_runs_the_grids_choices(tmp_path, monkeypatch):
    """``--study backbones_tuned``: on the wide backbone each run is that backbone's grid point at its choice (a run
    at a tuning seed is the grid's own file), on the committed backbone the 2-core study's run; a method whose grid
    there is not complete is not run there; the other studies keep the tables' rates on every backbone."""
    mod = _tables_script(tmp_path, monkeypatch)
    wide, committed = "pretrained-wide", "pretrained"
    for f in (f"discovery_study_{wide}.json", f"gcd_tuning_{wide}.json"):
        (tmp_path / f).write_text((ROOT / "bench" / "results" / f).read_text())
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    spec = mod.BACKBONE_STUDIES["backbones_tuned"]
    assert spec["tuned"] and spec["folder"] == mod.BACKBONE_TUNED_DIR
    assert "backbones_tuned" in mod.lab_results.BACKBONE_STUDIES
    wide_best = json.loads((tmp_path / f"gcd_tuning_{wide}.json").read_text())["best"]
    assert wide_best["simgcd"] != best["simgcd"] and wide_best["fedlpa"] != best["fedlpa"]

    def cfgs(study, backbone, seeds=mod.EVAL_SEEDS):
        return mod.backbone_configs(best, False, (backbone,), seeds, labels=mod.BACKBONE_STUDIES[study]["labels"],
                                    tuned=mod.BACKBONE_STUDIES[study].get("tuned", False))

    grid_runs = {f.name[:-5] for f in (ROOT / "bench" / "results" / f"gcd_tuning_{wide}").glob("*_a*.json")}
    at_tuning = cfgs("backbones_tuned", wide, mod.TUNING_SEEDS)
    federated = [c for c in at_tuning if not c.get("oracle_prior") and c["method"] != "central"]
    assert {c["method"] for c in federated} == {"fedlpa", "simgcd", "gcd"}
    assert all(c["lr"] == wide_best[c["method"]]["lr"] for c in at_tuning)
    assert {mod.run_name(c) for c in federated} <= grid_runs          # the grid's own runs at its choices
    assert ("central" in wide_best) == any(c["method"] == "central" for c in at_tuning)
    # the committed backbone: the 2-core study's runs, at the tables' rates
    same = {mod.run_name(c) for c in cfgs("backbones_2core", committed) if c["method"] in best}
    assert {mod.run_name(c) for c in cfgs("backbones_tuned", committed)} <= same
    # the other studies: the tables' rates on the wide backbone too
    assert {c["lr"] for c in cfgs("backbones_2core", wide) if c["method"] == "simgcd"} == {best["simgcd"]["lr"]}
    # a method not chosen on the wide backbone is not run there
    rec = json.loads((tmp_path / f"gcd_tuning_{wide}.json").read_text())
    rec["best"].pop("simgcd")
    (tmp_path / f"gcd_tuning_{wide}.json").write_text(json.dumps(rec))
    assert "simgcd" not in {c["method"] for c in cfgs("backbones_tuned", wide)}
    assert "simgcd" in {c["method"] for c in cfgs("backbones_tuned", committed)}
    # not started: its section says what makes it
    text = "\n".join(mod.backbone_lines({"backbones": {committed: {}, wide: {}}, "alphas": [], "runs_missing": 9,
                                         "runs_expected": 9, "folder": spec["folder"], "make": spec["make"]},
                                        "backbones_tuned"))
    assert f"Not started: {spec['make']} makes its 9 runs" in text and "own grid's" in text
