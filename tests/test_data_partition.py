import numpy as np
import pytest

from lab.data.images import load_dataset
from lab.data.partition import dirichlet, iid, make_partition, natural, shards
from lab.data.split import gcd_split
from lab.utils import LabError


@pytest.fixture(scope="module")
def y():
    return load_dataset("fashion_mnist").y_train


def test_committed_fashion_subset_is_stratified():
    d = load_dataset("fashion_mnist")
    assert d.x_train.shape == (6000, 28, 28) and d.x_train.dtype == np.uint8
    assert d.x_test.shape == (1000, 28, 28)
    assert (np.bincount(d.y_train) == 600).all() and (np.bincount(d.y_test) == 100).all()


def test_digits_loads():
    d = load_dataset("digits")
    assert d.image_shape == (8, 8) and d.n_classes == 10 and len(d.y_train) + len(d.y_test) == 1797


def _check_exact_cover(p, n):
    allidx = np.concatenate(p.client_indices)
    assert len(allidx) == n and len(np.unique(allidx)) == n


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_every_sample_exactly_once_and_reproducible(y, scheme):
    a = make_partition(scheme, y, 7, alpha=0.3, seed=3)
    b = make_partition(scheme, y, 7, alpha=0.3, seed=3)
    c = make_partition(scheme, y, 7, alpha=0.3, seed=4)
    _check_exact_cover(a, len(y))
    assert all((u == v).all() for u, v in zip(a.client_indices, b.client_indices))
    assert not all(len(u) == len(v) and (u == v).all() for u, v in zip(a.client_indices, c.client_indices))
    assert (a.counts.sum(1) == a.sizes()).all()


def test_dirichlet_large_alpha_approaches_iid(y):
    def skew(alpha):
        p = dirichlet(y, 5, alpha, seed=0)
        share = p.counts / p.counts.sum(1, keepdims=True)
        return np.abs(share - 0.1).sum(1).mean()     # L1 distance to the uniform label histogram
    assert skew(1000.0) < 0.05 < skew(1.0) < skew(0.05)


def test_dirichlet_min_size_honoured_and_error_when_impossible(y):
    p = dirichlet(y, 10, 0.05, min_size=100, seed=1)
    assert p.sizes().min() >= 100
    with pytest.raises(LabError, match="min_size"):
        dirichlet(y, 10, 0.5, min_size=10_000)


def test_dirichlet_keeps_labelled_fraction_per_client(y):
    s = gcd_split(y, labelled_fraction=0.5, seed=0)
    p = dirichlet(y, 5, 0.5, seed=0, strata=s.labelled)
    for idx in p.client_indices:
        old = s.is_old(y[idx])
        if old.sum() > 100:
            assert abs(s.labelled[idx][old].mean() - 0.5) < 0.05


def test_shards_classes_per_client(y):
    p = shards(y, 10, classes_per_client=2, seed=0)
    assert ((p.counts > 0).sum(1) <= 3).all()     # a shard may straddle a class boundary


def test_natural_partition_by_user():
    users = np.repeat(np.arange(12), 5)
    yy = np.arange(60) % 3
    p = natural(yy, users, n_clients=4, seed=0)
    _check_exact_cover(p, 60)
    for idx in p.client_indices:
        assert len(np.unique(users[idx])) == 3     # whole users, dealt round-robin


def test_gcd_split_labels_only_old_classes(y):
    s = gcd_split(y, (0, 1, 2, 3, 4), 0.5, seed=0)
    assert not s.labelled[np.isin(y, s.new_classes)].any()
    assert abs(s.labelled[np.isin(y, s.old_classes)].mean() - 0.5) < 1e-9
    with pytest.raises(LabError):
        gcd_split(y, tuple(range(10)))


@pytest.mark.parametrize("bad", [dict(alpha=0), dict(alpha=-1), dict(n_clients=0)])
def test_bad_partition_input(y, bad):
    kw = dict(n_clients=5, alpha=0.5) | bad
    with pytest.raises(LabError):
        dirichlet(y, kw["n_clients"], kw["alpha"])


def test_iid_sizes_balanced(y):
    p = iid(y, 7, seed=0)
    assert p.sizes().max() - p.sizes().min() <= 1
