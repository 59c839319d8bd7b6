"""The one-run audit (lab.privacy.audit): its p-value against brute-force binomial sums and an independent
implementation written here, its validity on a mechanism whose privacy is known exactly, its power on a
non-private run, ``epsilon_lower <= epsilon_claimed`` on private runs, and a broken mechanism caught."""
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom

from lab.cli import main
from lab.privacy import audit as AU
from lab.privacy import meanest
from lab.utils import LabError


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    """One calibration cache per module: its tests share sigmas, never another run's files."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


# ----------------------------------------------------------------------------------------- the p-value
def brute_p(m, r, v, eps, delta):
    """Steinke et al.'s bound summed term by term in exact rationals (the success probability is the float
    e^eps / (1 + e^eps), taken exactly)."""
    p = Fraction(1.0 / (1.0 + math.exp(-eps)))
    pmf = [math.comb(r, w) * p ** w * (1 - p) ** (r - w) for w in range(r + 1)]
    beta = sum(pmf[v:], Fraction(0))
    alpha = max((sum(pmf[v - i:v], Fraction(0)) / i for i in range(1, v + 1)), default=Fraction(0))
    return float(min(beta + 2 * m * Fraction(delta) * alpha, Fraction(1)))


def sf_p(m, r, v, eps, delta):
    """The same bound through scipy's survival function, the way public implementations write it."""
    q = 1.0 / (1.0 + math.exp(-eps))
    beta = binom.sf(v - 1, r, q)
    i = np.arange(1, v + 1)
    alpha = np.max((binom.sf(v - i - 1, r, q) - beta) / i, initial=0)
    return min(beta + 2 * m * delta * alpha, 1.0)


@pytest.mark.parametrize("m,r,v,eps,delta", [
    (10, 10, 9, 1.0, 0.0), (10, 10, 10, 2.0, 1e-3), (20, 8, 7, 0.5, 1e-2), (30, 12, 12, 3.0, 1e-4),
    (50, 20, 15, 0.3, 1e-5), (6, 6, 4, 0.0, 0.05), (40, 30, 25, 1.7, 0.0), (100, 24, 20, 4.0, 1e-3),
])
def test_p_value_matches_brute_force_and_an_independent_implementation(m, r, v, eps, delta):
    ours = AU.p_value(m, r, v, eps, delta)
    assert ours == pytest.approx(brute_p(m, r, v, eps, delta), rel=1e-9, abs=1e-15)
    assert ours == pytest.approx(sf_p(m, r, v, eps, delta), rel=1e-7, abs=1e-12)


def test_p_value_includes_the_delta_term():
    base = AU.p_value(1000, 100, 90, 2.0, 0.0)
    with_delta = AU.p_value(1000, 100, 90, 2.0, 1e-4)
    assert with_delta > base                                    # dropping the term would be optimistic
    assert AU.epsilon_lower(1000, 100, 90, 1e-4) < AU.epsilon_lower(1000, 100, 90, 0.0)
    assert AU.epsilon_lower(1000, 100, 100, 0.5) == 0.0        # 2 m delta = 1000: nothing can be rejected


def test_epsilon_lower_is_the_edge_of_the_rejection_region():
    m, r, v, d = 1000, 200, 170, 1e-5
    e = AU.epsilon_lower(m, r, v, d)
    assert e > 0
    assert AU.p_value(m, r, v, e, d) <= AU.SIGNIFICANCE < AU.p_value(m, r, v, e + 1e-4, d)
    assert AU.epsilon_lower(m, r, 100, d) == 0.0                # chance level proves nothing
    lows = [AU.epsilon_lower(m, r, v, d) for v in (120, 140, 160, 180, 200)]
    assert all(a < b for a, b in zip(lows, lows[1:]))


