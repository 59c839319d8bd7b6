import numpy as np
import pytest

from lab.gcd.clsd import CUT, KNN, MUST, build_graph, knn_edges
from lab.gcd.communities import find_communities
from lab.gcd.config import FedGCDConfig
from lab.gcd.experiment import run_experiment
from lab.gcd.prior import empirical_prior, map_communities_to_heads, oracle_prior, sample_heads


def blobs(n_blobs=4, per=60, dim=16, seed=0, spread=0.08):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_blobs, dim))
    x = np.concatenate([c + spread * np.linalg.norm(c) * rng.normal(size=(per, dim)) for c in centers])
    return x, np.repeat(np.arange(n_blobs), per)


@pytest.mark.parametrize("n_blobs", [2, 4, 7])
def test_infomap_recovers_planted_blobs(n_blobs):
    x, y = blobs(n_blobs)
    g = build_graph(x, None, np.zeros(len(y), bool), np.full(len(y), -1), [], k=10, refine=False)
    for mt in (1.0, "auto"):
        c = find_communities(g, x, markov_time=mt, min_size=5)
        assert c.k_est == n_blobs
        # communities are the blobs (up to renaming)
        for b in range(n_blobs):
            assert len(np.unique(c.labels[y == b])) == 1


def test_isolated_nodes_stay_singletons_and_become_noise():
    x, y = blobs(3, per=30)
    x[:, 14:] = 0
    x = np.concatenate([x, np.eye(16)[14:]])            # two points orthogonal to everything else
    g = build_graph(x, None, np.zeros(len(x), bool), np.full(len(x), -1), [], k=10, sim_floor=0.3, refine=False)
    c = find_communities(g, x, markov_time=1.0, min_size=5)
    assert c.k_est == 3 and (c.labels[-2:] == -1).all()


def test_refinement_adds_and_cuts_exactly_the_right_edges():
    x, y = blobs(3, per=40, spread=0.6, seed=1)              # overlapping blobs: some kNN edges cross
    n = len(y)
    rng = np.random.default_rng(0)
    labelled = rng.random(n) < 0.3
    labelled &= y < 2                                         # classes 0, 1 are old
    y_vis = np.where(labelled, y, -1)
    probs = np.full((n, 3), 0.01)
    probs[np.arange(n), y] = 0.98                             # a model that predicts the truth
    plain = build_graph(x, probs, labelled, y_vis, [0, 1], k=8, refine=False)
    g = build_graph(x, probs, labelled, y_vis, [0, 1], k=8, quantile=0.5, refine=True)
    anchor = g.anchor_label
    # anchors = labelled (own label) + confident unlabelled old-class predictions
    assert (anchor[labelled] == y[labelled]).all()
    assert g.confident[~labelled].sum() > 0 and not g.confident[labelled].any()
    assert (anchor[(anchor >= 0) & ~labelled] < 2).all()
    s, d = g.src, g.dst
    both = (anchor[s] >= 0) & (anchor[d] >= 0)
    # every edge between anchors of different classes is cut, and only those
    assert ((g.kind == CUT) == (both & (anchor[s] != anchor[d]))).all()
    # every must-link joins two anchors of the same class, weight 1
    m = g.kind == MUST
    assert (both[m] & (anchor[s][m] == anchor[d][m])).all() and (g.weight[m] == 1).all()
    # the kNN edges not between two anchors are untouched
    key = lambda a, b: set(zip(a.tolist(), b.tolist()))  # noqa: E731
    free = ~(plain.anchor_label[plain.src] >= 0)
    untouched = key(plain.src[free], plain.dst[free])
    assert key(g.src[g.kind == KNN], g.dst[g.kind == KNN]) >= {e for e in untouched if anchor[e[1]] < 0}
    # refinement improves edge precision
    assert g.edge_precision(y) >= plain.edge_precision(y)


def test_knn_edges_are_undirected_and_deduplicated():
    x, _ = blobs(2, per=20)
    s, d, w = knn_edges(x, 5)
    assert (s < d).all() and len(set(zip(s, d))) == len(s) and (w <= 1 + 1e-6).all()


def test_mapping_and_prior():
    comm = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, -1])
    probs = np.zeros((10, 5))
    probs[:, 4] = 1.0
    probs[5:9, 3] = 2.0
    y_vis = np.array([1, -1, -1, -1, -1, -1, -1, -1, -1, -1])
    head = map_communities_to_heads(comm, probs / probs.sum(1, keepdims=True), y_vis, n_heads=5)
    assert head[0] == 1                                      # labelled community -> its class head
    assert len(set(head.tolist())) == 3 and head[2] == 3     # Hungarian on mean predictions
    heads = sample_heads(comm, probs, head)
    pi = empirical_prior(heads, 5, smoothing=0.0)
    assert np.isclose(pi.sum(), 1) and np.isclose(pi[1], 0.3) and np.isclose(pi[3], 0.4)


