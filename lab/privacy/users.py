"""Tier 2 data: Shakespeare-by-character users, held-out users, the contribution bound, the public corpus.

* **Public** corpus (pretraining): State of the Union addresses 1933+ (``lab.data.sotu``) — a domain
  shift from verse, so fine-tuning on the private users has a gain to protect.
* **Private users**: one user = one (play, character) from ``lab.data.shakespeare`` — the **unit of
  privacy**. A user's speeches are joined with newlines and cut into non-overlapping windows of
  ``block + 1`` characters; each window is one *example*. Users are split into train / held-out users with a
  fixed, data-independent permutation (``split_seed``); evaluation is the mean next-character cross-entropy
  (nats/char) on held-out users.
* **Contribution bound k**: each training user keeps ``min(n_u, k)`` of its windows, chosen uniformly at
  random by a generator seeded only with ``(bound_seed, k)`` — data-independent randomness, so the bound
  itself leaks nothing; users with fewer windows keep all of them. :class:`BoundedUsers` holds the result as
  tensors, grouped by user, which is what one ELS/ULS/non-private step reads.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lab.privacy.charlm import encode
from lab.privacy.config import check_bound


def text_windows(ids: np.ndarray, length: int) -> np.ndarray:
    """Non-overlapping windows of ``length`` ids, shape (n, length); the ragged tail is dropped."""
    n = len(ids) // length
    return ids[: n * length].reshape(n, length)


@dataclasses.dataclass
class UserData:
    """Private Shakespeare users split by user. ``train_windows[u]`` is an (n_u, block+1) array."""

    train_users: list
    train_windows: list
    eval_users: list
    eval_windows: np.ndarray  # (n_eval, block+1)


_USER_CACHE: dict = {}


def load_user_data(block=64, eval_frac=0.15, split_seed=0, max_eval_windows=2000) -> UserData:
    """Shakespeare users -> windows; a fixed random ``eval_frac`` of users is held out for evaluation.

    Users with no full window are dropped. Cached per process."""
    key = (block, eval_frac, split_seed, max_eval_windows)
    if key in _USER_CACHE:
        return _USER_CACHE[key]
    from lab.data.shakespeare import speeches_by_user

    users = speeches_by_user()
    names, wins = [], []
    for u, speeches in users.items():
        w = text_windows(encode("\n".join(speeches) + "\n"), block + 1)
        if len(w):
            names.append(u)
            wins.append(w)
    rng = np.random.default_rng([split_seed, 2024])
    perm = rng.permutation(len(names))
    n_eval = int(round(eval_frac * len(names)))
    ev, tr = sorted(perm[:n_eval]), sorted(perm[n_eval:])
    ew = np.concatenate([wins[i] for i in ev])
    if len(ew) > max_eval_windows:
        ew = ew[np.sort(rng.choice(len(ew), max_eval_windows, replace=False))]
    out = UserData([names[i] for i in tr], [wins[i] for i in tr], [names[i] for i in ev], ew)
    _USER_CACHE[key] = out
    return out


def bound_contributions(train_windows: list, bound: int, bound_seed: int = 0):
    """Keep at most ``bound`` windows per user, chosen with data-independent randomness.

    Returns ``(windows, user_index)``: all kept windows stacked (M, block+1) and, for each, its user's
    index. The generator is seeded with ``(bound_seed, bound)`` only; for user ``u`` with ``n_u > k``
    windows it keeps a uniformly random subset of size ``k`` (in original order)."""
    check_bound(bound)
    rng = np.random.default_rng([bound_seed, bound, 31337])
    keep, owner = [], []
    for u, w in enumerate(train_windows):
        if len(w) > bound:
            w = w[np.sort(rng.choice(len(w), bound, replace=False))]
        else:
            rng.random()  # keep the stream aligned regardless of n_u
        keep.append(w)
        owner.append(np.full(len(w), u, dtype=np.int64))
    return np.concatenate(keep), np.concatenate(owner)


def public_windows(block=64, max_windows=None) -> np.ndarray:
    """The public (SOTU) corpus as non-overlapping windows of block + 1 characters."""
    from lab.data.sotu import load_sotu

    w = text_windows(encode(load_sotu()), block + 1)
    return w if max_windows is None else w[:max_windows]


@dataclasses.dataclass
class BoundedUsers:
    """The bounded training examples as tensors, grouped by user: user ``u`` owns rows
    ``starts[u] : starts[u] + counts[u]`` of ``windows``; ``owner[i]`` is the user of row ``i``."""

    windows: torch.Tensor  # (M, block+1) int64
    owner: torch.Tensor    # (M,)
    starts: torch.Tensor   # (N,)
    counts: torch.Tensor   # (N,)
    # The N and M the mechanism treats as public: its denominators are qN (ULS) and qM (ELS). None: the data's
    # own counts. An audit fixes them from its configuration, so a canary's coming or going cannot move them.
    public_users: float | None = None
    public_examples: float | None = None

    @classmethod
    def build(cls, windows, owner, n_users=None, device=None) -> "BoundedUsers":
        """From ``bound_contributions``'s ``(windows, owner)`` (numpy or torch; rows grouped by owner)."""
        w = torch.as_tensor(windows).to(device)
        o = torch.as_tensor(owner).to(device)
        counts = torch.bincount(o, minlength=int(n_users or 0))
        return cls(w, o, torch.cumsum(counts, 0) - counts, counts)

    @property
    def n_examples(self) -> int:
        return int(self.windows.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_public_examples(self) -> float:
        """M behind ELS's denominator qM."""
        return self.n_examples if self.public_examples is None else self.public_examples

    @property
    def n_public_users(self) -> float:
        """N behind ULS's denominator qN."""
        return self.n_users if self.public_users is None else self.public_users
