"""bench/replicate_tables.py: the Done-when re-made on one machine is read off the same configs as the tables', the
committed reading is the summary's, and the committed report is what the run files give."""
import json
from pathlib import Path

import pytest

from tests.test_backbones import _script

ROUNDINGS = "replicate_tables_roundings"


@pytest.fixture(scope="module")
def mod():
    return _script("bench/replicate_tables.py")


@pytest.fixture(scope="module")
def res(mod):
    return json.loads(Path(mod.JSON).read_text())


@pytest.mark.parametrize("which", ["before_route", "now"])
def test_the_committed_report_is_what_the_run_files_give(mod, which):
    run_dir, json_path, md_path = mod.paths(which)
    res = json.loads(Path(json_path).read_text())
    assert res["which"] == which
    assert res["machine"] == json.loads((Path(run_dir) / mod.T.MACHINE_FILE).read_text())
    assert json.loads(json.dumps(mod.record(res["machine"], which))) == res
    assert Path(md_path).read_text() == "\n".join(mod.lines(res)) + "\n"


@pytest.mark.parametrize("which", ["before_route", "now"])
def test_each_re_made_run_is_a_tables_run_with_its_config(mod, which):
    """Every run the Done-when reads (FedLPA, both federated baselines and the oracle prior; both alphas; seeds 0-9)
    is in both folders, made from one config (a committed run made before a field was added reads it at the value
    it ran with); the replicate of the tables as they are has FedLPA's coarse route, the first one not."""
    from lab.gcd.config import FedGCDConfig

    cfgs = mod.configs(fields=mod.REPLICATES[which]["fields"])
    assert {(label, al, s) for label, al, s in cfgs} == {
        (label, al, s) for label in ("FedLPA", "FedAvg+SimGCD", "FedAvg+GCD", "FedLPA, oracle prior")
        for al in (0.1, 1.0) for s in range(10)}
    routed = {c["coarse_k"] for (label, _, _), c in cfgs.items() if label.startswith("FedLPA")}
    assert routed == ({None} if which == "before_route" else {7})
    for c in cfgs.values():
        a, b = mod.T.load_committed(c), mod.T.load(c, mod.paths(which)[0])
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


def test_the_replicate_of_the_tables_as_they_are_reads_the_summarys_done_when_on_its_committed_side(mod):
    """Its committed side is the tables' runs the summary reads (FedLPA with the coarse route), value for value."""
    full = json.loads((Path(mod.T.RES) / "gcd_summary.json").read_text())["done_when"]
    res = json.loads(Path(mod.paths("now")[1]).read_text())
    for name in mod.SETS:
        assert res["done_when"]["committed"][name] == [
            {k: v for k, v in x.items() if not k.startswith("central_")} for x in full[name]]


def test_bit_for_bit_means_every_evaluation_and_a_last_bit_counts(mod):
    """``first_round_apart`` (which the replicate's "bit for bit" column and ``reproduce_runs.py`` read): the same
    record is one run; an evaluation changed in its last bit parts them at its round, whatever All says; a history
    cut short parts them after its end."""
    import math

    run = json.loads(next((Path(mod.T.RES) / "gcd").glob("fedlpa_a0.1_s0_*.json")).read_text())
    assert mod.T.first_round_apart(run, json.loads(json.dumps(run))) is None
    bent = json.loads(json.dumps(run))
    h = bent["history"][2]
    h["acc_new"] = math.nextafter(h["acc_new"], 1.0)           # All and Old untouched
    assert bent["acc_all"] == run["acc_all"] and mod.T.first_round_apart(bent, run) == h["round"]
    short = {**run, "history": run["history"][:-1]}
    assert mod.T.first_round_apart(short, run) == len(run["history"])


def test_a_verdict_differs_only_where_met_turns(mod):
    """``differ`` lists the lines whose verdict the replicate changes, not those whose value alone moves."""
    line = lambda al, target, value, met: {"alpha": al, "target": target, "unit": "ratio",  # noqa: E731
                                           "value": value, "met": met}
    done = {"committed": {"eval_seeds": [line(0.1, "t", 0.95, True), line(1.0, "u", 0.5, False)], "seed_study": []},
            "replicate": {"eval_seeds": [line(0.1, "t", 0.88, False), line(1.0, "u", 0.7, False)], "seed_study": []}}
    assert mod.differ(done) == [{"seeds": "eval_seeds", "alpha": 0.1, "target": "t", "unit": "ratio",
                                 "committed": {"value": 0.95, "met": True},
                                 "replicate": {"value": 0.88, "met": False}}]


def _roundings():
    return json.loads((Path(_script("bench/replicate_tables.py").T.RES) / f"{ROUNDINGS}.json").read_text())


