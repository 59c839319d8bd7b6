"""bench/markov_merge.py: the committed report is what its per-client records give, each setting is the discovery
FedLPA would make with it, and the pick follows new_split's rule."""
import json
from pathlib import Path

import pytest

from lab.gcd.discovery import DiscoveryParams, discover
from lab.gcd.prior import empirical_prior, head_kl, oracle_heads
from tests.test_backbones import _script
from tests.test_discovery import MANY_SMALL, H, OLD, model_probs, planted


@pytest.fixture(scope="module")
def mod():
    return _script("bench/markov_merge.py")


@pytest.fixture(scope="module")
def res(mod, backbone):
    return json.loads(Path(mod.paths(backbone)[0]).read_text())


@pytest.fixture(scope="module")
def committed(mod):
    return json.loads(Path(mod.JSON).read_text())


def test_the_committed_report_is_what_its_records_give(mod, res, backbone):
    assert json.loads(json.dumps(mod.record(res["records"], backbone))) == res
    assert Path(mod.paths(backbone)[1]).read_text() == "\n".join(mod.lines(res)) + "\n"
    assert sorted((r["alpha"], r["seed"]) for r in res["records"]) == sorted(
        (a, s) for a in mod.T.TABLE_ALPHAS for s in mod.KA.TUNING + mod.KA.EVALUATION)
    assert res.get("backbone", "pretrained") == backbone
    # FedLPA's own setting on that backbone: the library's on the committed one, item 7's study's on the wide one
    lib = DiscoveryParams()
    assert res["default"] == {"pretrained": mod.name(lib.markov_time, lib.merge_new_cosine),
                              "pretrained-wide": "markov 6, merge off"}[backbone]
    assert res["default"] in res["settings"] == mod.names(backbone)
    assert len(res["settings"]) == len(mod.MARKOV[backbone]) * len(mod.MERGE)
    assert all(len(c["settings"]) == len(res["settings"]) for r in res["records"] for c in r["clients"])
    if backbone != "pretrained":
        assert res["trained"] is None                  # --train pairs with replicate_tables' committed-backbone runs


def test_fedlpas_setting_in_the_study_is_the_discovery_new_split_recorded(mod, res, backbone):
    """At FedLPA's setting, each of the 200 clients has the K_hat and KL(oracle || pi) that ``new_split.py`` recorded
    from FedLPA's own first discovery with its split off (same config, same machine, another harness); ``one``
    also refused to record a client whose K_hat differs from the one its run discovered."""
    ns = json.loads(Path(mod.NS.paths(backbone)[0]).read_text())
    at = {(r["alpha"], r["seed"], c["client"]): c["settings"]["off"] for r in ns["records"] for c in r["clients"]}
    i = res["settings"].index(res["default"])
    k, kl = mod.FIELDS.index("k_hat"), mod.FIELDS.index("kl")
    got = [(c["settings"][i][k], c["settings"][i][kl], at[(r["alpha"], r["seed"], c["client"])])
           for r in res["records"] for c in r["clients"]]
    assert len(got) == 200
    assert all(a == o["k_hat"] and b == pytest.approx(o["kl"], abs=1e-12) for a, b, o in got)


def planted_client(mod, monkeypatch, sizes):
    """A planted client (``tests.test_discovery.planted``, spread 1.3, a model 20 % sure of each class's head) as
    the one client of every job of the study script ``mod``: (x, y, labelled, visible labels, probs, params)."""
    x, y, lab, y_vis = planted(*sizes, spread=1.3)
    probs = model_probs(y, p=0.2)
    params = mod.KA.fedlpa_config(0.1, 0).discovery_params()     # the studies' FedLPA: the route off
    kw = {"prefix_features": x, "params": params, "seed": 0}
    k_est = discover(x, probs, lab, y_vis, OLD, H, **kw).k_est
    view = mod.KA.client_view(0, y, k_est, (x, probs, lab, y_vis, OLD, H), kw, n_classes=10)
    monkeypatch.setattr(mod.KA, "kept_clients", lambda *job: (None, set(OLD), [view]))
    return x, y, lab, y_vis, probs, params


