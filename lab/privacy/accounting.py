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
:math:`\varepsilon`; finer intervals are tighter and slower. The excess is roughly *absolute* (a few
hundredths of a nat at ``1e-3``), so it is largest in relative terms at small :math:`\varepsilon`: a review
measured ``1e-3`` at 2.3–2.7 % above ``1e-4`` for :math:`\varepsilon < 0.15`, much less at larger
:math:`\varepsilon`. ``tests/test_privacy_accounting.py`` brackets the reported values between an
independent pessimistic (upper) and optimistic (lower) numeric PLD. A tiny :math:`z` makes the PLD support
explode in memory, so :func:`calibrate_noise` brackets :math:`z` explicitly from below with a cheap RDP
estimate and never evaluates the PLD below that bracket.

:func:`epsilon_fast` is the cached path for live UI use and an **upper bound by construction** on the
reported number: the sampled Gaussian (ULS, example level, group privacy) is the reporting computation itself,
and the mixture (ELS user level) is evaluated on a coarser grid that contains none of the finer one's
slack (a pessimistic PLD on a grid that is a subset of the reporting grid dominates it); the result is then
rounded *up*. Its inputs are not rounded: rounding :math:`q` up does raise the true :math:`\varepsilon`, but
not always the discretised one (measured: group privacy, k = 4, :math:`z = 3`, :math:`q` = 0.03406 ->
0.0341, T = 3000, :math:`\delta` = 1e-6 gave 19.058 < 19.061), so it would not bound the reported number.

What :math:`\varepsilon` covers is stated once, in :func:`privacy_statement` (every run record carries it).
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
    r"""Support and pmf of the per-step ELS sensitivity (in units of C) for a user with ``bound`` examples.

    Returns ``(sensitivities, probs)`` with ``sensitivities = [0, 1, ..., k]`` and
    ``probs[b] = C(k, b) q^b (1-q)^(k-b)``. The upper tail where each term is below 1e-30 is cut off and
    its mass put on the largest kept sensitivity. That moves < k·1e-30 of mass per step *down*, so it is
    (very slightly) optimistic, not pessimistic: by a total-variation coupling it can understate
    :math:`\delta(\varepsilon)` by at most :math:`T e^{\varepsilon} k \cdot 10^{-30}` — below 1e-8 for
    every :math:`\varepsilon \le 30`, :math:`T \le 10^5`, :math:`k \le 10^3`. Keeping the whole tail would
    blow the PLD support up (its loss range grows with the largest sensitivity).
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


#: The candidate example-level deltas of group privacy: the fixed lattice 10^(-j / GROUP_LATTICE) down to
#: GROUP_DELTA1_FLOOR, the same for every delta (so the fast path, at a smaller delta, searches a subset).
GROUP_LATTICE = 8
GROUP_DELTA1_FLOOR = 1e-40


def _group_min(eps_of_delta, bound, delta) -> float:
    r""":math:`\min k\,\varepsilon_1(\delta_1)` over lattice points :math:`\delta_1 \le \delta/k` with
    :math:`k e^{(k-1)\varepsilon_1(\delta_1)}\delta_1 \le \delta`; ``inf`` when none
    qualifies. :math:`\varepsilon_1` never grows with :math:`\delta_1`, so the first feasible point from the
    top is the minimum."""
    k = int(bound)
    j_lo = math.ceil(-math.log10(delta / k) * GROUP_LATTICE - 1e-9)
    j_hi = math.floor(-math.log10(GROUP_DELTA1_FLOOR) * GROUP_LATTICE)
    for j in range(j_lo, j_hi + 1):
        d1 = 10.0 ** (-j / GROUP_LATTICE)
        if d1 > delta / k:
            continue
        e1 = float(eps_of_delta(d1))
        if k * math.exp(min((k - 1) * e1, 700)) * d1 <= delta:
            return k * e1
    return math.inf


def group_privacy_epsilon(noise_multiplier, sampling_rate, steps, bound, delta, *,
                          discretization=REPORT_DISCRETIZATION) -> float:
    r"""User-level :math:`\varepsilon` of ELS via **group privacy** on the example-level guarantee.

    If the mechanism is :math:`(\varepsilon_1, \delta_1)`-DP for one example, it is
    :math:`(k\varepsilon_1, k e^{(k-1)\varepsilon_1}\delta_1)`-DP for a group of :math:`k` examples. We
    take the example-level PLD curve :math:`\varepsilon_1(\delta_1)` and return
    :math:`\min_{\delta_1} k\,\varepsilon_1(\delta_1)` subject to
    :math:`k e^{(k-1)\varepsilon_1(\delta_1)}\delta_1 \le \delta` (over the log lattice
    ``GROUP_LATTICE`` points per decade; any feasible :math:`\delta_1` gives a valid bound).
    Unit of privacy: **user**; valid but loose. Returns ``inf`` if no :math:`\delta_1` works.
    """
    _validate(noise_multiplier, sampling_rate, steps, delta, bound)
    acc = _pld(sampled_gaussian_event(noise_multiplier, sampling_rate, steps), discretization)
    if int(bound) == 1:
        return float(acc.get_epsilon(delta))
    return _group_min(lambda d1: acc.get_epsilon(d1), bound, delta)


def opacus_epsilon(noise_multiplier, sampling_rate, steps, delta, method="rdp") -> float:
    r"""Second opinion on the subsampled Gaussian from Opacus's accountants (``"rdp"`` or ``"prv"``).

    RDP is an upper bound that is usually 5–20 % above the PLD value. PRV is an estimate with its own
    error terms: close to the PLD at moderate :math:`\varepsilon` but not everywhere (a review found it
    22 % off at :math:`\varepsilon = 0.046`) — a second opinion, never the reported number.
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


