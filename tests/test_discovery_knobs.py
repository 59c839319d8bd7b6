"""bench/discovery_knobs.py: each committed report is what its per-client records give, each setting is the
discovery FedLPA would make with it (the knob included), and FedLPA's own setting is the discovery its runs made."""
import json
from pathlib import Path

import pytest

from lab.gcd.discovery import DiscoveryParams, discover
from lab.gcd.prior import empirical_prior, head_kl, oracle_heads
from tests.test_backbones import _script
from tests.test_discovery import H, OLD
from tests.test_markov_merge import planted_client

KNOBS = ("num_trials", "knn_k", "min_community", "anchors", "smoothing", "mutual")
SMALL_CLASS = ((70,) * 5 + (60,) * 4 + (20,), 5)    # MANY_SMALL with one new class at 3 % of the client


@pytest.fixture(scope="module")
def mod():
    return _script("bench/discovery_knobs.py")


@pytest.fixture(scope="module", params=KNOBS)
def knob(request):
    return request.param


@pytest.fixture(scope="module")
def res(mod, knob):
    return json.loads(Path(mod.paths(knob)[0]).read_text())


def test_the_committed_report_is_what_its_records_give(mod, knob, res):
    assert tuple(mod.KNOBS) == KNOBS
    assert json.loads(json.dumps(mod.record(res["records"], knob))) == res
    assert Path(mod.paths(knob)[1]).read_text() == "\n".join(mod.lines(res)) + "\n"
    assert sorted((r["alpha"], r["seed"]) for r in res["records"]) == sorted(
        (a, s) for a in mod.T.TABLE_ALPHAS for s in mod.KA.TUNING + mod.KA.EVALUATION)
    lib = DiscoveryParams()
    assert res["default"] == mod.name(knob, lib.markov_time, lib.merge_new_cosine, mod.value(knob)) \
        == mod.default(knob)
    assert all(getattr(lib, k) == v for k, v in mod.fields(knob, mod.value(knob)).items())
    assert res["settings"] == mod.names(knob)
    assert len(set(res["settings"])) == len(mod.MARKOV) * len(mod.MERGE) * len(mod.KNOBS[knob][0])
    assert all(len(c["settings"]) == len(res["settings"]) for r in res["records"] for c in r["clients"])
    assert res["pick"] == mod.NS.pick(res["tuning"], res["default"])


def test_fedlpas_setting_in_the_study_is_the_discovery_markov_merge_recorded(mod, knob, res):
    """At FedLPA's setting, each of the 200 clients has the K_hat, parts and KL(oracle || pi) that
    ``markov_merge.py`` recorded at the same setting (another script's run on the same machine); ``one`` also
    refused to record a client whose K_hat differs from the one its run discovered."""
    mm = json.loads(Path(mod.MM.JSON).read_text())
    j = mm["settings"].index(mm["default"])
    at = {(r["alpha"], r["seed"], c["client"]): c["settings"][j] for r in mm["records"] for c in r["clients"]}
    i = res["settings"].index(res["default"])
    got = [(c["settings"][i], at[(r["alpha"], r["seed"], c["client"])]) for r in res["records"] for c in r["clients"]]
    assert len(got) == 200 and all(a == pytest.approx(b, abs=1e-12) for a, b in got)


def test_each_value_routed_is_the_coarse_route_at_that_value_and_fedlpas_is_the_routes_study(mod, knob, res):
    """The routed section: per client and value, the coarse setting's discovery exactly where FedLPA's setting
    counts <= the library's cutoff; at FedLPA's value, every client's routed discovery is the one
    ``coarse_route.py`` read off ``markov_merge.json`` for the library's cutoff (another script's records)."""
    lib, (names, recs) = DiscoveryParams(), mod.routed(res["records"], knob)
    assert names == res["routed"]["settings"]
    for r, rr in zip(res["records"], recs):
        for c, rc in zip(r["clients"], rr["clients"]):
            for j, v in enumerate(mod.KNOBS[knob][0]):
                f = c["settings"][res["settings"].index(mod.name(knob, lib.markov_time, lib.merge_new_cosine, v))]
                g = c["settings"][res["settings"].index(
                    mod.name(knob, lib.coarse_markov_time, lib.coarse_merge_cosine, v))]
                assert rc["settings"][j] == (g if f[0] <= lib.coarse_k else f)
    cr = _script("bench/coarse_route.py")
    route = json.loads(Path(cr.JSON).read_text())
    i = cr.names().index(cr.name(lib.coarse_k))
    at = {(r["alpha"], r["seed"], c["client"]): c["settings"][i] for r in route_records(cr) for c in r["clients"]}
    j = list(mod.KNOBS[knob][0]).index(mod.value(knob))
    got = [(c["settings"][j], at[(r["alpha"], r["seed"], c["client"])]) for r in recs for c in r["clients"]]
    assert len(got) == 200 and all(a == pytest.approx(b, abs=1e-12) for a, b in got)
    assert route["pick"]["setting"] == cr.name(lib.coarse_k)


