r"""ELS — example-level sampling DP-SGD, accounted at the **user** level.

One step, with :math:`M` bounded examples (every user keeps at most :math:`k`), rate :math:`q`, clip
:math:`C`, noise multiplier :math:`z`:

.. math::
    S \sim \text{Poisson}(q)\ \text{over the } M \text{ examples},\qquad
    \hat g = \frac{1}{qM}\Big(\sum_{i\in S} \mathrm{clip}_C(\nabla \ell(\theta; x_i)) + N(0, z^2C^2 I)\Big),

with :math:`\mathrm{clip}_C(g) = g\min(1, C/\lVert g\rVert)` and the *fixed* denominator :math:`qM` (the
expected batch size), so the sensitivity of :math:`\hat g` to one example is :math:`C/(qM)`.

Privacy. Unit **example**: the Poisson-subsampled Gaussian. Unit **user** (up to :math:`k` examples):
per-step sensitivity :math:`C\cdot\mathrm{Binomial}(k, q)`, accounted with the mixture-of-Gaussians PLD
(``accounting.els_user_epsilon``). Per-example gradients are computed in one vectorised call
(``torch.func.vmap(grad)``), never in a Python loop over examples.
"""
from __future__ import annotations

import torch

from lab.privacy.common import clip_and_sum, per_example_grads


def els_step(model, params, windows_all, *, sampling_rate, clip, noise_multiplier, generator,
             chunk_size=None):
    """Return ``(noisy_grads, n_sampled)`` for one ELS step; ``noisy_grads`` maps name -> tensor.

    ``windows_all`` (M, block+1) are the bounded examples of all training users."""
    M = windows_all.shape[0]
    device = windows_all.device
    mask = torch.rand(M, generator=generator, device=generator.device).to(device) < sampling_rate
    idx = mask.nonzero().squeeze(1)
    if len(idx) == 0:
        summed = {n: torch.zeros_like(p) for n, p in params.items()}
    else:
        g = per_example_grads(model, params, windows_all[idx], chunk_size=chunk_size)  # name -> (b, ...)
        summed = clip_and_sum(g, clip)
    denom = sampling_rate * M
    out = {}
    for n, s in summed.items():
        noise = torch.randn(s.shape, generator=generator, device=generator.device).to(device)
        out[n] = (s + noise_multiplier * clip * noise) / denom
    return out, int(len(idx))