def test_each_setting_is_the_discovery_fedlpa_would_make_with_it(mod, monkeypatch):
    """A planted client (ten small classes, five new, spread so that a coarser markov time merges new classes; a
    model unsure enough that its new classes' mean predictions have cosine ~0.76) through ``one``: every (markov
    time, merging threshold) records the K_hat and KL(oracle || pi) that ``discover`` gives with it."""
    x, y, lab, y_vis, probs, params = planted_client(mod, monkeypatch, MANY_SMALL)
    got = mod.one((0.1, 0))["clients"][0]["settings"]
    oracle = empirical_prior(oracle_heads(y, probs, OLD, H), H, params.smoothing)
    k_hats = {}
    markov = mod.MARKOV["pretrained"]
    for i, (m, t) in enumerate((m, t) for m in markov for t in mod.MERGE):
        d = discover(x, probs, lab, y_vis, OLD, H, prefix_features=x, seed=0,
                     params=params.replace(markov_time=m, merge_new_cosine=t))
        assert got[i][0] == d.k_est and got[i][3] == pytest.approx(head_kl(oracle, d.prior)), (m, t)
        k_hats[(m, t)] = d.k_est
    # the planted client tells the settings apart: by markov time with merging off, by threshold at markov time 1
    assert len({k_hats[(m, None)] for m in markov}) > 2
    assert len({k_hats[(1.0, t)] for t in mod.MERGE}) > 1


def test_the_pick_is_new_splits_rule_with_fedlpas_setting_winning_ties(mod):
    def rows(setting, w01, w1, kl01, kl1):
        return [{"setting": setting, "alpha": 0.1, "within_1": w01, "kl": kl01},
                {"setting": setting, "alpha": 1.0, "within_1": w1, "kl": kl1}]
    default, finer = mod.default(), mod.name(1.25, 0.8)
    assert mod.NS.pick(rows(default, 0.8, 0.8, 0.2, 0.2) + rows(finer, 0.9, 0.9, 0.2, 0.2), default)["setting"] \
        == default
    assert mod.NS.pick(rows(default, 0.8, 0.8, 0.2, 0.2) + rows(finer, 0.9, 0.7, 0.1, 0.1), default)["setting"] \
        == default                             # lower KL, but misses the K_hat bar at alpha 1


def test_the_adoption_rule_needs_more_all_on_the_tuning_runs_and_k_hat_kept_within_one(mod):
    def rows(all01, all1, base01, base1, k01, k1):
        return [{"all": {"values": a}, "fedlpa": {"values": b}, "k_hat": {"share": k}}
                for a, b, k in ((all01, base01, k01), (all1, base1, k1))]
    assert mod.adopt(rows([0.6, 0.7], [0.7, 0.7], [0.6, 0.6], [0.7, 0.7], 0.8, 0.9))[1]
    assert not mod.adopt(rows([0.6, 0.7], [0.7, 0.7], [0.6, 0.6], [0.7, 0.7], 0.8, 0.7))[1]   # K_hat lost at alpha 1
    assert not mod.adopt(rows([0.6, 0.6], [0.7, 0.7], [0.6, 0.6], [0.7, 0.7], 0.9, 0.9))[1]   # no more All
    assert mod.adopt(rows([0.6, 0.7], [0.7, 0.7], [0.6, 0.6], [0.7, 0.7], 0.8, 0.9))[0] == {
        "all": pytest.approx(0.675), "fedlpa": pytest.approx(0.65)}


def test_the_trained_pick_is_fedlpa_with_only_its_two_fields_changed_paired_on_one_machine(mod, committed):
    res = committed
    t = res["trained"]
    if res["pick"]["setting"] == res["default"]:
        assert t is None
        return
    assert t["setting"] == res["pick"]["setting"] and t["fields"] == mod.setting_fields(t["setting"])
    for (label, alpha), runs in mod.train_configs(t["setting"]).items():
        assert [s for s, *_ in runs] == list(mod.TRAIN_SEEDS[label])
        for s, cfg, base in runs:
            assert {k for k in cfg if cfg[k] != base[k]} == {k for k, v in t["fields"].items() if base[k] != v}
            assert mod.T.load(cfg, mod.TRAIN_DIR) and mod.T.load(base, mod.TRAIN_DIR)
            if label == "evaluation":               # FedLPA's evaluation runs are replicate_tables' (this machine)
                assert mod.T.load(base, mod.TRAIN_DIR) == mod.T.load(base, mod.R.RUN_DIR)
    # each pick run and its FedLPA run trained one warm-up alike: one machine's pair
    assert t["warmup_splits"] == [] == mod.T.warmup_splits(mod.TRAIN_DIR)
    assert len(t["rows"]) == len(mod.TRAIN_SEEDS) * len(mod.T.TABLE_ALPHAS)
