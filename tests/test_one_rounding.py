"""bench/one_rounding.py: item 7's 2-core study read on one rounding, each run the rounding map puts on another
rounding than its cell's FedLPA made again on FedLPA's; and the remake kept in a folder it rests on (reproduce_runs'
``out_dir``)."""
import json
from pathlib import Path

import pytest

from lab.gcd.config import FedGCDConfig
from tests.test_backbones import _script
from tests.test_reproduce_runs import record  # noqa: F401  (a quick run made here; it reads ``mod.T``)

F, OR, S, C, G, H = "FedLPA", "FedLPA, oracle prior", "FedAvg+SimGCD", "centralized", "FedAvg+GCD", \
    "FedLPA, oracle heads, own masses"


@pytest.fixture(scope="module")
def mod():
    return _script("bench/one_rounding.py")


def _map():
    """A small map: at alpha 0.1 seed 0 FedLPA (with its oracle) rounds x, FedAvg+SimGCD y, the centralized run z (a
    rounding none of the settings gives); at alpha 1 FedLPA rounds y like FedAvg+GCD; seed 1's run told the heads
    is not mapped."""
    g = lambda a, s, m, runs, labels, r: {"backbone": "b", "alpha": a, "seed": s, "method": m,  # noqa: E731
                                          "runs": runs, "labels": labels, "rounding": r}
    return {"folder": "study", "seeds": [0, 1], "kernel_roundings": {"native": "x", "avx2": "y"},
            "groups": [g(0.1, 0, "fedlpa", ["f1", "o1"], [F, OR], "x"), g(0.1, 0, "simgcd", ["s1"], [S], "y"),
                       g(0.1, 0, "central", ["c0"], [C], "z"), g(1.0, 0, "fedlpa", ["f2"], [F], "y"),
                       g(1.0, 0, "gcd", ["g2"], [G], "y"), g(0.1, 1, "fedlpa", ["f3"], [F], "x"),
                       g(0.1, 1, "fedlpa", ["h3"], [H], None)]}


def test_the_runs_made_again_are_those_off_their_cells_fedlpa_rounding_the_centralized_at_every_alpha(mod):
    # the centralized run pairs with FedLPA at both alphas of its seed, which round x and y: made on each
    assert mod.todo(_map()) == [("c0", "x", "native"), ("c0", "y", "avx2"), ("h3", "x", "native"),
                                ("s1", "x", "native")]
    assert mod.targets(_map()) == {("b", 0.1, 0): "x", ("b", 1.0, 0): "y", ("b", 0.1, 1): "x"}


def test_a_pair_reads_the_committed_run_on_fedlpas_rounding_and_the_remake_elsewhere(mod, monkeypatch, tmp_path):
    monkeypatch.setattr(mod.T, "RES", str(tmp_path))
    acc = {"f1": 0.60, "o1": 0.70, "s1": 0.50, "c0": 0.80, "f2": 0.65, "g2": 0.66, "f3": 0.61, "h3": 0.62}
    (tmp_path / "study").mkdir()
    for n, a in acc.items():
        (tmp_path / "study" / f"{n}.json").write_text(json.dumps({"acc_all": a}))
    Path(d := mod.remake_dir("study", "x")).mkdir(parents=True)
    (Path(d) / "s1.json").write_text(json.dumps({"acc_all": 0.55}))        # made again on FedLPA's rounding
    one = mod.on_rounding(_map(), {("s1", "x"): str(Path(d) / "s1.json")})
    assert one[("b", 0.1, 0)] == pytest.approx({F: 60.0, OR: 70.0, S: 55.0})   # no centralized there: not made on x
    assert one[("b", 1.0, 0)] == pytest.approx({F: 65.0, G: 66.0})           # nor at alpha 1 (FedLPA's y)
    assert mod.on_rounding(_map(), {})[("b", 0.1, 1)] == pytest.approx({F: 61.0})
    rows = {(r["alpha"], r["what"]): r for r in mod.reading(_map(), {("s1", "x"): str(Path(d) / "s1.json")})["rows"]}
    assert rows[(0.1, f"FedLPA − {S}")]["one_rounding"]["mean"] == pytest.approx(5.0)
    assert rows[(0.1, f"FedLPA − {S}")]["committed"]["mean"] == pytest.approx(10.0)
    assert rows[(0.1, f"FedLPA − {C}")]["one_rounding"] is None


def test_a_remake_kept_in_a_folder_is_the_run_under_its_own_name(mod, record, tmp_path):  # noqa: F811
    e = mod.R.remake(record, "native", None, str(tmp_path))
    kept = json.loads((tmp_path / Path(record).name).read_text())
    assert e["bit_identical"] and kept["config"] == json.loads(Path(record).read_text())["config"]
    assert kept["machine"] == e["machine"] and kept["acc_all"] == e["acc_all"]


