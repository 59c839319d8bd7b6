"""Issue 15: the paper's two contribution-bound rules, the gradient statistics they read, the tuned defaults of
``python -m lab dp`` (nearest tuned epsilon, explicit flags win, ``tuned_from`` recorded), and the fairness
invariants of the committed tuning (every optimum interior or at a natural boundary, equal budgets)."""
import functools
import json
import math
import os

import numpy as np
import pytest
import torch

from lab.privacy import bounds as Bd
from lab.privacy import tuned as Tu
from lab.privacy.charlm import CharLM, LMConfig, window_loss
from lab.privacy.config import DPRunConfig
from lab.privacy.sweep import stored
from lab.utils import data_path


# ---------------------------------------------------------------------------------------------- bound rules
def test_els_rule_is_the_median_examples_per_user():
    assert Bd.els_rule_bound([1, 2, 3, 100, 200]) == 3          # the mean (61) would be far off
    assert Bd.els_rule_bound([1, 2, 10, 20]) == 6               # even count: midpoint, rounded
    assert Bd.els_rule_bound([1, 1, 1]) == 1
    with pytest.raises(ValueError):
        Bd.els_rule_bound([])


def test_predicted_alignment_matches_its_model_by_simulation():
    """rho_hat(k) is the mean over users of cos(g_u, mu) for g_u = mu + beta_u + mean of n draws (high d)."""
    rng = np.random.default_rng(0)
    d, mu2, tau2, s2 = 4000, 1.0, 0.5, 8.0
    mu = np.zeros(d)
    mu[0] = math.sqrt(mu2)
    for n in (1, 2, 4, 16):
        g = mu + rng.normal(0, math.sqrt(tau2 / d), (300, d)) + rng.normal(0, math.sqrt(s2 / d / n), (300, d))
        cos = float(np.mean(g @ mu / (np.linalg.norm(g, axis=1) * math.sqrt(mu2))))
        pred = Bd.predicted_alignment([n] * 300, 64, mu2=mu2, between=tau2, within=s2)
        assert abs(cos - pred) < 0.02, (n, cos, pred)
    # the bound caps each user's examples: users with 16 examples at k = 2 align like users with 2
    assert Bd.predicted_alignment([16], 2, mu2=mu2, between=tau2, within=s2) == pytest.approx(
        Bd.predicted_alignment([2], 64, mu2=mu2, between=tau2, within=s2))


@functools.lru_cache(maxsize=None)
def _uls_sigma(k, q):
    from lab.privacy.accounting import calibrate_noise

    return calibrate_noise(4.0, 1e-5, q, 100, algo="uls", discretization=1e-2)


def test_uls_rule_trades_averaging_against_users_per_step():
    counts = (np.random.default_rng(1).lognormal(2.5, 1.3, 1000)).astype(int) + 1
    kw = dict(delta=1e-5, steps=100, batch=256, noise=_uls_sigma)
    # no within-user diversity: averaging buys nothing, fewer users per step costs -> the smallest k
    flat = Bd.uls_rule_bound(counts, 4.0, stats={"mu2": 20.0, "between": 4.0, "within": 0.0}, **kw)
    assert flat["bound"] == 1
    # diverse users (the Shakespeare statistics measured here): an interior k
    div = Bd.uls_rule_bound(counts, 4.0, stats={"mu2": 20.0, "between": 4.0, "within": 277.0}, **kw)
    assert div["bound"] in (2, 4, 8), div["nsr"]
    assert set(div["nsr"]) == set(Bd.BOUND_GRID)
    # NSR is sigma / (q N rho): doubling sigma at one k doubles its ratio
    k = 4
    r1 = Bd.uls_nsr(counts, k, 1.0, 256, mu2=20.0, between=4.0, within=277.0)
    assert Bd.uls_nsr(counts, k, 2.0, 256, mu2=20.0, between=4.0, within=277.0) == pytest.approx(2 * r1)


