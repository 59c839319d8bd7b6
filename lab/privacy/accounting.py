r"""Privacy accounting for DP-SGD at the **example** level and the **user** level.

Notation (the same in every function here):

* ``noise_multiplier`` :math:`z` — Gaussian noise std divided by the clip norm :math:`C`;
* ``sampling_rate`` :math:`q` — Poisson sampling probability per step (of an *example* for ELS, of a
  *user* for ULS);
* ``steps`` :math:`T`; ``delta`` :math:`\delta`; ``bound`` :math:`k` — the contribution bound, the most
  examples one user may own after bounding.

Mechanisms accounted
--------------------
**ULS** (user-level sampling). Each step samples every user independently with probability :math:`q`,
adds the sampled users' clipped gradients (each of norm :math:`\le C`) and Gaussian noise
:math:`N(0, z^2C^2 I)`. Adding or removing one *user* changes the sum by at most :math:`C`, so the
**unit of privacy is a user** and the mechanism is the Poisson-subsampled Gaussian composed :math:`T`
times: ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(z)), T)``, PLD accountant
(:func:`uls_epsilon`); Opacus's RDP and PRV accountants give a second opinion (:func:`opacus_epsilon`).

**ELS** (example-level sampling). Each step samples every *example* with probability :math:`q` and
clips each example's gradient to :math:`C`. For the **unit example** this is again the subsampled
Gaussian (:func:`els_example_epsilon`). For the **unit user** who owns up to :math:`k` examples, the
number of that user's examples in a batch is :math:`B\sim\mathrm{Binomial}(k, q)` and the per-step
sensitivity is :math:`C\cdot B`: removing the user turns :math:`N(0, z^2)` into the mixture
:math:`\sum_{b=0}^{k}\binom{k}{b}q^b(1-q)^{k-b}\,N(b, z^2)` (in units of :math:`C`; the worst case puts
all :math:`b` gradients in the same direction). ``MixtureOfGaussiansDpEvent`` self-composed :math:`T`
times with the PLD accountant is tight for it (Ganesh 2024, Thm 3.1; :func:`els_user_epsilon`).

The textbook alternative — **group privacy** — takes the example-level :math:`(\varepsilon_1,\delta_1)`
and gives :math:`(k\varepsilon_1,\; k e^{(k-1)\varepsilon_1}\delta_1)` for a group of :math:`k`
(:func:`group_privacy_epsilon`, optimised over :math:`\delta_1`). It is much looser; reporting both
shows what the tight accountant buys.

``ACCOUNT`` maps each mechanism (``"els"``, ``"uls"``, ``"example"``) to its accountant; calibration, the
runner's JSON (:func:`run_accounting`) and the fast UI path all choose through it.

Numerics
--------
PLD values use pessimistic rounding, so every discretisation gives an *upper* bound on
:math:`\varepsilon`; finer intervals are tighter and slower (``1e-3`` is within ~1e-4 relative of ``1e-4``
here, at a fraction of the time). A tiny :math:`z` makes the PLD support explode in memory, so
:func:`calibrate_noise` brackets :math:`z` explicitly from below with a cheap RDP estimate and never
evaluates the PLD below that bracket. :func:`epsilon_fast` is the cached, coarse path for live UI use.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lab.privacy.config import (
    check_bound,
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    check_sampling_rate,
    check_steps,
)
from lab.utils import LabError, check_choice

#: Default PLD discretisation for reported numbers (an upper bound; see module docstring).
REPORT_DISCRETIZATION = 1e-3
#: Discretisation while searching for sigma.
CALIBRATE_DISCRETIZATION = 1e-3
#: Discretisation of the fast (UI) path.
FAST_DISCRETIZATION = 1e-2
#: Lowest noise multiplier we ever hand to the PLD accountant.
MIN_NOISE_MULTIPLIER = 0.3
#: Largest noise multiplier the calibration will search.
MAX_NOISE_MULTIPLIER = 200.0


def _validate(noise_multiplier, sampling_rate, steps, delta, bound=1):
    """Argument checks for direct library calls (a run is validated by ``DPRunConfig.validate``)."""
    check_noise_multiplier(noise_multiplier)
    check_sampling_rate(sampling_rate)
    check_steps(steps)
    check_delta(delta)
    check_bound(bound)


def binomial_sensitivity(bound: int, sampling_rate: float):
    """Support and pmf of the per-step ELS sensitivity (in units of C) for a user with ``bound`` examples.

    Returns ``(sensitivities, probs)`` with ``sensitivities = [0, 1, ..., k]`` and
    ``probs[b] = C(k, b) q^b (1-q)^(k-b)``. Mass below 1e-30 in the upper tail is dropped and put back on
    the largest kept value (which only makes the event more pessimistic).
    """
    from scipy.stats import binom

    k = int(bound)
    sens = np.arange(k + 1)
    probs = binom.pmf(sens, k, sampling_rate)
    keep = np.nonzero(probs > 1e-30)[0]
    last = int(keep.max()) if len(keep) else 0
    sens, p = sens[: last + 1], probs[: last + 1].copy()
    p[-1] += probs[last + 1:].sum()
    p = p / p.sum()
    return [float(s) for s in sens], [float(x) for x in p]


def els_user_event(noise_multiplier, sampling_rate, steps, bound):
    """The dp-accounting event of ELS for one **user** owning at most ``bound`` examples."""
    import dp_accounting as dpa
    from dp_accounting.dp_event import MixtureOfGaussiansDpEvent

    sens, probs = binomial_sensitivity(bound, sampling_rate)
    return dpa.SelfComposedDpEvent(MixtureOfGaussiansDpEvent(float(noise_multiplier), sens, probs), int(steps))


def sampled_gaussian_event(noise_multiplier, sampling_rate, steps):
    """Poisson-subsampled Gaussian composed ``steps`` times (ULS user-level / ELS example-level)."""
    import dp_accounting as dpa

    return dpa.SelfComposedDpEvent(
        dpa.PoissonSampledDpEvent(float(sampling_rate), dpa.GaussianDpEvent(float(noise_multiplier))), int(steps))


def _pld(event, discretization):
    from dp_accounting.pld import pld_privacy_accountant as pa

    acc = pa.PLDAccountant(value_discretization_interval=float(discretization))
    acc.compose(event)
    return acc


def els_user_epsilon(noise_multiplier, sampling_rate, steps, bound, delta, *,
                     discretization=REPORT_DISCRETIZATION) -> float:
    r"""User-level :math:`\varepsilon` of ELS: a user owns :math:`\le k` examples, each Poisson-sampled at
    :math:`q`, per-example clip :math:`C`, noise :math:`zC`, :math:`T` steps. Tight mixture-of-Gaussians
    PLD. Unit of privacy: **user**."""
    _validate(noise_multiplier, sampling_rate, steps, delta, bound)
    if sampling_rate == 0:
        return 0.0
    return float(_pld(els_user_event(noise_multiplier, sampling_rate, steps, bound), discretization)
                 .get_epsilon(delta))


def sampled_gaussian_epsilon(noise_multiplier, sampling_rate, steps, delta, *,
                             discretization=REPORT_DISCRETIZATION) -> float:
    r""":math:`\varepsilon` of the Poisson-subsampled Gaussian (rate :math:`q`, noise :math:`z`,
    :math:`T` steps), PLD accountant. The unit is whatever is sampled and clipped."""
    _validate(noise_multiplier, sampling_rate, steps, delta)
    if sampling_rate == 0:
        return 0.0
    return float(_pld(sampled_gaussian_event(noise_multiplier, sampling_rate, steps), discretization)
                 .get_epsilon(delta))


def uls_epsilon(noise_multiplier, user_sampling_rate, steps, delta, **kw) -> float:
    r"""User-level :math:`\varepsilon` of ULS (users Poisson-sampled at :math:`q`, per-user clip
    :math:`C`, noise :math:`zC`). Unit of privacy: **user**."""
    return sampled_gaussian_epsilon(noise_multiplier, user_sampling_rate, steps, delta, **kw)


def els_example_epsilon(noise_multiplier, sampling_rate, steps, delta, **kw) -> float:
    r"""Example-level :math:`\varepsilon` of ELS. Unit of privacy: **example** (what DP-SGD
    usually reports; it says nothing about a user with many examples)."""
    return sampled_gaussian_epsilon(noise_multiplier, sampling_rate, steps, delta, **kw)


def group_privacy_epsilon(noise_multiplier, sampling_rate, steps, bound, delta, *,
                          discretization=REPORT_DISCRETIZATION, grid=200) -> float:
    r"""User-level :math:`\varepsilon` of ELS via **group privacy** on the example-level guarantee.

    If the mechanism is :math:`(\varepsilon_1, \delta_1)`-DP for one example, it is
    :math:`(k\varepsilon_1, k e^{(k-1)\varepsilon_1}\delta_1)`-DP for a group of :math:`k` examples. We
    take the example-level PLD curve :math:`\varepsilon_1(\delta_1)` and return
    :math:`\min_{\delta_1} k\,\varepsilon_1(\delta_1)` subject to
    :math:`k e^{(k-1)\varepsilon_1(\delta_1)}\delta_1 \le \delta` (log grid over :math:`\delta_1`).
    Unit of privacy: **user**; valid but loose. Returns ``inf`` if no :math:`\delta_1` works.
    """
    _validate(noise_multiplier, sampling_rate, steps, delta, bound)
    k = int(bound)
    acc = _pld(sampled_gaussian_event(noise_multiplier, sampling_rate, steps), discretization)
    if k == 1:
        return float(acc.get_epsilon(delta))
    best = math.inf
    for d1 in np.logspace(math.log10(delta / k) - 30, math.log10(delta / k), grid):
        e1 = float(acc.get_epsilon(float(d1)))
        if k * math.exp(min((k - 1) * e1, 700)) * d1 <= delta:
            best = min(best, k * e1)
    return best


def opacus_epsilon(noise_multiplier, sampling_rate, steps, delta, method="rdp") -> float:
    r"""Second opinion on the subsampled Gaussian from Opacus's accountants (``"rdp"`` or ``"prv"``).

    RDP is an upper bound that is usually 5–20 % above the PLD value; PRV should agree with PLD to ~1 %.
    Opacus has no user-level accounting of its own: fed with the *user* sampling rate it is the ULS
    accountant. The mixture (ELS user-level) event is only supported by the PLD accountant.
    """
    _validate(noise_multiplier, sampling_rate, steps, delta)
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = {"rdp": RDPAccountant, "prv": PRVAccountant}[method]()
    acc.history = [(float(noise_multiplier), float(sampling_rate), int(steps))]
    if method == "rdp":
        return float(acc.get_epsilon(delta=float(delta), alphas=_RDP_ORDERS))
    return float(acc.get_epsilon(delta=float(delta)))


_RDP_ORDERS = [1 + x / 20.0 for x in range(1, 200)] + list(range(11, 64)) + [80, 128, 256, 512, 1024, 4096]


def _report_els(z, q, T, delta, k, disc) -> dict:
    return {"accountant": "pld-mixture-of-gaussians",
            "epsilon": els_user_epsilon(z, q, T, k, delta, discretization=disc),
            "epsilon_example": els_example_epsilon(z, q, T, delta, discretization=disc),
            "epsilon_group": group_privacy_epsilon(z, q, T, k, delta, discretization=disc)}


def _report_uls(z, q, T, delta, k, disc) -> dict:
    return {"accountant": "pld-poisson-gaussian",
            "epsilon": uls_epsilon(z, q, T, delta, discretization=disc),
            "epsilon_example": None,
            "epsilon_rdp_opacus": opacus_epsilon(z, q, T, delta, "rdp")}


@dataclass(frozen=True)
class Accountant:
    """How one mechanism is accounted.

    ``epsilon(z, q, T, delta, k, discretization)``; ``uses_bound``: a user reaches the batch through up to
    ``k`` sampled examples (ELS) rather than once; ``report(z, q, T, delta, k, discretization)``: the
    epsilon keys of a run's JSON (None for a mechanism that is not a user-level algorithm)."""

    epsilon: Callable
    uses_bound: bool
    report: Callable | None = None
    reports_example: bool = False  # the run JSON also carries an example-level epsilon