def test_a_remake_found_on_another_rounding_stops_the_call(mod, tmp_path):
    ref = {"acc_all": 0.5, "history": [{"round": 1, "acc_all": 0.5}]}
    (tmp_path / "ref.json").write_text(json.dumps(ref))
    (tmp_path / "made.json").write_text(json.dumps({**ref, "seconds": 3.0, "machine": {"rounding": "y"}}))
    got = mod.found(str(tmp_path / "ref.json"), str(tmp_path / "made.json"), "y")
    assert got == {"acc_all": 0.5, "committed_acc_all": 0.5, "first_round_apart": None, "seconds": 3.0}
    with pytest.raises(SystemExit, match="rounds as y, not x"):
        mod.found(str(tmp_path / "ref.json"), str(tmp_path / "made.json"), "x")
    assert mod.found(str(tmp_path / "ref.json"), str(tmp_path / "none.json"), "x") == {"acc_all": None}


def test_bad_input_names_the_parameter_and_writes_nothing(mod, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(mod, "paths", lambda study: (str(tmp_path / "r.json"), str(tmp_path / "r.md")))
    with pytest.raises(SystemExit) as ex:
        mod.main(["--workers", "0"])
    assert ex.value.code == 2 and "--workers" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_the_committed_reading_is_the_map_s_runs_made_again_from_their_configs_on_fedlpas_rounding(mod):
    jpath, mpath = mod.paths("backbones_2core")
    res = json.loads(Path(jpath).read_text())
    rmap = json.loads(Path(mod.M.paths("backbones_2core")[0]).read_text())
    assert [(m["run"], m["rounding"], m["kernels"]) for m in res["made"]] == mod.todo(rmap)
    made = {}
    for m in res["made"]:
        path = Path(mod.remake_dir(res["folder"], m["rounding"])) / f"{m['run']}.json"
        r, ref = (json.loads(p.read_text()) for p in (path, Path(mod.T.RES) / res["folder"] / f"{m['run']}.json"))
        # nothing chosen anew: the same config (today's fields at the values the committed record reads back as)
        assert FedGCDConfig.from_dict(r["config"]) == FedGCDConfig.from_dict(ref["config"])
        assert r["machine"]["rounding"] == m["rounding"]
        assert r["acc_all"] == m["acc_all"] and ref["acc_all"] == m["committed_acc_all"]
        made[(m["run"], m["rounding"])] = str(path)
    assert res["reading"] == json.loads(json.dumps(mod.reading(rmap, made)))
    assert Path(mpath).read_text() == "\n".join(mod.lines(res))
    # made in full, every pair the study reads is read on FedLPA's rounding on every seed it has
    assert all(r["one_rounding"] and r["one_rounding"]["seeds"] == r["committed"]["seeds"]
               for r in res["reading"]["rows"])


def test_the_summary_reads_the_lines_of_the_issue_on_one_rounding_as_the_reading_gives_them(mod):
    T = mod.T
    got = T.one_rounding_reading("backbones_2core")
    res = json.loads(Path(mod.paths("backbones_2core")[0]).read_text())
    rows = {(r["backbone"], r["alpha"], r["x"], r["y"]): r for r in res["reading"]["rows"]}
    for c in got["cells"]:
        assert {(x["x"], x["y"]) for x in c["lines"] if not x.get("ratio")} <= set(T.ONE_ROUNDING_LINES)
        for x in c["lines"]:
            if x.get("ratio"):
                continue
            r = rows[(c["backbone"], c["alpha"], x["x"], x["y"])]
            assert x["one_rounding"]["mean"] == r["one_rounding"]["mean"] and x["committed"]["mean"] == \
                r["committed"]["mean"]
    summary = json.loads((Path(T.RES) / "gcd_summary.json").read_text())
    assert summary["backbones_2core"]["one_rounding"] == got
    text = (Path(T.RES) / "gcd_summary.md").read_text()
    assert f"**{got['made']} of the {got['to_make']} runs**" in text
    assert all(T._one_rounding_line(x) in text for c in got["cells"] for x in c["lines"])


def test_a_remake_is_bit_for_bit_every_run_of_its_config_another_folder_records_on_its_rounding(mod):
    """The tuned study and the one-machine replicate record their rounding: a remake of a config they also made on
    the same rounding must be the same run, evaluation for evaluation (a remake made otherwise would not be)."""
    res = json.loads(Path(mod.paths("backbones_2core")[0]).read_text())
    checked = 0
    for m in res["made"]:
        made = json.loads((Path(mod.remake_dir(res["folder"], m["rounding"])) / f"{m['run']}.json").read_text())
        for other in Path(mod.T.RES).glob(f"gcd*/{m['run']}.json"):
            r = json.loads(other.read_text())
            if r.get("machine", {}).get("rounding") == m["rounding"]:
                assert r["history"] == made["history"], other
                checked += 1
    assert checked >= 15              # 18 at commit: the tuned study's and the one-machine replicate's runs
