r"""Tier 1: the synthetic mean-estimation testbed for user-level DP (seconds per grid).

Data. :math:`N` users, each with :math:`G` examples in :math:`\mathbb{R}^d`:

.. math:: x_{u,j} = \mu + \tau z_u + s\,e_{u,j}, \qquad z_u, e_{u,j} \sim N(0, I_d),

so :math:`\tau` is the spread *between* users and :math:`s` the diversity *within* a user.
Loss :math:`\ell(\theta; x) = \tfrac12\lVert\theta - x\rVert^2`, gradient :math:`\theta - x`; the error we
report is :math:`\lVert\bar\theta - \mu\rVert^2` (squared distance of the tail-averaged iterate to the true
mean), averaged over the last half of training (Polyak tail averaging, the same for every algorithm).

Algorithms at **equal compute** (:math:`B` example-gradients per step in expectation, :math:`T` steps) and
equal **user-level** :math:`(\varepsilon, \delta)`; every user keeps :math:`k = G` examples:

* **ELS** — sample each of the :math:`Nk` examples with :math:`q = B/(Nk)`; clip each example gradient
  :math:`g_{u,j} = \theta - x_{u,j}` to :math:`C`; :math:`\hat g = (\sum \mathrm{clip}(g) + N(0,
  z^2C^2I))/(qNk)`. :math:`z` calibrated with the mixture-of-Gaussians PLD for users with :math:`k`
  examples (unit: user).
* **ULS** — sample each user with :math:`q = B/(Nk)` (so :math:`qNk = B` example-gradients); per sampled
  user the gradient of its mean loss :math:`\theta - \bar x_u`; clip to :math:`C`; :math:`\hat g =
  (\sum \mathrm{clip} + N(0, z^2C^2I))/(qN)`. :math:`z` from the Poisson-subsampled Gaussian (unit: user).
* **nonprivate** — ELS sampling without clipping or noise.

The clipped Gaussian sum is ``mechanism.gaussian_sum_np``, the numpy twin of the torch mechanism the char
LM trains with; the step functions in ``STEP`` only choose what is sampled and which rows are clipped.

Mechanism: the per-user mean gradient has norm about :math:`\sqrt d\sqrt{\tau^2 + s^2/k}`, the per-example
one :math:`\sqrt d\sqrt{\tau^2+s^2}`. With diverse users (large :math:`s`) ULS clips much lower and wins;
with :math:`s = 0` the two norms agree, ULS averages only :math:`B/k` users a step and ELS wins.
Everything is vectorised in numpy; one run of 1000 steps takes a few tens of milliseconds.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import NamedTuple

import numpy as np

from lab.privacy.config import ALGORITHMS, REGIMES, DPRunConfig
from lab.privacy.mechanism import SecureRNG, gaussian_sum_np, poisson_sample_np
from lab.utils import LabError, check_choice, check_range


@dataclasses.dataclass(frozen=True)
class MeanEstConfig:
    """Synthetic population and compute budget (see module docstring for the symbols)."""

    dim: int = 50
    n_users: int = 1000
    examples_per_user: int = 16  # G, also the bound k
    tau: float = 1.0
    s: float = 4.0
    mu_scale: float = 1.0  # mu ~ mu_scale * N(0, I)
    batch: int = 64  # B, example-gradients per step (expected)
    steps: int = 1000  # T
    data_seed: int = 0

    def validate(self):
        check_range("dim", self.dim, 1, None, integer=True)
        check_range("n_users", self.n_users, 2, None, integer=True)
        check_range("examples_per_user", self.examples_per_user, 1, None, integer=True)
        check_range("tau", self.tau, 0, None)
        check_range("s", self.s, 0, None)
        check_range("batch", self.batch, 1, self.n_users * self.examples_per_user, integer=True)
        check_range("steps", self.steps, 1, None, integer=True)
        return self


# REGIMES (the two regimes the lab shows, ``s`` = within-user diversity) live with the run config.


def make_data(cfg: MeanEstConfig):
    """Returns ``(x, mu)`` with ``x`` of shape (N, G, d), deterministic in ``cfg.data_seed``."""
    cfg.validate()
    rng = np.random.default_rng([cfg.data_seed, 7919])
    mu = cfg.mu_scale * rng.standard_normal(cfg.dim)
    z = rng.standard_normal((cfg.n_users, 1, cfg.dim))
    e = rng.standard_normal((cfg.n_users, cfg.examples_per_user, cfg.dim))
    return mu + cfg.tau * z + cfg.s * e, mu


def sampling_rate(cfg: MeanEstConfig) -> float:
    """The same q for both algorithms: B / (N k) (examples for ELS, users for ULS)."""
    return cfg.batch / (cfg.n_users * cfg.examples_per_user)


class _Population(NamedTuple):
    examples: np.ndarray  # (N k, d): every example, user after user
    user_means: np.ndarray  # (N, d): each user's mean example
    n: float  # the public user count N behind the denominators qNk / qN (= len(user_means) but in an audit,
    k: int    # where canaries come and go while the denominators stay fixed: lab.privacy.audit)


def _els_grad(theta, pop, q, rng, clip, z):
    rows = theta - pop.examples[poisson_sample_np(len(pop.examples), q, rng)]
    return gaussian_sum_np(rows, clip=clip, noise_multiplier=z, denominator=q * pop.n * pop.k, rng=rng)


def _uls_grad(theta, pop, q, rng, clip, z):
    # the gradient of a user's mean loss is theta minus the user's mean example
    rows = theta - pop.user_means[poisson_sample_np(len(pop.user_means), q, rng)]
    return gaussian_sum_np(rows, clip=clip, noise_multiplier=z, denominator=q * pop.n, rng=rng)


def _nonprivate_grad(theta, pop, q, rng, clip, z):
    rows = theta - pop.examples[poisson_sample_np(len(pop.examples), q, rng)]
    return rows.sum(0) / (q * pop.n * pop.k)


#: One step's averaged gradient per algorithm: ``(theta, population, q, rng, clip, z) -> gradient``.
STEP = {"els": _els_grad, "uls": _uls_grad, "nonprivate": _nonprivate_grad}


def train(algo, cfg: MeanEstConfig, *, clip, lr, noise_multiplier, seed, x=None, mu=None, on_step=None,
          secure_rng=False) -> dict:
    """Run one algorithm (``els``/``uls``/``nonprivate``) at a given noise multiplier; no accounting.

    Returns ``{"error": ||theta_avg - mu||^2, "error_last": ||theta_T - mu||^2}``. ``seed`` drives the
    sampling and the noise (data comes from ``cfg.data_seed``). ``on_step(step, total, row)`` is called
    after every step."""
    step = STEP[check_choice("algo", algo, tuple(STEP))]
    if x is None:
        x, mu = make_data(cfg)
    n, k, d = x.shape
    q = sampling_rate(cfg)
    rng = SecureRNG() if secure_rng else np.random.default_rng([int(seed), 104729])
    pop = _Population(x.reshape(n * k, d), x.mean(axis=1), n, k)
    theta = np.zeros(d)
    avg, n_avg = np.zeros(d), 0
    for t in range(cfg.steps):
        theta = theta - lr * step(theta, pop, q, rng, clip, noise_multiplier)
        if t >= cfg.steps // 2:
            avg += theta
            n_avg += 1
        if on_step:
            on_step(t + 1, cfg.steps, {"step": t + 1})
    avg /= max(n_avg, 1)
    return {"error": float(np.sum((avg - mu) ** 2)), "error_last": float(np.sum((theta - mu) ** 2))}


_SIGMA_CACHE: dict = {}


def noise_for(algo, epsilon, delta, cfg: MeanEstConfig) -> float:
    """Calibrated noise multiplier for user-level (epsilon, delta) (cached per process)."""
    from lab.privacy.accounting import calibrate_noise

    if not ALGORITHMS[algo].private or math.isinf(epsilon):
        return 0.0
    key = (algo, float(epsilon), float(delta), sampling_rate(cfg), cfg.steps, cfg.examples_per_user)
    if key not in _SIGMA_CACHE:
        _SIGMA_CACHE[key] = calibrate_noise(epsilon, delta, sampling_rate(cfg), cfg.steps, algo=algo,
                                            bound=cfg.examples_per_user)
    return _SIGMA_CACHE[key]


CLIP_GRID = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
LR_GRID = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def tune(algo, cfg, epsilon, delta, seed=0, clip_grid=CLIP_GRID, lr_grid=LR_GRID):
    """Grid search of (clip, lr) at one epsilon and seed; returns ``(best, table)``."""
    x, mu = make_data(cfg)
    z = noise_for(algo, epsilon, delta, cfg)
    table = []
    for c in (clip_grid if ALGORITHMS[algo].private else (float("inf"),)):
        for lr in lr_grid:
            r = train(algo, cfg, clip=c, lr=lr, noise_multiplier=z, seed=seed, x=x, mu=mu)
            table.append({"clip": c, "lr": lr, "error": r["error"]})
    best = min(table, key=lambda r: r["error"])
    return best, table


def population(cfg: DPRunConfig) -> MeanEstConfig:
    """The testbed behind a ``meanest`` run: the default population in the run's regime, with the run's
    contribution bound (k = G examples per user), steps and batch."""
    return MeanEstConfig(examples_per_user=cfg.bound, steps=cfg.steps, batch=cfg.batch_size,
                         **REGIMES[check_choice("regime", cfg.regime, tuple(REGIMES))])


def run_meanest(cfg: DPRunConfig, on_step=None) -> dict:
    """One tier-1 run (``cfg.task == "meanest"``) with accounting; result keys follow the ``dp`` CLI's JSON.

    ``cfg.clip``/``cfg.lr`` default to values tuned by :func:`tune` at this epsilon and seed 0 (cached);
    ``"config"`` in the result is ``cfg`` with them filled in. ``on_step(step, total, row)`` follows the
    final training run."""
    from lab.privacy import accounting as A

    check_choice("task", cfg.task, ("meanest",))
    pop = population(cfg)
    cfg.validate(n_examples=pop.n_users * pop.examples_per_user)
    pop.validate()
    algo, delta = cfg.algo, cfg.delta
    epsilon = math.inf if cfg.epsilon is None else cfg.epsilon
    t0 = time.time()
    clip, lr = cfg.clip, cfg.lr
    if clip is None or lr is None:
        best, _ = tune(algo, pop, epsilon, delta, seed=0)
        clip = best["clip"] if clip is None else clip
        lr = best["lr"] if lr is None else lr
    z = noise_for(algo, epsilon, delta, pop)
    r = train(algo, pop, clip=clip, lr=lr, noise_multiplier=z, seed=cfg.seed, on_step=on_step,
              secure_rng=cfg.secure_rng)
    q = sampling_rate(pop)
    out = {"task": "meanest", "algo": algo, "epsilon_target": epsilon, "delta": delta,
           "bound": pop.examples_per_user, "noise_multiplier": z, "sampling_rate": q, "steps": pop.steps,
           "clip": clip, "lr": lr, "seed": cfg.seed, "tau": pop.tau, "s": pop.s, "dim": pop.dim,
           "n_users": pop.n_users, "batch": pop.batch, **r}
    disc = A.REPORT_DISCRETIZATION if cfg.report_discretization is None else cfg.report_discretization
    out.update(A.run_accounting(algo, z, q, pop.steps, delta, pop.examples_per_user, discretization=disc))
    out["eval_loss"] = r["error"]  # tier 1: squared error to the true mean
    out["eval_ppl"] = None
    out["seconds"] = time.time() - t0
    out["regime"] = cfg.regime
    out["privacy_statement"] = A.privacy_statement("meanest", algo, epsilon=out["epsilon"], delta=delta,
                                                   bound=pop.examples_per_user, secure_rng=cfg.secure_rng)
    out["config"] = dataclasses.replace(cfg, batch=pop.batch, clip=clip, lr=lr, report_discretization=disc).to_dict()
    return out


def regime_grid(epsilons=(1.0, 4.0, 16.0), seeds=(0, 1, 2), delta=1e-5, cfg: MeanEstConfig | None = None,
                tune_epsilon=1.0, progress=None) -> dict:
    """The tier-1 grid: both regimes x {ELS, ULS, nonprivate} x epsilons x seeds.

    Clip norm and learning rate are tuned once per (regime, algo) at ``tune_epsilon`` and seed 0 on
    ``CLIP_GRID`` x ``LR_GRID``, then fixed. Returns the ``dp_tier1.json`` schema (see ``sweep.py``)."""
    cfg = cfg or MeanEstConfig()
    t0 = time.time()
    tuned, rows = {}, []
    for regime, kw in REGIMES.items():
        c = dataclasses.replace(cfg, **kw)
        x, mu = make_data(c)
        for algo in STEP:
            best, table = tune(algo, c, tune_epsilon, delta, seed=0)
            tuned[f"{regime}/{algo}"] = {"clip": best["clip"], "lr": best["lr"], "grid": table}
            for eps in (epsilons if ALGORITHMS[algo].private else (float("inf"),)):
                z = noise_for(algo, eps, delta, c)
                for seed in seeds:
                    r = train(algo, c, clip=best["clip"], lr=best["lr"], noise_multiplier=z, seed=seed,
                              x=x, mu=mu)
                    rows.append({"regime": regime, "algo": algo, "epsilon": eps, "seed": seed,
                                 "noise_multiplier": z, "clip": best["clip"], "lr": best["lr"], **r})
                    if progress:
                        progress()
    return {"config": dataclasses.asdict(cfg), "regimes": REGIMES, "delta": delta,
            "sampling_rate": sampling_rate(cfg), "tune_epsilon": tuned_eps_str(tune_epsilon),
            "tuned": tuned, "rows": rows, "seconds": time.time() - t0}


def tuned_eps_str(e):
    return e if np.isfinite(e) else "inf"


def summarize(grid: dict) -> list[dict]:
    """Mean and std over seeds of the error, per (regime, algo, epsilon)."""
    acc: dict = {}
    for r in grid["rows"]:
        acc.setdefault((r["regime"], r["algo"], r["epsilon"]), []).append(r["error"])
    return [{"regime": k[0], "algo": k[1], "epsilon": k[2], "error_mean": float(np.mean(v)),
             "error_std": float(np.std(v)), "n": len(v)} for k, v in sorted(acc.items(), key=str)]


__all__ = ["MeanEstConfig", "REGIMES", "STEP", "make_data", "train", "tune", "population", "run_meanest",
           "regime_grid", "summarize", "noise_for", "sampling_rate", "LabError"]