def route_records(cr):
    """coarse_route's routed records, its route by labels left out (this test reads the route by K_hat only)."""
    return cr.routed(json.loads(Path(cr.MM.JSON).read_text()), labelled=lambda alpha, seed: [0] * 10)


def test_each_setting_is_the_discovery_fedlpa_would_make_with_it(mod, knob, monkeypatch):
    """A planted client (ten classes, five new, one of them 3 % of the client) through ``one``: every (markov time,
    merging threshold, knob value) records the K_hat and KL(oracle || pi) that ``discover`` gives with those
    parameters; the client tells every knob's values apart."""
    x, y, lab, y_vis, probs, params = planted_client(mod, monkeypatch, SMALL_CLASS)
    out = mod.one((0.1, 0, knob))
    got = out["clients"][0]["settings"]
    oracle = empirical_prior(oracle_heads(y, probs, OLD, H), H, params.smoothing)
    k_hats = {}
    for i, (m, t, v) in enumerate(mod.grid(knob)):
        d = discover(x, probs, lab, y_vis, OLD, H, prefix_features=x, seed=0,
                     params=params.replace(markov_time=m, merge_new_cosine=t, **mod.fields(knob, v)))
        assert got[i][0] == d.k_est and got[i][3] == pytest.approx(head_kl(oracle, d.prior)), (m, t, v)
        k_hats[(m, t, v)] = d.k_est
    timed = mod.KNOBS[knob][2] in mod.TIMED                  # a knob acting after InfoMap costs no time
    assert set(out["seconds"]) == ({str(v) for v in mod.KNOBS[knob][0]} if timed else set())
    per_value = {v: tuple(tuple(got[i]) for i, g in enumerate(mod.grid(knob)) if g[2] == v)
                 for v in mod.KNOBS[knob][0]}
    if mod.KNOBS[knob][2] == "prior":       # the prior's knob moves no K_hat, at any setting, and every value's KL
        assert all(len({k_hats[(m, t, v)] for v in mod.KNOBS[knob][0]}) == 1 for m in mod.MARKOV for t in mod.MERGE)
        assert len({tuple(r[3] for r in rows) for rows in per_value.values()}) == len(mod.KNOBS[knob][0])
    elif knob in mod.COMPOSITE:       # the planted client's K_hat is one for every anchor rule: its records differ
        assert len(set(per_value.values())) > 1
    else:
        assert len({k_hats[(1.5, None, v)] for v in mod.KNOBS[knob][0]}) > 1


def test_the_frontier_shows_every_studied_setting_at_both_alphas_and_fedlpas_once():
    """``lab.results.k_hat_frontier_rows`` on planted studies (the tuning rows: a setting's share at each alpha, its
    mean KL over both), and ``lab.viz.gcd.k_hat_frontier``: one dot per setting at (alpha 0.1, alpha 1), FedLPA's
    setting starred once, the issue's bar as the shaded corner; on the committed files, FedLPA's setting sits at one
    point in every study (the same discoveries)."""
    from lab.results import K_HAT_STUDIES, RESULTS_DIR, k_hat_frontier_rows
    from lab.viz.gcd import k_hat_frontier

    def study(default, pick, *settings):
        rows = [{"setting": s, "alpha": a, "within_1": w, "kl": kl}
                for s, w01, w1, kl01, kl1 in settings for a, w, kl in ((0.1, w01, kl01), (1.0, w1, kl1))]
        return {"default": default, "pick": {"setting": pick}, "tuning": rows}

    rows = k_hat_frontier_rows({"one": study("a", "b", ("a", 0.78, 0.8, 0.3, 0.3), ("b", 0.9, 0.5, 0.3, 0.1)),
                                "two": study("a", "a", ("a", 0.78, 0.8, 0.3, 0.3), ("c", 0.82, 0.84, 0.4, 0.4)),
                                "missing": None})
    assert [(r["study"], r["setting"], r["within_1_alpha_0.1"], r["within_1_alpha_1"], r["fedlpa"], r["pick"])
            for r in rows] == [("one", "a", 0.78, 0.8, True, False), ("one", "b", 0.9, 0.5, False, True),
                               ("two", "a", 0.78, 0.8, True, True), ("two", "c", 0.82, 0.84, False, False)]
    assert rows[1]["kl"] == pytest.approx(0.2)
    fig = k_hat_frontier(rows, bar=0.8)
    assert [t.name for t in fig.data] == ["one", "two", "FedLPA's setting"]
    assert list(fig.data[0].x) == [78, 90] and list(fig.data[0].y) == [80, 50]
    assert list(fig.data[0].marker.symbol) == ["circle", "diamond"]
    assert (fig.data[2].x, fig.data[2].y) == ((78,), (80,))
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.y0) == (80, 80)

    files = {name: json.loads((Path(RESULTS_DIR) / f).read_text()) for name, f in K_HAT_STUDIES.items()}
    committed = k_hat_frontier_rows(files)
    own = {(r["within_1_alpha_0.1"], r["within_1_alpha_1"], round(r["kl"], 12)) for r in committed if r["fedlpa"]}
    assert len(own) == 1 and sum(r["fedlpa"] for r in committed) == len(K_HAT_STUDIES)


