r"""Choosing the contribution bound :math:`k`: the two rules of Charles et al. (2024) and the gradient
statistics they (and the clip grid of ``bench/run_dp_tuning.py``) read.

**ELS rule** (:func:`els_rule_bound`): :math:`k` = the median number of examples per *training* user
(after the train / held-out user split; nothing else about the data). The paper reports that ELS's best
bound sits near this median: below it most users lose data, above it the mixture accountant's noise grows
with :math:`k` while only the few heavy users gain examples.

**ULS rule** (:func:`uls_rule_bound`): the :math:`k` minimising a *predicted* noise-to-signal ratio of
the averaged ULS update. One ULS step is

.. math::
    \hat g = \frac{1}{qN}\Big(\sum_{u\in U}\mathrm{clip}_C(g_u) + N(0, \sigma^2C^2 I)\Big),\qquad
    q = q(k) = B/M(k),\quad M(k) = \sum_u \min(n_u, k),

so the noise per coordinate is :math:`\sigma(k)C/(q(k)N)`, while the signal — the expected update
:math:`\frac1N\sum_u \mathrm{clip}_C(g_u)` — has norm :math:`C\rho(k)` when (as at the tuned clips) most
user gradients are clipped, :math:`\rho(k)` being how well the users' gradient *directions* agree. We
predict :math:`\rho` with the standard model :math:`g_u = \mu + \beta_u + \bar\xi_u` (population mean
:math:`\mu`, user offset :math:`\beta_u` with :math:`E\lVert\beta_u\rVert^2 = \tau^2`, the mean of
:math:`n` within-user draws of variance :math:`s^2`): the component of :math:`g_u/\lVert g_u\rVert` along
:math:`\mu` is about :math:`\lVert\mu\rVert/\sqrt{\lVert\mu\rVert^2 + \tau^2 + s^2/n}`. Hence

.. math::
    \mathrm{NSR}(k) = \frac{\sigma(k)}{q(k)\,N\,\hat\rho(k)},\qquad
    \hat\rho(k) = \frac1N\sum_u \frac{\lVert\mu\rVert}{\sqrt{\lVert\mu\rVert^2 + \tau^2 + s^2/\min(n_u, k)}},

with :math:`\sigma(k)` the noise multiplier calibrated to the user-level :math:`(\varepsilon,\delta)` at
rate :math:`q(k)` (``runner.calibrated_noise``). :math:`C` and :math:`\sqrt d` are the same for every
:math:`k` and drop out. The trade-off it encodes: a larger :math:`k` averages more of a user's examples
(:math:`s^2/n` shrinks, :math:`\hat\rho` grows) but each step then sees fewer users (:math:`qN` falls),
which :math:`\sigma(k)`'s slow decrease does not make up. Why this form: it is the ratio the paper
names, written for this lab's exact update (fixed denominator :math:`qN`, clip at the user level), with
the one data-dependent input, the signal, reduced to three scalars (:math:`\lVert\mu\rVert^2, \tau^2,
s^2`) measured once on the pretrained model (:func:`gradient_stats`), before any training run.

**Privacy.** Both rules and the clip quantiles read the private training users (their example counts;
gradients of the pretrained model on their examples). Like every tuning choice they are *not* covered by
the reported :math:`\varepsilon` (see ``bench/README.md``, privacy tuning protocol).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from lab.privacy.grads import grad_norms, per_example_grads
from lab.privacy.users import BoundedUsers, bound_contributions

#: The contribution bounds the tuning searches (``bench/run_dp_tuning.py``); 64 only if 32 wins.
BOUND_GRID = (1, 2, 4, 8, 16, 32)
#: Quantile levels at which clip norms are placed (of the norms the algorithm clips, at each k). The ends
#: are natural boundaries: with Adam, a clip at or below the smallest norm (level 0: every gradient of the
#: pretrained model clipped) gives about the same run as any smaller one, since Adam is invariant to the
#: common scale C of the clipped sum and its noise; a clip above the largest (level 1) only adds noise.
QUANTILES = (0.0, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98, 1.0)


def examples_per_user(train_windows) -> np.ndarray:
    """:math:`n_u`, the number of examples (windows) of each training user."""
    return np.array([len(w) for w in train_windows], dtype=np.int64)


def els_rule_bound(counts) -> int:
    """ELS rule: the median examples per training user, rounded to an integer >= 1."""
    counts = np.asarray(counts)
    if counts.size == 0:
        raise ValueError("els_rule_bound needs at least one user")
    return max(1, int(math.floor(float(np.median(counts)) + 0.5)))


def examples_kept(counts, bound: int) -> int:
    """:math:`M(k) = \\sum_u \\min(n_u, k)`: examples left after bounding every user to ``bound``."""
    return int(np.minimum(np.asarray(counts), int(bound)).sum())


@dataclasses.dataclass
class GradientStats:
    """Gradient norms of the pretrained model on the bounded training data at one bound ``k``.

    ``example_norms``: every kept example's gradient norm (what ELS clips); ``user_norms``: every user's
    mean-gradient norm (what ULS clips); ``mu2`` :math:`\\lVert\\mu\\rVert^2`, ``between`` :math:`\\tau^2`
    and ``within`` :math:`s^2` of the model in the module docstring (from users with >= 2 examples)."""

    bound: int
    example_norms: np.ndarray
    user_norms: np.ndarray
    mu2: float
    between: float
    within: float

    def quantiles(self, unit: str, levels=QUANTILES) -> dict:
        """``{level: norm}`` of ``example_norms`` (``unit="example"``) or ``user_norms`` (``"user"``)."""
        x = self.example_norms if unit == "example" else self.user_norms
        return {float(a): float(np.quantile(x, a)) for a in levels}

    def to_dict(self) -> dict:
        return {"bound": self.bound, "n_examples": int(self.example_norms.size), "n_users": int(self.user_norms.size),
                "example_quantiles": {str(k): v for k, v in self.quantiles("example").items()},
                "user_quantiles": {str(k): v for k, v in self.quantiles("user").items()},
                "mu2": self.mu2, "between": self.between, "within": self.within}


@torch.no_grad()
def _accumulate(out, g, seg, n_seg):
    for n, t in g.items():
        acc = out.setdefault(n, torch.zeros((n_seg,) + t.shape[1:], dtype=t.dtype))
        acc.index_add_(0, seg, t)


def gradient_stats(model, train_windows, bound: int, *, bound_seed: int = 0, chunk: int = 256,
                   on_chunk=None) -> GradientStats:
    """Per-example and per-user-mean gradient norms of ``model`` on the training users bounded to
    ``bound`` (the same examples a run with ``seed = bound_seed`` keeps), plus the three scalars of the
    ULS rule. One pass over all kept examples, ``chunk`` users' examples at a time (vectorised with
    ``torch.func``); ``on_chunk(done, total)`` reports progress."""
    w, owner = bound_contributions(train_windows, bound, bound_seed=bound_seed)
    data = BoundedUsers.build(w, owner, n_users=len(train_windows))
    params = {n: p.detach() for n, p in model.named_parameters()}
    N = data.n_users
    ex_norms, user_norms = [], []
    sum_units = None                      # sum over users of g_u (for mu)
    within_num, within_den = 0.0, 0       # pooled within-user variance s^2
    betw = []                             # ||g_u||^2 - s^2_u/n_u per user (mu2 + tau^2 estimate)
    u = 0
    while u < N:
        counts = data.counts[u:]
        # as many whole users as fit in ``chunk`` rows (at least one)
        take = max(1, int((torch.cumsum(counts, 0) <= chunk).sum()))
        users = torch.arange(u, min(N, u + take))
        cnt = data.counts[users]
        lo, hi = int(data.starts[users[0]]), int(data.starts[users[-1]] + cnt[-1])
        g = per_example_grads(model, params, data.windows[lo:hi])
        en = grad_norms(g)
        seg = data.owner[lo:hi] - u
        mean = {}
        _accumulate(mean, g, seg, len(users))
        inv = (1.0 / cnt.to(torch.float32))
        mean = {n: t * inv.view(-1, *([1] * (t.dim() - 1))) for n, t in mean.items()}
        un = grad_norms(mean)
        # within-user spread: sum_i ||g_i||^2 - n ||gbar||^2 = (n - 1) s^2 in expectation
        sq = torch.zeros(len(users)).index_add_(0, seg, en.pow(2))
        ss = sq - cnt * un.pow(2)
        multi = cnt >= 2
        within_num += float(ss[multi].sum())
        within_den += int((cnt[multi] - 1).sum())
        s2_u = torch.where(multi, ss / (cnt - 1).clamp(min=1), torch.zeros_like(ss))
        betw.append((un.pow(2) - s2_u / cnt)[multi].numpy())
        part = {n: t.sum(0) for n, t in mean.items()}
        sum_units = part if sum_units is None else {n: sum_units[n] + part[n] for n in part}
        ex_norms.append(en.numpy())
        user_norms.append(un.numpy())
        u += len(users)
        if on_chunk:
            on_chunk(u, N)
    user_norms = np.concatenate(user_norms)
    within = within_num / max(within_den, 1)
    mean_sq = float(sum(t.pow(2).sum() for t in sum_units.values())) / N ** 2
    # E||mean of N user gradients||^2 = ||mu||^2 + E||g_u - mu||^2 / N
    second = float(np.mean(user_norms ** 2))
    mu2 = max(mean_sq - (second - mean_sq) / max(N - 1, 1), 1e-12)
    between = max(float(np.mean(np.concatenate(betw))) - mu2, 0.0) if betw else 0.0
    return GradientStats(int(bound), np.concatenate(ex_norms), user_norms, mu2, between, within)


def predicted_alignment(counts, bound: int, *, mu2: float, between: float, within: float) -> float:
    r""":math:`\hat\rho(k)` of the module docstring: mean over users of
    :math:`\lVert\mu\rVert/\sqrt{\lVert\mu\rVert^2+\tau^2+s^2/\min(n_u,k)}`."""
    n = np.minimum(np.asarray(counts, dtype=float), bound)
    return float(np.mean(math.sqrt(mu2) / np.sqrt(mu2 + between + within / n)))


def uls_nsr(counts, bound: int, noise_multiplier: float, batch: int, *, mu2, between, within) -> float:
    r"""Predicted noise-to-signal ratio of the ULS update at bound ``bound`` (module docstring):
    :math:`\sigma(k) / (q(k) N \hat\rho(k))` with :math:`q(k) = \min(1, B/M(k))`."""
    N = len(counts)
    q = min(1.0, batch / examples_kept(counts, bound))
    return noise_multiplier / (q * N * predicted_alignment(counts, bound, mu2=mu2, between=between, within=within))


def uls_rule_bound(counts, epsilon: float, *, delta: float, steps: int, batch: int, stats: dict,
                   bounds=BOUND_GRID, noise=None) -> dict:
    """ULS rule: the bound in ``bounds`` with the smallest predicted :func:`uls_nsr`.

    ``stats``: ``{"mu2", "between", "within"}`` (from :func:`gradient_stats`); ``noise(k, q) -> sigma``
    defaults to ``runner.calibrated_noise`` for ULS at ``(epsilon, delta, steps)``. Returns ``{"bound",
    "nsr": {k: ratio}, "sigma": {k: sigma}}``."""
    if noise is None:
        from lab.privacy.runner import calibrated_noise

        def noise(k, q):
            return calibrated_noise("uls", epsilon, delta, q, steps, k)
    nsr, sig = {}, {}
    for k in bounds:
        q = min(1.0, batch / examples_kept(counts, k))
        sig[k] = float(noise(k, q))
        nsr[k] = uls_nsr(counts, k, sig[k], batch, mu2=stats["mu2"], between=stats["between"],
                         within=stats["within"])
    return {"bound": int(min(nsr, key=nsr.get)), "nsr": nsr, "sigma": sig}


__all__ = ["BOUND_GRID", "QUANTILES", "GradientStats", "els_rule_bound", "examples_kept", "examples_per_user",
           "gradient_stats", "predicted_alignment", "uls_nsr", "uls_rule_bound"]