def test_bound_is_valid_on_randomized_response():
    """m canaries whose in/out bit goes through randomized response at eps0 — exactly (eps0, 0)-DP and the
    worst case for the bound: the audit at eps0 must reject no more than 5 % of the time."""
    rng = np.random.default_rng(0)
    eps0, m, trials = 1.0, 60, 400
    keep = math.exp(eps0) / (1 + math.exp(eps0))
    rejected = 0
    for _ in range(trials):
        s = rng.random(m) < 0.5
        out = np.where(rng.random(m) < keep, s, ~s)
        scores = out + 1e-9 * rng.random(m)              # guess "in" for the reported ones
        if AU.audit_scores(scores, s, 0.0)["epsilon_lower"] > eps0:
            rejected += 1
    assert rejected / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)


def test_guesses_split_in_and_out_and_count_right():
    s = np.array([True] * 6 + [False] * 6)
    scores = np.arange(12.0)[::-1]                      # the 6 "in" canaries score highest
    res = AU.audit_scores(scores, s, 0.0)
    assert all(row["correct"] == row["guesses"] for row in res["by_guesses"])
    assert res["auc"] == 1.0
    flipped = AU.audit_scores(-scores, s, 0.0)
    assert all(row["correct"] == 0 for row in flipped["by_guesses"]) and flipped["epsilon_lower"] == 0.0


# ----------------------------------------------------------------------------------------- the audit runs
def _meanest(algo, epsilon, **kw):
    args = dict(task="meanest", algo=algo, epsilon=epsilon, canaries=200, bound=4, steps=400, seed=3)
    args.update(kw)
    return AU.run_audit(AU.AuditConfig(**args))


def test_nonprivate_audit_has_power():
    r = _meanest("nonprivate", None)
    assert r["epsilon_claimed"] is None
    assert r["epsilon_lower"] >= 1.0
    assert r["scores"]["whitebox"]["auc"] > 0.99


@pytest.mark.parametrize("epsilon", [1.0, 8.0])
def test_uls_audit_stays_below_its_claim(epsilon):
    r = _meanest("uls", epsilon)
    assert 0 < r["epsilon_claimed"] <= epsilon
    for s in AU.SCORES:
        assert r["scores"][s]["epsilon_lower"] <= r["epsilon_claimed"]


def test_audit_catches_noise_cut_to_a_tenth(monkeypatch):
    """The mutation the review ran by hand: the noise of a step cut to 0.1x. The accountant still claims
    eps = 1; the audit's lower bound must exceed it."""
    real = meanest.STEP["uls"]
    monkeypatch.setitem(meanest.STEP, "uls", lambda th, pop, q, rng, clip, z: real(th, pop, q, rng, clip, z / 10))
    r = _meanest("uls", 1.0)
    assert r["epsilon_lower"] > r["epsilon_claimed"]


def test_denominators_and_rate_do_not_depend_on_which_canaries_are_in():
    """q and the public counts come from the configuration; two coin draws give the same mechanism."""
    a, b = _meanest("nonprivate", None, seed=1, steps=2), _meanest("nonprivate", None, seed=2, steps=2)
    assert a["canaries_in"] != b["canaries_in"]
    for key in ("sampling_rate", "public_users", "public_examples"):
        assert a[key] == b[key]
    assert a["public_users"] == a["n_real_users"] + a["canaries"] / 2


def test_audit_config_names_the_bad_parameter():
    for kw, name in [(dict(canaries=3), "canaries"), (dict(algo="els", epsilon=None), "epsilon"),
                     (dict(epsilon=0.0), "epsilon"), (dict(delta=1.0), "delta"), (dict(bound=0), "bound"),
                     (dict(task="cifar"), "task"), (dict(score="grey"), "score"), (dict(steps=0), "steps")]:
        with pytest.raises(LabError, match=name):
            AU.AuditConfig(**kw).validate()


