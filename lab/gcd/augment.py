"""Two random views of 28x28 grayscale images, batched in torch (works the same on CPU and CUDA).

Views: random resized crop (area 0.35-1, aspect 3/4-4/3) + horizontal flip via one affine warp,
brightness/contrast jitter, and a small random erase. Deterministic for a given ``torch.Generator``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, gen: torch.Generator | None = None, *, min_scale: float = 0.35,
            jitter: float = 0.4, erase_p: float = 0.25) -> torch.Tensor:
    """x: (B, 1, H, W) in [0, 1] -> an augmented copy of the same shape."""
    B, dev = x.shape[0], x.device
    r = lambda *s: torch.rand(*s, generator=gen, device="cpu").to(dev)  # noqa: E731  (CPU gen: same numbers on any device)
    area = min_scale + (1 - min_scale) * r(B)
    logr = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * r(B)
    ar = torch.exp(logr)
    sx, sy = torch.sqrt(area * ar).clamp(max=1), torch.sqrt(area / ar).clamp(max=1)
    tx, ty = (1 - sx) * (2 * r(B) - 1), (1 - sy) * (2 * r(B) - 1)
    flip = torch.where(r(B) < 0.5, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # brightness / contrast jitter
    b = 1 + jitter * (2 * r(B, 1, 1, 1) - 1)
    c = 1 + jitter * (2 * r(B, 1, 1, 1) - 1)
    m = out.mean(dim=(2, 3), keepdim=True)
    out = ((out - m) * c + m) * b
    # random erase of a square patch (cutout)
    if erase_p > 0:
        H, W = x.shape[2], x.shape[3]
        s = (0.2 + 0.2 * r(B)) * H
        cy, cx = r(B) * H, r(B) * W
        yy = torch.arange(H, device=dev).view(1, H, 1)
        xx = torch.arange(W, device=dev).view(1, 1, W)
        half = s.view(B, 1, 1) / 2
        box = ((yy - cy.view(B, 1, 1)).abs() < half) & ((xx - cx.view(B, 1, 1)).abs() < half)
        box = box & (r(B).view(B, 1, 1) < erase_p)
        out = out.masked_fill(box.unsqueeze(1), 0.0)
    return out.clamp(0, 1)
