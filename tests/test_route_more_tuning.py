"""bench/route_more_tuning.py: the route's pick made again on twice the tuning clients (issue 9). The pick reads
the 100 tuning clients per alpha of seeds 100-119 and no evaluation client, FedLPA's route wins ties, the share-first
reading ranks by the K_hat share before KL, the trained pick differs from FedLPA as the library runs it in the route
alone, and the committed report is what its records give."""
import json
import os
from pathlib import Path

import pytest

from lab.gcd.discovery import DiscoveryParams
from tests.test_backbones import _script


@pytest.fixture(scope="module")
def mod():
    return _script("bench/route_more_tuning.py")


@pytest.fixture(scope="module")
def res(mod):
    return json.loads(Path(mod.JSON).read_text())


@pytest.fixture(scope="module")
def mm(mod):
    return json.loads(Path(mod.MM.JSON).read_text())


def test_the_committed_report_is_what_the_records_give(mod, res, mm):
    assert json.loads(json.dumps(mod.record(res["records"], mm, res["machine"]))) == res
    assert Path(mod.MD).read_text() == "\n".join(mod.lines(res)) + "\n"
    assert res["default"] == mod.CR.name(DiscoveryParams().coarse_k)          # FedLPA as the library runs it


def test_the_new_seeds_are_ones_no_study_ran_and_the_pick_reads_both_tuning_sets(mod, res, mm):
    """Seeds 110-119 are new (not in markov_merge.json, not a tuning or evaluation seed of the protocol) and each
    of their jobs has its five clients; the pooled table counts 100 clients per alpha; on seeds 100-109 alone the
    same rule gives coarse_route.json's pick."""
    old = {(r["alpha"], r["seed"]) for r in mm["records"]}
    new = {(r["alpha"], r["seed"]) for r in res["records"]}
    assert not old & new and {s for _, s in new} == set(mod.MORE)
    assert not set(mod.MORE) & set(mod.KA.TUNING + mod.KA.EVALUATION + mod.T.TUNING_SEEDS)
    assert all(len(r["clients"]) == 5 for r in res["records"]) and len(res["records"]) == 2 * len(mod.MORE)
    assert {r["clients"] for r in res["tuning"]} == {100}
    cr = json.loads(Path(mod.CR.JSON).read_text())
    assert res["pick_100_109"] == mod.NS.pick(cr["tuning"], res["default"])["setting"]


def test_the_pick_reads_no_evaluation_client(mod, res, mm):
    """Every evaluation client's discoveries made perfect (K_hat = K, KL 0) leaves the pick as it is and moves the
    evaluation table; the new tuning clients' made perfect for one route makes it the pick (the pick reads them)."""
    fields = mm["fields"]
    perfect = {**mm, "records": [r if r["seed"] not in mod.KA.EVALUATION else
                                 {**r, "clients": [{**c, "settings": [[c["k"], 0, 0, 0.0] for _ in c["settings"]]}
                                                   for c in r["clients"]]} for r in mm["records"]]}
    got = mod.record(res["records"], perfect, res["machine"])
    assert got["pick"] == res["pick"] and got["evaluation"] != res["evaluation"]
    assert fields.index("k_hat") == 0 and fields.index("kl") == 3
    # a setting no route keeps (markov 1, merge off) made perfect on the new tuning clients: every route's coarse
    # side is "markov 3, merge >= 0.7", its fine side FedLPA's; making FedLPA's fine setting perfect there raises
    # "off" on the new seeds only
    fine = mm["settings"].index(mod.CR.settings_used()[0])
    better = [{**r, "clients": [{**c, "settings": [[c["k"], 0, 0, 0.0] if i == fine else v
                                                   for i, v in enumerate(c["settings"])]} for c in r["clients"]]}
              for r in res["records"]]
    moved = mod.record(better, mm, res["machine"])
    assert moved["tuning_halves"]["110-119"] != res["tuning_halves"]["110-119"]
    assert moved["pick"]["kl"] != res["pick"]["kl"]


def test_fedlpas_route_wins_ties_and_the_share_first_reading_ranks_by_share_before_kl(mod):
    """Planted rows: two settings alike in every number go to the library's route; a setting with the better K_hat
    share at its worse alpha is the share-first reading's whatever its KL, and the KL rule's pick otherwise."""
    inc = mod.incumbent()

    def rows(setting, shares, kl):
        return [{"setting": setting, "alpha": a, "within_1": w, "kl": kl} for a, w in zip((0.1, 1.0), shares)]

    tied = rows("coarse when K̂ <= 4", (0.9, 0.9), 0.2) + rows(inc, (0.9, 0.9), 0.2)
    assert mod.NS.pick(tied, inc)["setting"] == inc
    ranked = rows("a", (0.95, 0.75), 0.1) + rows("b", (0.79, 0.79), 0.3) + rows("c", (0.9, 0.78), 0.2)
    assert mod.by_share(ranked) == "b" and mod.NS.pick(ranked, inc)["setting"] == "a"


def test_the_trained_pick_is_fedlpa_with_only_the_route_changed_paired_with_the_routes_runs(mod, res):
    t = res["trained"]
    if res["pick"]["setting"] == res["default"]:
        assert t is None
        return
    assert t is not None, "run: python bench/route_more_tuning.py --workers 2 --train"
    checked = 0
    for runs in mod.train_configs(t["setting"]).values():
        for _, cfg, base in runs:
            assert {k for k in cfg if cfg[k] != base[k]} == {"coarse_k"}
            assert base["coarse_k"] == DiscoveryParams().coarse_k and cfg["coarse_k"] == t["fields"]["coarse_k"]
            assert mod.T.load(base, mod.TRAIN_DIR) is not None and mod.T.load(cfg, mod.TRAIN_DIR) is not None
            # FedLPA's side is the route's config, the one coarse_route.py trained (there on another machine)
            assert mod.T.run_name(base) + ".json" in os.listdir(mod.CR.TRAIN_DIR)
            checked += 1
    assert checked == len(mod.T.TABLE_ALPHAS) * (len(mod.T.TUNING_SEEDS) + len(mod.T.SEED_STUDY))
    # both sides train the same warm-up alike: one machine's runs (the copies of coarse_route.py's did not)
    assert t["warmup_splits"] == [] == mod.T.warmup_splits(mod.TRAIN_DIR)


