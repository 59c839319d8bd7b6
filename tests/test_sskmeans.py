"""Federated semi-supervised k-means: clients send per-cluster sums and counts; the server never pools."""
import numpy as np
import pytest

from lab.gcd.sskmeans import (FederatedHeadSeeded, FederatedSSKMeans, client_head_stats, client_step_stats,
                              head_seeded_kmeans, nearest, ss_kmeans)


def _blobs(seed=0, per=60, k=4, dim=5):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6, size=(k, dim))
    x = np.concatenate([c + rng.normal(size=(per, dim)) for c in centers])
    return x, np.repeat(np.arange(k), per)


def _clients(x, y, n=3, seed=0, labelled_classes=(0, 1)):
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, n, len(y))
    lab = np.isin(y, labelled_classes) & (rng.random(len(y)) < 0.5)
    return [(x[owner == c], np.where(lab, y, -1)[owner == c]) for c in range(n)], lab


def test_one_federated_lloyd_step_equals_the_pooled_step():
    x, y = _blobs()
    parts, lab = _clients(x, y)
    cent = np.random.default_rng(1).normal(size=(4, x.shape[1]))
    fk = FederatedSSKMeans(4, [0, 1])
    fed = fk.step(cent, [client_step_stats(f, yv, cent) for f, yv in parts])
    # pooled: unlabelled -> nearest centroid, labelled pinned to its class, then means
    assign = np.where(lab, y, nearest(x, cent))
    pooled = np.stack([x[assign == c].mean(0) if (assign == c).any() else cent[c] for c in range(4)])
    assert np.allclose(fed, pooled)


def test_labelled_points_stay_pinned_to_their_class():
    x, y = _blobs()
    parts, lab = _clients(x, y)
    wrong = np.roll(np.stack([x[y == c].mean(0) for c in range(4)]), 1, axis=0)   # centroid c sits on class c-1
    stats = [client_step_stats(f, yv, wrong) for f, yv in parts]
    counts = sum(s["counts"] for s in stats)
    # every labelled point of class c counts towards cluster c even though another centroid is nearer
    labelled_per_class = np.bincount(y[lab], minlength=4)
    for c in (0, 1):
        sums_c = sum(s["sums"][c] for s in stats)
        assert counts[c] >= labelled_per_class[c]
        members = np.concatenate([x[lab & (y == c)], x[~lab][nearest(x[~lab], wrong) == c]])
        assert np.allclose(sums_c / counts[c], members.mean(0))


def test_federated_run_recovers_blobs_like_the_pooled_one():
    x, y = _blobs(seed=3)
    parts, lab = _clients(x, y, seed=3)

    def ask(config):
        from lab.gcd.sskmeans import client_init_stats

        if config["task"] == "kmeans-init":
            return [client_init_stats(f, yv, config["k"], seed=config["seed"]) for f, yv in parts]
        return [client_step_stats(f, yv, config["centroids"]) for f, yv in parts]

    cent = FederatedSSKMeans(4, [0, 1], seed=0).run(ask)
    fed = nearest(x, cent)
    pooled, _ = ss_kmeans(x[lab], y[lab], x, k=4, seed=0)
    for pred in (fed, pooled):
        for c in range(4):                              # each blob is one cluster
            assert len(np.unique(pred[y == c])) == 1
    assert (fed[y == 0] == 0).all() and (fed[y == 1] == 1).all()   # old classes keep their ids


def _own_head(y):
    return np.where(y < 2, y, y + 3)                     # old classes 0, 1 on heads 0, 1; new classes 2, 3 on 5, 6


def _heads(y, n_heads, rng, wrong=0.2, stray_head=None, stray=0):
    """One-hot 'predictions' of a model with n_heads heads: each class on its own head (:func:`_own_head`),
    ``wrong`` of each class on the next class's head, and ``stray`` samples on ``stray_head``."""
    flip = rng.random(len(y)) < wrong
    head = np.where(flip, _own_head((y + 1) % 4), _own_head(y))
    if stray:
        head[rng.choice(len(y), stray, replace=False)] = stray_head
    return np.eye(n_heads)[head]


def test_head_seeded_kmeans_reads_k_off_the_heads_and_fixes_what_the_heads_get_wrong():
    """K_hat = heads holding >= min_share of the samples (a head with a few stray samples is dropped); the centroids
    start at those heads and Lloyd moves the samples the heads put on a wrong head to their own blob's cluster."""
    x, y = _blobs(seed=5, per=100, k=4)
    rng = np.random.default_rng(0)
    lab = (y < 2) & (rng.random(len(y)) < 0.5)
    probs = _heads(y, 10, rng, stray_head=9, stray=3)[~lab]
    heads_pred = probs.argmax(1)
    assign, cent, keep = head_seeded_kmeans(x[lab], y[lab], x[~lab], probs, min_share=0.02)
    assert keep.tolist() == [0, 1, 5, 6]                 # 3 stray samples on head 9 are under 2 % of 400
    assert cent.shape == (4, x.shape[1])
    own = _own_head(y[~lab])
    assert (heads_pred != own).mean() > 0.15             # the heads put a fifth of the samples on a wrong head
    assert (assign == own).all()                         # the readout puts every sample on its blob's head
    _, _, keep_all = head_seeded_kmeans(x[lab], y[lab], x[~lab], probs, min_share=0.005)
    assert keep_all.tolist() == [0, 1, 5, 6, 9]          # a lower share keeps the stray head