ACCOUNT = {
    "els": Accountant(lambda z, q, T, d, k, disc: els_user_epsilon(z, q, T, k, d, discretization=disc),
                      uses_bound=True, report=_report_els, reports_example=True),
    "uls": Accountant(lambda z, q, T, d, k, disc: sampled_gaussian_epsilon(z, q, T, d, discretization=disc),
                      uses_bound=False, report=_report_uls),
    # example-level ELS (calibration only: not a user-level guarantee)
    "example": Accountant(lambda z, q, T, d, k, disc: sampled_gaussian_epsilon(z, q, T, d, discretization=disc),
                          uses_bound=False),
}


def _user_level(algo) -> Accountant:
    if ACCOUNT.get(algo) is None or ACCOUNT[algo].report is None:
        raise LabError(f"algo must be els or uls for accounting; got {algo!r}")
    return ACCOUNT[algo]


def user_epsilon(algo, noise_multiplier, sampling_rate, steps, delta, bound=1,
                 discretization=REPORT_DISCRETIZATION) -> float:
    """User-level epsilon for ``algo`` in {"els", "uls"} (see the per-algorithm functions)."""
    return _user_level(algo).epsilon(noise_multiplier, sampling_rate, steps, delta, bound, discretization)


def _rdp_quick(z, q, steps, delta):
    """Opacus RDP epsilon on a short list of orders (fast; only used to bracket calibration)."""
    import warnings

    from opacus.accountants.analysis import rdp as R

    orders = [2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 128, 256]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps, _ = R.get_privacy_spent(orders=orders, rdp=R.compute_rdp(q=q, noise_multiplier=z, steps=steps,
                                                                         orders=orders), delta=delta)
    return float(eps)


