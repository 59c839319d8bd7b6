"""The coarse route (``DiscoveryParams.coarse_k``): a client whose discovery counts few categories is discovered
again at a coarser time; and bench/coarse_route.py, which reads that rule off ``markov_merge.json``'s records."""
import json
from pathlib import Path

import numpy as np
import pytest

from lab.gcd.config import FedGCDConfig
from lab.gcd.discovery import DiscoveryParams, discover
from lab.utils import LabError
from tests.test_backbones import _script
from tests.test_discovery import H, OLD, model_probs, planted

MANY_SMALL_SPREAD = ((70,) * 5 + (60,) * 5, 5)


@pytest.fixture(scope="module")
def mod():
    return _script("bench/coarse_route.py")


@pytest.fixture(scope="module")
def res(mod):
    return json.loads(Path(mod.JSON).read_text())


def test_a_client_counting_few_categories_is_discovered_again_at_the_coarse_setting():
    """On a planted client FedLPA's setting and the coarse one count differently; with ``coarse_k`` at that count
    the discovery is the coarse setting's, one below it FedLPA's own; bad values are refused by name."""
    x, y, lab, y_vis = planted(*MANY_SMALL_SPREAD, spread=1.3)
    probs = model_probs(y, p=0.2)
    p = DiscoveryParams().replace(coarse_k=None)      # FedLPA's setting without the route

    def run(params):
        return discover(x, probs, lab, y_vis, OLD, H, prefix_features=x, params=params, seed=0)

    fine = run(p)
    # the library's coarse setting, and one at which the planted client tells merging >= 0.7 from FedLPA's 0.8
    for p in (p, p.replace(coarse_markov_time=2.0)):
        coarse = run(p.replace(markov_time=p.coarse_markov_time, merge_new_cosine=p.coarse_merge_cosine))
        assert fine.k_est != coarse.k_est                   # the planted client tells the two apart
        routed, kept = run(p.replace(coarse_k=fine.k_est)), run(p.replace(coarse_k=fine.k_est - 1))
        assert routed.k_est == coarse.k_est and (routed.prior == coarse.prior).all()
        assert (routed.communities.labels == coarse.communities.labels).all()
        assert kept.k_est == fine.k_est and (kept.prior == fine.prior).all()
    assert run(p.replace(markov_time=2.0)).k_est != coarse.k_est     # FedLPA's threshold at that time
    for bad in ({"coarse_k": 0}, {"coarse_k": 2.5}, {"coarse_markov_time": 0}, {"coarse_merge_cosine": 2}):
        with pytest.raises(LabError, match=next(iter(bad))):
            p.replace(**bad)


def test_the_route_is_on_by_default_as_a_late_config_field_that_keeps_every_earlier_runs_name(mod, res):
    """On by default at the adopted cutoff (the study's pick, which its rule adopted when trained; the coarse setting
    is the one the study routed to); a run made before the field existed reads back with it off, so its name is
    unchanged (``test_every_run_the_tables_name_is_committed`` fails when the late field is dropped); ``python -m
    lab fedgcd --coarse-k N|off`` sets it; a bad value stops the run by name."""
    from lab.cli import build_parser
    from lab.gcd.cli import config_from_args

    lib = DiscoveryParams()
    assert res["trained"]["adopt"] and lib.coarse_k == mod.setting_fields(res["pick"]["setting"])["coarse_k"] == 7
    assert mod.MM.name(lib.coarse_markov_time, lib.coarse_merge_cosine) == res["coarse"]
    base = FedGCDConfig(method="fedlpa")
    assert base.discovery_params().coarse_k == lib.coarse_k
    before = FedGCDConfig(method="fedlpa", coarse_k=None)
    assert before.key() != base.key()
    earlier = {k: v for k, v in before.to_dict().items() if k != "coarse_k"}    # a config stored before the field
    assert FedGCDConfig.from_dict(earlier).coarse_k is None and FedGCDConfig.from_dict(earlier).key() == before.key()

    def cfg(*extra):
        return config_from_args(build_parser().parse_args(["fedgcd", "--method", "fedlpa", *extra]))

    assert cfg().coarse_k == 7 and cfg("--coarse-k", "5").discovery_params().coarse_k == 5
    assert cfg("--coarse-k", "off").coarse_k is None
    with pytest.raises(LabError, match="coarse_k"):
        cfg("--coarse-k", "0").discovery_params()


