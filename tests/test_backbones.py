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

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import linked_data_dir
from lab.data.images import DEBIAN_FMNIST_DIR
from lab.gcd.config import BACKBONES, FedGCDConfig
from lab.gcd.experiment import build_model
from lab.gcd.models import CNNBackbone

ROOT = Path(__file__).resolve().parents[1]
IMAGES = SimpleNamespace(image_shape=(28, 28))


def test_the_committed_record_states_the_widths_of_the_table():
    bb = BACKBONES["pretrained"]
    rec = json.loads((ROOT / "data" / f"{bb.stem}.json").read_text())
    assert tuple(rec["widths"]) == bb.widths
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
    spec = importlib.util.spec_from_file_location("pretrain_backbone", ROOT / "data" / "pretrain_backbone.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
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