def _rdp_sigma_lower(target_epsilon, sampling_rate, steps, delta) -> float:
    """A cheap lower estimate of the sigma that reaches ``target_epsilon`` for the k=1 sampled Gaussian.

    RDP over-estimates epsilon, so the RDP-calibrated sigma is an upper estimate of the PLD sigma for
    k=1; the true PLD sigma is rarely more than ~15 % below it, and user-level ELS (k>=1) needs at least
    the k=1 sigma. We return 0.7x the RDP sigma (floored at ``MIN_NOISE_MULTIPLIER``)."""
    lo, hi = MIN_NOISE_MULTIPLIER, MAX_NOISE_MULTIPLIER
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if _rdp_quick(mid, sampling_rate, steps, delta) > target_epsilon:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.03:
            break
    return max(MIN_NOISE_MULTIPLIER, 0.7 * hi)


def calibrate_noise(target_epsilon, delta, sampling_rate, steps, *, algo="uls", bound=1,
                    discretization=CALIBRATE_DISCRETIZATION, rtol=2e-3, bracket=None) -> float:
    r"""Smallest noise multiplier :math:`z` with user-level :math:`\varepsilon(z) \le` ``target_epsilon``.

    ``algo="uls"``: the subsampled Gaussian at the user sampling rate; ``algo="els"``: the
    mixture-of-Gaussians event for users with up to ``bound`` examples sampled at the example rate;
    ``algo="example"``: example-level ELS. Root finding is bisection in :math:`\log z` inside an explicit
    bracket ``(lo, hi)``: by default ``lo`` comes from a cheap RDP estimate (never below
    ``MIN_NOISE_MULTIPLIER`` — tiny :math:`z` blows the PLD up in memory) and ``hi`` doubles until
    :math:`\varepsilon(hi)\le` target. Returns the upper end of the final bracket, so the result always
    satisfies the target (at ``discretization``; re-check at a finer one for reporting).
    """
    check_epsilon(target_epsilon, allow_inf=False)
    _validate(1.0, sampling_rate, steps, delta, bound)
    account = ACCOUNT[check_choice("algo", algo, tuple(ACCOUNT))]

    def eps_at(disc):
        def eps(z):
            return account.epsilon(z, sampling_rate, steps, delta, bound, disc)
        return eps

    def bisect(eps, lo, hi, tol, e_lo=None, e_hi=None):
        """Smallest z in [lo, hi] (hi doubled as needed) with eps(z) <= target, to relative ``tol``.

        Illinois regula falsi on (log z, log eps - log target), which keeps a bracket like bisection
        but needs only a few evaluations of the smooth eps curve."""
        e_lo = eps(lo) if e_lo is None else e_lo
        if e_lo <= target_epsilon:
            return lo  # the bracket floor already meets the target
        e_hi = eps(hi) if e_hi is None else e_hi
        while e_hi > target_epsilon:
            lo, e_lo, hi = hi, e_hi, hi * 2
            if hi > MAX_NOISE_MULTIPLIER:
                raise LabError(f"epsilon {target_epsilon} needs noise_multiplier > {MAX_NOISE_MULTIPLIER}: "
                               "use fewer steps or a lower sampling rate")
            e_hi = eps(hi)
        lt = math.log(target_epsilon)
        f_lo, f_hi = math.log(e_lo) - lt, math.log(max(e_hi, 1e-300)) - lt
        side = 0
        while hi / lo > 1 + tol:
            a, b = math.log(lo), math.log(hi)
            m = b - f_hi * (b - a) / (f_hi - f_lo) if f_hi != f_lo else (a + b) / 2
            m = min(max(m, a + 0.02 * (b - a)), b - 0.02 * (b - a))
            if b - a < 4 * tol:  # nearly there: plain bisection
                m = (a + b) / 2
            mid = math.exp(m)
            f = math.log(max(eps(mid), 1e-300)) - lt
            if f > 0:
                lo, f_lo = mid, f
                if side == -1:
                    f_hi /= 2
                side = -1
            else:
                hi, f_hi = mid, f
                if side == 1:
                    f_lo /= 2
                side = 1
        return hi

    if bracket is None:
        lo = _rdp_sigma_lower(target_epsilon, sampling_rate, steps, delta)
        # first guess for hi: a user is "hit" with prob 1-(1-q)^k; doubled until it meets the target
        q_user = 1 - (1 - sampling_rate) ** (bound if account.uses_bound else 1)
        hi = max(lo * 1.5, _rdp_sigma_lower(target_epsilon, q_user, steps, delta) / 0.7 * 1.1)
    else:
        lo, hi = map(float, bracket)
        if lo < MIN_NOISE_MULTIPLIER:
            raise LabError(f"calibration bracket low end must be >= {MIN_NOISE_MULTIPLIER}; got {lo}")
    # stage 1 at a coarse discretisation (cheap, and an upper bound on epsilon, so its answer meets the
    # target at any finer discretisation too); stage 2 refines just below it.
    coarse = max(discretization, FAST_DISCRETIZATION)
    z = bisect(eps_at(coarse), lo, hi, max(rtol, 0.01))
    if coarse == discretization:
        return z
    fine = eps_at(discretization)
    lo2 = max(lo, z / 1.03)
    if lo2 >= z:
        return z
    e2 = fine(lo2)
    if e2 <= target_epsilon:
        return bisect(fine, lo, lo2, rtol, e_hi=e2)
    return bisect(fine, lo2, z, rtol, e_lo=e2)


