"""One config per federated GCD run: a small dataclass, serialisable to JSON and hashed for caches."""
from __future__ import annotations

from dataclasses import dataclass

from lab.utils import LabError, RunConfig, check_choice, check_range

BACKBONES = ("pretrained", "scratch")

# Learning rates tuned once at alpha=0.1, seed 0 (grid and results: bench/results/gcd_tuning.json).
DEFAULT_LR = {"simgcd": 0.05, "gcd": 0.1, "local": 0.05, "central": 0.05, "fedlpa": 0.1}


@dataclass
class FedGCDConfig(RunConfig):
    method: str = "simgcd"
    dataset: str = "fashion_mnist"
    clients: int = 5
    alpha: float = 0.5
    rounds: int = 20
    local_epochs: int = 1
    seed: int = 0
    backbone: str = "pretrained"
    partition: str = "dirichlet"
    min_client_size: int = 50
    old_classes: tuple = (0, 1, 2, 3, 4)
    labelled_fraction: float = 0.5
    client_fraction: float = 1.0
    lr: float | None = None              # None -> DEFAULT_LR[method]
    batch_size: int = 128
    lam: float = 0.35                    # weight of the supervised terms
    memax_weight: float = 2.0
    teacher_warmup_rounds: int = 5
    n_heads: int | None = None           # None -> n_classes (FedLPA: |old| + k_max_new)
    eval_every: int = 1
    view_bank: int = 4                   # augmented views per image precomputed through the frozen prefix (0: off)
    # FedLPA
    k_max_new: int = 10                  # upper bound on new classes: heads = |old| + k_max_new
    knn_k: int = 10
    confidence_quantile: float = 0.5
    sim_floor: float = 0.0
    lpa_weight: float = 1.0              # epsilon (tuned with the form: bench/results/gcd_tuning.json)
    lpa_form: str = "add"                # lab.gcd.losses.PRIOR_FORMS: "add" or "replace"
    lpa_ramp_rounds: int = 0             # pi_r = (1-r) U + r pi, r: 0 -> 1 over this many rounds after warm-up
    refresh_every: int = 2               # R: rerun CLSD + InfoMap every R rounds
    warmup_rounds: int = 5
    markov_time: float | str = 4.0       # a number, "auto" (InfoMap at 1 + prototype merging) or "labelled"
                                         # (per-client time calibrated on labelled samples); bench/kest_rules.py
    min_community: float = 0.02          # communities below this share of the client's samples are noise
    prior_smoothing: float = 0.5         # Laplace pseudo-count per head
    use_lpa: bool = True                 # --no-lpa
    use_confidence: bool = True          # --no-confidence
    oracle_prior: bool = False           # --oracle-prior

    def __post_init__(self):
        self.old_classes = tuple(self.old_classes)

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    def validate(self, n_samples: int | None = None) -> "FedGCDConfig":
        from lab.gcd.losses import PRIOR_FORMS
        from lab.gcd.methods import METHODS

        check_choice("method", self.method, tuple(METHODS))
        check_choice("dataset", self.dataset, ("fashion_mnist", "digits"))
        check_choice("backbone", self.backbone, BACKBONES)
        check_choice("lpa_form", self.lpa_form, tuple(f for f in PRIOR_FORMS if f != "none"))
        check_range("alpha", self.alpha, 0, None, low_open=True)
        check_range("clients", self.clients, 1, n_samples, integer=True)
        check_range("rounds", self.rounds, 1, 10000, integer=True)
        check_range("local_epochs", self.local_epochs, 1, 100, integer=True)
        check_range("seed", self.seed, 0, 2**31 - 1, integer=True)
        check_range("client_fraction", self.client_fraction, 0, 1, low_open=True)
        check_range("labelled_fraction", self.labelled_fraction, 0, 1, low_open=True, high_open=True)
        if self.lr is not None:
            check_range("lr", self.lr, 0, 10, low_open=True)
        check_range("batch_size", self.batch_size, 2, 4096, integer=True)
        check_range("view_bank", self.view_bank, 0, 64, integer=True)
        if self.view_bank == 1:
            raise LabError("view_bank must be 0 (fresh augmentations) or >= 2 (two distinct views per sample)")
        check_range("knn_k", self.knn_k, 1, 200, integer=True)
        check_range("confidence_quantile", self.confidence_quantile, 0, 1)
        check_range("sim_floor", self.sim_floor, -1, 1)
        check_range("lpa_weight", self.lpa_weight, 0, 100)
        check_range("lpa_ramp_rounds", self.lpa_ramp_rounds, 0, 10000, integer=True)
        check_range("refresh_every", self.refresh_every, 1, 1000, integer=True)
        check_range("warmup_rounds", self.warmup_rounds, 0, 10000, integer=True)
        check_range("k_max_new", self.k_max_new, 1, 1000, integer=True)
        if self.markov_time not in ("auto", "labelled"):
            check_range("markov_time", self.markov_time, 0, 100, low_open=True)
        return self
