"""Tests that catch a broken mechanism: each measures what a training step *does* (never what a record
says) and fails on the mutation named in its docstring (mutations tried: see the issue-11 report).

* noise: with zero gradients a step returns pure noise of std z C / D per coordinate (ELS and ULS, torch
  steps and their numpy twins, seeded and secure generators);
* sampling: the realised batch size, read back from the step's output, has the Poisson (Binomial) mean
  and variance;
* the record: q, k, T and sigma reported by a run equal the ones its steps were called with;
* the target: a calibrated epsilon never exceeds its target (library and CLI).
"""
import json
import math
import os

import numpy as np
import pytest
import torch

from lab.cli import main
from lab.privacy import accounting as A
from lab.privacy import els, meanest, runner, uls
from lab.privacy.charlm import CharLM, LMConfig
from lab.privacy.config import DPRunConfig
from lab.privacy.mechanism import SecureRNG
from lab.privacy.users import BoundedUsers
from lab.utils import data_path

TINY = LMConfig(block=8, n_layer=1, n_head=2, n_embd=16)
STEPS = {"els": els.els_step, "uls": uls.uls_step}


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    """One calibration cache per module: its tests share sigmas, never another run's files."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def _model():
    torch.manual_seed(0)
    m = CharLM(TINY)
    return m, {n: p.detach() for n, p in m.named_parameters()}


def _users(counts):
    w = torch.randint(0, 96, (sum(counts), TINY.block + 1), generator=torch.Generator().manual_seed(1))
    return BoundedUsers.build(w, torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)))


def _constant_rows(monkeypatch, value: float):
    """Every window's gradient := the same vector (each coordinate ``value``), in both step modules."""
    def fake(model, params, windows, chunk_size=None):
        return {n: torch.full((len(windows),) + tuple(p.shape), value) for n, p in params.items()}
    monkeypatch.setattr(els, "per_example_grads", fake)
    monkeypatch.setattr(uls, "per_example_grads", fake)


def _flat(g):
    return torch.cat([t.reshape(-1) for t in g.values()])


def _denominator(algo, q, data):
    return q * (data.n_examples if algo == "els" else data.n_users)


def _generator(kind, seed=0):
    return SecureRNG() if kind == "secure" else torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("gen", ["seeded", "secure"])
@pytest.mark.parametrize("algo", ["els", "uls"])
def test_torch_step_noise_std_is_z_C_over_D(monkeypatch, algo, gen):
    """Zero gradients -> the step's output is the noise alone: per coordinate N(0, (z C / D)^2), D = qM (ELS)
    or qN (ULS). Catches: noise scaled by 0.1 (or any factor off by > 3 %), noise not scaled by C, a
    denominator that follows the realised batch, noise reused across coordinates or steps."""
    _constant_rows(monkeypatch, 0.0)
    model, params = _model()
    data = _users([3, 1, 4, 2, 5, 1, 2, 2])
    z, C, q = 1.3, 0.7, 0.4
    g = _generator(gen)
    draws = torch.stack([_flat(STEPS[algo](model, params, data, sampling_rate=q, clip=C, noise_multiplier=z,
                                           generator=g).grads) for _ in range(30)])
    want = z * C / _denominator(algo, q, data)
    assert draws.std().item() == pytest.approx(want, rel=0.03)
    assert abs(draws.mean().item()) < 4 * want / math.sqrt(draws.numel())
    # fresh noise each step and each coordinate
    assert abs(np.corrcoef(draws[0].numpy(), draws[1].numpy())[0, 1]) < 0.05
    assert len(torch.unique(draws[0])) > 0.99 * draws.shape[1]


def _numpy_population(n=200, k=4, d=30, rows=0.0, theta=None):
    """Every example at theta - rows, so every gradient theta - x equals the constant ``rows`` vector."""
    theta = np.zeros(d) if theta is None else theta
    x = np.broadcast_to(theta - rows, (n, k, d)).copy()
    return meanest._Population(x.reshape(-1, d), x.mean(axis=1), n, k), theta


@pytest.mark.parametrize("gen", ["seeded", "secure"])
@pytest.mark.parametrize("algo", ["els", "uls"])
def test_numpy_step_noise_std_is_z_C_over_D(algo, gen):
    """The tier-1 twins: D = q N k (ELS) or q N (ULS). Catches the same mutations as the torch test."""
    pop, theta = _numpy_population()
    z, C, q = 0.9, 2.5, 0.05
    rng = SecureRNG() if gen == "secure" else np.random.default_rng(0)
    draws = np.stack([meanest.STEP[algo](theta, pop, q, rng, C, z) for _ in range(3000)])
    want = z * C / (q * pop.n * pop.k if algo == "els" else q * pop.n)
    assert draws.std() == pytest.approx(want, rel=0.03)
    assert abs(draws.mean()) < 4 * want / math.sqrt(draws.size)