def test_cli_writes_the_documented_record(tmp_path):
    out = tmp_path / "a.json"
    rc = main(["dp-audit", "--task", "meanest", "--algo", "uls", "--epsilon", "2", "--delta", "1e-5", "--bound",
               "4", "--canaries", "100", "--seed", "5", "--steps", "200", "--out", str(out), "--quiet"])
    assert rc == 0
    r = json.loads(out.read_text())
    for key in ("task", "algo", "epsilon_claimed", "delta", "epsilon_lower", "canaries", "guesses", "correct",
                "seed", "seconds", "privacy_statement"):
        assert key in r
    assert r["task"] == "meanest" and r["algo"] == "uls" and r["canaries"] == 100 and r["seed"] == 5
    assert r["epsilon_lower"] <= r["epsilon_claimed"] <= 2.0
    assert 0 <= r["correct"] <= r["guesses"] <= 100


@pytest.mark.slow
def test_charlm_audit_smoke():
    """Dirac gradient canaries through the real char-LM steps: a non-private run shows power, a private
    one stays below its claim."""
    kw = dict(task="charlm", canaries=60, bound=2, steps=30, batch=32, max_train_users=40, seed=1)
    np_run = AU.run_audit(AU.AuditConfig(algo="nonprivate", epsilon=None, **kw))
    assert np_run["scores"]["whitebox"]["auc"] > 0.99 and np_run["epsilon_lower"] > 1.0
    priv = AU.run_audit(AU.AuditConfig(algo="uls", epsilon=2.0, **kw))
    assert priv["epsilon_lower"] <= priv["epsilon_claimed"] <= 2.0


def test_audit_figure_draws_every_run_and_the_diagonal():
    from lab.viz.privacy import audit_figure

    runs = [_meanest("nonprivate", None), _meanest("uls", 8.0)]
    fig = audit_figure({"runs": runs})
    by_name = {t.name.split(" — ")[0]: t for t in fig.data}
    assert "ε_lower = ε claimed" in by_name and len(fig.data) == 3
    uls, nonprivate = by_name["ULS (user-level sampling)"], by_name["non-private"]
    assert list(uls.y) == [runs[1]["epsilon_lower"]] and list(nonprivate.y) == [runs[0]["epsilon_lower"]]
    assert nonprivate.x[0] > uls.x[0] == runs[1]["epsilon_claimed"]          # the non-private run sits at "∞"
    from lab.viz.privacy import audit_scores_figure

    hist = audit_scores_figure(runs)                                             # in and out, per run
    assert len(hist.data) == 4
    assert sum(len(t.x) for t in hist.data[:2]) == runs[0]["canaries"]
    assert len(hist.data[0].x) == sum(runs[0]["canary_in"]["whitebox"])


def test_audit_summary_flags_a_run_above_its_claim():
    """The summary tables of the notebook and the page: mean and std over seeds, and the one run above its claim
    turns its group's ``all_below_claim`` False (the check the bench's Done-when reads)."""
    def run(algo, seed, claimed, lower):
        return {"task": "meanest", "algo": algo, "epsilon_target": None if claimed is None else round(claimed),
                "epsilon_claimed": claimed, "epsilon_lower": lower, "seed": seed,
                "scores": {"blackbox": {"epsilon_lower": lower / 2}}}

    runs = [run("uls", 0, 2.0, 0.5), run("uls", 1, 2.0, 1.5), run("els", 0, 2.0, 0.4), run("els", 1, 2.0, 2.1),
            run("nonprivate", 0, None, 4.0)]
    rows = {r["algo"]: r for r in AU.audit_summary(runs)}
    assert rows["uls"]["epsilon_lower_mean"] == pytest.approx(1.0)
    assert rows["uls"]["epsilon_lower_std"] == pytest.approx(np.std([0.5, 1.5], ddof=1))
    assert rows["uls"]["all_below_claim"] is True and rows["uls"]["worst_ratio"] == pytest.approx(0.75)
    assert rows["els"]["all_below_claim"] is False and rows["els"]["worst_ratio"] == pytest.approx(1.05)
    assert rows["nonprivate"]["all_below_claim"] is None and rows["nonprivate"]["epsilon_lower_std"] is None
