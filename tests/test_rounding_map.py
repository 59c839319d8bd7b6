"""bench/rounding_map.py: each warm-up group of a study's runs made again through its warm-up until one kernel setting
makes it bit for bit; and the remake through a round it rests on (bench/reproduce_runs.py's ``through``)."""
import json
from pathlib import Path

import pytest

from lab.machine import machine
from tests.test_backbones import _script
from tests.test_reproduce_runs import record  # noqa: F401  (a quick run made here; it reads ``mod.T``)
from tests.test_warmup_splits import _run


@pytest.fixture(scope="module")
def mod():
    return _script("bench/rounding_map.py")


def test_a_remake_through_a_round_compares_that_many_rounds_and_no_more(mod, record, tmp_path):  # noqa: F811
    e = mod.R.remake(record, "native", through=1)
    assert e["bit_identical"] and e["through"] == 1 and e["acc_all"] is None and e["machine"] == machine()
    r = json.loads(Path(record).read_text())
    r["history"][1]["acc_new"] += 1e-12                     # the last bit of round 2's evaluation: past round 1
    Path(changed := tmp_path / "changed.json").write_text(json.dumps(r))
    assert mod.R.remake(str(changed), "native", through=1)["bit_identical"]
    e = mod.R.remake(str(changed), "native", through=2)
    assert not e["bit_identical"] and e["first_round_apart"] == 2


def test_warm_up_groups_hold_runs_of_one_warm_up_and_each_baseline_alone(mod, tmp_path):
    T = mod.T
    base = _run(T, tmp_path, [0.5, 0.6, 0.7])
    oracle = _run(T, tmp_path, [0.5, 0.6, 0.9], oracle_prior=True)       # after the warm-up only: one group
    split = _run(T, tmp_path, [0.5, 0.61, 0.7], lpa_weight=1.0)          # the same config's other warm-up
    simgcd = _run(T, tmp_path, [0.5, 0.6, 0.7], method="simgcd")         # the same numbers, another method
    assert sorted(sum((list(g.values()) for g in T.warmup_groups(str(tmp_path)).values()), [])) == sorted(
        [sorted([base, oracle]), [split]])                                # FedLPA's only, by default
    got = sorted(sorted(v) for g in T.warmup_groups(str(tmp_path), prefixes=mod.PREFIXES).values()
                 for v in g.values())
    assert got == sorted([sorted([base, oracle]), [split], [simgcd]])


def test_a_call_resumes_only_the_tries_of_a_machine_that_rounds_as_this_one(mod):
    fresh = [{"made_again": "a", "tries": []}, {"made_again": "b", "tries": []}]
    t = {"kernels": "native", "machine": {"rounding": "x"}, "bit_identical": True}
    old = {"groups": [{"made_again": "a", "made_on": "x", "tries": [t]}, {"made_again": "b", "made_on": "y",
                                                                          "tries": [t]}]}
    got = mod.resume(fresh, old, "x")
    assert got[0]["tries"] == [t] and got[1]["tries"] == [] and mod.rounding(got[0]) == "x"
    assert mod.rounding(got[1]) is None


def test_a_call_on_other_seeds_keeps_the_map_of_the_seeds_it_was_not_given(mod):
    g = lambda seed, run, tries: {"backbone": "b", "alpha": 0.1, "seed": seed, "method": "fedlpa",  # noqa: E731
                                  "runs": [run], "made_again": run, "tries": tries, "made_on": "x"}
    t = {"kernels": "native", "machine": {"rounding": "x"}, "bit_identical": True}
    old = {"groups": [g(0, "r0", [t]), g(6, "r6", [t])]}
    seeds, groups = mod.merged([g(6, "r6", []), g(7, "r7", [])], old, (6, 7), "x")
    assert seeds == [0, 6, 7] and [x["runs"] for x in groups] == [["r0"], ["r6"], ["r7"]]
    assert [x["tries"] for x in groups] == [[t], [t], []]      # seed 0 kept, seed 6 resumed, seed 7 to make