# ---------------------------------------------------------------------------------------------- sampling
def _check_poisson(sizes, n, q):
    sizes = np.asarray(sizes, float)
    mean, var = n * q, n * q * (1 - q)
    se_mean = math.sqrt(var / len(sizes))
    assert abs(sizes.mean() - mean) < 4 * se_mean, (sizes.mean(), mean)
    assert 0.7 * var < sizes.var(ddof=1) < 1.35 * var, (sizes.var(ddof=1), var)


@pytest.mark.parametrize("algo", ["els", "uls"])
def test_torch_sampling_is_poisson(monkeypatch, algo):
    """Batch sizes read back from the step's output (constant gradients u, no noise: output = b u / D) have
    the Binomial(n, q) mean and variance of Poisson sampling over examples (ELS) or users (ULS). Catches:
    a fixed-size batch (variance 0), a wrong rate, sampling without the coin flip per unit."""
    _constant_rows(monkeypatch, 1e-3)                       # each row's norm is far below the clip
    model, params = _model()
    data = _users([2, 3, 1, 4, 2, 3, 1, 2, 3, 2, 4, 1, 3, 2, 2])
    q, n = 0.3, (data.n_examples if algo == "els" else data.n_users)
    g = torch.Generator().manual_seed(3)
    sizes = []
    for _ in range(400):
        out = _flat(STEPS[algo](model, params, data, sampling_rate=q, clip=10.0, noise_multiplier=0.0,
                                generator=g).grads)
        sizes.append(round(out.mean().item() * _denominator(algo, q, data) / 1e-3))
    _check_poisson(sizes, n, q)


@pytest.mark.parametrize("algo", ["els", "uls", "nonprivate"])
def test_numpy_sampling_is_poisson(algo):
    """The tier-1 twins (also the non-private baseline, which samples like ELS)."""
    u = np.full(30, 0.01)
    pop, theta = _numpy_population(n=60, k=3, rows=u)
    q = 0.2
    rng = np.random.default_rng(5)
    n = pop.n * pop.k if algo in ("els", "nonprivate") else pop.n
    sizes = [round(meanest.STEP[algo](theta, pop, q, rng, 10.0, 0.0).mean() * q * n / 0.01) for _ in range(600)]
    _check_poisson(sizes, n, q)


# ------------------------------------------------------------------------------------------- the record
class _Spy:
    """Wraps a step function and keeps what every call was really given."""

    def __init__(self, fn, kind):
        self.fn, self.kind, self.calls = fn, kind, []

    def __call__(self, *args, **kw):
        if self.kind == "torch":
            model, params, data = args[:3]
            self.calls.append({"q": kw["sampling_rate"], "z": kw["noise_multiplier"], "clip": kw["clip"],
                               "k": int(data.counts.max())})
        else:
            theta, pop, q, rng, clip, z = args
            self.calls.append({"q": q, "z": z, "clip": clip, "k": pop.k})
        return self.fn(*args, **kw)

    def used(self, key):
        values = {c[key] for c in self.calls}
        assert len(values) == 1, (key, values)
        return values.pop()


def _check_record(r, spy, algo):
    assert len(spy.calls) == r["steps"]                                        # T
    assert spy.used("q") == r["sampling_rate"]                                 # q
    assert spy.used("z") == r["noise_multiplier"]                              # sigma
    assert spy.used("clip") == r["clip"]
    assert spy.used("k") <= r["bound"]                                         # k: no user above it
    # the reported epsilon is the accountant's at what training used
    eps = A.user_epsilon(algo, spy.used("z"), spy.used("q"), len(spy.calls), r["delta"], bound=r["bound"],
                         discretization=r["config"]["report_discretization"])
    assert r["epsilon"] == pytest.approx(eps, rel=1e-9)


# ELS calibration builds mixture PLDs for ~a minute: slow
ALGOS_SLOW_ELS = ["uls", pytest.param("els", marks=pytest.mark.slow)]


@pytest.mark.parametrize("algo", ALGOS_SLOW_ELS)
def test_meanest_record_is_what_training_used(monkeypatch, algo):
    """Catches: a run that trains at another q, sigma, clip or number of steps than it reports."""
    spy = _Spy(meanest.STEP[algo], "numpy")
    monkeypatch.setitem(meanest.STEP, algo, spy)
    r = meanest.run_meanest(DPRunConfig(task="meanest", algo=algo, epsilon=2.0, bound=2, steps=40, clip=1.0,
                                        lr=0.1, seed=3))
    _check_record(r, spy, algo)
    assert spy.used("k") == r["bound"] == 2


needs_weights = pytest.mark.skipif(not os.path.exists(data_path("charlm_pretrained.safetensors")),
                                   reason="pretrained weights not built (bench/pretrain_charlm.py)")


