"""The generalized-category-discovery split: which classes are "old" (some samples labelled) and "new"
(never labelled), and which old-class training samples carry their label."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.utils import LabError, check_range


@dataclass
class GCDSplit:
    old_classes: np.ndarray      # sorted class ids with labelled samples
    new_classes: np.ndarray      # class ids never labelled
    labelled: np.ndarray         # (N,) bool: this training sample's label is visible to its client

    @property
    def unlabelled(self) -> np.ndarray:
        return ~self.labelled

    def is_old(self, y) -> np.ndarray:
        return np.isin(y, self.old_classes)


def gcd_split(y, old_classes=(0, 1, 2, 3, 4), labelled_fraction: float = 0.5, seed: int = 0) -> GCDSplit:
    """Label ``labelled_fraction`` of each old class's training samples (stratified, seeded).

    Every new-class sample, and the rest of the old-class samples, stay unlabelled: GCD evaluates on all
    unlabelled samples, old and new together.
    """
    y = np.asarray(y)
    classes = np.unique(y)
    old = np.unique(np.asarray(old_classes))
    if old.size == 0 or not np.isin(old, classes).all():
        raise LabError(f"old_classes must be a non-empty subset of the dataset classes {classes.tolist()}")
    if old.size == classes.size:
        raise LabError("old_classes must leave at least one new class")
    check_range("labelled_fraction", labelled_fraction, 0, 1, low_open=True, high_open=True)
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(y), dtype=bool)
    for c in old:
        idx = np.flatnonzero(y == c)
        labelled[rng.choice(idx, int(round(labelled_fraction * len(idx))), replace=False)] = True
    return GCDSplit(old, np.setdiff1d(classes, old), labelled)
