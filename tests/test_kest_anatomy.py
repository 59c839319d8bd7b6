"""``bench/kest_anatomy.py``: the parts of K_hat - K are counted right, the pick reads the tuning seeds only, and the
committed results are what the script makes of its own records."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tests.test_backbones import ROOT, _script


def _mod():
    return _script("bench/kest_anatomy.py")


def test_the_parts_of_k_hat_minus_k_add_up_and_name_what_went_wrong():
    k = _mod()
    old = {0, 1}
    # communities: old 0 (claimed), new class 5 in two pieces, new class 6, two new-class communities that are
    # mostly old class 1 (unclaimed pieces: "other", not a split), and new class 7 present but hidden in the
    # class-6 community
    y = np.r_[np.zeros(100, int), np.full(60, 5), np.full(40, 5), np.full(50, 6), np.full(30, 7), np.full(70, 1)]
    labels = np.r_[np.zeros(100, int), np.ones(60, int), np.full(40, 2), np.full(80, 3), np.full(40, 4),
                   np.full(30, 5)]
    d = SimpleNamespace(communities=SimpleNamespace(labels=labels), claims=np.array([0, -1, -1, -1, -1, -1]),
                        k_old=2, k_est=7)
    got = k.anatomy(d, y, old, [0, 1, 5, 6, 7])
    assert got == {"k_hat": 7, "old": 0, "split": 1, "other": 2, "missed": 1}
    assert got["k_hat"] - 5 == got["old"] + got["split"] + got["other"] - got["missed"]


def _records(k, good_tuning: set, good_eval: set):
    """Synthetic records: every client has K = 8; a setting is exact where it is 'good', 3 over elsewhere."""
    recs = []
    for seed in k.TUNING + k.EVALUATION:
        good = good_tuning if seed in k.TUNING else good_eval
        for al in k.T.TABLE_ALPHAS:
            k_hat = [8 if name in good else 11 for name in k.NAMES]
            recs.append({"alpha": al, "seed": seed, "clients": [{"k": 8, "k_hat": k_hat}] * 5})
    return recs


def test_the_pick_reads_the_tuning_seeds_only_and_prefers_a_plateau_to_a_lone_peak():
    k = _mod()
    plateau = {"predictions >= 0.75", "predictions >= 0.8", "predictions >= 0.85", "graph >= 0.95"}
    got = k.pick(_records(k, plateau, {"graph >= 0.6", "off"}))["choice"]
    assert (got["on"], got["threshold"]) == ("predictions", 0.8)
    assert got["within"] == {"0.1": 1.0, "1": 1.0}
    # what the evaluation seeds say never moves it
    assert k.pick(_records(k, plateau, set()))["choice"]["setting"] == got["setting"]
    # off competes, unsmoothed: exact everywhere on the tuning seeds beats a threshold exact with one neighbour
    assert k.pick(_records(k, {"off", "graph >= 0.95"}, set()))["choice"]["threshold"] is None


def test_the_committed_anatomy_is_the_scripts_own_reading_of_its_records():
    k = _mod()
    res = json.loads(Path(k.OUT).read_text())
    assert res["pick"] == k.pick(res["records"])
    kept = ["off", res["pick"]["choice"]["setting"]]
    assert res["parts"] == k.parts_rows(res["records"], kept) and res["grid"] == k.NAMES
    assert Path(k.MD).read_text() == "\n".join(k.lines(res)) + "\n"
    assert {(r["alpha"], r["seed"]) for r in res["records"]} == {(a, s) for a in k.T.TABLE_ALPHAS
                                                                 for s in k.TUNING + k.EVALUATION}
    for r in res["records"]:
        for c in r["clients"]:
            assert set(c["parts"]) == set(kept)
            for name, p in c["parts"].items():
                assert k._k_hat(c, name) - c["k"] == p["old"] + p["split"] + p["other"] - p["missed"], (r["seed"], name)
            assert max(c["k_hat"]) == c["k_hat"][k.NAMES.index("off")]    # merging never adds a community


def test_the_anatomy_is_of_the_tables_fedlpa_runs():
    """The re-made discovery gives each client the K_hat the seed study's FedLPA run recorded: at the library's
    setting (the pick, the Done-when table's config since) that of the table's run, and at ``off`` that of the
    table's run before the pick became the default: the anatomy takes apart the runs the tables report."""
    from lab.gcd.discovery import DiscoveryParams

    k = _mod()
    t = k.T
    lib = DiscoveryParams()
    best = json.loads((ROOT / "bench" / "results" / "gcd_tuning.json").read_text())["best"]
    res = json.loads(Path(k.OUT).read_text())
    assert k.setting_name(lib.merge_new_on, lib.merge_new_cosine) == res["pick"]["choice"]["setting"] != "off"
    checked = 0
    for r in res["records"]:
        if r["seed"] not in t.SEED_STUDY:
            continue
        for name, merge, folder in ((res["pick"]["choice"]["setting"], lib.merge_new_cosine, t.BEFORE_ROUTE_DIR),
                                    ("off", None, t.BEFORE_MERGE_DIR)):
            cfg = t.config("fedlpa", r["alpha"], r["seed"], False, **best["fedlpa"], merge_new_cosine=merge,
                           **t.BEFORE_ROUTE)
            run = t.load(cfg, t.os.path.join(t.RES, folder))
            assert run is not None and run["config"].get("merge_new_cosine") == merge
            assert [k._k_hat(c, name) for c in r["clients"]] == run["k_est"], (r["alpha"], r["seed"], name)
            assert [c["k"] for c in r["clients"]] == run["k_true"]
            checked += 1
    assert checked == 2 * len(t.SEED_STUDY) * len(t.TABLE_ALPHAS)
