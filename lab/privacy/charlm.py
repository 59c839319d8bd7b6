"""Tier 2 model: a small character-level causal transformer, its vocabulary and its weights.

Read top to bottom, nanoGPT style. Attention is written with plain ``nn.Linear`` layers (Opacus's grad
samplers refuse ``nn.MultiheadAttention``) and positional ids get a batch dimension, so per-sample gradient
shapes are right under both Opacus hooks and ``torch.func``.

The model is pretrained on the public corpus (``users.public_windows``, ``bench/pretrain_charlm.py``) and
fine-tuned with DP on the private users (``users.load_user_data``); one *example* is one window of
``block + 1`` character ids, and :func:`window_loss` is its mean next-character cross-entropy.
"""
from __future__ import annotations

import dataclasses
import math
import unicodedata

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lab.utils import LabError, data_path

# ---------------------------------------------------------------------------------------------- vocab
VOCAB = "\n" + "".join(chr(i) for i in range(32, 127))  # 96 symbols
UNK = len(VOCAB)  # index 96
VOCAB_SIZE = len(VOCAB) + 1
_STOI = {c: i for i, c in enumerate(VOCAB)}
_FIX = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": "-", "\u2013": "-",
        "\u2022": "*", "\u00a0": " ", "\t": " ", "\r": ""}


def encode(text: str) -> np.ndarray:
    """Characters -> int64 ids (curly quotes/dashes folded to ASCII, accents stripped, else UNK)."""
    out = []
    for c in text:
        c = _FIX.get(c, c)
        for ch in c:
            i = _STOI.get(ch)
            if i is None:
                base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
                i = _STOI.get(base[:1], UNK) if base else UNK
            out.append(i)
    return np.asarray(out, dtype=np.int64)


def decode(ids) -> str:
    return "".join(VOCAB[i] if i < len(VOCAB) else "?" for i in ids)


# ---------------------------------------------------------------------------------------------- model
@dataclasses.dataclass(frozen=True)
class LMConfig:
    block: int = 64  # context length (characters); windows are block + 1 long
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    vocab_size: int = VOCAB_SIZE


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.q = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.k = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.v = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.register_buffer("mask", torch.tril(torch.ones(cfg.block, cfg.block, dtype=torch.bool)),
                             persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        h = self.n_head
        q = self.q(x).view(B, T, h, C // h).transpose(1, 2)  # (B, h, T, hs)
        k = self.k(x).view(B, T, h, C // h).transpose(1, 2)  # (B, h, T, hs)
        v = self.v(x).view(B, T, h, C // h).transpose(1, 2)  # (B, h, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // h)  # (B, h, T, T)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.out = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.out(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharLM(nn.Module):
    """GPT-style char LM: token + position embeddings, ``n_layer`` pre-LN blocks, untied linear head."""

    def __init__(self, cfg: LMConfig = LMConfig()):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block, cfg.n_embd)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device).unsqueeze(0).expand(B, T)  # (B, T): batch dim for Opacus
        x = self.tok(idx) + self.pos(pos)  # (B, T, C)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))  # (B, T, V)


def window_loss(model, windows):
    """Per-window mean next-character cross-entropy, shape (B,). ``windows``: (B, block+1) int64."""
    x, y = windows[:, :-1], windows[:, 1:]
    logits = model(x)  # (B, T, V)
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
    return ce.view(y.shape).mean(dim=1)


@torch.no_grad()
def evaluate(model, windows, batch=512) -> float:
    """Mean cross-entropy in nats per character over ``windows`` (every position weighs the same)."""
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch]
        tot += float(window_loss(model, w).sum())
        n += len(w)
    model.train()
    return tot / max(n, 1)


# ---------------------------------------------------------------------------------------------- weights
PRETRAINED_FILE = "charlm_pretrained.safetensors"


def save_weights(model: CharLM, path: str, meta: dict | None = None):
    from safetensors.torch import save_file

    meta = {k: str(v) for k, v in (meta or {}).items()}
    meta.update({f"cfg.{k}": str(v) for k, v in dataclasses.asdict(model.cfg).items()})
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, path, metadata=meta)


def load_pretrained(path: str | None = None, device=None) -> CharLM:
    """The committed SOTU-pretrained model (``data/charlm_pretrained.safetensors``)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = path or data_path(PRETRAINED_FILE)
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
        cfg = LMConfig(**{k[4:]: int(v) for k, v in meta.items() if k.startswith("cfg.")})
        model = CharLM(cfg)
        model.load_state_dict(load_file(path))
    except Exception as e:  # noqa: BLE001 - missing, malformed (safetensors' own error type) or mismatched
        raise LabError(f"{path} could not be loaded as the pretrained char LM ({str(e).splitlines()[0][:80]}); "
                       "rebuild it with `python bench/pretrain_charlm.py`") from None
    return model.to(device) if device is not None else model