#: The fast path's result is rounded UP to this many significant figures (a margin against round-off).
FAST_RESULT_SIG_FIGS = 4
#: The fast path's discretisation per kind: the mixture (ELS user level) PLD costs seconds to build at
#: ``1e-3`` (its support grows with k), the sampled Gaussian a fraction of a second.
FAST_DISCRETIZATION_BY_KIND = {"els": FAST_DISCRETIZATION, "uls": REPORT_DISCRETIZATION,
                               "example": REPORT_DISCRETIZATION, "group": REPORT_DISCRETIZATION}


def round_sig(x: float, direction: str, sig: int = FAST_RESULT_SIG_FIGS) -> float:
    """``x`` > 0 rounded to ``sig`` significant figures towards ``"down"`` or ``"up"``; the float returned
    is never on the wrong side of ``x`` (decimal rounding, then one ulp nudged if needed)."""
    from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

    if float(f"{x:.{sig}g}") == x:  # already on the grid (1e-5 is not exactly 1e-5 in binary: keep it)
        return float(x)
    d = Decimal(float(x))
    exp = d.adjusted() - (sig - 1)
    r = float(d.quantize(Decimal(1).scaleb(exp), rounding=ROUND_FLOOR if direction == "down" else ROUND_CEILING))
    if direction == "down":
        while r > x:
            r = math.nextafter(r, -math.inf)
    else:
        while r < x:
            r = math.nextafter(r, math.inf)
    return r


@functools.lru_cache(maxsize=48)
def _step_pld(kind, z, q, k, disc):
    """One step's PLD (what the library's accountant composes), cached: T and delta vary for free."""
    from dp_accounting.pld import privacy_loss_distribution as P

    if kind == "els":
        sens, probs = binomial_sensitivity(k, q)
        return P.from_mixture_gaussian_mechanism(float(z), sens, probs, value_discretization_interval=disc)
    return P.from_gaussian_mechanism(float(z), value_discretization_interval=disc, sampling_prob=float(q))


@functools.lru_cache(maxsize=64)
def _composed(kind, z, q, T, k, disc):
    """T steps composed exactly as ``PLDAccountant`` composes them (onto its identity PLD): at equal inputs and
    discretisation the same numbers, bit for bit — the extreme tails group privacy reads included."""
    from dp_accounting.pld import privacy_loss_distribution as P

    return P.identity(value_discretization_interval=disc).compose(_step_pld(kind, z, q, k, disc).self_compose(int(T)))


@functools.lru_cache(maxsize=4096)
def _fast(kind, z, q, T, k, delta):
    disc = FAST_DISCRETIZATION_BY_KIND[kind]
    if q == 0:
        return 0.0
    if kind == "group":
        pld = _composed("example", z, q, T, 1, disc)
        eps = float(pld.get_epsilon_for_delta(delta)) if k == 1 else _group_min(pld.get_epsilon_for_delta, k, delta)
    else:
        eps = float(_composed(kind, z, q, T, k if kind == "els" else 1, disc).get_epsilon_for_delta(delta))
    # the direct PLD and the accountant's composition differ in the last digits (~1e-9): round up past them
    return eps if not math.isfinite(eps) else round_sig(eps, "up", FAST_RESULT_SIG_FIGS)


