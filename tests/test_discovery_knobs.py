"""bench/discovery_knobs.py: each committed report is what its per-client records give, each setting is the
discovery FedLPA would make with it (the knob included), and FedLPA's own setting is the discovery its runs made."""
import json
from pathlib import Path

import pytest

from lab.gcd.discovery import DiscoveryParams, discover
from lab.gcd.prior import empirical_prior, head_kl, oracle_heads
from tests.test_backbones import _script
from tests.test_discovery import MANY_SMALL, H, OLD, model_probs, planted

KNOBS = ("num_trials", "knn_k")


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
    assert res["default"] == mod.name(knob, lib.markov_time, lib.merge_new_cosine, getattr(lib, knob)) \
        == mod.default(knob)
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


def test_each_setting_is_the_discovery_fedlpa_would_make_with_it(mod, knob, monkeypatch):
    """A planted client (ten small classes, five new) through ``one``: every (markov time, merging threshold, knob
    value) records the K_hat and KL(oracle || pi) that ``discover`` gives with those parameters."""
    x, y, lab, y_vis = planted(*MANY_SMALL, spread=1.3)
    probs = model_probs(y, p=0.2)
    params = DiscoveryParams()
    kw = {"prefix_features": x, "params": params, "seed": 0}
    k_est = discover(x, probs, lab, y_vis, OLD, H, **kw).k_est
    view = mod.KA.client_view(0, y, k_est, (x, probs, lab, y_vis, OLD, H), kw, n_classes=10)
    monkeypatch.setattr(mod.KA, "kept_clients", lambda alpha, seed: (None, set(OLD), [view]))
    out = mod.one((0.1, 0, knob))
    got = out["clients"][0]["settings"]
    oracle = empirical_prior(oracle_heads(y, probs, OLD, H), H, params.smoothing)
    k_hats = {}
    for i, (m, t, v) in enumerate(mod.grid(knob)):
        d = discover(x, probs, lab, y_vis, OLD, H, prefix_features=x, seed=0,
                     params=params.replace(markov_time=m, merge_new_cosine=t, **{knob: v}))
        assert got[i][0] == d.k_est and got[i][3] == pytest.approx(head_kl(oracle, d.prior)), (m, t, v)
        k_hats[(m, t, v)] = d.k_est
    assert set(out["seconds"]) == {str(v) for v in mod.KNOBS[knob][0]}
    if knob == "knn_k":          # the planted client tells the graph's k apart
        assert len({k_hats[(1.5, None, v)] for v in mod.KNOBS[knob][0]}) > 1
