"""bench/replicate_tables.py: the Done-when re-made on one machine is read off the same configs as the tables', the
committed reading is the summary's, and the committed report is what the run files give."""
import json
from pathlib import Path

import pytest

from tests.test_backbones import _script


@pytest.fixture(scope="module")
def mod():
    return _script("bench/replicate_tables.py")


@pytest.fixture(scope="module")
def res(mod):
    return json.loads(Path(mod.JSON).read_text())


def test_the_committed_report_is_what_the_run_files_give(mod, res):
    assert res["machine"] == json.loads((Path(mod.RUN_DIR) / mod.T.MACHINE_FILE).read_text())
    assert json.loads(json.dumps(mod.record(res["machine"]))) == res
    assert Path(mod.MD).read_text() == "\n".join(mod.lines(res)) + "\n"


def test_each_re_made_run_is_a_tables_run_with_its_config(mod):
    """Every run the Done-when reads (FedLPA, both federated baselines and the oracle prior; both alphas; seeds 0-9)
    is in both folders, made from one config (a committed run made before a field was added reads it at the value
    it ran with)."""
    from lab.gcd.config import FedGCDConfig

    cfgs = mod.configs()
    assert {(label, al, s) for label, al, s in cfgs} == {
        (label, al, s) for label in ("FedLPA", "FedAvg+SimGCD", "FedAvg+GCD", "FedLPA, oracle prior")
        for al in (0.1, 1.0) for s in range(10)}
    for c in cfgs.values():
        a, b = mod.T.load_committed(c), mod.T.load(c, mod.RUN_DIR)
        same = [FedGCDConfig.from_dict(x).to_dict() for x in (a["config"], b["config"])]   # late fields filled
        assert same[0] == same[1] == c
    for al in (0.1, 1.0):
        for s in range(10):
            assert len({json.dumps(cfgs[label, al, s], sort_keys=True) for label in mod.LABELS}) == 4
            assert [cfgs[label, al, s]["oracle_prior"] for label in mod.LABELS] == [False, False, False, True]


def test_the_committed_reading_is_the_summarys_done_when(mod, res):
    """The same function reads both sets: on the tables' runs as they are now (FedLPA with the coarse route) it gives
    gcd_summary.json's Done-when on the evaluation seeds (the wall ratios included) and on the seed study's, value
    for value; the report's committed reading is that function on the tables' runs before the route."""
    full = json.loads((Path(mod.T.RES) / "gcd_summary.json").read_text())["done_when"]
    now = {k: mod.T.load_committed(c) for k, c in mod.configs(fields={}).items()}
    before = {k: mod.T.load_committed(c) for k, c in mod.configs().items()}
    assert all(now.values()) and all(before.values())
    # the study replicates the runs the Done-when compares, not the centralized reference the summary also reads
    # in FedLPA's place: its reading has no such field
    assert any("central_value" in x for x in full["eval_seeds"])
    summary = {name: [{k: v for k, v in x.items() if not k.startswith("central_")} for x in lines]
               for name, lines in full.items()}
    for name, how in mod.SETS.items():
        assert json.loads(json.dumps(mod._reading(now, *how))) == summary[name]
        assert res["done_when"]["committed"][name] == json.loads(json.dumps(mod._reading(before, *how)))
        assert res["done_when"]["committed"][name] != summary[name]