def epsilon_fast(kind, noise_multiplier, sampling_rate, steps, delta, bound=1) -> float:
    r"""Cached epsilon for live UI use, an **upper bound by construction** on the library's reported value.

    ``kind`` in {"els" (user-level mixture), "uls", "example", "group"}. The one-step PLD is built once per
    :math:`(z, q, k)` and composed for each :math:`T` (moving T or delta costs milliseconds): at the reporting
    discretisation for the sampled Gaussian kinds (the library's own computation; group privacy searches the
    library's :math:`\delta_1` lattice), at the coarser ``FAST_DISCRETIZATION`` for the mixture, whose
    pessimistic PLD on a sub-grid dominates the reporting one. The result is rounded up to
    ``FAST_RESULT_SIG_FIGS`` significant figures. How far above the reported value it lands is measured
    (``bench/run_dp_audit.py --part fast``), never assumed; ``tests/test_privacy_accounting.py`` checks
    fast >= library on more than 1,000 inputs the privacy page can reach.
    """
    check_choice("kind", kind, tuple(FAST_DISCRETIZATION_BY_KIND))
    _validate(noise_multiplier, sampling_rate, steps, delta, bound)
    return _fast(kind, float(noise_multiplier), float(sampling_rate), int(steps),
                 int(bound) if kind in ("els", "group") else 1, float(delta))


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


# -------------------------------------------------------------------------------- what epsilon covers
#: The unit of privacy per task (``DPRunConfig.task``).
UNITS = {"lm": "one user = one (play, character) of the Shakespeare training users, with all of their examples "
               "(at most k after the contribution bound)",
         "meanest": "one synthetic user with all of their examples (k)"}


def privacy_statement(task, algo, *, epsilon, delta, bound, secure_rng=False) -> dict:
    r"""What a run's :math:`\varepsilon` covers and what it does not: the ``"privacy_statement"`` block of
    every run record (the README's "What ε covers" and the privacy page say the same in prose).

    * unit: one user (:data:`UNITS`); adjacency: add or remove one user with all of their (bounded) examples;
    * covered: the whole transcript of one run — every noisy gradient of the :math:`T` steps, hence every
      checkpoint and the final model (post-processing);
    * public (not protected): :math:`N` users and :math:`M` bounded examples — :math:`q = B/M` depends on
      them, and the record prints both exactly — plus every hyperparameter, the pretrained model and the
      held-out users;
    * not covered: hyperparameter tuning on the same users, repeated runs (they compose), the realised
      count of sampled example-gradients (a diagnostic that depends on the data);
    * randomness: a seeded generator makes the noise reproducible from the seed printed in the record, so
      the guarantee needs that seed secret; ``secure_rng`` draws noise and sampling from the OS's CSPRNG.
    """
    private = math.isfinite(float(epsilon)) if epsilon is not None else False
    rng = ("noise and Poisson sampling drawn from the operating system's CSPRNG (os.urandom, --secure-rng): not "
           "reproducible; the seed only picks each user's kept examples (data-independent). Floating-point attacks "
           "on Gaussian sampling are not addressed"
           if secure_rng else
           "noise and Poisson sampling come from a seeded pseudo-random generator and the seed is in this record: "
           "anyone holding it can regenerate the noise and subtract it, so the guarantee holds only while the seed "
           "is secret. Fine for a simulation lab; use --secure-rng for anything released")
    return {
        "unit": UNITS.get(task, "one user"),
        "adjacency": f"add or remove one user (all of their examples, at most k = {int(bound)})",
        "epsilon": epsilon, "delta": delta,
        "covers": ("the whole transcript of this one run: all noisy gradients of the T steps, hence every checkpoint "
                   "and the final model (post-processing)") if private else
                  "nothing: this run adds no noise (epsilon = inf)",
        "public": ["N (training users) and M (examples after the bound): q = B/M depends on them and this record "
                   "prints both exactly, so they are declared public, not protected",
                   "every hyperparameter (B, q, T, k, clip C, noise multiplier, lr, optimizer), the pretrained model, "
                   "the held-out users and the evaluation on them"],
        "not_covered": ["hyperparameter tuning: the default clip, lr and bound were chosen with runs on these same "
                        "users, and that search is not accounted; epsilon is per run",
                        "several runs on the same users compose: their privacy losses add up",
                        "example_gradients (the realised number of sampled example-gradients) depends on the data; "
                        "it is a diagnostic, drop it from anything released"],
        "randomness": rng,
        "secure_rng": bool(secure_rng),
    }
