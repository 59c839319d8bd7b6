r"""The one mechanism of DP-SGD here: Poisson sampling, then a Gaussian sum of clipped rows.

Every private step (ELS, ULS, on the char LM in torch and on the synthetic testbed in numpy) is

.. math::
    S \sim \text{Poisson}(q)\ \text{over the } n \text{ units},\qquad
    \hat g = \frac{1}{D}\Big(\sum_{i\in S} \mathrm{clip}_C(g_i) + N(0, z^2C^2 I)\Big),
    \qquad \mathrm{clip}_C(g) = g\min(1, C/\lVert g\rVert),

with a **fixed** denominator :math:`D = qn` (the expected number of sampled units, not the realised one),
so one unit moves the noised sum by at most :math:`C` and :math:`\hat g` by at most :math:`C/D`, whatever
its data. The algorithms differ only in what a unit and its row :math:`g_i` are:

* **ELS** — unit = example, :math:`g_i` = that example's gradient. The guarantee is per example; a user
  owning up to :math:`k` examples is accounted with the mixture-of-Gaussians PLD
  (``accounting.els_user_epsilon``);
* **ULS** — unit = user, :math:`g_i` = the gradient of the user's mean loss (the mean of its per-example
  gradients). **Unit of privacy: the user**, accounted as the Poisson-subsampled Gaussian at the user
  rate (``accounting.uls_epsilon``).

:func:`gaussian_sum` (torch, rows as ``name -> (b, *shape)`` tensors, one row's norm over all parameters
together) and :func:`gaussian_sum_np` (numpy, rows as a ``(b, d)`` array) are the same function;
:func:`poisson_sample` / :func:`poisson_sample_np` the same sampling. The non-private baseline samples
like ELS and sums unclipped rows without noise.

Randomness: a seeded ``torch.Generator`` / ``np.random.Generator`` (reproducible: whoever holds the seed
can regenerate the noise) or :class:`SecureRNG` (``--secure-rng``: the OS's CSPRNG, not reproducible),
accepted wherever a generator is.
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import torch

from lab.privacy.grads import clip_and_sum


class StepResult(NamedTuple):
    """What one training step returns (``runner.STEP``): the averaged gradient (name -> tensor, or None
    when a non-private step sampled nothing), example-gradients computed, units sampled."""

    grads: dict | None
    examples: int
    units: int


class SecureRNG:
    """Uniforms and Gaussians from the operating system's CSPRNG (``os.urandom``) for noise and sampling.

    Not reproducible by design (no seed). Duck-types the two ``np.random.Generator`` methods the numpy
    mechanism uses (``random``, ``standard_normal``) and is accepted by the torch twins in place of a
    ``torch.Generator``. Uniforms carry 53 random bits; Gaussians come from the Box-Muller transform.
    Floating-point attacks on Gaussian sampling (Mironov 2012) are out of scope."""

    device = torch.device("cpu")

    def random(self, n) -> np.ndarray:
        n = int(np.prod(n))
        return (np.frombuffer(os.urandom(8 * n), dtype=np.uint64) >> np.uint64(11)) * 2.0 ** -53

    def standard_normal(self, size) -> np.ndarray:
        size = (size,) if np.ndim(size) == 0 else tuple(size)
        n = int(np.prod(size))
        m = (n + 1) // 2
        r = np.sqrt(-2.0 * np.log1p(-self.random(m)))  # 1 - U in (0, 1]: log is finite
        a = 2 * math.pi * self.random(m)
        return np.concatenate([r * np.cos(a), r * np.sin(a)])[:n].reshape(size)


def _uniform(n: int, generator) -> torch.Tensor:
    if isinstance(generator, SecureRNG):
        return torch.from_numpy(generator.random(n))
    return torch.rand(n, generator=generator, device=generator.device)


def _normal(shape, generator) -> torch.Tensor:
    if isinstance(generator, SecureRNG):
        return torch.from_numpy(generator.standard_normal(tuple(shape))).float()
    return torch.randn(shape, generator=generator, device=generator.device)


# ------------------------------------------------------------------------------------------------ torch
def poisson_sample(n: int, rate: float, generator: torch.Generator, device=None) -> torch.Tensor:
    """Indices of the units kept by independent coin flips of probability ``rate`` (drawn on the
    generator's device, so the same seed samples the same units on CPU and GPU)."""
    mask = _uniform(n, generator).to(device) < rate
    return mask.nonzero().squeeze(1)


def empty_rows(params: dict) -> dict:
    """No sampled unit: zero rows of each parameter's shape."""
    return {n: p.new_zeros((0,) + tuple(p.shape)) for n, p in params.items()}


def gaussian_sum(rows: dict, *, clip: float, noise_multiplier: float, denominator: float,
                 generator: torch.Generator) -> dict:
    r""":math:`\big(\sum_i \mathrm{clip}_C(g_i) + N(0, z^2C^2 I)\big) / D` (see the module docstring).

    ``rows``: name -> (b, *shape) tensors, row :math:`i` of all of them together is :math:`g_i` (``b`` may
    be 0). ``denominator`` :math:`D` is fixed by the caller (expected units per step), never the realised
    ``b``. Noise is drawn on the generator's device, one parameter after another in ``rows``' order."""
    first = next(iter(rows.values()))
    if first.shape[0] == 0:
        summed = {n: t.new_zeros(t.shape[1:]) for n, t in rows.items()}
    else:
        summed = clip_and_sum(rows, clip)
    out = {}
    for n, s in summed.items():
        noise = _normal(s.shape, generator).to(s.device)
        out[n] = (s + noise_multiplier * clip * noise) / denominator
    return out


# ------------------------------------------------------------------------------------------------ numpy
def poisson_sample_np(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Numpy twin of :func:`poisson_sample`."""
    return np.nonzero(rng.random(n) < rate)[0]


def clip_rows_np(rows: np.ndarray, clip: float) -> np.ndarray:
    r""":math:`g_i \min(1, C/\lVert g_i\rVert)` for each row of a (b, d) array."""
    n = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows * np.minimum(1.0, clip / np.maximum(n, 1e-12))


def gaussian_sum_np(rows: np.ndarray, *, clip: float, noise_multiplier: float, denominator: float,
                    rng: np.random.Generator) -> np.ndarray:
    r"""Numpy twin of :func:`gaussian_sum`: :math:`\big(\sum_i \mathrm{clip}_C(g_i) + N(0, z^2C^2 I)\big)
    / D` for rows :math:`g_i` of a (b, d) array (``b`` may be 0); ``denominator`` fixed by the caller."""
    total = clip_rows_np(rows, clip).sum(0) + noise_multiplier * clip * rng.standard_normal(rows.shape[1])
    return total / denominator