def test_the_tables_fedlpa_runs_are_the_routes_trained_runs_to_the_bit(mod, res):
    """The tables' FedLPA (``run_gcd_tables.py``, the route on by default) on the seeds the study trained it: the
    same config as the study's route runs, and the same record, whether ``gcd/`` copied the run or made it again
    (the tables' alpha 0.1 seed 0 run, which saves the snapshot, was made again in another session)."""
    T = mod.T
    best = T.tuned_best()
    checked = 0
    for runs in mod.MM.train_configs(res["pick"]["setting"], fields_of=mod.setting_fields).values():
        for s, cfg, _ in runs:
            table = T.config("fedlpa", cfg["alpha"], s, False, **best["fedlpa"])
            assert T.run_name(table) == T.run_name(cfg)
            got, made = T.load(table, Path(T.RES) / "gcd"), T.load(cfg, mod.TRAIN_DIR)
            assert got is not None and {k: v for k, v in got.items() if k != "seconds"} == {
                k: v for k, v in made.items() if k != "seconds"}
            checked += 1
    assert checked == len(T.TABLE_ALPHAS) * (len(T.TUNING_SEEDS) + len(T.SEED_STUDY))


def test_the_committed_report_is_what_markov_merges_records_give(mod, res):
    mm = json.loads(Path(mod.MM.JSON).read_text())
    assert json.loads(json.dumps(mod.record(mm))) == res
    assert Path(mod.MD).read_text() == "\n".join(mod.lines(res)) + "\n"
    # the library routes to the markov-merge study's KL pick, from FedLPA's own setting
    assert res["coarse"] == mm["pick"]["setting"] and res["fine"] == mm["default"]
    assert res["pick"] == mod.NS.pick(res["tuning"], mod.OFF)


def test_each_cutoff_keeps_the_coarse_discovery_exactly_where_the_fine_one_counts_at_most_it(mod, monkeypatch):
    """Planted records: a client whose fine discovery counts 4 takes the coarse one from cutoff 4 on, a client
    counting 9 keeps its own below 9."""
    mm = {"settings": ["fine", "coarse"], "fields": list(mod.MM.FIELDS), "records": [
        {"alpha": 0.1, "seed": 100, "clients": [{"client": 0, "k": 3, "settings": [[4, 1, 0, 0.3], [3, 0, 0, 0.2]]},
                                                 {"client": 1, "k": 9, "settings": [[9, 0, 0, 0.2], [7, 0, 2, 0.1]]}]}]}
    monkeypatch.setattr(mod, "settings_used", lambda: ("fine", "coarse"))
    recs = mod.routed(mm, labelled=lambda alpha, seed: [2, 5])
    a, b = recs[0]["clients"]
    for i, cut in enumerate(mod.CUTOFFS, start=1):
        assert a["settings"][i][0] == (3 if cut >= 4 else 4) and b["settings"][i][0] == (7 if cut >= 9 else 9)
    assert a["settings"][0][0] == 4 and b["settings"][0][0] == 9          # off: FedLPA as it is
    # the route by labels: the client whose labels hold 2 old classes goes coarse from cutoff 2 on, the one holding
    # all 5 never, whatever its discovery counts
    for j, cut in enumerate(mod.LABELLED, start=1 + len(mod.CUTOFFS)):
        assert a["settings"][j][0] == (3 if cut >= 2 else 4) and b["settings"][j][0] == 9
        assert (a["sent"][j], b["sent"][j]) == (cut >= 2, False)


def test_the_route_by_labels_counts_the_old_classes_of_the_labels_the_client_may_see(mod):
    """The signal is the client's own: each count equals the old classes among the labels its client object holds,
    and is not the classes the client truly holds (a count read off every sample's true label would be)."""
    from lab.gcd.experiment import Experiment

    exp = Experiment(mod.KA.fedlpa_config(0.1, 100))
    got = mod.labelled_classes(0.1, 100)
    seen = [np.unique(c._y_visible[c._y_visible >= 0]) for c in exp.clients()]
    truth = [len(np.unique(exp.data.y_train[i])) for i in exp.train_part.client_indices]
    assert got == [len(v) for v in seen] and all(set(v) <= set(exp.split.old_classes) for v in seen)
    assert got != truth and all(g < t for g, t in zip(got, truth))


