"""bench/reproduce_runs.py: a committed run made again in a fresh process under a kernel setting, compared bit for bit
with its record, with the setting's machine beside it."""
import json
from pathlib import Path

import pytest

from lab.machine import machine
from tests.test_backbones import _script


@pytest.fixture(scope="module")
def mod():
    return _script("bench/reproduce_runs.py")


@pytest.fixture(scope="module")
def record(mod, tmp_path_factory):
    """A quick FedLPA run (digits, 2 rounds) made here, standing for a committed record."""
    d = tmp_path_factory.mktemp("committed")
    return mod.T.run_one(mod.T.config("fedlpa", 0.1, 0, True, lr=0.2), str(d))[0]


def test_a_run_made_again_here_is_bit_identical_and_a_record_changed_in_one_round_parts_there(mod, record, tmp_path):
    e = mod.remake(record, "native")
    assert e["bit_identical"] and e["first_round_apart"] is None and e["acc_all"] == e["committed_acc_all"]
    assert e["machine"] == machine() and e["kernels"] == "native"
    r = json.loads(Path(record).read_text())
    r["history"][1]["acc_old"] += 1e-12                     # the last bit of one evaluation of round 2
    Path(changed := tmp_path / "changed.json").write_text(json.dumps(r))
    e = mod.remake(str(changed), "native")
    assert not e["bit_identical"] and e["first_round_apart"] == r["history"][1]["round"] == 2


def test_the_avx2_setting_reaches_the_fresh_process(mod, record):
    e = mod.remake(record, "avx2")
    assert e["machine"]["isa"] in ("AVX2", "DEFAULT") and e["kernels"] == "avx2"
    if machine()["isa"] == "AVX512":                        # there the setting changes the kernels, so the rounding
        assert e["machine"]["rounding"] != machine()["rounding"]


def test_a_new_call_keeps_other_machines_rows_and_replaces_its_own(mod):
    row = lambda cpu, fp, acc: {"run": "f/r", "about": "a", "kernels": "native", "acc_all": acc,  # noqa: E731
                                "made_on": fp, "machine": {"cpu": cpu, "rounding": fp}}
    old = mod.merge(None, [row("A", "x", 0.1), row("B", "y", 0.2), row("B", "z", 0.4)])
    new = mod.merge(old, [row("A", "x", 0.3)])       # two machines of one name (B) that round apart stay two rows
    assert sorted((e["machine"]["cpu"], e["acc_all"]) for e in new["rows"]) == [("A", 0.3), ("B", 0.2), ("B", 0.4)]


def test_the_committed_report_is_what_its_rows_give_and_one_rounding_makes_each_run_again(mod):
    res = json.loads(Path(mod.JSON).read_text())
    assert Path(mod.MD).read_text() == "\n".join(mod.lines(res))
    assert set(mod.DEFAULT_RUNS) <= {e["run"] for e in res["rows"]}
    for e in res["rows"]:                                    # each row is its run's committed record's
        assert e["committed_acc_all"] == json.loads(Path(mod.record_path(e["run"])).read_text())["acc_all"]
        assert e["bit_identical"] == (e["first_round_apart"] is None and e["acc_all"] == e["committed_acc_all"])
    made_by = {}                                             # run -> the roundings that make it again bit for bit
    for e in res["rows"]:
        if e["bit_identical"]:
            made_by.setdefault(e["run"], set()).add((e["machine"]["cpu"], e["machine"]["rounding"]))
    # a fingerprint tells roundings apart: no run is made again bit for bit under two of them
    assert made_by and all(len(v) == 1 for v in made_by.values())
    # the tables' FedLPA was made on an Intel Xeon, their baselines on an AMD EPYC (another session)
    tables = {r.split("_")[0]: next(iter(v))[0] for r, v in made_by.items() if r.startswith("gcd/")}
    assert tables["gcd/fedlpa"].startswith("Intel(R) Xeon(R)")
    assert tables["gcd/simgcd"] == tables["gcd/gcd"] == "AMD EPYC"


@pytest.mark.parametrize("argv, says", [(["--runs", "gcd/no_such_run"], "--runs: no committed record gcd/no_such_run"),
                                        (["--workers", "0"], "--workers")])
def test_bad_input_names_the_parameter_and_writes_nothing(mod, monkeypatch, tmp_path, capsys, argv, says):
    monkeypatch.setattr(mod, "JSON", str(tmp_path / "r.json"))
    monkeypatch.setattr(mod, "MD", str(tmp_path / "r.md"))
    with pytest.raises(SystemExit) as ex:
        mod.main(argv)
    assert ex.value.code == 2 and says in capsys.readouterr().err and not list(tmp_path.iterdir())
