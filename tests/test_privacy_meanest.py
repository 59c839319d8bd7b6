"""Tier 1 (synthetic mean estimation): both regimes of the ELS/ULS comparison, determinism."""
import dataclasses

import numpy as np
import pytest

from lab.privacy import meanest as M

SMALL = M.MeanEstConfig(dim=20, n_users=300, examples_per_user=8, batch=32, steps=300)


def test_data_shapes_and_regimes():
    x, mu = M.make_data(dataclasses.replace(SMALL, s=0.0))
    assert x.shape == (300, 8, 20) and mu.shape == (20,)
    assert np.allclose(x, x[:, :1])  # no within-user diversity: every example of a user is the same
    x2, _ = M.make_data(SMALL)
    # per-user means have a much smaller spread than single examples when users are diverse
    assert np.linalg.norm(x2.mean(1) - mu, axis=1).mean() < 0.6 * np.linalg.norm(x2[:, 0] - mu, axis=1).mean()


def test_same_seed_same_numbers():
    a = M.train("els", SMALL, clip=2.0, lr=0.05, noise_multiplier=1.0, seed=3)
    b = M.train("els", SMALL, clip=2.0, lr=0.05, noise_multiplier=1.0, seed=3)
    c = M.train("els", SMALL, clip=2.0, lr=0.05, noise_multiplier=1.0, seed=4)
    assert a == b and a != c


def test_nonprivate_converges_to_mean():
    r = M.train("nonprivate", SMALL, clip=np.inf, lr=0.2, noise_multiplier=0.0, seed=0)
    assert r["error"] < 0.3  # the sampling floor d (tau^2 + s^2 / G) / N is about 0.2 here


@pytest.mark.slow
@pytest.mark.parametrize("regime,winner", [("diverse", "uls"), ("identical", "els")])
def test_both_regimes_small(regime, winner):
    """The paper's finding in both directions at user-level eps = 1, on a small problem, tuned clip/lr,
    averaged over 3 seeds."""
    cfg = dataclasses.replace(SMALL, **M.REGIMES[regime])
    res = {}
    for algo in ("els", "uls"):
        best, _ = M.tune(algo, cfg, 1.0, 1e-5, seed=0, clip_grid=(0.25, 1, 4, 16), lr_grid=(0.01, 0.05, 0.2))
        z = M.noise_for(algo, 1.0, 1e-5, cfg)
        res[algo] = np.mean([M.train(algo, cfg, clip=best["clip"], lr=best["lr"], noise_multiplier=z,
                                     seed=s)["error"] for s in (0, 1, 2)])
    loser = "els" if winner == "uls" else "uls"
    assert res[winner] < res[loser], res
