"""One config per federated GCD run: a small dataclass, serialisable to JSON and hashed for caches."""
from __future__ import annotations

from dataclasses import dataclass

from lab.gcd.discovery import DiscoveryParams
from lab.gcd.prior import ASSIGN_BY
from lab.utils import LabError, RunConfig, check_choice, check_range

_DISCOVERY = DiscoveryParams()


@dataclass(frozen=True)
class Backbone:
    """SimCLR weights under ``data/``: ``STEM.safetensors`` and its record ``STEM.json`` (how it was made)."""
    stem: str
    widths: tuple                        # CNN block widths (the record's "widths"; a test checks they agree)
    make: str                            # the command that makes the files


#: backbone name -> its weights, or None: trained from scratch. ``pretrained-wide`` (4x the parameters, issue 9
#: item 7) needs a GPU to pretrain (hours on a laptop's CPU); until its files are committed, choosing it is an
#: error naming the command.
BACKBONES = {
    "pretrained": Backbone("backbone_simclr", (16, 32, 64), "python data/pretrain_backbone.py"),
    "pretrained-wide": Backbone("backbone_simclr_wide", (32, 64, 128),
                                "bash bench/device_backbone.sh pretrain"),
    "scratch": None,
}

#: ``oracle_prior``: off, or one of the ablations of :func:`lab.gcd.prior.oracle_prior` (the field stays a bool
#: for the design and the full oracle so that the keys of earlier runs do not change)
ORACLE_PRIOR_MODES = (False, True, "support", "uniform")

#: each method's learning rate as chosen by the protocol (``bench/README.md``): the same 5-point grid per method,
#: tuning seeds 100 and 101 at alpha 0.1 and 1, never an evaluation seed. ``bench/results/gcd_tuning.json`` holds the
#: grid and its "best"; tests/test_gcd_protocol.py checks that these defaults are that choice.
DEFAULT_LR = {"simgcd": 0.1, "gcd": 0.1, "local": 0.5, "central": 0.1, "fedlpa": 0.2}


#: config field -> its :class:`lab.gcd.discovery.DiscoveryParams` field (FedLPA's discovery; other methods
#: carry these fields unused)
DISCOVERY_FIELDS = {"knn_k": "knn_k", "knn_mutual": "knn_mutual", "confidence_quantile": "confidence_quantile",
                    "graph_features": "features",
                    "graph_refine": "refine", "markov_time": "markov_time", "min_community": "min_community",
                    "min_labelled_share": "min_labelled_share", "claim_z": "claim_z",
                    "merge_new_cosine": "merge_new_cosine", "merge_new_on": "merge_new_on", "coarse_k": "coarse_k",
                    "coarse_markov_time": "coarse_markov_time", "coarse_merge_cosine": "coarse_merge_cosine",
                    "prior_rule": "prior", "prior_smoothing": "smoothing"}