def test_the_trained_pick_is_fedlpa_with_only_the_route_switched_on_paired_on_one_machine(mod, res):
    t = res["trained"]
    if res["pick"]["setting"] == mod.OFF:
        assert t is None
        return
    assert t is not None, "run: python bench/coarse_route.py --workers 2 --train"
    assert t["fields"] == mod.setting_fields(res["pick"]["setting"])
    for (label, alpha), runs in mod.MM.train_configs(t["setting"], fields_of=mod.setting_fields).items():
        for s, cfg, base in runs:
            assert {k for k in cfg if cfg[k] != base[k]} == {"coarse_k"}
            assert mod.T.load(cfg, mod.TRAIN_DIR) and mod.T.load(base, mod.TRAIN_DIR)
            if label == "evaluation":               # FedLPA's evaluation runs are replicate_tables' (this machine)
                assert mod.T.load(base, mod.TRAIN_DIR) == mod.T.load(base, mod.MM.R.RUN_DIR)
    assert t["warmup_splits"] == [] == mod.T.warmup_splits(mod.TRAIN_DIR)
    # the pair made side by side in one session re-made both trained runs bit for bit
    w = res["wall_pair"]
    assert w and w["same_all_as_trained"] and all(mod.T.load(c, mod.WALL_DIR) for c in mod.wall_configs(t["setting"]))


@pytest.mark.slow
def test_the_library_route_on_a_tuning_job_is_the_discovery_the_study_reads(mod, res, monkeypatch):
    """One tuning job (alpha 1, seed 100) run to FedLPA's first discovery, its record made as ``markov_merge.py``
    makes one and read by the study's route: each client's K_hat and KL(oracle || pi) are what the library's route
    gives it (``discover`` with the pick's ``coarse_k``), so the study needs no run of its own. On the CPU that made
    ``markov_merge.json`` (``replicate_tables.py``'s machine) the record is also the committed one to the bit; on
    another the warm-up, and so the discovery, differs (runs are bit-identical on their own machine only), and that
    last check is skipped with the reason."""
    from lab.gcd.prior import empirical_prior, head_kl, oracle_heads

    mm = json.loads(Path(mod.MM.JSON).read_text())
    exp, kept = mod.KA.first_discovery(1.0, 100)
    monkeypatch.setattr(mod.KA, "first_discovery", lambda *a: (exp, kept))      # one warm-up for both sides
    made = json.loads(json.dumps(mod.MM.one((1.0, 100))))
    (rec,) = mod.routed({**mm, "records": [made]})
    assert len(kept) == len(rec["clients"])
    at_a_cutoff = 0
    for cut in mod.CUTOFFS:                     # every cutoff, so a client's own count meets one of them
        i = mod.names().index(mod.name(cut))
        for (cid, args, kw, _), c in zip(kept, rec["clients"]):
            d = discover(*args, **{**kw, "params": kw["params"].replace(coarse_k=cut)})
            feats, probs, _, _, old, n_heads = args
            y = exp.data.y_train[exp.train_part.client_indices[cid]]
            oracle = empirical_prior(oracle_heads(y, probs, old, n_heads), n_heads, kw["params"].smoothing)
            assert cid == c["client"] and d.k_est == c["settings"][i][0]
            assert head_kl(oracle, d.prior) == pytest.approx(c["settings"][i][3], abs=1e-12)
            at_a_cutoff += c["k_fine"] == cut
    assert at_a_cutoff                          # the job has a client whose count is a cutoff (<= against <)
    here, there = (m["cpu"] for m in (mod.T.machine(), json.loads(Path(mod.MM.R.JSON).read_text())["machine"]))
    if here != there:
        pytest.skip(f"the committed records were made on {there}, this is {here}: not bit-identical across CPUs")
    (committed,) = [r for r in mm["records"] if (r["alpha"], r["seed"]) == (1.0, 100)]
    assert made == committed
