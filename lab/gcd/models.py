"""The GCD model: a small CNN backbone (or an MLP for 8x8 digits), a projection head and a cosine classifier.

Read top to bottom like nanoGPT. SimGCD's recipe: a self-supervised pretrained backbone of which only the
last block is trained, a projection head for contrastive losses, and a weight-normalised (cosine) classifier
whose logits are cosine similarities divided by a temperature in the loss.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    in_shape: tuple = (28, 28)        # (H, W) of grayscale inputs
    widths: tuple = (16, 32, 64)      # CNN block widths (= data/backbone_simclr); the last block is trained
    mlp_hidden: tuple = (256, 128)    # used instead of the CNN when the images are tiny (8x8 digits)
    proj_dim: int = 64
    n_heads: int = 10                 # classifier outputs: |old| + an upper bound on new classes

    def to_dict(self):
        return asdict(self)


def conv_block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class BlockBackbone(nn.Module):
    """A stack of ``blocks``: ``prefix`` (all but the last, frozen in GCD training) then ``suffix`` (the last
    block, trained). Subclasses build ``blocks`` and say how features pass between them."""

    def forward(self, x):
        return self.suffix(self.prefix(x))

    def frozen_prefix(self):
        return self.blocks[:-1]

    def last_block(self):
        return self.blocks[-1]


class CNNBackbone(BlockBackbone):
    """3 conv blocks (28->14->7->1 via pooling); output: (B, widths[-1]) features."""

    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        w = (1,) + tuple(widths)
        self.blocks = nn.ModuleList([conv_block(w[i], w[i + 1]) for i in range(len(widths))])
        self.out_dim = widths[-1]

    def prefix(self, x):                        # x: (B, 1, 28, 28) in [0, 1]
        for blk in self.blocks[:-1]:
            x = F.max_pool2d(blk(x), 2)
        return x                                # (B, C', 7, 7)

    def suffix(self, h):
        return self.blocks[-1](h).mean(dim=(2, 3))   # (B, C)


class MLPBackbone(BlockBackbone):
    """For 8x8 digits: flatten -> MLP. "Last block" = the last Linear+ReLU."""

    def __init__(self, in_dim, hidden=(256, 128)):
        super().__init__()
        dims = (in_dim,) + tuple(hidden)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(dims[i], dims[i + 1]), nn.ReLU())
                                     for i in range(len(hidden))])
        self.out_dim = hidden[-1]

    def prefix(self, x):
        x = x.flatten(1)
        for blk in self.blocks[:-1]:
            x = blk(x)
        return x

    def suffix(self, h):
        return self.blocks[-1](h)


class CosineHead(nn.Module):
    """Weight-normalised linear classifier: logits = <x/|x|, w_k/|w_k|> (temperature applied in the loss)."""

    def __init__(self, dim, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, dim) / math.sqrt(dim))

    def forward(self, x):
        return F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).t()


class GCDModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if min(cfg.in_shape) >= 16:
            self.backbone = CNNBackbone(cfg.widths)
        else:
            self.backbone = MLPBackbone(cfg.in_shape[0] * cfg.in_shape[1], cfg.mlp_hidden)
        d = self.backbone.out_dim
        self.projector = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, cfg.proj_dim))
        self.head = CosineHead(d, cfg.n_heads)

    def features(self, x):
        return self.backbone(x)

    def forward(self, x):
        """Returns (features (B, d), projection (B, p) L2-normalised, cosine logits (B, n_heads))."""
        return self.from_prefix(self.backbone.prefix(x))

    def from_prefix(self, h):
        """The trainable part: last backbone block + heads, from the frozen prefix's output."""
        f = self.backbone.suffix(h)
        return f, F.normalize(self.projector(f), dim=-1), self.head(f)

    @torch.no_grad()
    def prefix_features(self, x, batch: int = 1024, dtype=torch.float16):
        """Frozen-prefix outputs of inputs x (N, 1, H, W), stored compactly; valid while the prefix is frozen."""
        was = self.training
        self.eval()
        out = torch.cat([self.backbone.prefix(x[s:s + batch]).to(dtype) for s in range(0, len(x), batch)])
        self.train(was)
        return out

    @property
    def prefix_frozen(self) -> bool:
        return getattr(self, "_prefix_frozen", False)

    def freeze_prefix(self, freeze: bool = True):
        """Freeze all backbone blocks but the last (and keep their BatchNorm statistics fixed)."""
        for blk in self.backbone.frozen_prefix():
            for p in blk.parameters():
                p.requires_grad_(not freeze)
        self._prefix_frozen = freeze

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "_prefix_frozen", False):
            for blk in self.backbone.frozen_prefix():
                blk.eval()
        return self


def load_backbone(model: GCDModel, path: str) -> None:
    """Load pretrained backbone weights (safetensors, keys prefixed ``backbone.``)."""
    from safetensors.torch import load_file

    sd = {k[len("backbone."):]: v for k, v in load_file(path).items() if k.startswith("backbone.")}
    model.backbone.load_state_dict(sd, strict=True)


def to_input(x_uint8, device=None) -> torch.Tensor:
    """uint8 (B, H, W) numpy/tensor -> float (B, 1, H, W) in [0, 1]."""
    t = torch.as_tensor(x_uint8)
    return (t.to(device=device, dtype=torch.float32) / 255.0).unsqueeze(1)