def test_gradient_stats_match_brute_force():
    """Norms of per-example and per-user mean gradients, and the pooled within-user variance, against a
    loop with plain autograd; chunk=3 forces several chunks with users split across none of them."""
    torch.manual_seed(0)
    model = CharLM(LMConfig(block=8, n_layer=1, n_head=2, n_embd=16))
    rng = np.random.default_rng(0)
    counts = [1, 3, 2, 5, 4]
    users = [rng.integers(0, 90, (n, 9)) for n in counts]
    st = Bd.gradient_stats(model, users, 3, bound_seed=7, chunk=3)
    from lab.privacy.users import bound_contributions

    w, owner = bound_contributions(users, 3, bound_seed=7)
    grads = []
    for row in w:
        model.zero_grad()
        window_loss(model, torch.as_tensor(row[None])).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]).clone())
    G = torch.stack(grads)
    np.testing.assert_allclose(st.example_norms, G.norm(dim=1).numpy(), rtol=1e-4)
    means = torch.stack([G[torch.as_tensor(owner) == u].mean(0) for u in range(len(users))])
    np.testing.assert_allclose(st.user_norms, means.norm(dim=1).numpy(), rtol=1e-4)
    num = sum(float((G[torch.as_tensor(owner) == u] - means[u]).pow(2).sum()) for u in range(len(users)))
    den = sum(min(n, 3) - 1 for n in counts if min(n, 3) >= 2)
    assert st.within == pytest.approx(num / den, rel=1e-4)
    assert st.mu2 > 0 and st.between >= 0
    q = st.quantiles("user")
    assert q[0.0] == pytest.approx(float(st.user_norms.min())) and q[1.0] == pytest.approx(float(st.user_norms.max()))


# ---------------------------------------------------------------------------------------------- tuned defaults
FAKE = {
    "tuned": {
        "uls": {"1.0": {"bound": 2, "lr": 0.002, "clip": 7.5, "clip_quantile": 0.25},
                "8.0": {"bound": 8, "lr": 0.001, "clip": 5.0, "clip_quantile": 0.5}},
        "els": {"1.0": {"bound": 1, "lr": 0.0005, "clip": 11.0, "clip_quantile": 0.1},
                "8.0": {"bound": 4, "lr": 0.001, "clip": 12.0, "clip_quantile": 0.1}},
    },
    "norms": {str(k): {"user_quantiles": {"0.1": 10.0 / k, "0.25": 11.0 / k, "0.5": 12.0 / k},
                       "example_quantiles": {"0.1": 13.0, "0.25": 15.0, "0.5": 16.0}} for k in (1, 2, 4, 8, 16, 32)},
}


def test_nearest_tuned_epsilon_is_taken_in_log_scale():
    assert Tu.nearest_epsilon(3.0, [1.0, 8.0]) == 8.0           # |ln 3 - ln 8| < |ln 3 - ln 1| (linear: 1)
    assert Tu.nearest_epsilon(2.0, [1.0, 8.0]) == 1.0
    assert Tu.nearest_epsilon(0.5, [1.0, 8.0]) == 1.0
    assert Tu.nearest_epsilon(math.sqrt(8.0), [1.0, 8.0]) == 1.0  # a tie goes to the smaller epsilon
    assert Tu.nearest_epsilon(math.inf, [1.0, 8.0]) == 8.0


def test_apply_tuned_fills_only_unset_fields_and_records_it():
    cfg, tf = Tu.apply_tuned(DPRunConfig(algo="uls", epsilon=4.0), given=(), tuning=FAKE)
    assert (cfg.bound, cfg.lr, cfg.clip) == (8, 0.001, 5.0)
    assert tf["epsilon"] == 8.0 and tf["requested_epsilon"] == 4.0 and tf["fields"] == ["bound", "lr", "clip"]
    # an explicit flag wins; the rest still comes from the tuning
    cfg, tf = Tu.apply_tuned(DPRunConfig(algo="els", epsilon=1.0, lr=0.01), given=("lr",), tuning=FAKE)
    assert (cfg.bound, cfg.lr, cfg.clip) == (1, 0.01, 11.0) and "lr" not in tf["fields"]
    # an explicit bound: the clip goes to the tuned quantile of the norms measured at that bound
    cfg, tf = Tu.apply_tuned(DPRunConfig(algo="uls", epsilon=8.0, bound=16), given=("bound",), tuning=FAKE)
    assert cfg.bound == 16 and cfg.clip == pytest.approx(12.0 / 16) and tf["clip_placed_at_bound"] == 16
    cfg, _ = Tu.apply_tuned(DPRunConfig(algo="uls", epsilon=8.0, bound=20), given=("bound",), tuning=FAKE)
    assert cfg.clip == pytest.approx(12.0 / 16)                 # nearest measured bound in log scale
    # nothing to fill, or nothing tuned for this run
    for cfg0, given in ((DPRunConfig(algo="uls", epsilon=1.0, bound=4, lr=0.1, clip=1.0), ("bound", "lr", "clip")),
                        (DPRunConfig(algo="nonprivate", epsilon=None), ()),
                        (DPRunConfig(algo="uls", epsilon=None, noise_multiplier=1.0), ()),
                        (DPRunConfig(task="meanest", algo="uls", epsilon=1.0), ())):
        assert Tu.apply_tuned(cfg0, given=given, tuning=FAKE) == (cfg0, None)