def _old_map(mod, seeds, rounding):
    """A map of the references study's runs on ``seeds``, none made again yet, as a machine of ``rounding`` left it."""
    here = {**machine(), "rounding": rounding}
    return {"study": "backbones_refs", "folder": mod.folder_of("backbones_refs"), "seeds": list(seeds),
            "machine": here, "kernel_roundings": {}, "groups": [{**g, "made_on": rounding}
                                                               for g in mod.groups("backbones_refs", seeds)]}


def _no_remake(calls):
    def remake(path, kernels, through):
        calls.append(Path(path).name)
        return {"kernels": kernels, "machine": machine(), "bit_identical": False, "first_round_apart": 1,
                "seconds": 0.0}
    return remake


def test_a_call_on_a_map_made_on_a_machine_that_rounds_otherwise_refuses_it_and_writes_nothing(mod, monkeypatch,
                                                                                                tmp_path, capsys):
    jpath, mpath = tmp_path / "r.json", tmp_path / "r.md"
    jpath.write_text(json.dumps(_old_map(mod, (0,), "elsewhere")))
    before, calls = jpath.read_bytes(), []
    monkeypatch.setattr(mod, "paths", lambda study: (str(jpath), str(mpath)))
    monkeypatch.setattr(mod.R, "remake", _no_remake(calls))
    with pytest.raises(SystemExit) as ex:
        mod.main(["--study", "backbones_refs", "--seeds", "0", "--kernels", "native"])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and "--study" in err and "native rounding elsewhere" in err
    assert machine()["rounding"] in err
    assert jpath.read_bytes() == before and not mpath.exists() and calls == []


def test_a_call_remakes_only_the_seeds_it_is_given(mod, monkeypatch, tmp_path):
    jpath, mpath = tmp_path / "r.json", tmp_path / "r.md"
    jpath.write_text(json.dumps(_old_map(mod, (1,), machine()["rounding"])))    # seed 1: kept, none made yet
    calls = []
    monkeypatch.setattr(mod, "paths", lambda study: (str(jpath), str(mpath)))
    monkeypatch.setattr(mod.R, "remake", _no_remake(calls))
    mod.main(["--study", "backbones_refs", "--seeds", "0", "--kernels", "native"])
    res = json.loads(jpath.read_text())
    seed_of = {g["made_again"] + ".json": g["seed"] for g in res["groups"]}
    assert res["seeds"] == [0, 1] and calls and {seed_of[c] for c in calls} == {0}
    assert all(g["tries"] == [] for g in res["groups"] if g["seed"] == 1)


@pytest.mark.parametrize("study", ["backbones_2core", "backbones_refs", "tables", "replicate"])
def test_the_committed_map_is_the_studys_runs_as_they_are_and_what_its_rows_give(mod, study):
    jpath, mpath = mod.paths(study)
    res = json.loads(Path(jpath).read_text())
    assert Path(mpath).read_text() == "\n".join(mod.lines(res))
    fresh = mod.groups(res["study"], tuple(res["seeds"]))
    assert [g["runs"] for g in res["groups"]] == [g["runs"] for g in fresh]     # the runs the study reads now
    folder = Path(mod.T.RES) / res["folder"]
    for g in res["groups"]:
        warm = {json.dumps([h for h in json.loads((folder / f"{n}.json").read_text())["history"]
                            if h["round"] <= g["through"]]) for n in g["runs"]}
        assert len(warm) == 1 and g["made_again"] in g["runs"]          # one warm-up, evaluation for evaluation
        assert sum(t["bit_identical"] for t in g["tries"]) <= 1          # a fingerprint tells roundings apart
        assert all(t["machine"]["rounding"] == res["kernel_roundings"][t["kernels"]] for t in g["tries"])
    assert all(c["mapped"] for c in mod.cells(res))


