r"""Empirical privacy audit in one training run (Steinke, Nasr, Jagielski, NeurIPS 2023).

An accountant's :math:`\varepsilon` is a proof about the mechanism *as written*; an audit checks the code
*as run*. It cannot prove privacy — it gives a **lower bound** :math:`\varepsilon_{\text{lower}}` that holds
with 95 % confidence if the implementation is what the accountant assumed, so
:math:`\varepsilon_{\text{lower}} > \varepsilon_{\text{claimed}}` would prove a bug (a noise scale, a
sampling rate or a clip that is not what was accounted), while :math:`\varepsilon_{\text{lower}} \ll
\varepsilon_{\text{claimed}}` proves nothing either way: the attack may simply be weak.

Protocol (one run)
------------------
1. ``m`` **canary users** are made on top of the real users; canary :math:`i` joins the training data
   with a secret fair coin :math:`S_i \in \{\text{in}, \text{out}\}`, **before** the contribution bound
   (a char-LM canary owns ``2k`` copies of one window, so the bound must cut it to ``k``).
2. The sampling rate :math:`q` and the denominators are fixed from the *configuration*: public
   :math:`N' = N + m/2` users and :math:`M' = M + mk/2` examples (``BoundedUsers.public_users`` /
   ``public_examples``; ``meanest``: ``_Population.n``), so a canary's coming or going changes the noisy
   sum by its clipped gradient and nothing else — the add/remove-one-user adjacency the accountant assumes.
   The noise multiplier is calibrated to the claimed user-level :math:`(\varepsilon, \delta)` at that
   :math:`q`, and training runs through the same step functions as ``python -m lab dp`` (``STEP`` tables).
3. Each canary gets a **score** (higher = more likely in):

   * ``whitebox``: :math:`\sum_t \langle \hat g_t, c_i\rangle`, the privatised gradients (which DP-SGD
     releases, and the accountant covers) projected on the canary's fixed gradient direction :math:`c_i`;
   * ``blackbox``: the drop in the canary's loss from the starting (pretrained) model to the released one.

4. The auditor guesses *in* for the ``r/2`` highest scores and *out* for the ``r/2`` lowest and abstains
   on the rest; ``v`` of the ``r`` guesses are right. Under :math:`(\varepsilon, \delta)`-DP
   (Steinke et al., Thm. 5.2 with its :math:`\delta` term)

   .. math::
       P[\text{correct} \ge v] \le \beta + 2m\delta \max_{1\le i\le v}\tfrac1i\,
       P[v - i \le W < v],\qquad \beta = P[W \ge v],\quad W\sim\mathrm{Bin}\big(r, \tfrac{e^\varepsilon}
       {1+e^\varepsilon}\big)

   (:func:`p_value`), and :math:`\varepsilon_{\text{lower}}` is the largest :math:`\varepsilon` whose
   p-value is at most 0.05 (:func:`epsilon_lower`). ``r`` is tried on a small grid fixed in advance, each at
   significance 0.05 / (grid size) (Bonferroni), so the reported maximum holds at 95 % overall.

Canaries. ``meanest``: every canary has its own extra coordinate (``d = d_0 + m``) and holds ``k`` copies
of the point :math:`R e_i` far away (every user there holds exactly ``k`` examples), so its clipped gradient
is :math:`\approx -C e_i` — aligned across its examples, ELS's worst case; both scores use these canaries.
``charlm`` has two canary sets with coins of their own, each canary a user with ``2k`` copies of one window:
*Dirac gradient canaries* for the white box (:func:`dirac_canary_model`: canary :math:`i`'s gradient is
along a coordinate :math:`e_i` no real window touches, so :math:`c_i = e_i`) and *text canaries* (random
characters) for the black box. A first try with text canaries for the white box, :math:`c_i` = their
gradient at the start, had no power even without DP: m gibberish users move the whole model, and that
common motion swamps each canary's own trace.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from lab.privacy import accounting as A
from lab.privacy.config import ALGORITHMS, DPRunConfig, check_bound, check_delta, check_epsilon
from lab.utils import LabError, RunConfig, check_choice, check_range

SIGNIFICANCE = 0.05
#: Guess counts tried, as fractions of m (each at SIGNIFICANCE / len(R_FRACTIONS): Bonferroni).
R_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
SCORES = ("whitebox", "blackbox")
TASKS = {"meanest": "meanest", "charlm": "lm"}  # audit task -> DPRunConfig.task
AUDIT_TASKS = tuple(TASKS)
#: Per task: steps T, expected example-gradients per step B, clip C, learning rate (audit defaults).
AUDIT_DEFAULTS = {"meanest": {"steps": 1000, "batch": 64, "clip": 1.0, "lr": 0.05},
                  "charlm": {"steps": 200, "batch": 256, "clip": None, "lr": None}}
#: Distance of a meanest canary from the origin along its own axis (its gradient is always clipped).
CANARY_RADIUS = 1e6
#: Memory cap of the meanest audit's one dense array (each canary adds a coordinate to every example).
MEANEST_MAX_BYTES = 2 * 1024 ** 3


# ---------------------------------------------------------------------------------------------- the bound
def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    r"""Steinke et al.'s bound on :math:`P[\ge v \text{ of } r \text{ guesses correct}]` for ``m`` canaries
    under :math:`(\varepsilon, \delta)`-DP (module docstring), clipped to 1."""
    if r == 0 or v == 0:
        return 1.0
    from scipy.stats import binom

    p = 1.0 / (1.0 + math.exp(-epsilon))                  # e^eps / (1 + e^eps)
    pmf = binom.pmf(np.arange(r + 1), r, p)
    tail = np.cumsum(pmf[::-1])[::-1]                      # tail[w] = P[W >= w]
    beta = float(tail[v])
    if delta == 0:
        return min(beta, 1.0)
    i = np.arange(1, v + 1)
    window = tail[v - i] - beta                             # P[v - i <= W < v]
    return float(min(beta + 2 * m * delta * np.max(window / i), 1.0))


def epsilon_lower(m: int, r: int, v: int, delta: float, significance: float = SIGNIFICANCE,
                  eps_max: float = 50.0) -> float:
    """Largest epsilon whose p-value is at most ``significance`` — the first crossing from 0 upwards, so
    a bound that is not monotone in epsilon never gives more than the smallest rejected-region edge."""
    if p_value(m, r, v, 0.0, delta) > significance:
        return 0.0
    lo, step = 0.0, 0.05
    while lo < eps_max and p_value(m, r, v, lo + step, delta) <= significance:
        lo += step
    if lo >= eps_max:
        return eps_max
    hi = lo + step
    while hi - lo > 1e-6:
        mid = (lo + hi) / 2
        if p_value(m, r, v, mid, delta) <= significance:
            lo = mid
        else:
            hi = mid
    return lo


def guess_grid(m: int) -> list[int]:
    """The numbers of guesses tried (even, >= 2, <= m)."""
    return sorted({max(2, min(m, 2 * round(f * m / 2))) for f in R_FRACTIONS})


def audit_scores(scores, included, delta, significance=SIGNIFICANCE) -> dict:
    """Guess *in* for the r/2 highest scores and *out* for the r/2 lowest, for each r of
    :func:`guess_grid`; return the best epsilon lower bound (Bonferroni over the grid) and the table."""
    scores, included = np.asarray(scores, float), np.asarray(included, bool)
    m = len(scores)
    order = np.argsort(scores, kind="stable")
    grid = guess_grid(m)
    level = significance / len(grid)
    rows = []
    for r in grid:
        n_in = r - r // 2
        low, high = order[: r // 2], order[m - n_in:]
        v = int(included[high].sum() + (~included[low]).sum())
        rows.append({"guesses": r, "correct": v, "epsilon_lower": epsilon_lower(m, r, v, delta, level)})
    best = max(rows, key=lambda x: (x["epsilon_lower"], -x["guesses"]))
    return {"epsilon_lower": best["epsilon_lower"], "guesses": best["guesses"], "correct": best["correct"],
            "significance_per_r": level, "by_guesses": rows, "auc": auc(scores, included)}


def auc(scores, included) -> float:
    """Area under the ROC curve of the scores for in vs out (ties count half): attack strength at a glance."""
    scores, included = np.asarray(scores, float), np.asarray(included, bool)
    pos, neg = scores[included], scores[~included]
    if not len(pos) or not len(neg):
        return math.nan
    ranks = _ranks(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _ranks(x):
    from scipy.stats import rankdata

    return rankdata(x)


# ---------------------------------------------------------------------------------------------- config
@dataclasses.dataclass
class AuditConfig(RunConfig):
    """One audit run. ``epsilon`` is the claimed user-level target (None for nonprivate); the training
    settings go through :class:`DPRunConfig` (:meth:`run_config`), the one place they are validated."""

    task: str = "meanest"                 # meanest (synthetic, seconds) or charlm (Shakespeare users, minutes)
    algo: str = "uls"
    epsilon: float | None = 4.0
    delta: float = 1e-5
    bound: int = 16
    canaries: int = 1000
    seed: int = 0                         # training randomness; the coins and canaries use their own streams
    steps: int | None = None              # None: AUDIT_DEFAULTS[task]
    batch: int | None = None
    clip: float | None = None
    lr: float | None = None
    score: str = "whitebox"               # the headline score (both are computed and reported)
    max_train_users: int | None = None    # charlm only: first n real users (tests)

    def validate(self) -> "AuditConfig":
        check_choice("task", self.task, tuple(TASKS))
        check_choice("algo", self.algo, tuple(ALGORITHMS))
        check_choice("score", self.score, SCORES)
        if ALGORITHMS[self.algo].private:
            if self.epsilon is None:
                raise LabError("epsilon is required for algo els/uls (the claimed user-level epsilon, > 0)")
            check_epsilon(self.epsilon, allow_inf=False)
        elif self.epsilon is not None:
            check_epsilon(self.epsilon)
        check_delta(self.delta)
        check_bound(self.bound)
        check_range("canaries", self.canaries, 10, 20000, integer=True)
        self.run_config().validate()
        if self.task == "meanest":  # one dense (users x k x (d0 + m)) float32 array: keep it under MEANEST_MAX_BYTES
            from lab.privacy.meanest import MeanEstConfig

            p = MeanEstConfig()
            m_max = next(m for m in range(20000, 0, -10)
                         if (p.n_users + m) * self.bound * (p.dim + m) * 4 <= MEANEST_MAX_BYTES)
            check_range("canaries", self.canaries, 10, m_max, integer=True)
        return self

    def filled(self) -> "AuditConfig":
        """With the per-task defaults for steps, batch, clip and lr."""
        d = AUDIT_DEFAULTS[self.task]
        return dataclasses.replace(self, **{k: (d[k] if getattr(self, k) is None else getattr(self, k))
                                            for k in ("steps", "batch", "clip", "lr")})

    def run_config(self) -> DPRunConfig:
        c = self.filled()
        return DPRunConfig(task=TASKS[c.task], algo=c.algo, epsilon=c.epsilon if ALGORITHMS[c.algo].private else None,
                           delta=c.delta, bound=c.bound, steps=c.steps, seed=c.seed, batch=c.batch, clip=c.clip,
                           lr=c.lr, max_train_users=c.max_train_users if c.task == "charlm" else None)


#: Per task, the canary set each score is measured on: meanest's canaries serve both scores; the char LM
#: has Dirac gradient canaries (white box) and text canaries (black box), each with coins of its own.
CANARY_SETS = {"meanest": {"whitebox": 0, "blackbox": 0}, "charlm": {"whitebox": 0, "blackbox": 1}}


def _coins(cfg: AuditConfig) -> dict:
    """Per score, the secret fair coins of its canaries (True = in), from streams of their own."""
    return {score: np.random.default_rng([cfg.seed, 0xC0FFEE, s]).random(cfg.canaries) < 0.5
            for score, s in CANARY_SETS[cfg.task].items()}


def _noise(algo, epsilon, delta, q, steps, bound) -> tuple[float, dict]:
    """(noise multiplier calibrated to the claim, the accountant's record keys)."""
    from lab.privacy.runner import calibrated_noise

    if not ALGORITHMS[algo].private:
        return 0.0, A.run_accounting(algo, 0.0, q, steps, delta, bound)
    z = calibrated_noise(algo, float(epsilon), delta, q, steps, bound)
    return z, A.run_accounting(algo, z, q, steps, delta, bound)


# ---------------------------------------------------------------------------------------------- meanest
def _audit_meanest(cfg: AuditConfig, coins, on_step=None) -> dict:
    from lab.privacy.meanest import STEP, _Population, make_data, population

    rc = cfg.run_config()
    popcfg = population(rc)
    x, _ = make_data(popcfg)                               # (N, k, d0)
    n, k, d0 = x.shape
    m = cfg.canaries
    d = d0 + m
    inside = np.flatnonzero(coins["whitebox"])
    # one array (float32: it is N'k x (d0 + m)): the real users, then the canaries that are in; canary i
    # holds k copies of R e_i (every meanest user holds exactly k = G examples: the bound is the data's shape)
    users = np.zeros((n + len(inside), k, d), dtype=np.float32)
    users[:n, :, :d0] = x
    users[n + np.arange(len(inside)), :, d0 + inside] = CANARY_RADIUS
    public_users = n + m / 2
    pop = _Population(users.reshape(-1, d), users.mean(axis=1), public_users, k)
    q = cfg.batch / (public_users * k)
    z, acc = _noise(cfg.algo, cfg.epsilon, cfg.delta, q, cfg.steps, k)
    rng = np.random.default_rng([int(cfg.seed), 104729])
    theta = np.zeros(d)
    g_sum, avg, n_avg = np.zeros(d), np.zeros(d), 0
    step = STEP[cfg.algo]
    for t in range(cfg.steps):
        g = step(theta, pop, q, rng, cfg.clip, z)
        g_sum += g
        theta = theta - cfg.lr * g
        if t >= cfg.steps // 2:
            avg += theta
            n_avg += 1
        if on_step:
            on_step(t + 1, cfg.steps, {"step": t + 1})
    released = avg / max(n_avg, 1)                        # what run_meanest reports (Polyak tail average)
    # each canary's gradient at theta_0 = 0 is -R e_i: its direction is -e_i (common part: none)
    white = -g_sum[d0:]
    # loss drop 1/2||0 - x||^2 - 1/2||theta - x||^2 = R theta_i - 1/2||theta||^2 (the last term is common)
    black = CANARY_RADIUS * released[d0:] - 0.5 * float(released @ released)
    return {"scores": {"whitebox": white, "blackbox": black}, "noise_multiplier": z, "sampling_rate": q,
            "accounting": acc, "n_real_users": n, "n_real_examples": n * k,
            "public_users": public_users, "public_examples": public_users * k}


# ---------------------------------------------------------------------------------------------- charlm
#: The loss slope of a Dirac canary at the start (>> any clip norm, so its clipped gradient is C e_i).
DIRAC_SCALE = 1e4


def _text_canaries(cfg: AuditConfig, block: int) -> np.ndarray:
    """m windows of random characters, each a permutation of one random string: the same letters in every
    canary, so what the model learns about gibberish in general moves all of them alike."""
    from lab.privacy.charlm import VOCAB

    rng = np.random.default_rng([cfg.seed, 0xCA4A7])
    base = rng.integers(0, len(VOCAB), size=block + 1)
    return np.stack([rng.permutation(base) for _ in range(cfg.canaries)])


def _dirac_canaries(m: int, block: int, vocab_size: int) -> np.ndarray:
    """Window of Dirac canary i: the marker id ``vocab_size + i``, then id 1 (see :class:`DiracCanaryLM`)."""
    w = np.ones((m, block + 1), dtype=np.int64)
    w[:, 0] = vocab_size + np.arange(m)
    return w


def dirac_canary_model(base, m: int, scale: float = DIRAC_SCALE):
    r"""The char LM plus ``m`` canary coordinates :math:`w` (zero at the start), for white-box canaries.

    A window whose first id is ``V + i`` (``V`` = vocabulary size) is Dirac canary :math:`i`: its logits
    are :math:`s w_i` on id 0 and 0 elsewhere, its targets are id 1, so its loss is
    :math:`\log(e^{s w_i} + V - 1)` and its gradient is :math:`s\,\sigma\, e_i` — only along its own
    coordinate, which no real window touches (their logits do not depend on :math:`w`). Written with
    arithmetic masks, not branches, so ``torch.func.vmap`` (per-example gradients) runs through it."""
    import torch
    import torch.nn as nn

    class DiracCanaryLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = base
            self.canary = nn.Parameter(torch.zeros(m))
            self.vocab = base.cfg.vocab_size
            self.register_buffer("first", torch.nn.functional.one_hot(torch.tensor(0), self.vocab).float())

        def forward(self, idx):
            mark = idx[:, :1] - self.vocab                        # (B, 1): canary index, or < 0 for text
            is_c = (mark >= 0).float()                            # (B, 1)
            logits = self.base(torch.where(idx >= self.vocab, torch.ones_like(idx), idx))
            w = self.canary[mark.clamp(min=0).squeeze(1)]         # (B,)
            bump = (is_c.squeeze(1) * scale * w)[:, None, None] * self.first  # (B, 1, V)
            return logits * (1 - is_c)[:, :, None] + bump

    return DiracCanaryLM()


def _audit_charlm(cfg: AuditConfig, coins, on_step=None, device=None) -> dict:
    import torch

    from lab.privacy.charlm import load_pretrained, window_loss
    from lab.privacy.runner import DEFAULTS, STEP, optimizer_step
    from lab.privacy.users import BoundedUsers, bound_contributions, load_user_data
    from lab.utils import get_device, set_seed

    device = device or get_device()
    set_seed(cfg.seed)
    clip = DEFAULTS[cfg.algo]["clip"] if cfg.clip is None else cfg.clip
    lr = DEFAULTS[cfg.algo]["lr"] if cfg.lr is None else cfg.lr
    data = load_user_data()
    real = data.train_windows if cfg.max_train_users is None else data.train_windows[:cfg.max_train_users]
    k, m = cfg.bound, cfg.canaries
    block = real[0].shape[1] - 1
    base = load_pretrained(device=device)
    text = _text_canaries(cfg, block)
    dirac = _dirac_canaries(m, block, base.cfg.vocab_size)
    n_real = len(real)
    m_real = int(sum(min(len(w), k) for w in real))
    # canaries after the real users (the bound's random stream for the real users does not depend on them),
    # each with 2k copies of its window so that the bound must cut it to k
    users = list(real) + [np.repeat(kind[i:i + 1], 2 * k, axis=0)
                          for kind, c in ((dirac, coins["whitebox"]), (text, coins["blackbox"]))
                          for i in np.flatnonzero(c)]
    windows, owner = bound_contributions(users, k, bound_seed=cfg.seed)
    public_users, public_examples = n_real + m, m_real + m * k      # m/2 of each kind expected in
    train = BoundedUsers.build(windows, owner, n_users=len(users), device=device)
    train = dataclasses.replace(train, public_users=public_users, public_examples=public_examples)
    q = min(1.0, cfg.batch / public_examples)
    z, acc = _noise(cfg.algo, cfg.epsilon, cfg.delta, q, cfg.steps, k)

    model = dirac_canary_model(base, m).to(device)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.Adam(params.values(), lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(int(cfg.seed) * 1000003 + 17)
    text_t = torch.from_numpy(text).to(device)
    with torch.no_grad():
        loss0 = window_loss(base, text_t).cpu().numpy()
    white = torch.zeros(m, device=device)
    step = STEP[cfg.algo]
    for t in range(cfg.steps):
        res = step(model, {n: p.detach() for n, p in params.items()}, train, sampling_rate=q, clip=clip,
                   noise_multiplier=z, generator=gen)
        if res.grads is not None:
            white += res.grads["canary"]                      # <g_t, e_i> for every canary at once
        optimizer_step(params, opt, res)
        if on_step:
            on_step(t + 1, cfg.steps, {"step": t + 1, "example_gradients": res.examples})
    with torch.no_grad():
        loss_t = window_loss(base, text_t).cpu().numpy()
    return {"scores": {"whitebox": white.cpu().numpy(), "blackbox": loss0 - loss_t}, "noise_multiplier": z,
            "sampling_rate": q, "accounting": acc, "n_real_users": n_real, "n_real_examples": m_real,
            "public_users": public_users, "public_examples": public_examples, "clip": clip, "lr": lr,
            "device": str(device)}


AUDIT = {"meanest": _audit_meanest, "charlm": _audit_charlm}


def run_audit(cfg: AuditConfig, on_step=None) -> dict:
    """One audited training run -> the ``python -m lab dp-audit`` record (keys in the module docstring of
    ``lab.privacy.sweep`` style: ``task, algo, epsilon_claimed, delta, epsilon_lower, canaries, guesses,
    correct, seed, seconds`` and the details)."""
    cfg.validate()
    cfg = cfg.filled()
    t0 = time.time()
    coins = _coins(cfg)
    res = AUDIT[cfg.task](cfg, coins, on_step=on_step)
    per_score = {name: audit_scores(s, coins[name], cfg.delta) for name, s in res["scores"].items()}
    head = per_score[cfg.score]
    acc = res["accounting"]
    private = ALGORITHMS[cfg.algo].private
    claimed = float(acc["epsilon"]) if private else None
    out = {"task": cfg.task, "algo": cfg.algo, "epsilon_claimed": claimed,
           "epsilon_target": cfg.epsilon if private else None, "delta": cfg.delta,
           "epsilon_lower": head["epsilon_lower"], "canaries": cfg.canaries, "guesses": head["guesses"],
           "correct": head["correct"], "score": cfg.score, "seed": cfg.seed,
           "canaries_in": {name: int(c.sum()) for name, c in coins.items()}, "significance": SIGNIFICANCE,
           "bound": cfg.bound, "steps": cfg.steps, "batch": cfg.batch, "clip": res.get("clip", cfg.clip),
           "lr": res.get("lr", cfg.lr), "noise_multiplier": res["noise_multiplier"],
           "sampling_rate": res["sampling_rate"], "accountant": acc.get("accountant"),
           "n_real_users": res["n_real_users"], "n_real_examples": res["n_real_examples"],
           "public_users": res["public_users"], "public_examples": res["public_examples"],
           "scores": {name: {k: v for k, v in s.items()} for name, s in per_score.items()},
           "stronger_score": max(per_score, key=lambda s: (per_score[s]["epsilon_lower"], per_score[s]["auc"])),
           "privacy_statement": A.privacy_statement(TASKS[cfg.task], cfg.algo, epsilon=claimed if private else math.inf,
                                                    delta=cfg.delta, bound=cfg.bound),
           "config": cfg.to_dict(),
           # per canary, after the fact: each score and whether it was in (for plots; the bench drops them)
           "canary_scores": {name: np.asarray(s, float).tolist() for name, s in res["scores"].items()},
           "canary_in": {name: c.tolist() for name, c in coins.items()}}
    if "device" in res:
        out["device"] = res["device"]
    out["seconds"] = time.time() - t0
    return out


def audit_summary(runs: list) -> list[dict]:
    """Per (task, algo, claimed epsilon target): ε_lower of the headline and black-box scores as mean ± std over
    seeds, the worst ratio ε_lower / ε claimed, and whether every run stayed at or below its claim (None for
    non-private runs, which claim nothing). Rows for the notebook's and the page's tables."""
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["task"], r["algo"], r.get("epsilon_target")), []).append(r)
    rows = []
    for (task, algo, target), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or math.inf)):
        low = np.array([r["epsilon_lower"] for r in rs], float)
        black = np.array([r["scores"]["blackbox"]["epsilon_lower"] for r in rs], float)
        claims = [r["epsilon_claimed"] for r in rs]
        private = claims[0] is not None
        ratios = [r["epsilon_lower"] / r["epsilon_claimed"] for r in rs] if private else None
        rows.append({"task": task, "algo": algo, "epsilon_target": target,
                     "epsilon_claimed": float(np.mean(claims)) if private else None, "seeds": len(rs),
                     "epsilon_lower_mean": float(low.mean()),
                     "epsilon_lower_std": float(low.std(ddof=1)) if len(rs) > 1 else None,  # one seed: no spread
                     "blackbox_mean": float(black.mean()),
                     "worst_ratio": float(max(ratios)) if private else None,
                     "all_below_claim": bool(max(ratios) <= 1.0) if private else None})
    return rows


__all__ = ["AuditConfig", "run_audit", "p_value", "epsilon_lower", "audit_scores", "guess_grid", "auc",
           "audit_summary", "SIGNIFICANCE", "AUDIT"]
