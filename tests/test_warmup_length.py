"""bench/warmup_length.py, on each backbone: the committed report is what its records give, its discoveries after 5
warm-up rounds are FedLPA's own, and the pick follows new_split's rule."""
import json
from pathlib import Path

import pytest

from tests.test_backbones import _script


@pytest.fixture(scope="module")
def mod():
    return _script("bench/warmup_length.py")


@pytest.fixture(scope="module")
def res(mod, backbone):
    return json.loads(Path(mod.paths(backbone)[0]).read_text())


def test_the_committed_report_is_what_its_records_give(mod, res, backbone):
    again = json.loads(json.dumps(mod.record(res["records"], backbone)))
    assert res == again and res.get("backbone", "pretrained") == backbone
    assert Path(mod.paths(backbone)[1]).read_text() == "\n".join(mod.lines(res)) + "\n"
    assert res["pick"] == mod.NS.pick(res["tuning"], default=mod.name(mod.DEFAULT))
    assert sorted((r["alpha"], r["seed"]) for r in res["records"]) == sorted(
        (a, s) for a in mod.NS.T.TABLE_ALPHAS for s in mod.NS.TUNING + mod.NS.EVALUATION)


def test_the_discovery_after_five_warm_up_rounds_is_fedlpas_own(mod, res, backbone):
    """The harness's run (warm-up 14, discovering on the side after 5, 8, 11 and 14 rounds) is the tables' FedLPA
    through its first 5 rounds: after 5 rounds each client's K_hat, parts, KL, TV and hidden classes are those
    new_split.py recorded from FedLPA's own first discovery on the same backbone, through another harness (a config
    field that changed training before round 6, or a side discovery that used another model, would fail this)."""
    split = {(r["alpha"], r["seed"]): r for r in json.loads(Path(mod.NS.paths(backbone)[0]).read_text())["records"]}
    for r in res["records"]:
        other = split[(r["alpha"], r["seed"])]["clients"]
        for c, o in zip(r["clients"], other, strict=True):
            assert c["client"] == o["client"] and c["k"] == o["k"]
            assert c["settings"][mod.name(5)] == o["settings"]["off"]
            assert c["hidden"][mod.name(5)] == o["hidden"]