def test_the_bar_maps_hold_every_run_the_bar_reads_and_the_tables_their_centralized_run(mod):
    """``--study tables``: the tables' runs as they are (FedLPA with its coarse route) and one centralized run per
    seed; ``--study replicate``: the first replicate's (FedLPA without it). Every one is a run of its folder, and
    FedLPA and the oracle prior of one alpha and seed train one warm-up."""
    seeds = tuple(range(10))
    for study, central in (("tables", 10), ("replicate", 0)):
        names = mod.bar_names(study, seeds)
        labels = sorted(set(names.values()))
        assert {lab: list(names.values()).count(lab) for lab in labels} == {
            **{lab: 20 for lab in ("FedAvg+GCD", "FedAvg+SimGCD", "FedLPA", "FedLPA, oracle prior")},
            **({mod.T.CENTRAL: central} if central else {})}
        folder = Path(mod.T.RES) / mod.folder_of(study)
        assert all((folder / f"{n}.json").exists() for n in names)
        routed = {json.loads((folder / f"{n}.json").read_text())["config"].get("coarse_k") for n, lab in
                  names.items() if lab == "FedLPA"}
        assert routed == ({7} if study == "tables" else {None})
        lpa = [g for g in mod.groups(study, seeds) if g["method"] == "fedlpa"]
        assert len(lpa) == 20 and all(sorted(g["labels"]) == ["FedLPA", "FedLPA, oracle prior"] for g in lpa)


@pytest.mark.parametrize("argv, says", [(["--workers", "0"], "--workers"), (["--seeds", "x"], "--seeds"),
                                        (["--seeds", "99"], "--seeds: backbones_2core has no run on seeds 99")])
def test_bad_input_names_the_parameter_and_writes_nothing(mod, monkeypatch, tmp_path, capsys, argv, says):
    monkeypatch.setattr(mod, "paths", lambda study: (str(tmp_path / "r.json"), str(tmp_path / "r.md")))
    with pytest.raises(SystemExit) as ex:
        mod.main(argv)
    assert ex.value.code == 2 and says in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("study", ["backbones_2core", "backbones_refs"])
def test_the_summary_reads_the_map_as_its_groups_give_it(mod, study):
    jpath, _ = mod.paths(study)
    res = json.loads(Path(jpath).read_text())
    got = mod.T.rounding_map_reading(study)
    assert all(g["rounding"] == mod.rounding(g) for g in res["groups"])           # the stored field is the tries'
    counts = {}
    for g in res["groups"]:
        for label in g["labels"]:
            counts.setdefault(label, {}).setdefault(g["rounding"] or "none", 0)
            counts[label][g["rounding"] or "none"] += 1
    assert got["by_label"] == counts and got["runs"] == sum(len(g["runs"]) for g in res["groups"])
    assert got["one_rounding"] == sum(c["one_rounding"] for c in mod.cells(res)) and got["cells"] == len(mod.cells(res))
    summary = json.loads((Path(mod.T.RES) / "gcd_summary.json").read_text())
    assert summary[study]["rounding_map"] == got
    text = (Path(mod.T.RES) / "gcd_summary.md").read_text()
    assert f"**{got['one_rounding']} of {got['cells']} cells**" in text
    # the study's opening line says "the same machine" only where every cell is one rounding
    assert (f"made on CPUs of one name (`{res['folder']}/`" in text) == (got["one_rounding"] < got["cells"])
    # a pair is read on one rounding only where both of its runs were made again bit for bit under one setting
    runs = mod.by_run(res)
    for p in mod.paired(res):
        for s in p["seeds_one"]:
            one = {r for lab, b, al, seed, r in runs.values() if seed == s and b == p["backbone"]
                   and lab in ("FedLPA", p["other"]) and (al == p["alpha"] or lab == mod.T.CENTRAL)}
            assert len(one) == 1 and None not in one
