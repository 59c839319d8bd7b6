r"""Per-example gradients and clipping, vectorised with ``torch.func`` (no Python loop over examples).

:func:`per_example_grads` gives :math:`\nabla_\theta \ell(\theta; x_i)` for every window :math:`x_i`
of a batch as ``name -> (B, *param.shape)``; a row's norm is taken over all parameters together
(:func:`grad_norms`), and :func:`clip_and_sum` returns :math:`\sum_i g_i \min(1, C/\lVert g_i\rVert)`.
ELS clips the per-example rows, ULS the per-user means of them (``mechanism.gaussian_sum`` adds the noise).
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from lab.privacy.charlm import window_loss


def loss_of(model):
    """``model``'s per-window loss ``f(forward, windows) -> (B,)``: its own ``window_loss`` when it defines
    one (SmolLM2's LoRA top reads rows of cached frozen-layer states, ``lab.privacy.llm``), else the char LM's."""
    return getattr(model, "window_loss", window_loss)


def per_example_grads(model, params: dict, windows: torch.Tensor, chunk_size=None) -> dict:
    """Gradient of each window's mean cross-entropy w.r.t. ``params``: name -> (B, *param.shape).

    One ``vmap(grad(...))`` call; buffers (the causal mask) are shared. ``params`` may be a subset of the
    model's parameters (SmolLM2: the LoRA adapters); the others enter as constants."""
    buffers = {n: b for n, b in model.named_buffers()}
    loss = loss_of(model)

    def loss_one(p, w):
        return loss(lambda x: functional_call(model, (p, buffers), (x,)), w.unsqueeze(0))[0]

    return vmap(grad(loss_one), in_dims=(None, 0), chunk_size=chunk_size)(params, windows)


def grad_norms(g: dict) -> torch.Tensor:
    """L2 norm of each row's full gradient (all parameters together), shape (B,)."""
    sq = None
    for t in g.values():
        s = t.reshape(t.shape[0], -1).pow(2).sum(1)
        sq = s if sq is None else sq + s
    return sq.sqrt()


def clip_and_sum(g: dict, clip: float) -> dict:
    r""":math:`\sum_i g_i \min(1, C/\lVert g_i\rVert)` for rows ``i`` of every tensor in ``g``."""
    factor = (clip / (grad_norms(g) + 1e-6)).clamp(max=1.0)
    return {n: torch.einsum("b,b...->...", factor, t) for n, t in g.items()}
