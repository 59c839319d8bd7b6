"""The backbone table (``lab.gcd.config.BACKBONES``): a run loads the weights its config names, at their widths,
with the prefix frozen; the committed record agrees with the table; and pretraining on a fixed step budget
gives the same weights for the same seed (issue 9, item 7: the wide backbone is made by
``bench/device_backbone.sh`` on a GPU)."""
from __future__ import annotations

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
