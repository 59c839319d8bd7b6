"""Vectorised per-example gradients and clipping shared by ELS and ULS (``torch.func``, no loops)."""
from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from lab.privacy.lm import window_loss


def per_example_grads(model, params: dict, windows: torch.Tensor, chunk_size=None) -> dict:
    """Gradient of each window's mean cross-entropy w.r.t. ``params``: name -> (B, *param.shape).

    One ``vmap(grad(...))`` call; buffers (the causal mask) are shared."""
    buffers = {n: b for n, b in model.named_buffers()}

    def loss_one(p, w):
        return window_loss(lambda x: functional_call(model, (p, buffers), (x,)), w.unsqueeze(0))[0]

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
