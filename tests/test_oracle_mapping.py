"""bench/oracle_mapping.py: the committed report is what its per-client records and the run files give, the oracle
runs by mass are the ones its records call for (made with the field set), and FedLPA's own mapping never moved."""
import json
from pathlib import Path

import pytest

from tests.test_backbones import _script


@pytest.fixture(scope="module")
def mod():
    return _script("bench/oracle_mapping.py")


@pytest.fixture(scope="module")
def res(mod, backbone):
    return json.loads(Path(mod.paths(backbone)[0]).read_text())


def test_the_committed_report_is_what_its_records_and_runs_give(mod, res, backbone):
    again = mod.record(res["records"], mod.per_seed(res["records"], backbone), res["machine"], backbone)
    assert json.loads(json.dumps(again)) == res and res.get("backbone", "pretrained") == backbone
    json_path, md_path, run_dir = mod.paths(backbone)
    assert Path(md_path).read_text() == "\n".join(mod.lines(res)) + "\n"
    assert sorted((r["alpha"], r["seed"]) for r in res["records"]) == sorted(
        (a, s) for a in mod.T.TABLE_ALPHAS for s in mod.KA.TUNING + mod.KA.EVALUATION)
    assert res["machine"] == json.loads((Path(run_dir) / mod.T.MACHINE_FILE).read_text())


def test_the_oracle_runs_are_those_the_records_call_for_both_ways(mod, res, backbone):
    """Both runs exist for every (alpha, seed) of the seed study where an oracle head moved, and for the control,
    whose two runs are one (no head moved there: a field that changed training elsewhere would fail this). Where
    heads moved the two differ on some seed (the field reached the client)."""
    made = [tuple(x) for x in res["moved"]]
    assert made and all(any(c["oracle_changed"] > 0 for c in r["clients"]) == ((r["alpha"], r["seed"]) in made)
                        for r in res["records"] if r["seed"] in mod.seed_study(backbone))
    assert sorted((r["alpha"], r["seed"]) for r in res["per_seed"] if not r["control"]) == made
    for r in res["per_seed"]:
        for by in ("mean", "mass"):
            run = mod.T.load(mod.oracle_config(r["alpha"], r["seed"], by, backbone), mod.paths(backbone)[2])
            assert run["config"]["oracle_prior"] is True and run["acc_all"] == r[by]
            assert run["config"].get("oracle_assign", "mean") == by
            assert run["config"].get("backbone", "pretrained") == backbone
        committed = mod.committed(mod.oracle_config(r["alpha"], r["seed"], backbone=backbone), backbone)
        assert committed["config"]["oracle_prior"] is True and committed["acc_all"] == r["committed"]
    c = next(r for r in res["per_seed"] if r["control"])
    assert (c["alpha"], c["seed"]) not in made and c["mean"] == c["mass"]
    assert any(r["mass"] != r["mean"] for r in res["per_seed"] if not r["control"])


def test_the_shift_is_the_paired_difference_spread_over_the_seeds(mod):
    rows = [{"alpha": 0.1, "seed": 1, "control": False, "mean": 0.5, "mass": 0.6},
            {"alpha": 0.1, "seed": 7, "control": False, "mean": 0.7, "mass": 0.6},
            {"alpha": 0.1, "seed": 0, "control": True, "mean": 0.4, "mass": 0.4}]
    got = {r["alpha"]: r for r in mod.shifts(rows)}
    assert got[0.1]["seeds"] == [1, 7] and abs(got[0.1]["mean"]) < 1e-12
    assert abs(got[0.1]["on_eval_seeds"] - 0.1 / 3) < 1e-12           # only seed 1 is among 0-2
    assert abs(got[0.1]["on_seed_study"]) < 1e-12 and got[1.0]["seeds"] == []


def test_fedlpas_own_mapping_is_the_same_either_way_and_stays_by_mean(res):
    from lab.gcd.discovery import DiscoveryParams
    from lab.gcd.prior import oracle_heads

    assert all(c["fedlpa_same_heads"] for r in res["records"] for c in r["clients"])
    assert DiscoveryParams().assign_by == "mean"
    assert oracle_heads.__defaults__ == ("mean",)          # the committed oracle runs' rule stays the default
