r"""One config per user-level DP run: a small dataclass, serialisable to JSON and hashed for caches.

Every run of this half — ``python -m lab dp``, the sweeps, notebooks 06/07, the dashboard — is one
:class:`DPRunConfig`, and :meth:`DPRunConfig.validate` is the one place its privacy and training settings
are range-checked (the accountants' own argument checks call the same ``check_*`` helpers below).

``epsilon`` is always the **user-level** target (unit of privacy: one user = a (play, character) for the
``lm`` task, one synthetic user for ``meanest``):

* a DP algorithm (``els``, ``uls``) needs ``epsilon > 0``; ``inf`` means clipping without noise;
  ``None`` is allowed only when ``noise_multiplier`` is given (train at that :math:`\sigma`, report the
  :math:`\varepsilon` it spends);
* ``nonprivate`` takes ``epsilon = None`` (or any value > 0, or ``inf``; it is only echoed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from lab.utils import LabError, RunConfig, check_choice, check_range

TASKS = ("lm", "meanest")  # lm: tier 2, char LM on Shakespeare users; meanest: tier 1, synthetic mean estimation
#: Models the ``lm`` task can fine-tune (``runner.LOAD_MODEL`` maps each to its loader).
MODELS = ("charlm", "smollm2")  # smollm2: SmolLM2-135M + LoRA (lab.privacy.llm)
#: The two regimes of the ``meanest`` testbed: spread between users ``tau``, diversity within a user ``s``.
REGIMES = {"diverse": {"tau": 1.0, "s": 4.0}, "identical": {"tau": 1.0, "s": 0.0}}


@dataclass(frozen=True)
class Algorithm:
    """What one training algorithm does each step (the runner picks its step from ``runner.STEP``)."""

    private: bool          # clips and adds noise calibrated to a user-level epsilon
    sampling_unit: str     # what is Poisson-sampled each step: "example" or "user"


ALGORITHMS = {
    "els": Algorithm(private=True, sampling_unit="example"),
    "uls": Algorithm(private=True, sampling_unit="user"),
    "nonprivate": Algorithm(private=False, sampling_unit="example"),
}
PRIVATE_ALGOS = tuple(a for a, spec in ALGORITHMS.items() if spec.private)

#: Expected example-gradients per step when ``batch`` is None.
DEFAULT_BATCH = {"lm": 256, "meanest": 64}
#: Per-model override of DEFAULT_BATCH (a SmolLM2 example-gradient costs ~1000x the char LM's).
MODEL_BATCH = {"smollm2": 32}
DEFAULT_BOUND = 16
DEFAULT_STEPS = 100


# -------------------------------------------------------------------------------- shared range checks
def check_epsilon(epsilon, allow_inf=True):
    """A user-level target: > 0, or (with ``allow_inf``) inf, which means clipping without noise."""
    if allow_inf and isinstance(epsilon, (int, float)) and math.isinf(epsilon) and epsilon > 0:
        return epsilon
    return check_range("epsilon", epsilon, 0, None, low_open=True)


def check_delta(delta):
    return check_range("delta", delta, 0, 1, low_open=True, high_open=True)


def check_bound(bound):
    return check_range("bound", bound, 1, None, integer=True)


def check_steps(steps):
    return check_range("steps", steps, 1, None, integer=True)


def check_noise_multiplier(noise_multiplier):
    return check_range("noise_multiplier", noise_multiplier, 0, None, low_open=True)


def check_sampling_rate(sampling_rate):
    return check_range("sampling_rate", sampling_rate, 0, 1)


# -------------------------------------------------------------------------------- the run config
@dataclass
class DPRunConfig(RunConfig):
    task: str = "lm"
    algo: str = "uls"
    epsilon: float | None = 4.0             # user-level target (see the module docstring for None / inf)
    delta: float = 1e-5
    bound: int = DEFAULT_BOUND              # contribution bound k: most examples kept per user
    steps: int = DEFAULT_STEPS              # T
    seed: int = 0                           # sampling, noise and the bound's choice of examples
    batch: int | None = None                # expected example-gradients per step; None -> DEFAULT_BATCH[task]
    clip: float | None = None               # None -> tuned default (lm: runner.DEFAULTS; meanest: grid search)
    lr: float | None = None                 # None -> tuned default, as for clip
    noise_multiplier: float | None = None   # given sigma: skip calibration, account what it spends (lm only)
    model: str = "charlm"                   # lm only: which pretrained model is fine-tuned
    lora_rank: int = 4                      # model smollm2 only: rank of the LoRA adapters
    regime: str = "diverse"                 # meanest only: within-user diversity (REGIMES)
    max_train_users: int | None = None      # lm only: first n training users (tests, quick looks)
    eval_windows: int | None = None         # lm only: first n held-out windows
    eval_every: int = 0                     # lm only: held-out loss every n steps into "history" (0: end only)
    report_discretization: float | None = None  # PLD interval of reported epsilons; None -> accounting default
    secure_rng: bool = False                # noise + sampling from the OS CSPRNG (not reproducible; seed only bounds)

    @property
    def private(self) -> bool:
        return ALGORITHMS[self.algo].private

    @property
    def batch_size(self) -> int:
        return MODEL_BATCH.get(self.model, DEFAULT_BATCH[self.task]) if self.batch is None else self.batch

    def validate(self, n_examples: int | None = None) -> "DPRunConfig":
        """Raise LabError naming the parameter and its range; ``n_examples`` (the bounded data size, once
        known) caps ``batch``."""
        check_choice("task", self.task, TASKS)
        check_choice("algo", self.algo, tuple(ALGORITHMS))
        check_choice("model", self.model, MODELS)
        check_range("lora_rank", self.lora_rank, 1, 64, integer=True)
        check_choice("regime", self.regime, tuple(REGIMES))
        if self.noise_multiplier is not None:
            check_noise_multiplier(self.noise_multiplier)
            if self.task != "lm":
                raise LabError("noise_multiplier (--noise-multiplier) is only supported for task lm")
        if self.epsilon is not None:
            check_epsilon(self.epsilon)
        elif self.private and self.noise_multiplier is None:
            raise LabError("epsilon is required for algo els/uls (user-level target, > 0; inf = clip without "
                           "noise) unless noise_multiplier is given")
        check_delta(self.delta)
        check_bound(self.bound)
        check_steps(self.steps)
        check_range("seed", self.seed, 0, None, integer=True)
        check_range("batch", self.batch_size, 1, n_examples, integer=True)
        if self.clip is not None and self.private:
            check_range("clip", self.clip, 0, None, low_open=True)
        if self.lr is not None:
            check_range("lr", self.lr, 0, None, low_open=True)
        for name in ("max_train_users", "eval_windows"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 1, None, integer=True)
        check_range("eval_every", self.eval_every, 0, None, integer=True)
        if self.report_discretization is not None:
            check_range("report_discretization", self.report_discretization, 0, 1, low_open=True)
        check_choice("secure_rng", self.secure_rng, (False, True))
        return self

    # to_dict / key / from_dict (reads "inf"): lab.utils.RunConfig