needs_weights = pytest.mark.skipif(not os.path.exists(data_path("charlm_pretrained.safetensors")),
                                   reason="pretrained weights not built (bench/pretrain_charlm.py)")
TINY = ["--steps", "2", "--batch", "8", "--max-train-users", "20", "--eval-windows", "16", "--quiet", "--threads", "1",
        "--delta", "1e-5", "--seed", "3"]


@pytest.mark.slow
@needs_weights
def test_cli_uses_tuned_defaults_and_explicit_flags_win(tmp_path, monkeypatch):
    from lab.cli import main

    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(Tu, "load_tuning", lambda results_dir=None: FAKE)
    out = tmp_path / "tuned.json"
    assert main(["dp", "--algo", "uls", "--epsilon", "6", "--out", str(out), *TINY]) == 0
    r = json.loads(out.read_text())
    assert (r["bound"], r["lr"], r["clip"]) == (8, 0.001, 5.0)
    assert r["tuned_from"]["epsilon"] == 8.0 and r["tuned_from"]["fields"] == ["bound", "lr", "clip"]
    assert r["config"]["bound"] == 8
    out = tmp_path / "explicit.json"
    assert main(["dp", "--algo", "uls", "--epsilon", "6", "--bound", "4", "--lr", "0.01", "--clip", "2",
                 "--out", str(out), *TINY]) == 0
    r = json.loads(out.read_text())
    assert (r["bound"], r["lr"], r["clip"]) == (4, 0.01, 2.0) and "tuned_from" not in r


# ---------------------------------------------------------------------------------------------- committed results
def test_committed_tuning_is_fair():
    """Every tuned optimum is interior to its grid or at a natural boundary; both algorithms had the same
    number of tuning runs at each tuned epsilon; the curve holds whole seeds (3 evaluation seeds per algorithm and
    epsilon, paired); a curve short of 6 epsilons says what ran and what was cut."""
    tu = stored("dp_tuning.json")
    if not tu or not tu.get("tuned"):
        pytest.skip("bench/results/dp_tuning.json not finished yet (bench/run_dp_tuning.py)")
    assert not set(tu["evaluation_seeds"]) & {tu["tuning_seed"]}
    assert all(r["seed"] == tu["tuning_seed"] for r in tu["runs"])
    for algo, per in tu["tuned"].items():
        for eps, t in per.items():
            for dim in ("k", "lr", "q"):   # a reduced search (--stage subset) may carry a coordinate over, saying so
                carried = t.get("protocol", "full") != "full" and t["optimum"][dim].startswith("carried from")
                assert t["optimum"][dim] == "interior" or t["optimum"][dim].startswith("natural boundary") or carried, \
                    (algo, eps, dim, t["optimum"])
            assert t["optimum"]["k"] == "interior" or t["optimum"]["k"].startswith("natural boundary")
    tuned_eps = {e for per in tu["tuned"].values() for e in per}
    assert tuned_eps == set(tu["tuned"]["els"]) == set(tu["tuned"]["uls"])
    for eps in tuned_eps:
        assert len({tu["budget"][a][eps] for a in tu["budget"]}) == 1, (eps, tu["budget"])
    cu = stored("dp_tuned_curve.json")
    if not cu or not cu.get("summary"):
        pytest.skip("bench/results/dp_tuned_curve.json not written yet")
    assert all(r["seed"] in tu["evaluation_seeds"] for r in cu["rows"])
    eps_done = sorted({float(r["epsilon"]) for r in cu["summary"]})
    for algo in ("els", "uls"):
        rows = [r for r in cu["summary"] if r["algo"] == algo]
        assert sorted(float(r["epsilon"]) for r in rows) == eps_done
        assert all(r["n"] == 3 for r in rows) or cu["partial"]
    for p in cu["paired"]:
        s = {(r["algo"]): r for r in cu["summary"] if float(r["epsilon"]) == float(p["epsilon"])}
        both = sorted(set(s["els"]["seeds"]) & set(s["uls"]["seeds"]))
        assert p["seeds"] == both and p["diff"]["n"] == len(p["diff"]["values"]) == len(both)
        if s["els"]["seeds"] == s["uls"]["seeds"]:           # (a file being written may hold half a seed)
            assert p["diff"]["mean"] == pytest.approx(s["uls"]["mean"] - s["els"]["mean"], abs=1e-9)
    if cu.get("complete"):
        assert eps_done == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    else:                                                    # the cut is written down, not silent
        assert cu["partial"] and cu["subset"]["ran"] and cu["subset"]["cut"]