#: The fast path's kinds: every accountant above plus the group-privacy conversion.
_FAST = {**{kind: acc.epsilon for kind, acc in ACCOUNT.items()},
         "group": lambda z, q, T, d, k, disc: group_privacy_epsilon(z, q, T, k, d, discretization=disc, grid=60)}


@functools.lru_cache(maxsize=4096)
def _fast(kind, z, q, T, k, delta):
    return _FAST[kind](z, q, T, delta, k, FAST_DISCRETIZATION)


def epsilon_fast(kind, noise_multiplier, sampling_rate, steps, delta, bound=1) -> float:
    """Cached, coarse (discretisation 1e-2, still an upper bound) epsilon for live UI use.

    ``kind`` in {"els" (user-level mixture), "uls", "example", "group"}. Inputs are rounded to 3
    significant digits for the cache key. Typically 0.05–0.5 s uncached, microseconds cached.
    """
    check_choice("kind", kind, tuple(_FAST))
    _validate(noise_multiplier, sampling_rate, steps, delta, bound)
    r = lambda x: float(f"{float(x):.3g}")  # noqa: E731
    return _fast(kind, r(noise_multiplier), r(sampling_rate), int(steps), int(bound), r(delta))


def accounting_summary(algo, noise_multiplier, sampling_rate, steps, delta, bound=1,
                       discretization=REPORT_DISCRETIZATION) -> dict:
    """All the epsilons a result JSON reports for one run (keys match the CLI's JSON)."""
    return _user_level(algo).report(noise_multiplier, sampling_rate, steps, delta, bound, discretization)


def run_accounting(algo, noise_multiplier, sampling_rate, steps, delta, bound=1,
                   discretization=REPORT_DISCRETIZATION) -> dict:
    """The epsilon keys of a run's JSON: :func:`accounting_summary`, or, for a run that adds no noise
    (``nonprivate``, or ``noise_multiplier`` 0: clipping only), ``epsilon = inf`` and accountant ``"none"``."""
    if noise_multiplier == 0:
        acc = ACCOUNT.get(algo)
        return {"epsilon": math.inf, "epsilon_example": math.inf if acc and acc.reports_example else None,
                "accountant": "none"}
    return accounting_summary(algo, noise_multiplier, sampling_rate, steps, delta, bound, discretization)
