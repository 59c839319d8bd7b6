"""bench/new_split.py: the committed report is what its per-client records give, the pick follows its rule, and the
hidden-class diagnostic measures what it names."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.test_backbones import _script


@pytest.fixture(scope="module")
def mod():
    return _script("bench/new_split.py")


@pytest.mark.parametrize("backbone", ["pretrained", "pretrained-wide"])
def test_the_committed_report_is_what_its_records_give(mod, backbone):
    json_path, md_path = mod.paths(backbone)
    res = json.loads(Path(json_path).read_text())
    again = mod.record(res["records"], backbone)
    assert json.loads(json.dumps(again)) == res
    assert Path(md_path).read_text() == "\n".join(mod.lines(res)) + "\n"
    # every seed x alpha, and each client's "off" K_hat is the one FedLPA's run discovered (checked when made)
    assert sorted((r["alpha"], r["seed"]) for r in res["records"]) == sorted(
        (a, s) for a in mod.T.TABLE_ALPHAS for s in mod.TUNING + mod.EVALUATION)
    assert res["shares"][0] == "off" and mod.SHARES[0] is None
    from lab.gcd.discovery import DiscoveryParams
    assert DiscoveryParams().split_new_share is None          # no pick is adopted: the library keeps it off
    if backbone == "pretrained":                              # the library's own backbone: picked off
        assert res["pick"]["setting"] == "off"
    assert res.get("backbone", "pretrained") == backbone


def test_the_pick_takes_the_lowest_kl_among_settings_that_keep_k_hat_within_one(mod):
    def rows(setting, w01, w1, kl01, kl1):
        return [{"setting": setting, "alpha": 0.1, "within_1": w01, "kl": kl01},
                {"setting": setting, "alpha": 1.0, "within_1": w1, "kl": kl1}]
    planted = rows("off", 0.8, 0.9, 0.3, 0.2) + rows("share 0.2", 0.7, 0.9, 0.1, 0.1) \
        + rows("share 0.3", 0.85, 0.8, 0.25, 0.2)
    got = mod.pick(planted)
    assert got["setting"] == "share 0.3"           # share 0.2 has the lowest KL but misses the bar at alpha 0.1
    assert got["eligible"] == ["off", "share 0.3"]
    # none passes: all compete by KL
    assert mod.pick(rows("off", 0.7, 0.9, 0.3, 0.2) + rows("share 0.2", 0.7, 0.9, 0.1, 0.1))["setting"] == "share 0.2"


def test_hidden_measures_how_much_of_a_hidden_new_class_the_model_puts_on_its_hosts_head(mod):
    # one new community of 60 samples of class 5 and 40 of class 6 (6 is hidden: the majority of none); the model
    # puts class 5 on head 7, and 30 of the 40 class-6 samples on head 7 as well, 10 on head 8
    y = np.r_[np.full(60, 5), np.full(40, 6)]
    pred = np.r_[np.full(60, 7), np.full(30, 7), np.full(10, 8)]
    probs = np.eye(10)[pred]
    d = SimpleNamespace(communities=SimpleNamespace(labels=np.zeros(100, int)), claims=np.array([-1]))
    assert mod.hidden(d, y, probs, {0, 1, 2, 3, 4}, [5, 6]) == [
        {"host": pytest.approx(0.75), "old": 0.0, "own": pytest.approx(0.25)}]
    # the same with 10 of class 6 on old head 2 instead of new head 8
    probs_old = np.eye(10)[np.r_[pred[:90], np.full(10, 2)]]
    assert mod.hidden(d, y, probs_old, {0, 1, 2, 3, 4}, [5, 6]) == [
        {"host": pytest.approx(0.75), "old": pytest.approx(0.25), "own": 0.0}]
    # the host's head is where its own class mostly is, not the community's most common head: class 5 on heads 7
    # (25), 9 (20) and old head 2 (15); class 6 on heads 9 (30) and 8 (10), so head 9 is the community's mode
    pred2 = np.r_[np.full(25, 7), np.full(20, 9), np.full(15, 2), np.full(30, 9), np.full(10, 8)]
    assert mod.hidden(d, y, np.eye(10)[pred2], {0, 1, 2, 3, 4}, [5, 6]) == [
        {"host": 0.0, "old": 0.0, "own": pytest.approx(0.75)}]
    # a class with its own community is not hidden
    d2 = SimpleNamespace(communities=SimpleNamespace(labels=np.r_[np.zeros(60, int), np.ones(40, int)]),
                         claims=np.array([-1, -1]))
    assert mod.hidden(d2, y, probs, {0, 1, 2, 3, 4}, [5, 6]) == []
