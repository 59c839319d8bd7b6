"""The federated GCD methods as one table: a new method is one row, never an ``if method ==`` branch.

Each :class:`Method` says which client class trains, with which objective, in which topology, how the
trained model turns into clusters, and how many classifier heads it gets:

=========  ===============  ============  ============  ===================================================
name       display name     topology      clusters by   heads
=========  ===============  ============  ============  ===================================================
simgcd     FedAvg+SimGCD    federated     heads         true K (SimGCD's protocol assumes K known)
gcd        FedAvg+GCD       federated     ss-kmeans     none used; federated semi-supervised k-means, K true
fedlpa     FedLPA           federated     heads         |old| + k_max_new (the true K is never read)
local      local only       local         heads         true K; every client trains alone, no server
central    centralized      central       heads         true K; one client holds all data (the ceiling,
                                                        not a federated method)
=========  ===============  ============  ============  ===================================================

``federated`` is True only for methods that never pool client data.
"""
from __future__ import annotations

from dataclasses import dataclass

from lab.gcd.client import GCDClient
from lab.gcd.fedlpa import FedLPAClient


@dataclass(frozen=True)
class Method:
    name: str
    display_name: str
    client_cls: type
    objective: str        # "simgcd" (classifier heads + self-distillation) or "contrastive" (representation only)
    topology: str         # "federated" | "local" | "central"
    clusters: str         # "heads" (argmax of the classifier) or "ss-kmeans" (federated SS-k-means on features)
    heads_from_k_max: bool = False   # heads = |old| + k_max_new instead of the true number of classes

    @property
    def federated(self) -> bool:
        return self.topology == "federated"

    def n_heads(self, cfg, n_classes: int) -> int:
        if cfg.n_heads is not None:
            return cfg.n_heads
        return len(cfg.old_classes) + cfg.k_max_new if self.heads_from_k_max else n_classes


METHODS = {m.name: m for m in (
    Method("simgcd", "FedAvg+SimGCD", GCDClient, "simgcd", "federated", "heads"),
    Method("gcd", "FedAvg+GCD", GCDClient, "contrastive", "federated", "ss-kmeans"),
    Method("fedlpa", "FedLPA", FedLPAClient, "simgcd", "federated", "heads", heads_from_k_max=True),
    Method("local", "local only", GCDClient, "simgcd", "local", "heads"),
    Method("central", "centralized", GCDClient, "simgcd", "central", "heads"),
)}

#: name -> display name, the one place figures, tables, notebooks and the dashboard read it from
DISPLAY_NAMES = {name: m.display_name for name, m in METHODS.items()}
#: the reference row of FedAvg+GCD's features clustered on pooled data (not a federated method)
POOLED_REFERENCE = "centralized clustering of federated features (reference)"

#: FedLPA's ablations: label -> the config fields that differ from FedLPA's design (bench tables, notebook 05 and
#: the dashboard label runs by this table)
ABLATIONS = {
    "no LPA": {"use_lpa": False},                        # the same clients and discovery, the uniform target only
    "confidence anchors": {"graph_refine": "confidence"},  # CLSD's confident anchors instead of the labels
    "communities prior": {"prior_rule": "communities"},  # pi from the InfoMap communities (the paper's estimate)
    "argmax prior": {"prior_rule": "argmax"},            # pi from the model's predictions alone (the design before
                                                         # the blend: bench/results/discovery_study.md)
    "equal masses": {"prior_rule": "equal"},             # the blend's heads, equal mass each (no proportions)
    "oracle prior": {"oracle_prior": True},              # pi = the true local histogram (reads labels: a ceiling)
}

#: the oracle prior's lead over FedLPA taken apart (seed study only; lab.gcd.prior.oracle_prior): label -> flags
ORACLE_PARTS = {
    "oracle heads, own masses": {"oracle_prior": "support"},     # true K and heads, FedLPA's estimated proportions
    "oracle heads, equal masses": {"oracle_prior": "uniform"},   # true K and heads, no proportions
}


def ablation_of(cfg: dict) -> str | None:
    """The :data:`ABLATIONS` (or :data:`ORACLE_PARTS`) label a FedLPA run's config matches, or None for FedLPA
    as designed."""
    for label, flags in {**ABLATIONS, **ORACLE_PARTS}.items():
        if all(cfg.get(k) == v for k, v in flags.items()):
            return label
    return None
