"""run_gcd_tables.warmup_splits: FedLPA runs that train the same warm-up and yet evaluate differently before their
first discovery were made on different machines; the tables' folder has none, item 7's 2-core study names its own."""
import json
from pathlib import Path

import pytest

from tests.test_backbones import _script


@pytest.fixture(scope="module")
def T():
    return _script("bench/run_gcd_tables.py")


def _run(T, folder, history, **cfg):
    from lab.gcd.config import FedGCDConfig

    c = FedGCDConfig(**{"method": "fedlpa", "alpha": 0.1, "seed": 0, "warmup_rounds": 2, **cfg}).to_dict()
    name = T.run_name(c)
    (folder / f"{name}.json").write_text(json.dumps(
        {"config": c, "history": [{"round": i + 1, "acc_all": a} for i, a in enumerate(history)]}))
    return name


def test_a_split_is_the_same_warm_up_evaluated_differently_before_the_first_discovery(T, tmp_path):
    base = _run(T, tmp_path, [0.5, 0.6, 0.7])
    _run(T, tmp_path, [0.5, 0.6, 0.9], oracle_prior=True)        # after the warm-up: training may differ
    _run(T, tmp_path, [0.5, 0.6, 0.1], markov_time=3.0)          # a discovery field: likewise
    assert T.warmup_splits(str(tmp_path)) == []
    other = _run(T, tmp_path, [0.5, 0.61, 0.7], lpa_weight=1.0)  # same warm-up by config, another by its numbers
    _run(T, tmp_path, [0.4, 0.5, 0.6], lr=0.05)                  # another warm-up: never compared
    got = T.warmup_splits(str(tmp_path))
    assert len(got) == 1 and (got[0]["alpha"], got[0]["seed"], got[0]["backbone"]) == (0.1, 0, "pretrained")
    assert len(got[0]["runs"]) == 2 and [other] in got[0]["runs"] and base in sum(got[0]["runs"], [])
    assert T.warmup_splits(str(tmp_path), names={base}) == []    # only the runs asked about


def test_the_tables_runs_share_their_warm_ups_and_item_7_names_the_runs_that_do_not(T):
    """The tables' folder: every FedLPA run and its ablations (the oracle prior among them) that train one warm-up
    evaluate alike before the first discovery, so their paired differences are one machine's. Item 7's 2-core folder
    holds runs of more than one session's machine: its summary names them, as the runs give them now."""
    assert T.warmup_splits(str(Path(T.RES) / "gcd")) == []
    summary = json.loads((Path(T.RES) / "gcd_summary.json").read_text())
    for where, spec in T.BACKBONE_STUDIES.items():
        backbones = tuple(summary[where]["backbones"])
        assert summary[where]["warmup_splits"] == T.backbone_warmup_splits(
            T.tuned_best(), False, backbones, str(Path(T.RES) / spec["folder"]), spec.get("labels"),
            T.study_more_seeds(where))
    # the oracle prior's runs of alpha 0.1, seeds 0-2, on the wide backbone came from another machine than FedLPA's
    # there; the runs told the heads (ORACLE_HEADS, seeds 0-5) from one that rounds as those oracle runs and the
    # committed backbone's seeds 3-5 do, not as the rest of FedLPA's seeds 0-5
    splits = summary["backbones_2core"]["warmup_splits"]
    assert {(g["alpha"], g["seed"], g["backbone"]) for g in splits} == {
        *((a, s, "pretrained-wide") for a in (0.1, 1.0) for s in range(6)),
        *((a, s, "pretrained") for a in (0.1, 1.0) for s in (0, 1, 2))}
    assert all(any(T.ORACLE_HEADS in grp and "FedLPA" not in grp for grp in g["runs"]) for g in splits)
    assert all(not any("FedLPA" in grp and "FedLPA, oracle prior" in grp for grp in g["runs"]) for g in splits
               if (g["alpha"], g["backbone"]) == (0.1, "pretrained-wide") and g["seed"] < 3)
