"""bench/lpa_objective.py: each variant is the tables' FedLPA with only its objective changed, the committed runs
show it (same warm-up, same discovery, different training after it), and the committed report is what they give."""
import json
from pathlib import Path

import pytest

from tests.test_backbones import _script

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "bench" / "results"


@pytest.fixture(scope="module")
def mod():
    return _script("bench/lpa_objective.py")


@pytest.fixture(scope="module")
def best():
    return json.loads((RES / "gcd_tuning.json").read_text())["best"]


def test_each_variant_is_the_tables_fedlpa_with_only_its_objective_changed(mod, best):
    t = mod.T
    # the tables' FedLPA runs when the study was made: before the coarse route became the default
    tables = {t.run_name(c) for c in t.table_configs({**best, "fedlpa": {**best["fedlpa"], **t.BEFORE_ROUTE}},
                                                     False, methods=("fedlpa",))}
    objective = {"lpa_form", "lpa_weight", "lpa_ramp_rounds"}
    for name, seeds in mod.SEED_SETS.items():
        cfgs = mod.configs(best, seeds)
        assert {label for label, _ in cfgs} == set(mod.OBJECTIVES)
        for (label, alpha), runs in cfgs.items():
            assert [s for s, _, _ in runs] == list(seeds)
            for seed, variant, fedlpa in runs:
                changed = {k for k in variant if variant[k] != fedlpa[k]}
                assert changed == set(mod.OBJECTIVES[label]) and changed <= objective, label
                assert (fedlpa["method"], fedlpa["alpha"], fedlpa["seed"]) == ("fedlpa", alpha, seed)
                if name == "evaluation":        # FedLPA here is the tables' FedLPA run (its config, its name)
                    assert t.run_name(fedlpa) in tables and t.load_committed(fedlpa)
                v, b = t.load(variant, mod.OUT), t.load(fedlpa, mod.OUT)
                assert v and b, f"{label} α {alpha} seed {seed}: not committed in {mod.OUT}"
                # same warm-up and the same discovery on it; only training after it differs
                warm = fedlpa["warmup_rounds"]
                assert v["history"][:warm] == b["history"][:warm] and v["k_est"] == b["k_est"]
                assert v["history"][warm:] != b["history"][warm:], label


def test_the_committed_report_is_what_the_runs_give(mod, best):
    cfgs = {name: mod.configs(best, seeds) for name, seeds in mod.SEED_SETS.items()}
    rec = mod.record(best, cfgs)
    assert json.loads(Path(mod.JSON).read_text()) == json.loads(json.dumps(rec))
    assert Path(mod.MD).read_text() == "\n".join(mod.lines(rec)) + "\n"
    assert len(rec["tuning"]) == len(cfgs["tuning"]) and len(rec["evaluation"]) == len(cfgs["evaluation"])
    # the FedLPA run made again in the study's folder is the tables' run, to the bit (same machine type)
    n = sum(len(seeds) for seeds in mod.SEED_SETS.values()) * len(mod.T.TABLE_ALPHAS)
    assert rec["base_equals_tables"] == {"runs": n, "equal": n}


def test_the_pick_is_the_highest_mean_all_over_every_tuning_run_fedlpa_included(mod):
    def row(label, alpha, v, b):
        return {"label": label, "alpha": alpha, "seeds": [100, 101], "all": {"values": v}, "fedlpa": {"values": b}}

    base = {0.1: [0.5, 0.6], 1.0: [0.7, 0.7]}                   # FedLPA: mean 0.625
    rows = [row("a", 0.1, [0.9, 0.9], base[0.1]), row("a", 1.0, [0.3, 0.3], base[1.0]),    # 0.6: one α alone wins
            row("b", 0.1, [0.55, 0.65], base[0.1]), row("b", 1.0, [0.71, 0.71], base[1.0])]  # 0.655
    p = mod.pick(rows)
    assert p["pick"] == "b" and p["mean_all"]["FedLPA"] == pytest.approx(0.625)
    assert mod.pick(rows[:2])["pick"] == "FedLPA"
