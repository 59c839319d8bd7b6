r"""ELS — example-level sampling DP-SGD, accounted at the **user** level.

One step, with :math:`M` bounded examples (every user keeps at most :math:`k`), rate :math:`q`, clip
:math:`C`, noise multiplier :math:`z`:

.. math::
    S \sim \text{Poisson}(q)\ \text{over the } M \text{ examples},\qquad
    \hat g = \frac{1}{qM}\Big(\sum_{i\in S} \mathrm{clip}_C(\nabla \ell(\theta; x_i)) + N(0, z^2C^2 I)\Big),

with :math:`\mathrm{clip}_C(g) = g\min(1, C/\lVert g\rVert)` and the *fixed* denominator :math:`qM` (the
expected batch size), so the sensitivity of :math:`\hat g` to one example is :math:`C/(qM)`. The clipped
Gaussian sum is ``mechanism.gaussian_sum``, shared with ULS; this module only says what is sampled
(examples) and which rows are clipped (per-example gradients).

Privacy. Unit **example**: the Poisson-subsampled Gaussian. Unit **user** (up to :math:`k` examples):
per-step sensitivity :math:`C\cdot\mathrm{Binomial}(k, q)`, accounted with the mixture-of-Gaussians PLD
(``accounting.els_user_epsilon``). Per-example gradients are computed in one vectorised call
(``torch.func.vmap(grad)``), never in a Python loop over examples.

The non-private baseline (:func:`nonprivate_step`) samples the same way and takes the plain gradient of the
summed loss over the same fixed denominator, without clipping or noise.
"""
from __future__ import annotations

import torch

from lab.privacy.grads import loss_of, per_example_grads
from lab.privacy.mechanism import StepResult, empty_rows, gaussian_sum, poisson_sample
from lab.privacy.users import BoundedUsers


def els_step(model, params, data: BoundedUsers, *, sampling_rate, clip, noise_multiplier, generator,
             chunk_size=None) -> StepResult:
    """One ELS step over the bounded examples ``data.windows`` (M, block+1); units = examples."""
    M = data.n_examples
    idx = poisson_sample(M, sampling_rate, generator, data.windows.device)
    rows = per_example_grads(model, params, data.windows[idx], chunk_size=chunk_size) if len(idx) else \
        empty_rows(params)
    grads = gaussian_sum(rows, clip=clip, noise_multiplier=noise_multiplier,
                         denominator=sampling_rate * data.n_public_examples, generator=generator)
    return StepResult(grads, int(len(idx)), int(len(idx)))


def nonprivate_step(model, params, data: BoundedUsers, *, sampling_rate, clip=None, noise_multiplier=0.0,
                    generator, chunk_size=None) -> StepResult:
    """ELS sampling, no clipping, no noise: the gradient of the sampled windows' summed loss over ``qM``.

    Differentiates ``model``'s own trainable parameters, those with ``requires_grad`` (``params``, ``clip``,
    ``noise_multiplier`` are ignored).
    ``grads`` is None when nothing was sampled (the optimizer then skips the step, as after
    ``zero_grad(set_to_none=True)``)."""
    M = data.n_examples
    idx = poisson_sample(M, sampling_rate, generator, data.windows.device)
    if len(idx) == 0:
        return StepResult(None, 0, 0)
    names, leaves = zip(*((n, p) for n, p in model.named_parameters() if p.requires_grad))
    loss = loss_of(model)(model, data.windows[idx]).sum() / (sampling_rate * data.n_public_examples)
    return StepResult(dict(zip(names, torch.autograd.grad(loss, leaves))), int(len(idx)), int(len(idx)))