def test_the_roundings_report_is_what_the_runs_and_the_maps_give(mod):
    res = _roundings()
    assert json.loads(json.dumps(mod.rounding_record())) == res
    assert (Path(mod.T.RES) / f"{ROUNDINGS}.md").read_text() == "\n".join(mod.rounding_lines(res)) + "\n"
    for r in res["roundings"]:               # each run of a set is its config's, found where the set says
        for (label, al, s), (source, rec) in mod.rounding_sets()[r["rounding"]]["runs"].items():
            assert mod.T.run_name(rec["config"]) == mod.T.run_name(mod.bar_configs()[label, al, s])
            folder, rmap = next((f, m) for x, f, m in mod.ROUNDING_SOURCES if x == source)
            assert mod.run_roundings(folder, rmap)[0][mod.T.run_name(rec["config"])] == r["rounding"]


def test_a_rounding_is_read_only_where_every_run_was_measured_on_it(mod, monkeypatch):
    """A run whose rounding the maps or its record put elsewhere leaves its rounding's set: the set's reading of the
    seeds that run belongs to goes, the rest stays; a rounding holding one run is read nowhere."""
    real, cfgs = mod.run_roundings, mod.configs(fields={})
    fp, st = next((fp, st) for fp, st in mod.rounding_sets().items() if set(cfgs) <= set(st["runs"]))
    key = ("FedLPA", 0.1, 5)                     # a seed of the seed study's, not the evaluation seeds'
    name = mod.T.run_name(cfgs[key])

    def moved(folder, rmap):
        fps, cpus = real(folder, rmap)
        return {n: ("elsewhere" if n == name else r) for n, r in fps.items()}, {**cpus, "elsewhere": "a CPU"}

    monkeypatch.setattr(mod, "run_roundings", moved)
    got = {r["rounding"]: r for r in mod.rounding_record()["roundings"]}
    assert got[fp]["complete"] == {"eval_seeds": True, "seed_study": False}
    assert list(got[fp]["done_when"]) == ["eval_seeds"] and got["elsewhere"]["done_when"] == {}
    assert got["elsewhere"]["from"] == {"FedLPA": {st["runs"][key][0]: 1}}


def test_a_run_made_again_bit_for_bit_by_reproduce_runs_joins_that_rounding_and_one_that_parts_does_not(
        mod, monkeypatch, tmp_path):
    """The tables' centralized run on seed 5 is in no map and has no record of its machine: a row of
    ``reproduce_runs.json`` that made it again bit for bit on some machine measures it; a row that parted does not."""
    central = mod.T.run_name(mod.bar_configs()[mod.T.CENTRAL, 0.1, 5])
    other = mod.T.run_name(mod.bar_configs()["FedAvg+GCD", 0.1, 5])
    row = lambda run, fp, same: {"run": f"gcd/{run}", "machine": {"cpu": "a CPU", "rounding": fp},  # noqa: E731
                                 "bit_identical": same}
    path = tmp_path / "reproduce_runs.json"
    monkeypatch.setattr(mod.R, "JSON", str(path))
    path.write_text(json.dumps({"rows": []}))
    before = mod.run_roundings("gcd", "tables")[0]
    assert central not in before
    path.write_text(json.dumps({"rows": [row(central, "made-here", True), row(other, "parted", False),
                                         row(central, "elsewhere", False)]}))
    got, cpus = mod.run_roundings("gcd", "tables")
    assert got[central] == "made-here" and cpus["made-here"] == "a CPU" and "parted" not in cpus
    assert {n: r for n, r in got.items() if n != central} == before


def test_the_rounding_of_the_replicate_of_the_tables_as_they_are_reads_as_that_replicate(mod):
    """The rounding of the replicate of the tables as they are holds every run that replicate made, so it reads as
    that replicate (the wall lines aside)."""
    now = json.loads(Path(mod.paths("now")[1]).read_text())
    r = next(r for r in _roundings()["roundings"] if r["rounding"] == now["machine"]["rounding"])
    assert all(r["complete"].values())
    for name in mod.SETS:
        assert [{k: v for k, v in x.items() if not k.startswith("central_")} for x in r["done_when"][name]] == [
            x for x in now["done_when"]["replicate"][name] if "wall" not in x["target"]]   # the replicate has none


def test_the_summary_says_which_verdicts_each_rounding_changes(mod):
    """gcd_summary.md carries the paragraph ``roundings_lines`` writes: each rounding read, where its runs come from,
    and each verdict that differs there, with both values."""
    res = _roundings()
    text = "\n".join(mod.T.roundings_lines())
    assert text and text in (Path(mod.T.RES) / "gcd_summary.md").read_text()
    read = [r for r in res["roundings"] if r["done_when"]]
    assert f"hold every run of a set of seeds on {len(read)} rounding" in text
    for r in read:
        assert f"on `{r['rounding']}` ({r['cpu']}, read on " in text
        for f in r["differ"]:
            assert f["committed"]["met"] != f["replicate"]["met"] and f["target"] in text