# ---------------------------------------------------------------------------------------------- the curve file
def _fake_study(tmp_path):
    """A Study over a tmp folder with hand-made runs: ULS beats ELS on every seed at eps 1, on one seed at 8."""
    from run_dp_tuning import Study

    st = Study(str(tmp_path))
    t = {"bound": 4, "lr": 1e-3, "clip": 5.0, "clip_quantile": 0.1, "tuning_loss": 2.0, "runs": 3,
         "optimum": {"k": "interior", "lr": "interior", "q": "interior"}}
    st.tune.update(tuned={a: {"1.0": dict(t), "8.0": dict(t, bound=8)} for a in ("els", "uls")},
                   rules={"els": {"bound": 17, "median": 17.0},
                          "uls": {"by_epsilon": {"1.0": {"bound": 4}, "8.0": {"bound": 4}}, "stats_bound": 32}},
                   runs=[{"algo": a, "tune_epsilon": e, "bound": k, "lr": 1e-3, "clip_quantile": 0.1,
                          "eval_loss": 2.0 + 0.01 * abs(k - 4)} for a in ("els", "uls") for e in (1.0, 8.0)
                         for k in (1, 2, 4, 8, 16, 32)])
    loss = {("els", 1.0): [2.10, 2.11, 2.12], ("uls", 1.0): [2.05, 2.07, 2.06],
            ("els", 8.0): [2.00, 2.01, 2.02], ("uls", 8.0): [2.01, 2.00, 2.03]}
    k16 = {("els", 1.0): [2.2, 2.1, 2.2], ("uls", 1.0): [2.1, 2.1, 2.1],
           ("els", 8.0): [2.1, 2.1, 2.1], ("uls", 8.0): [2.05, 2.05, 2.05]}
    base = {"noise_multiplier": 1.0, "n_train_examples": 100, "pretrained_loss": 2.3, "lr": 1e-3, "clip": 5.0}
    for (a, e), vals in loss.items():
        for seed, v in enumerate(vals):
            st.curve["rows"].append(dict(base, set="tuned", algo=a, epsilon_target=e, seed=seed, eval_loss=v,
                                         bound=4 if e == 1.0 else 8))
            st.curve["rows"].append(dict(base, set="fixed_k16", algo=a, epsilon_target=e, seed=seed,
                                         eval_loss=k16[(a, e)][seed], bound=16))
            if a == "els":
                st.curve["rows"].append(dict(base, set="rule", algo=a, epsilon_target=e, seed=seed, eval_loss=v + 0.01,
                                             bound=17))
    st.derive()
    return st


def test_curve_file_pairs_seeds_and_names_a_winner_only_when_all_agree(tmp_path):
    cu = _fake_study(tmp_path).curve
    p = {float(r["epsilon"]): r for r in cu["paired"]}
    assert p[1.0]["diff"]["values"] == pytest.approx([-0.05, -0.04, -0.06])       # ULS - ELS, seed by seed
    assert p[1.0]["winner"] == "ULS (3/3 seeds)"
    assert p[8.0]["diff"]["values"] == pytest.approx([0.01, -0.01, 0.01])
    assert p[8.0]["winner"].startswith("no clear winner")
    s = {(r["algo"], float(r["epsilon"])): r for r in cu["summary"]}
    assert s[("uls", 1.0)]["mean"] == pytest.approx(2.06) and s[("uls", 1.0)]["n"] == 3
    assert s[("els", 1.0)]["tuned_at"] == 1.0
    # tuned vs k = 16 is judged on the seeds no tuning saw (1, 2): ELS at eps 1 is worse than k16 on seed 1 only
    v = {(r["algo"], float(r["epsilon"])): r for r in cu["tuned_vs_fixed_k16"]}
    assert v[("els", 1.0)]["unseen_seeds"] == [1, 2]
    assert v[("els", 1.0)]["diff_unseen"]["values"] == pytest.approx([0.01, -0.08])
    assert v[("els", 1.0)]["at_least_as_good_on_unseen"] is False
    assert v[("uls", 1.0)]["at_least_as_good_on_unseen"] is True
    r = {(x["algo"], float(x["epsilon"])): x for x in cu["rules"]}
    assert r[("els", 1.0)]["rule_bound"] == 17 and r[("els", 1.0)]["diff"]["values"] == pytest.approx([0.01] * 3)
    assert r[("uls", 1.0)]["diff"]["values"] == [0.0, 0.0, 0.0]                      # rule k == grid k: same runs
    assert cu["complete"] is False                                                    # only 2 of 6 epsilons


