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

Mechanism: the per-user mean gradient has norm about :math:`\sqrt d\sqrt{\tau^2 + s^2/k}`, the per-example
one :math:`\sqrt d\sqrt{\tau^2+s^2}`. With diverse users (large :math:`s`) ULS clips much lower and wins;
with :math:`s = 0` the two norms agree, ULS averages only :math:`B/k` users a step and ELS wins.
Everything is vectorised in numpy; one run of 1000 steps takes a few tens of milliseconds.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

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


#: The two regimes the lab shows (``s`` = within-user diversity).
REGIMES = {"diverse": {"tau": 1.0, "s": 4.0}, "identical": {"tau": 1.0, "s": 0.0}}


def make_data(cfg: MeanEstConfig):
    """Returns ``(x, mu)`` with ``x`` of shape (N, G, d), deterministic in ``cfg.data_seed``."""
    cfg.validate()
    rng = np.random.default_rng([cfg.data_seed, 7919])
    mu = cfg.mu_scale * rng.standard_normal(cfg.dim)
    z = rng.standard_normal((cfg.n_users, 1, cfg.dim))
    e = rng.standard_normal((cfg.n_users, cfg.examples_per_user, cfg.dim))
    return mu + cfg.tau * z + cfg.s * e, mu


def _clip_rows(g, c):
    n = np.linalg.norm(g, axis=1, keepdims=True)
    return g * np.minimum(1.0, c / np.maximum(n, 1e-12))


def sampling_rate(cfg: MeanEstConfig) -> float:
    """The same q for both algorithms: B / (N k) (examples for ELS, users for ULS)."""
    return cfg.batch / (cfg.n_users * cfg.examples_per_user)


def train(algo, cfg: MeanEstConfig, *, clip, lr, noise_multiplier, seed, x=None, mu=None) -> dict:
    """Run one algorithm (``els``/``uls``/``nonprivate``) at a given noise multiplier; no accounting.

    Returns ``{"error": ||theta_avg - mu||^2, "error_last": ||theta_T - mu||^2}``. ``seed`` drives the
    sampling and the noise (data comes from ``cfg.data_seed``)."""
    check_choice("algo", algo, ("els", "uls", "nonprivate"))
    if x is None:
        x, mu = make_data(cfg)
    n, k, d = x.shape
    q = sampling_rate(cfg)
    rng = np.random.default_rng([int(seed), 104729])
    theta = np.zeros(d)
    avg, n_avg = np.zeros(d), 0
    xf = x.reshape(n * k, d)
    xbar = x.mean(axis=1)
    for t in range(cfg.steps):
        if algo == "uls":
            idx = np.nonzero(rng.random(n) < q)[0]
            g = _clip_rows(theta - xbar[idx], clip)
            total = g.sum(0) + noise_multiplier * clip * rng.standard_normal(d)
            grad = total / (q * n)
        else:
            idx = np.nonzero(rng.random(n * k) < q)[0]
            g = theta - xf[idx]
            if algo == "els":
                g = _clip_rows(g, clip)
                total = g.sum(0) + noise_multiplier * clip * rng.standard_normal(d)
            else:
                total = g.sum(0)
            grad = total / (q * n * k)
        theta = theta - lr * grad
        if t >= cfg.steps // 2:
            avg += theta
            n_avg += 1
    avg /= max(n_avg, 1)
    return {"error": float(np.sum((avg - mu) ** 2)), "error_last": float(np.sum((theta - mu) ** 2))}


_SIGMA_CACHE: dict = {}


def noise_for(algo, epsilon, delta, cfg: MeanEstConfig) -> float:
    """Calibrated noise multiplier for user-level (epsilon, delta) (cached per process)."""
    from lab.privacy.accounting import calibrate_noise

    if algo == "nonprivate" or epsilon == float("inf"):
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
    for c in (clip_grid if algo != "nonprivate" else (float("inf"),)):
        for lr in lr_grid:
            r = train(algo, cfg, clip=c, lr=lr, noise_multiplier=z, seed=seed, x=x, mu=mu)
            table.append({"clip": c, "lr": lr, "error": r["error"]})
    best = min(table, key=lambda r: r["error"])
    return best, table


def run_meanest(algo, epsilon, delta, *, seed=0, cfg: MeanEstConfig | None = None, clip=None, lr=None,
                regime=None) -> dict:
    """One tier-1 run with accounting; result keys follow the ``dp`` CLI's JSON.

    ``clip``/``lr`` default to values tuned by :func:`tune` at this epsilon and seed 0 (cached)."""
    from lab.privacy import accounting as A

    cfg = cfg or MeanEstConfig()
    if regime is not None:
        check_choice("regime", regime, tuple(REGIMES))
        cfg = dataclasses.replace(cfg, **REGIMES[regime])
    cfg.validate()
    check_choice("algo", algo, ("els", "uls", "nonprivate"))
    if algo != "nonprivate":
        check_range("epsilon", epsilon, 0, None, low_open=True)
    check_range("delta", delta, 0, 1, low_open=True, high_open=True)
    t0 = time.time()
    if clip is None or lr is None:
        best, _ = tune(algo, cfg, epsilon, delta, seed=0)
        clip = best["clip"] if clip is None else clip
        lr = best["lr"] if lr is None else lr
    z = noise_for(algo, epsilon, delta, cfg)
    r = train(algo, cfg, clip=clip, lr=lr, noise_multiplier=z, seed=seed)
    q = sampling_rate(cfg)
    out = {"task": "meanest", "algo": algo, "epsilon_target": epsilon, "delta": delta,
           "bound": cfg.examples_per_user, "noise_multiplier": z, "sampling_rate": q, "steps": cfg.steps,
           "clip": clip, "lr": lr, "seed": seed, "tau": cfg.tau, "s": cfg.s, "dim": cfg.dim,
           "n_users": cfg.n_users, "batch": cfg.batch, **r}
    if algo == "nonprivate":
        out.update(epsilon=float("inf"), epsilon_example=None, accountant="none")
    else:
        out.update(A.accounting_summary(algo, z, q, cfg.steps, delta, cfg.examples_per_user))
    out["eval_loss"] = r["error"]  # tier 1: squared error to the true mean
    out["eval_ppl"] = None
    out["seconds"] = time.time() - t0
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
        for algo in ("els", "uls", "nonprivate"):
            best, table = tune(algo, c, tune_epsilon, delta, seed=0)
            tuned[f"{regime}/{algo}"] = {"clip": best["clip"], "lr": best["lr"], "grid": table}
            for eps in (epsilons if algo != "nonprivate" else (float("inf"),)):
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


__all__ = ["MeanEstConfig", "REGIMES", "make_data", "train", "tune", "run_meanest", "regime_grid",
           "summarize", "noise_for", "sampling_rate", "LabError"]