@dataclass
class FedGCDConfig(RunConfig):
    LATE_FIELDS = {"knn_mutual": False, "claim_z": None, "merge_new_cosine": None, "merge_new_on": "predictions",
                   "oracle_assign": "mean",
                   "coarse_k": None, "coarse_markov_time": 3.0, "coarse_merge_cosine": 0.7}
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
    # FedLPA: local objective (lab.gcd.losses.PRIOR_FORMS) and schedule
    k_max_new: int = 10                  # upper bound on new classes: heads = |old| + k_max_new
    lpa_weight: float = 2.0              # eps; "replace" at 2 = SimGCD's uniform term swapped for pi, same weight
    lpa_form: str = "replace"            # "replace" or "add" (add at eps 1 aligns to pi^(1/3): issue 9)
    lpa_ramp_rounds: int = 0             # pi_r = (1-r) U + r pi, r: 0 -> 1 over this many rounds after warm-up
    refresh_every: int = 0               # R: rerun discovery every R rounds; 0 = once, right after warm-up
                                         # (rerunning on a model trained towards pi fed back: issue 9 runs)
    warmup_rounds: int = 5
    # FedLPA: discovery (lab.gcd.discovery.DiscoveryParams; defaults chosen on tuning seeds 100/101 only)
    knn_k: int = _DISCOVERY.knn_k
    knn_mutual: bool = _DISCOVERY.knn_mutual         # only links both ends list among their knn_k nearest
    confidence_quantile: float = _DISCOVERY.confidence_quantile
    graph_features: str = _DISCOVERY.features        # "prefix" (frozen backbone prefix) or "output"
    graph_refine: str = _DISCOVERY.refine            # "labels", "confidence" (CLSD anchors) or "none"
    markov_time: float = _DISCOVERY.markov_time
    min_community: float = _DISCOVERY.min_community  # communities below this share of the client are noise
    min_labelled_share: float = _DISCOVERY.min_labelled_share   # to claim an old head
    claim_z: float | None = _DISCOVERY.claim_z       # None, or a claim also tested against the labelled fraction
    merge_new_cosine: float | None = _DISCOVERY.merge_new_cosine   # None, or merge new communities this alike
    merge_new_on: str = _DISCOVERY.merge_new_on      # ... in their mean "predictions" or "graph" features
    coarse_k: int | None = _DISCOVERY.coarse_k       # None, or a client finding <= this many categories ...
    coarse_markov_time: float = _DISCOVERY.coarse_markov_time        # ... is discovered again at this time
    coarse_merge_cosine: float | None = _DISCOVERY.coarse_merge_cosine   # ... and this merging threshold
    prior_rule: str = _DISCOVERY.prior               # lab.gcd.discovery.PRIORS
    prior_smoothing: float = _DISCOVERY.smoothing    # pseudo-count per head
    use_lpa: bool = True                 # --no-lpa
    oracle_prior: bool | str = False     # --oracle-prior; ablations reading true labels: True (the true
                                         # proportions), "support" / "uniform" (lab.gcd.prior.oracle_prior)
    oracle_assign: str = "mean"          # how the oracle maps the true classes to heads (prior.oracle_heads)

    def __post_init__(self):
        self.old_classes = tuple(self.old_classes)

    def discovery_params(self):
        """The :class:`lab.gcd.discovery.DiscoveryParams` of this run."""
        kw = {p: getattr(self, f) for f, p in DISCOVERY_FIELDS.items()}
        return _DISCOVERY.replace(**dict(kw, markov_time=float(kw["markov_time"])))

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    def validate(self, n_samples: int | None = None) -> "FedGCDConfig":
        from lab.gcd.losses import PRIOR_FORMS
        from lab.gcd.methods import METHODS

        check_choice("method", self.method, tuple(METHODS))
        check_choice("dataset", self.dataset, ("fashion_mnist", "digits"))
        check_choice("backbone", self.backbone, tuple(BACKBONES))
        check_choice("lpa_form", self.lpa_form, tuple(f for f in PRIOR_FORMS if f != "none"))
        check_choice("oracle_prior", self.oracle_prior, ORACLE_PRIOR_MODES)
        check_choice("oracle_assign", self.oracle_assign, ASSIGN_BY)
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
        check_range("lpa_weight", self.lpa_weight, 0, 100)
        check_range("lpa_ramp_rounds", self.lpa_ramp_rounds, 0, 10000, integer=True)
        check_range("refresh_every", self.refresh_every, 0, 1000, integer=True)
        check_range("warmup_rounds", self.warmup_rounds, 0, 10000, integer=True)
        check_range("k_max_new", self.k_max_new, 1, 1000, integer=True)
        if isinstance(self.markov_time, str):
            raise LabError(f"markov_time must be a number > 0, got {self.markov_time!r} (the 'auto' and 'labelled' "
                           "rules live on in lab.gcd.communities for teaching; FedLPA uses lab.gcd.discovery)")
        self.discovery_params()          # range-checks every discovery parameter
        return self