def test_figures_and_summary_from_the_curve_file(tmp_path):
    from run_dp_tuning import write_summary

    from lab.viz import privacy as vp

    st = _fake_study(tmp_path)
    fig = vp.tuned_curve_figure(st.curve)
    names = [t.name for t in fig.data]
    assert len(fig.data) == 4 and any("tuned" in n for n in names) and any("k = 16" in n for n in names)
    els = next(t for t in fig.data if t.name.startswith("ELS, tuned"))
    assert list(els.y) == pytest.approx([2.11, 2.01])
    gap = vp.paired_gap_figure(st.curve)
    dots = next(t for t in gap.data if t.name == "per seed, tuned")
    assert list(dots.y) == pytest.approx([-0.05, -0.04, -0.06, 0.01, -0.01, 0.01])
    rules = vp.bound_rules_figure(st.tune)
    assert any(getattr(s, "x0", None) == 17 for s in rules.layout.shapes)             # the ELS rule's k
    st.tune["rules"]["uls"]["by_epsilon"]["1.0"]["nsr"] = {"1": 3.0, "2": 1.5, "4": 2.0}
    st.tune["rules"]["uls"]["by_epsilon"]["8.0"]["nsr"] = {"1": 2.0, "2": 4.0}
    nsr = vp.uls_nsr_figure(st.tune)
    assert min(nsr.data[0].y) == 1.0 and list(nsr.data[0].x) == [1, 2, 4]
    st.tune["budget"] = {"els": {"1.0": 3, "8.0": 3}, "uls": {"1.0": 3, "8.0": 3}}
    st.tune["tuning_seed"] = 100
    st._save_tune()
    st._save_curve()
    write_summary(str(tmp_path))
    md = (tmp_path / "dp_tuned_summary.md").read_text()
    assert "ULS (3/3 seeds)" in md and "-0.0500, -0.0400, -0.0600" in md
    assert "**Bench line:**" in md and "**no**" in md                                 # ELS at eps 1, seed 1