def test_oracle_prior_parts_are_told_the_heads_and_nothing_more():
    """The parts of the oracle's lead: "support" keeps FedLPA's own masses but only on the heads of classes the
    client holds (>= 2 %), "uniform" puts equal mass there, True is the true histogram. A 1 % class is not held;
    the estimate's mass on an empty head is dropped, its proportions on held heads are kept."""
    heads = np.array([0] * 60 + [6] * 30 + [7] * 9 + [9] * 1)      # 60/30/9 % and one sample (1 %)
    est = np.zeros(10)
    est[[0, 6, 7, 8]] = [0.2, 0.4, 0.1, 0.3]                      # head 8: a class the client does not hold
    sup, uni, full = (oracle_prior(m, heads, est, 10, smoothing=0.0) for m in ("support", "uniform", True))
    assert np.allclose(sup[[0, 6, 7]], np.array([0.2, 0.4, 0.1]) / 0.7) and sup[8] == 0 and sup[9] == 0
    assert np.allclose(uni[[0, 6, 7]], 1 / 3) and uni[[8, 9]].sum() == 0
    assert np.allclose(full, empirical_prior(heads, 10, 0.0)) and full[9] == 0.01
    smoothed = oracle_prior("uniform", heads, est, 10, smoothing=0.5)  # the same pseudo-count as every prior
    assert np.isclose(smoothed[9], 0.5 / (100 + 0.5 * 10))
    from lab.utils import LabError

    with pytest.raises(LabError, match="oracle_prior must be one of False, True, support, uniform; got 'labels'"):
        FedGCDConfig(method="fedlpa", oracle_prior="labels").validate()


@pytest.mark.parametrize("mode", ["support", "uniform"])
def test_fedlpa_client_builds_its_oracle_part_from_its_own_estimate(mode):
    """The client's prior in a part-oracle run is :func:`oracle_prior` of the true heads and the prior its own
    discovery estimated (not the full oracle, not the estimate alone)."""
    client, _ = _skewed_client(oracle_prior=mode)
    st = client.discover()
    s = client._cfg.prior_smoothing
    assert np.allclose(st["prior"], oracle_prior(mode, st["heads"], st["discovery"].prior, 15, s))
    assert not np.allclose(st["prior"], oracle_prior(True, st["heads"], None, 15, s))
    assert not np.allclose(st["prior"], st["discovery"].prior)


def test_part_oracle_runs_are_labelled_as_what_they_are():
    """Runs listed by the notebooks and the dashboard: a part-oracle run must not pass for FedLPA."""
    from lab.results import run_label

    label = lambda **kw: run_label({"method": "fedlpa", "config": FedGCDConfig(method="fedlpa", **kw).to_dict()},  # noqa: E731
                                   display_names={"fedlpa": "FedLPA"})
    assert label() == "FedLPA" and label(oracle_prior=True) == "FedLPA (oracle prior)"
    assert label(oracle_prior="support") == "FedLPA (oracle heads, own masses)"
    assert label(oracle_prior="uniform") == "FedLPA (oracle heads, equal masses)"


def test_fedlpa_same_seed_same_result():
    cfg = dict(method="fedlpa", dataset="digits", clients=3, alpha=0.3, rounds=3, warmup_rounds=1,
               refresh_every=1, seed=2)
    a = run_experiment(FedGCDConfig(**cfg))
    b = run_experiment(FedGCDConfig(**cfg))
    assert a["history"] == b["history"] and a["k_est"] == b["k_est"]
    assert len(a["k_est"]) == 3 and all(k >= 1 for k in a["k_est"]) and len(a["prior_kl"]) == 3


_ABLATION_RUN = dict(method="fedlpa", dataset="digits", clients=2, alpha=0.5, rounds=4, warmup_rounds=2,
                     local_epochs=2)


@pytest.fixture(scope="module")
def fedlpa_default_run():
    return run_experiment(FedGCDConfig(**_ABLATION_RUN))


def _after_warmup(r):
    return [h["acc_all"] for h in r["history"][_ABLATION_RUN["warmup_rounds"]:]]


# each ablation must change what it names in the run (a flag dropped on its way to the client leaves FedLPA as it is):
# training after warm-up for the objective flags, the discovered prior (its KL to each client's truth) for the graph's
_ABLATION_CHANGES = {"no LPA": (dict(use_lpa=False), "training"), "add form": (dict(lpa_form="add"), "training"),
                     "confidence anchors": (dict(graph_refine="confidence"), "prior")}