def test_head_seeded_kmeans_keeps_labelled_points_on_their_class():
    """A labelled class is always a cluster (even when the heads give it no unlabelled sample) and its labelled
    points stay there: its centroid is the mean of its labelled points plus the unlabelled points nearest to it."""
    x, y = _blobs(seed=6, per=100, k=4)
    rng = np.random.default_rng(1)
    lab = (y < 2) & (rng.random(len(y)) < 0.5)
    probs = np.eye(10)[np.where(y < 2, 7, _own_head(y))][~lab]  # the heads never predict an old class
    assign, cent, keep = head_seeded_kmeans(x[lab], y[lab], x[~lab], probs)
    assert {0, 1} <= set(keep.tolist())
    for c in (0, 1):
        members = np.concatenate([x[lab & (y == c)], x[~lab][assign == c]])
        assert np.allclose(cent[keep.tolist().index(c)], members.mean(0))
        assert (assign[y[~lab] == c] == c).all()


def _head_seeded_both(x, y, lab, probs, n_clients=3):
    """(pooled (assign, centroids, keep), federated (centroids, keep)) of the head-seeded readout on one data set
    split over clients; each client answers from its own rows only."""
    owner = np.random.default_rng(2).integers(0, n_clients, len(y))
    yv = np.where(lab, y, -1)
    parts = [(x[owner == c], yv[owner == c], probs[owner == c]) for c in range(n_clients)]

    def ask(config):
        if config["task"] == "heads-init":
            return [client_head_stats(f, v, p) for f, v, p in parts]
        return [client_step_stats(f, v, config["centroids"], config["ids"]) for f, v, _ in parts]

    return head_seeded_kmeans(x[lab], y[lab], x[~lab], probs[~lab]), FederatedHeadSeeded().run(ask)


def test_federated_head_seeded_readout_reproduces_the_pooled_one():
    """Clients send per-head sums and counts, then Lloyd statistics pinned by the kept head ids: the server ends
    with the pooled readout's heads and centroids, and every sample lands on the same head. The labelled classes
    are 2 and 3 and new heads 7, 8 are kept too, so centroid row i is not head i: a client must pin its labelled
    samples by the ids the server sends."""
    x, y = _blobs(seed=5, per=100, k=4)
    rng = np.random.default_rng(3)
    lab = (y >= 2) & (rng.random(len(y)) < 0.5)
    own = np.array([7, 8, 2, 3])
    head = np.where(rng.random(len(y)) < 0.2, own[(y + 1) % 4], own[y])
    head[rng.choice(len(y), 3, replace=False)] = 0      # a stray head under 2 %
    probs = np.eye(10)[head]
    (assign, cent, keep), (fcent, fkeep) = _head_seeded_both(x, y, lab, probs)
    assert fkeep.tolist() == keep.tolist() == [2, 3, 7, 8]
    assert np.allclose(fcent, cent)
    assert (fkeep[nearest(x[~lab], fcent)] == assign).all()
    assert (assign == own[y[~lab]]).all()               # and the readout is right: each blob on its own head


def test_a_labelled_class_stays_a_cluster_however_few_its_labels():
    """Five labelled samples of class 1 (1 % of the data) on heads that never predict it: the first message counts
    them for head 1, and the pooled and the federated readouts both keep head 1 below the 2 % share."""
    x, y = _blobs(seed=5, per=100, k=4)
    lab = np.zeros(len(y), bool)
    lab[np.flatnonzero(y == 0)[:50]] = True
    lab[np.flatnonzero(y == 1)[:5]] = True
    probs = np.eye(10)[np.where(y == 1, 6, _own_head(y))]    # class 1 predicted on head 6
    first = client_head_stats(x, np.where(lab, y, -1), probs)
    assert first["counts"][1] == 5 and first["labelled_counts"][1] == 5
    assert np.allclose(first["sums"][1], x[lab & (y == 1)].sum(0))
    (assign, _, keep), (_, fkeep) = _head_seeded_both(x, y, lab, probs)
    assert fkeep.tolist() == keep.tolist() == [0, 1, 5, 6]


def test_head_seeded_readout_through_gcd_clients_matches_the_evaluator():
    """The same readout through real GCD clients' ``evaluate`` tasks (the messages an engine carries) and the
    experimenter's pooled computation on a short FedLPA run: the same K_hat and the same All."""
    from lab.gcd.client import set_shared
    from lab.gcd.config import FedGCDConfig
    from lab.gcd.experiment import Experiment

    ex = Experiment(FedGCDConfig(method="fedlpa", dataset="digits", clients=3, alpha=0.5, rounds=2, warmup_rounds=1,
                                 seed=0))
    _, final = ex.run(return_weights=True)
    clients = ex.clients()
    cent, keep = FederatedHeadSeeded().run(lambda config: [c.evaluate(final, dict(config)) for c in clients])
    model = ex.model()
    set_shared(model, final)
    pooled = ex.evaluator.head_seeded(model)
    assert pooled["k_hat"] == len(keep)
    fu, _ = ex.evaluator._predict(model, "unl", ex.data.x_train[ex.evaluator.unl])
    ft, _ = ex.evaluator._predict(model, "test", ex.data.x_test)
    # each sample on its nearest centroid's head id
    fed = ex.evaluator._score(keep[nearest(fu, cent)], keep[nearest(ft, cent)])
    assert fed["acc_all"] == pytest.approx(pooled["acc_all"], abs=2e-3)
    assert fed["test_acc_all"] == pytest.approx(pooled["test_acc_all"], abs=2e-3)