@pytest.mark.slow
@needs_weights
@pytest.mark.parametrize("algo,extra", [("uls", dict(epsilon=8.0)), ("els", dict(epsilon=None, noise_multiplier=2.0))])
def test_lm_record_is_what_training_used(monkeypatch, algo, extra):
    """The char-LM runner: the record's q, sigma, T, clip and k against the step calls. Catches: a runner
    that trains at another rate or noise than it accounts, or feeds users above the bound."""
    spy = _Spy(runner.STEP[algo], "torch")
    monkeypatch.setitem(runner.STEP, algo, spy)
    r = runner.run_lm(DPRunConfig(algo=algo, bound=2, steps=3, batch=8, max_train_users=20, eval_windows=16,
                                  seed=1, **extra))
    _check_record(r, spy, algo)


# ----------------------------------------------------------------------------------------- the target
@pytest.mark.parametrize("q,steps,target", [(0.01, 200, 1.0), (0.05, 100, 4.0), (0.2, 30, 0.5)])
def test_calibrated_epsilon_never_exceeds_target_library(q, steps, target):
    """Calibration -> the reported (finer) accountant. Catches: returning the low end of the bracket,
    calibrating at a finer discretisation than the report, a target comparison with a tolerance."""
    z = A.calibrate_noise(target, 1e-5, q, steps, algo="uls")
    assert A.user_epsilon("uls", z, q, steps, 1e-5) <= target
    assert A.user_epsilon("uls", z, q, steps, 1e-5, discretization=1e-4) <= target


@pytest.mark.slow
def test_calibrated_epsilon_never_exceeds_target_library_els():
    z = A.calibrate_noise(2.0, 1e-5, 0.02, 60, algo="els", bound=3)
    assert A.user_epsilon("els", z, 0.02, 60, 1e-5, bound=3) <= 2.0


@pytest.mark.parametrize("algo", ALGOS_SLOW_ELS)
def test_calibrated_epsilon_never_exceeds_target_cli(tmp_path, algo):
    out = tmp_path / "m.json"
    assert main(["dp", "--task", "meanest", "--algo", algo, "--epsilon", "3", "--bound", "2", "--steps", "40",
                 "--clip", "1", "--lr", "0.1", "--out", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert 0 < r["epsilon"] <= 3.0 and r["epsilon_target"] == 3.0


@pytest.mark.slow
@needs_weights
def test_calibrated_epsilon_never_exceeds_target_cli_lm(tmp_path):
    out = tmp_path / "lm.json"
    assert main(["dp", "--algo", "uls", "--epsilon", "4", "--bound", "2", "--steps", "2", "--batch", "8",
                 "--max-train-users", "20", "--eval-windows", "16", "--out", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert 0 < r["epsilon"] <= 4.0


# ------------------------------------------------------------------------------------ what is released
def test_record_states_what_epsilon_covers(tmp_path):
    out = tmp_path / "m.json"
    assert main(["dp", "--task", "meanest", "--algo", "uls", "--epsilon", "2", "--bound", "2", "--steps", "20",
                 "--clip", "1", "--lr", "0.1", "--out", str(out), "--quiet", "--secure-rng"]) == 0
    r = json.loads(out.read_text())
    st = r["privacy_statement"]
    assert "user" in st["unit"] and "add or remove one user" in st["adjacency"]
    assert st["epsilon"] == r["epsilon"] and st["secure_rng"] is True and "CSPRNG" in st["randomness"]
    assert any("N (training users) and M" in p for p in st["public"])
    assert any("tuning" in p for p in st["not_covered"])
    assert r["config"]["secure_rng"] is True
    # secure noise is not reproducible; seeded noise is
    out2 = tmp_path / "m2.json"
    main(["dp", "--task", "meanest", "--algo", "uls", "--epsilon", "2", "--bound", "2", "--steps", "20", "--clip",
          "1", "--lr", "0.1", "--out", str(out2), "--quiet", "--secure-rng"])
    assert json.loads(out2.read_text())["eval_loss"] != r["eval_loss"]


def test_a_user_without_examples_contributes_nothing(monkeypatch):
    """ULS averages each sampled user's rows: a user with none must add a zero row, not NaN (1/0)."""
    _constant_rows(monkeypatch, 1e-3)
    model, params = _model()
    data = _users([2, 3])
    data = BoundedUsers.build(data.windows, data.owner, n_users=3)           # user 2 owns no row
    g = uls.uls_step(model, params, data, sampling_rate=1.0, clip=10.0, noise_multiplier=0.0,
                     generator=torch.Generator().manual_seed(0)).grads
    out = _flat(g)
    assert torch.isfinite(out).all()
    assert out.mean().item() == pytest.approx(2 * 1e-3 / 3, rel=1e-4)          # two users' rows over qN = 3