def test_privacy_page_shows_the_tuned_comparison(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    import result_files

    st = _fake_study(tmp_path)
    st._save_tune()
    st._save_curve()
    monkeypatch.setattr(result_files, "RESULTS_DIR", tmp_path)
    at = AppTest.from_file(os.path.join(os.path.dirname(__file__), "..", "dashboard", "app.py"), default_timeout=180)
    at.run()
    at.switch_page("views/privacy_utility.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert any("fair comparison" in s.value for s in at.subheader)
    assert any("does not" in m.value for m in at.markdown)
    tables = [d.value for d in at.dataframe]
    assert any("ULS − ELS per seed" in t.columns for t in tables)
    assert any("rule k" in t.columns for t in tables)


def test_search_finds_a_known_optimum_widens_and_equalises_budgets(tmp_path, monkeypatch):
    """The whole bench procedure (tune -> curve -> contrast -> rules) on a synthetic loss with a known optimum
    per algorithm, no training: ELS's optimum lies outside stage A's lr grid (must widen) at k = 1 and clip
    quantile 0 (natural boundaries); ULS's is interior. Both must be found and certified, with equal budgets."""
    import run_dp_tuning as R

    from lab.privacy import runner

    levels = R.Study(str(tmp_path / "probe")).q_ladder
    target = {"els": (1, 1e-4, 0.0), "uls": (8, 2e-3, 0.25)}

    def fake_run(cfg):
        k, lr, q = target[cfg.algo]
        qi = min(range(len(levels)), key=lambda i: abs(levels[i] - (cfg.clip - 1.0)))  # (k16 runs: old clips)
        d = ((math.log2(cfg.bound) - math.log2(k)) ** 2 + (R.LR_LADDER.index(cfg.lr) - R.LR_LADDER.index(lr)) ** 2
             + (qi - levels.index(q)) ** 2)
        loss = 2.0 + 0.01 * d + 0.001 * cfg.seed + (0.02 if cfg.algo == "els" else 0.0) / cfg.epsilon
        return {"algo": cfg.algo, "epsilon_target": cfg.epsilon, "seed": cfg.seed, "bound": cfg.bound, "lr": cfg.lr,
                "clip": cfg.clip, "steps": cfg.steps, "batch": cfg.batch, "delta": cfg.delta, "eval_loss": loss,
                "noise_multiplier": 1.0, "n_train_examples": 100, "pretrained_loss": 2.3, "seconds": 0.0}

    norms = {"example_quantiles": {str(q): 1.0 + q for q in levels}, "mu2": 20.0, "between": 4.0, "within": 277.0}
    norms["user_quantiles"] = norms["example_quantiles"]
    monkeypatch.setattr(runner, "run_lm", fake_run)
    monkeypatch.setattr(runner, "calibrated_noise", lambda algo, eps, delta, q, steps, k: 1.0)
    monkeypatch.setattr(R.Study, "norms", lambda self, k: norms)
    monkeypatch.setattr(R.Study, "train_windows", lambda self: [np.zeros((n, 9), int) for n in (1, 2, 3, 5, 8, 13, 40)])
    st = R.Study(str(tmp_path), quick=True)
    st.stage_tune()
    for a, (k, lr, q) in target.items():
        for e in R.TUNING_EPSILONS:
            t = st.tune["tuned"][a][str(e)]
            assert (t["bound"], t["lr"], t["clip_quantile"]) == (k, lr, q), (a, e, t)
    o = st.tune["tuned"]["els"]["1.0"]["optimum"]
    assert o["k"] == "natural boundary (k = 1)" and o["q"].startswith("natural boundary") and o["lr"] == "interior"
    assert set(st.tune["tuned"]["uls"]["8.0"]["optimum"][d] for d in ("k", "lr", "q")) == {"interior"}
    for e in R.TUNING_EPSILONS:
        assert st.tune["budget"]["els"][str(e)] == st.tune["budget"]["uls"][str(e)]
    assert st.tune["rules"]["els"]["bound"] == 5
    st.stage_curve()
    st.stage_contrast()
    st.stage_rules()
    cu = st.curve
    assert cu["complete"] and not cu["partial"]
    assert {(r["algo"], r["n"]) for r in cu["summary"]} == {("els", 3), ("uls", 3)} and len(cu["summary"]) == 12
    assert all(p["winner"] == "ULS (3/3 seeds)" for p in cu["paired"])       # ELS pays 0.02/eps by construction
    assert len(cu["fixed_k16"]["summary"]) == 12 and len(cu["tuned_vs_fixed_k16"]) == 12
    assert {r["rule_bound"] for r in cu["rules"] if r["algo"] == "els"} == {5}
    n = st.new_runs
    R.Study(str(tmp_path), quick=True).stage_tune()                          # a replay reuses every stored run
    assert len(json.loads((tmp_path / "dp_tuning.json").read_text())["runs"]) == len(st.tune["runs"]) and n > 0


def test_subset_stage_tunes_k_only_at_the_second_epsilon_and_says_so(tmp_path, monkeypatch):
    """``--stage subset`` (what fit the session): eps 1 fully tuned, eps 8 tuned in k only with eps 1's lr and
    clip quantile carried over (recorded as such, never as "interior"), the k = 16 contrast reused from the
    headline file only when every setting matches, and a tuning file that ``apply_tuned`` can read."""
    import run_dp_tuning as R

    from lab.privacy import runner
    from lab.privacy.tuned import setting_for

    levels = R.Study(str(tmp_path / "probe")).q_ladder
    best_k = {("els", 1.0): 2, ("uls", 1.0): 8, ("els", 8.0): 4, ("uls", 8.0): 16}
    target = {("els", 1.0): (1e-4, 0.0), ("uls", 1.0): (2e-3, 0.25), ("els", 8.0): (3e-4, 0.0),
              ("uls", 8.0): (2e-3, 0.25)}
    calls = []

    def fake_run(cfg):
        calls.append((cfg.algo, cfg.epsilon, cfg.bound, cfg.seed))
        lr, q = target[(cfg.algo, cfg.epsilon)]
        qi = min(range(len(levels)), key=lambda i: abs(levels[i] - (cfg.clip - 1.0)))
        d = ((math.log2(cfg.bound) - math.log2(best_k[(cfg.algo, cfg.epsilon)])) ** 2
             + (R.LR_LADDER.index(cfg.lr) - R.LR_LADDER.index(lr)) ** 2 + (qi - levels.index(q)) ** 2)
        return {"algo": cfg.algo, "epsilon_target": cfg.epsilon, "seed": cfg.seed, "bound": cfg.bound, "lr": cfg.lr,
                "clip": cfg.clip, "steps": cfg.steps, "batch": cfg.batch, "delta": cfg.delta,
                "eval_loss": 2.0 + 0.01 * d + 0.001 * cfg.seed, "noise_multiplier": 1.0, "n_train_examples": 100,
                "pretrained_loss": 2.3, "seconds": 0.0}

    norms = {"example_quantiles": {str(q): 1.0 + q for q in levels}, "mu2": 20.0, "between": 4.0, "within": 277.0}
    norms["user_quantiles"] = norms["example_quantiles"]
    monkeypatch.setattr(runner, "run_lm", fake_run)
    monkeypatch.setattr(runner, "calibrated_noise", lambda algo, eps, delta, q, steps, k: 1.0)
    asked = set()                                            # bounds whose norms were asked for (each costs a run)
    monkeypatch.setattr(R.Study, "norms", lambda self, k: (asked.add(int(k)), norms)[1])
    monkeypatch.setattr(R.Study, "train_windows", lambda self: [np.zeros((n, 9), int) for n in (1, 2, 3, 5, 8, 13, 40)])
    # the committed k = 16 runs: ELS's match today's settings, ULS's were made with another batch (not reusable)
    from lab.privacy.runner import DEFAULTS

    st = R.Study(str(tmp_path), quick=True)
    old = [{"algo": a, "epsilon_target": e, "seed": s, "bound": 16, "clip": DEFAULTS[a]["clip"],
            "lr": DEFAULTS[a]["lr"],
            "steps": st.settings["steps"], "batch": st.settings["batch"] + (a == "uls"), "delta": st.settings["delta"],
            "eval_loss": 2.5, "noise_multiplier": 1.0, "n_train_examples": 100, "pretrained_loss": 2.3,
            "config": {f: st.settings.get(f) for f in ("max_train_users", "eval_windows")}}
           for a in ("els", "uls") for e in (1.0, 8.0) for s in (0, 1, 2)]
    monkeypatch.setattr(R.Study, "headline_k16", lambda self: {"rows": old})
    st.tune["norms"] = {str(k): norms for k in R.K_GRID}
    full = R.Study.tune_k_lr                                 # the search as designed (the session ran k only)
    monkeypatch.setattr(R.Study, "tune_k_lr", lambda self, eps, src, **kw: full(self, eps, src, dims=("k", "lr"),
                                                                                 k_grid=R.K_GRID))
    st.stage_subset()
    tu, cu = st.tune, st.curve
    for a in ("els", "uls"):
        assert tu["tuned"][a]["1.0"]["protocol"] == "full"
        t8 = tu["tuned"][a]["8.0"]
        assert (t8["bound"], t8["lr"]) == (best_k[(a, 8.0)], target[(a, 8.0)][0])      # ELS's lr moved: found
        assert t8["optimum"]["k"] == t8["optimum"]["lr"] == "interior"
        assert t8["clip_quantile"] == tu["tuned"][a]["1.0"]["clip_quantile"]
        assert t8["protocol"].startswith("k and lr only")
    assert tu["budget"]["els"]["8.0"] == tu["budget"]["uls"]["8.0"] > 6                 # equal, after padding
    for a in ("els", "uls"):                                 # the whole k grid ran at eps 1's lr before the search
        lr1 = tu["tuned"][a]["1.0"]["lr"]
        assert {r["bound"] for r in tu["runs"] if r["algo"] == a and r["tune_epsilon"] == 8.0 and r["lr"] == lr1
                and r["stage"] == "k-lr"} >= set(R.K_GRID)
    assert asked <= set(R.K_GRID)                            # the ELS rule's k = 5 takes its clip from a measured k
    assert tu["tuned"]["uls"]["8.0"]["optimum"]["q"].startswith("carried from eps=1")    # never "interior"
    assert tu["tuned"]["els"]["8.0"]["optimum"]["q"].startswith("natural boundary")
    assert setting_for(tu, "uls", 4.0)[0] == 8.0 and setting_for(tu, "uls", 2.0)[0] == 1.0
    s = {(r["algo"], float(r["epsilon"])): r for r in cu["summary"]}
    assert set(s) == {(a, e) for a in ("els", "uls") for e in (1.0, 8.0)} and all(r["n"] == 3 for r in s.values())
    assert s[("uls", 8.0)]["bound"] == 16 and s[("uls", 8.0)]["tuning"].startswith("k and lr only")
    reused = [r for r in cu["rows"] if r.get("reused_from")]
    assert {r["algo"] for r in reused} == {"els"} and len(reused) == 6               # ULS's batch differs: re-run
    assert ("uls", 1.0, 16, 0) in calls and ("els", 1.0, 16, 0) not in calls
    rc = cu["reuse_check"]                                                           # one reused run re-run
    assert (rc["algo"], rc["seed"], rc["stored_loss"]) == ("els", 1, 2.5) and rc["abs_diff"] > 0.1
    assert {(r["algo"], float(r["epsilon"])) for r in cu["rules"]} == {(a, e) for a in ("els", "uls")
                                                                        for e in (1.0, 8.0)}
    assert cu["subset"]["cut"] and cu["complete"] is False and cu["partial"] is True and cu["missing"] == []
    # the reduced search that fit the session (k only, from eps 1's k): k found by local search, lr carried over
    st2 = R.Study(str(tmp_path / "k_only"), quick=True)
    st2.tune.update(norms=st.tune["norms"], tuned={a: {"1.0": tu["tuned"][a]["1.0"]} for a in ("els", "uls")},
                    rules=tu["rules"])
    st2.seen = {key: v for key, v in st.seen.items() if key[1] == 1.0}
    monkeypatch.undo()
    monkeypatch.setattr(runner, "run_lm", fake_run)
    monkeypatch.setattr(runner, "calibrated_noise", lambda algo, eps, delta, q, steps, k: 1.0)
    monkeypatch.setattr(R.Study, "norms", lambda self, k: norms)
    monkeypatch.setattr(R.Study, "train_windows", lambda self: [np.zeros((n, 9), int) for n in (1, 2, 3, 5, 8, 13, 40)])
    st2.tune_k_lr(8.0, 1.0, dims=("k",), k_grid=())
    for a in ("els", "uls"):
        t8 = st2.tune["tuned"][a]["8.0"]
        assert t8["bound"] == best_k[(a, 8.0)] and t8["optimum"]["k"] == "interior"
        assert t8["protocol"].startswith("k only")
        assert t8["lr"] == tu["tuned"][a]["1.0"]["lr"] and t8["optimum"]["lr"].startswith("carried from eps=1")
    assert st2.tune["budget"]["els"]["8.0"] == st2.tune["budget"]["uls"]["8.0"] < 6   # cheaper than the k grid
    st2.curve["rows"] = [r for r in st.curve["rows"] if r["epsilon_target"] == 1.0]
    st2.derive()                                             # eps 8 holds no evaluation run yet: all listed
    assert "tuned uls eps=8 seed=2" in st2.curve["missing"] and "tuned els eps=1 seed=0" not in st2.curve["missing"]
    # --stage refine, in a fresh process: the k-only point is certified in k, lr and clip quantile, so ELS's lr
    # (carried from eps 1, wrong at eps 8 by construction) moves to eps 8's optimum and is "interior"
    st3 = R.Study(str(tmp_path / "k_only"), quick=True)
    st3.refine(8.0)
    for a in ("els", "uls"):
        t8 = st3.tune["tuned"][a]["8.0"]
        assert (t8["bound"], t8["lr"], t8["clip_quantile"]) == (best_k[(a, 8.0)], *target[(a, 8.0)]), (a, t8)
        assert t8["optimum"]["k"] == t8["optimum"]["lr"] == "interior"
        assert t8["optimum"]["q"] == "interior" or t8["optimum"]["q"].startswith("natural boundary")
        assert t8["protocol"].startswith("k from eps=1") and t8["refined"] is True
    assert st3.tune["budget"]["els"]["8.0"] == st3.tune["budget"]["uls"]["8.0"]
    assert len(st3.tune["runs"]) > len(st2.tune["runs"])     # the k-only runs were reused, not re-run


def test_two_processes_grow_one_curve_file(tmp_path, monkeypatch):
    """``--epsilons`` splits the curve over processes: each Study read the file before the other wrote, and
    each save merges the other's rows (by run key) instead of overwriting them."""
    import run_dp_tuning as R

    from lab.privacy import runner

    def fake_run(cfg):
        return {"algo": cfg.algo, "epsilon_target": cfg.epsilon, "seed": cfg.seed, "bound": cfg.bound, "lr": cfg.lr,
                "clip": cfg.clip, "eval_loss": 2.0 + 0.1 / cfg.epsilon, "noise_multiplier": 1.0,
                "n_train_examples": 100, "pretrained_loss": 2.3, "seconds": 0.0}

    monkeypatch.setattr(runner, "run_lm", fake_run)
    t = {"bound": 4, "lr": 1e-3, "clip": 5.0, "clip_quantile": 0.1, "tuning_loss": 2.0, "runs": 3,
         "optimum": {"k": "interior", "lr": "interior", "q": "interior"}}
    st = R.Study(str(tmp_path), quick=True)
    st.tune.update(tuned={a: {"1.0": dict(t), "8.0": dict(t)} for a in ("els", "uls")},
                   rules={"els": {"bound": 4, "median": 4.0},
                          "uls": {"by_epsilon": {"1.0": {"bound": 4}, "8.0": {"bound": 4}}, "stats_bound": 32}})
    st._save_tune()
    a, b = R.Study(str(tmp_path), quick=True), R.Study(str(tmp_path), quick=True)   # both read an empty curve
    a.stage_curve((0.5, 1.0))
    b.stage_curve((8.0, 16.0))
    rows = json.loads((tmp_path / "dp_tuned_curve.json").read_text())["rows"]
    assert {(r["epsilon_target"], r["algo"], r["seed"]) for r in rows} == {
        (e, al, s) for e in (0.5, 1.0, 8.0, 16.0) for al in ("els", "uls") for s in R.EVAL_SEEDS}
    assert len(rows) == 4 * 2 * len(R.EVAL_SEEDS)            # no row twice