def test_a_routed_pick_other_than_fedlpas_value_is_trained_beside_fedlpa_by_the_adoption_rule(mod, tmp_path):
    """The smoothing study's routed pick is not FedLPA's count, so it is trained: the tables' FedLPA config (the
    route on) with only the knob's config field changed, beside FedLPA's own config, on the tuning seeds at both
    alphas; the committed report reads those runs. On planted runs, ``markov_merge.py``'s rule adopts a pick whose
    mean All is higher with K_hat within +-1 on >= 80 % of the clients at both alphas, and not one that loses
    either."""
    res = json.loads(Path(mod.paths("smoothing")[0]).read_text())
    v = mod.routed_value(res)
    assert v is not None and v != DiscoveryParams().smoothing and res["trained"]["value"] == v
    assert res["trained"]["fields"] == {"prior_smoothing": v}
    cfgs = mod.train_configs("smoothing", v)
    assert sorted((a, s) for a, s, *_ in cfgs) == sorted(
        (a, s) for a in mod.T.TABLE_ALPHAS for s in mod.T.TUNING_SEEDS)
    for _, _, c, b in cfgs:
        assert {k for k in c if c[k] != b[k]} == {"prior_smoothing"} and c["prior_smoothing"] == v
        assert b["coarse_k"] == DiscoveryParams().coarse_k and mod.T.load_committed(b) is not None

    def plant(pick_acc, k_off):
        for _, s, c, b in cfgs:
            for cfg, acc, off in ((c, pick_acc, k_off), (b, 0.60, 0)):
                (tmp_path / f"{mod.T.run_name(cfg)}.json").write_text(json.dumps(
                    {"acc_all": acc + 0.001 * s, "k_est": [3 + off] * 5, "k_true": [3] * 5, "config": cfg,
                     "history": []}))
        return mod.trained("smoothing", v, str(tmp_path))

    t = plant(0.61, 0)
    assert t["adopt"] and all(r["paired"]["diff"]["mean"] == pytest.approx(0.01) for r in t["rows"])
    assert not plant(0.59, 0)["adopt"]
    assert not plant(0.61, 2)["adopt"]


def test_a_setting_without_the_route_competes_with_fedlpa_as_the_library_runs_it(mod):
    """Since the route's adoption FedLPA runs routed: the mutual graph's unrouted pick keeps the K_hat bar, and the
    overall pick (every setting, routed or not) is FedLPA's routed value, whose prior is better; where that setting's
    prior were the best, it would be the overall pick."""
    res = json.loads(Path(mod.paths("mutual")[0]).read_text())
    own, unrouted = mod.routed_name("mutual", mod.value("mutual")), res["pick"]["setting"]
    assert unrouted != res["default"] and unrouted in res["overall"]["eligible"]
    assert res["overall"]["setting"] == own and res["overall"]["kl"][own] < res["overall"]["kl"][unrouted]
    assert res["overall"] == mod.record(res["records"], "mutual")["overall"]
    i = res["settings"].index(unrouted)
    better = json.loads(json.dumps(res["records"]))
    for r in better:
        for c in r["clients"]:
            c["settings"][i][3] = 0.0
    assert mod.record(better, "mutual")["overall"]["setting"] == unrouted
