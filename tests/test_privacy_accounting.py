"""Accountants vs an independent numeric PLD written here; calibration; group privacy; fast path."""
import math

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import binom, norm

from lab.privacy import accounting as A
from lab.utils import LabError


def independent_epsilon(sigma, sensitivities, probs, steps, delta, h=2e-3, span=11.0):
    """Numeric privacy-loss distribution of the T-fold mixture-of-Gaussians, from scratch.

    Pair Q = N(0, s^2) (user absent) and P = sum_b p_b N(b, s^2) (user present). For each ordering
    (P||Q and Q||P): tabulate the loss L = log dA/dB under X ~ A on a fine x grid, round L to a grid of
    width h (nearest), T-fold convolve with one FFT, and read delta(eps) = E[(1 - e^(eps - L_T))+].
    Return the eps solving max_ordering delta(eps) = delta by bisection."""
    sens = np.asarray(sensitivities, float)
    p = np.asarray(probs, float)
    x = np.linspace(-span * sigma, sens.max() + span * sigma, 400_001)
    dx = x[1] - x[0]
    log_q = norm.logpdf(x, 0.0, sigma)
    log_p = logsumexp(np.log(p)[:, None] + norm.logpdf(x[None, :], sens[:, None], sigma), axis=0)
    curves = []
    for log_a, log_b in ((log_p, log_q), (log_q, log_p)):
        loss = log_a - log_b
        mass = np.exp(log_a) * dx
        mass /= mass.sum()
        bins = np.rint(loss / h).astype(np.int64)
        lo = bins.min()
        pmf = np.bincount(bins - lo, weights=mass)
        n = len(pmf) * steps
        size = 1 << int(math.ceil(math.log2(n)))
        pmf_t = np.fft.irfft(np.fft.rfft(pmf, size) ** steps, size)[:n]
        pmf_t = np.clip(pmf_t, 0, None)
        values = (np.arange(n) + lo * steps) * h
        curves.append((values, pmf_t))

    def delta_of(eps):
        return max(float(np.sum(w * np.clip(-np.expm1(np.minimum(eps - v, 50.0)), 0, None))) for v, w in curves)

    lo_e, hi_e = 0.0, 100.0
    for _ in range(60):
        mid = (lo_e + hi_e) / 2
        if delta_of(mid) > delta:
            lo_e = mid
        else:
            hi_e = mid
    return hi_e


@pytest.mark.parametrize("sigma,q,steps", [(1.0, 0.05, 100), (0.8, 0.02, 200)])
def test_sampled_gaussian_matches_independent_pld(sigma, q, steps):
    ours = A.uls_epsilon(sigma, q, steps, 1e-5, discretization=1e-3)
    ref = independent_epsilon(sigma, [0, 1], [1 - q, q], steps, 1e-5)
    assert ours == pytest.approx(ref, rel=0.02)
    assert A.opacus_epsilon(sigma, q, steps, 1e-5, "prv") == pytest.approx(ref, rel=0.02)
    # RDP is a valid but looser upper bound
    assert A.opacus_epsilon(sigma, q, steps, 1e-5, "rdp") >= ref * 0.999


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 4])
def test_mixture_matches_independent_pld(k):
    sigma, q, steps = 1.5, 0.05, 100
    ours = A.els_user_epsilon(sigma, q, steps, k, 1e-5, discretization=1e-3)
    sens = np.arange(k + 1)
    ref = independent_epsilon(sigma, sens, binom.pmf(sens, k, q), steps, 1e-5)
    assert ours == pytest.approx(ref, rel=0.02)


def test_mixture_with_k1_is_poisson_sampled_gaussian():
    # the FIELD_NOTES value: 5.39789 at sigma=1.2, q=0.05, T=500, delta=1e-5
    e_mix = A.els_user_epsilon(1.2, 0.05, 500, 1, 1e-5, discretization=1e-3)
    e_sg = A.uls_epsilon(1.2, 0.05, 500, 1e-5, discretization=1e-3)
    assert e_mix == pytest.approx(e_sg, rel=1e-6)
    assert e_sg == pytest.approx(5.39789, rel=1e-3)


@pytest.mark.slow
def test_user_level_grows_with_k_and_group_privacy_is_looser():
    sigma, q, steps = 2.0, 0.01, 200
    e1 = A.els_example_epsilon(sigma, q, steps, 1e-5)
    mix = [A.els_user_epsilon(sigma, q, steps, k, 1e-5) for k in (1, 2, 4, 8)]
    grp = [A.group_privacy_epsilon(sigma, q, steps, k, 1e-5) for k in (1, 2, 4, 8)]
    assert mix[0] == pytest.approx(e1, rel=1e-6) and grp[0] == pytest.approx(e1, rel=1e-6)
    assert all(a < b for a, b in zip(mix, mix[1:]))
    assert all(g > m for g, m in zip(grp[1:], mix[1:]))
    # group privacy is at least k * eps_1 at a smaller delta, so >= k * eps_1(delta)
    assert grp[3] >= 8 * e1


@pytest.mark.slow
@pytest.mark.parametrize("algo,k", [("uls", 1), ("els", 4)])
def test_calibration_hits_target(algo, k):
    q, steps, target = 0.02, 80, 2.0
    z = A.calibrate_noise(target, 1e-5, q, steps, algo=algo, bound=k, rtol=1e-3)
    eps = A.user_epsilon(algo, z, q, steps, 1e-5, bound=k, discretization=1e-3)
    assert eps <= target
    assert eps >= 0.97 * target  # tight: not wildly over-noised
    assert A.user_epsilon(algo, z * 0.98, q, steps, 1e-5, bound=k) > target


def test_calibration_bracket_is_explicit():
    with pytest.raises(LabError, match="bracket"):
        A.calibrate_noise(1.0, 1e-5, 0.01, 100, algo="uls", bracket=(0.01, 5.0))
    z = A.calibrate_noise(1.0, 1e-5, 0.01, 100, algo="uls", bracket=(0.5, 5.0))
    assert 0.5 <= z <= 5.0


@pytest.mark.slow
def test_fast_path_is_close_and_an_upper_bound():
    slow = A.els_user_epsilon(1.5, 0.01, 300, 8, 1e-5, discretization=1e-3)
    fast = A.epsilon_fast("els", 1.5, 0.01, 300, 1e-5, bound=8)
    assert slow <= fast <= slow * 1.02
    assert A.epsilon_fast("els", 1.5, 0.01, 300, 1e-5, bound=8) == fast  # cached


@pytest.mark.parametrize("kw", [dict(noise_multiplier=0), dict(delta=0), dict(delta=1), dict(steps=0),
                                dict(bound=0), dict(sampling_rate=1.5)])
def test_bad_inputs_raise(kw):
    args = dict(noise_multiplier=1.0, sampling_rate=0.01, steps=10, bound=2, delta=1e-5)
    args.update(kw)
    with pytest.raises(LabError):
        A.els_user_epsilon(**args)