@pytest.mark.parametrize("name", list(_ABLATION_CHANGES))
def test_each_fedlpa_ablation_changes_what_it_names(name, fedlpa_default_run):
    flags, what = _ABLATION_CHANGES[name]
    r, d = run_experiment(FedGCDConfig(**_ABLATION_RUN, **flags)), fedlpa_default_run
    assert r["history"][:_ABLATION_RUN["warmup_rounds"]] == d["history"][:_ABLATION_RUN["warmup_rounds"]]
    if what == "training":
        assert _after_warmup(r) != _after_warmup(d)
    else:
        assert r["prior_kl"] != d["prior_kl"]


def test_the_oracle_prior_ablation_trains_towards_each_clients_true_proportions(fedlpa_default_run):
    r = run_experiment(FedGCDConfig(**_ABLATION_RUN, oracle_prior=True))
    assert max(r["prior_kl"]) < 0.01 < min(fedlpa_default_run["prior_kl"])
    assert _after_warmup(r) != _after_warmup(fedlpa_default_run)


@pytest.mark.parametrize("assign_by, head_of_5", [("mean", 6), ("mass", 7)])
def test_the_oracle_client_maps_the_true_classes_by_its_configs_rule(assign_by, head_of_5):
    """The client's oracle heads follow ``oracle_assign``: class 5 (about 180 samples) sits on head 7 (0.6, head 6
    0.3) and two samples relabelled 8 are sure of head 7 (0.9); by mean they take head 7, by mass class 5 keeps it."""
    client, y = _skewed_client(oracle_prior=True, oracle_assign=assign_by)
    feats, _ = client.local_view()
    probs = np.full((len(y), 15), 0.01)
    old = np.flatnonzero(y < 5)
    probs[old, y[old]] = 0.9
    five = np.flatnonzero(y == 5)
    client._oracle = client._oracle.copy()
    client._oracle[five[:2]] = 8
    probs[five[2:], 7], probs[five[2:], 6] = 0.6, 0.3
    probs[five[:2], 7], probs[five[:2], 6] = 0.9, 0.05
    client.local_view = lambda: (feats, probs / probs.sum(1, keepdims=True))
    heads = client.discover()["heads"]
    assert np.bincount(heads[five[2:]]).argmax() == head_of_5


def test_graph_without_model_uses_labels_only():
    x, y = blobs(2, per=30)
    lab = np.zeros(len(y), bool)
    lab[::5] = True
    g = build_graph(x, None, lab, np.where(lab, y, -1), [0, 1], k=5, refine=True)
    assert not g.confident.any() and (g.anchor_label[lab] == y[lab]).all() and (g.anchor_label[~lab] == -1).all()


def _skewed_client(**kw):
    """A client holding only digits 0, 1 (old, half labelled) and 5 (new), with 15 heads."""
    import torch

    from lab.data.images import load_dataset
    from lab.gcd.fedlpa import FedLPAClient
    from lab.gcd.models import GCDModel, ModelConfig

    torch.manual_seed(0)
    d = load_dataset("digits")
    keep = np.isin(d.y_train, [0, 1, 5])
    x, y = d.x_train[keep], d.y_train[keep]
    lab = (np.arange(len(y)) % 2 == 0) & (y < 5)
    cfg = FedGCDConfig(method="fedlpa", dataset="digits", warmup_rounds=0, refresh_every=1, rounds=4,
                       local_epochs=2, **kw)
    model = GCDModel(ModelConfig(in_shape=(8, 8), n_heads=15))
    return FedLPAClient(0, x, np.where(lab, y, -1), model, cfg, old_classes=[0, 1, 2, 3, 4], oracle_labels=y), y


def _absent_mass(client):
    from lab.gcd.client import get_shared

    w = get_shared(client._model)
    for rnd in range(1, 5):
        w = client.fit(w, {"round": rnd, "local_epochs": 2}).weights
    _, probs = client.local_view()
    p_bar = probs.mean(0)
    present = np.unique(client.report()["heads"])
    return float(np.delete(p_bar, present).sum())


def test_lpa_with_the_right_prior_empties_heads_the_client_does_not_have():
    """The mechanism LPA exists for: SimGCD's uniform term spreads a 3-class client over all 15 heads; aligning
    to the client's prior (here the oracle one) takes that mass away."""
    with_prior, _ = _skewed_client(oracle_prior=True)
    uniform, _ = _skewed_client(oracle_prior=True, use_lpa=False)
    a, b = _absent_mass(with_prior), _absent_mass(uniform)
    assert a < 0.5 * b and b > 0.3, (a, b)
