import math

import numpy as np
import torch

from lab.gcd.losses import distill_loss, mean_entropy_term, prior_kl, simgcd_loss
from lab.gcd.metrics import cluster_acc_v2
from lab.gcd.sskmeans import ss_kmeans


def test_v2_perfect_under_permutation():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([2, 2, 0, 0, 1, 1])
    r = cluster_acc_v2(y, pred, y < 1)
    assert r == {"all": 1.0, "old": 1.0, "new": 1.0}


def test_v2_hand_computed_single_matching():
    # true:  0 0 0 1 1 2 2 2 ; clusters: a=0 a a b a c c b
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 0, 2, 2, 1])
    old = y == 0
    # contingency (pred x true): 0->{0:3,1:1}, 1->{1:1,2:1}, 2->{2:2}; best one-to-one: 0-0, 1-1, 2-2 -> 6/8
    r = cluster_acc_v2(y, pred, old)
    assert math.isclose(r["all"], 6 / 8)
    assert math.isclose(r["old"], 3 / 3)
    assert math.isclose(r["new"], 3 / 5)       # true 1: one of two; true 2: two of three


def test_v2_one_matching_not_two():
    # old and new scored under ONE matching: cluster 0 can't serve both groups
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 0])
    r = cluster_acc_v2(y, pred, y == 0)
    assert r["all"] == 0.5 and r["old"] == 1.0 and r["new"] == 0.0


def test_v2_groups_use_global_matching():
    y = np.array([0, 0, 1, 1])
    pred = np.array([1, 1, 0, 1])
    r = cluster_acc_v2(y, pred, y == 0, groups=np.array([0, 0, 1, 1]))
    assert r["groups"][0] == 1.0 and r["groups"][1] == 0.5


def test_mean_entropy_term_equals_kl_to_uniform():
    torch.manual_seed(0)
    for K in (2, 5, 15):
        p = torch.softmax(torch.randn(K) * 3, 0)
        assert torch.allclose(mean_entropy_term(p), prior_kl(p, None), atol=1e-6)
        assert torch.allclose(prior_kl(p, torch.full((K,), 1.0 / K)), mean_entropy_term(p), atol=1e-6)


def test_lpa_differs_from_uniform_for_skewed_prior():
    p = torch.tensor([0.7, 0.2, 0.1])
    pi = torch.tensor([0.7, 0.2, 0.1])
    assert prior_kl(p, pi) < 1e-7 < mean_entropy_term(p)


def test_simgcd_loss_replace_with_uniform_prior_equals_plain():
    torch.manual_seed(0)
    logits = torch.randn(16, 6)
    z = torch.nn.functional.normalize(torch.randn(16, 4), dim=1)
    y = torch.randint(0, 3, (8,))
    lab = torch.tensor([1, 0, 1, 0, 0, 0, 1, 0], dtype=torch.bool)
    a, _ = simgcd_loss(logits, z, y, lab, teacher_temp=0.05)
    b, _ = simgcd_loss(logits, z, y, lab, teacher_temp=0.05, prior=torch.full((6,), 1 / 6), prior_form="replace",
                       prior_weight=2.0)                      # eps = w_me: the uniform term, renamed
    assert torch.allclose(a, b, atol=1e-6)


def test_replace_form_uses_its_weight():
    """The replace form's weight is eps (it used to be ignored: replace 0.5 and replace 1.0 were one run)."""
    torch.manual_seed(0)
    logits = torch.randn(16, 6)
    z = torch.nn.functional.normalize(torch.randn(16, 4), dim=1)
    y = torch.randint(0, 3, (8,))
    lab = torch.zeros(8, dtype=torch.bool)
    pi = torch.tensor([0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
    kw = dict(teacher_temp=0.05, prior=pi, prior_form="replace", lam=0.0, contrastive=False)
    base, _ = simgcd_loss(logits, z, y, lab, prior_weight=0.0, **kw)
    one, parts = simgcd_loss(logits, z, y, lab, prior_weight=1.0, **kw)
    two, _ = simgcd_loss(logits, z, y, lab, prior_weight=2.0, **kw)
    assert not torch.allclose(one, two)                       # the weight matters
    assert torch.allclose(two - base, 2 * (one - base), atol=1e-5) and parts.get("lpa", 0) > 0
    assert "me_max" not in parts                               # replace drops the uniform term


def test_add_form_optimum_is_a_flattened_prior():
    """w_me*KL(p||U) + eps*KL(p||pi) is minimised at p ∝ pi^(eps/(w_me+eps)) (pi^(1/3) at 2 and 1)."""
    pi = torch.tensor([0.6, 0.25, 0.1, 0.05])
    logit = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([logit], lr=0.05)
    for _ in range(3000):
        p = torch.softmax(logit, 0)
        loss = 2.0 * mean_entropy_term(p) + 1.0 * prior_kl(p, pi)
        opt.zero_grad()
        loss.backward()
        opt.step()
    target = pi ** (1 / 3) / (pi ** (1 / 3)).sum()
    assert torch.allclose(torch.softmax(logit, 0).detach(), target, atol=2e-3)


def test_distill_loss_is_cross_view():
    # identical views with a very sharp teacher: loss = entropy of student softmax at 0.1 (self-consistent)
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(2, 1)
    l = distill_loss(logits, logits, teacher_temp=0.001)  # noqa: E741 - the loss, named as in the assert
    expected = -torch.log_softmax(torch.tensor([1.0, 0.0]) / 0.1, 0)[0]
    assert torch.allclose(l, expected, atol=1e-5)


def test_ss_kmeans_keeps_labelled_classes():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10]], float)
    x = np.concatenate([c + rng.normal(size=(50, 2)) for c in centers])
    y = np.repeat(np.arange(3), 50)
    lab = np.zeros(150, bool)
    lab[:10] = True
    lab[50:60] = True
    assign, cent = ss_kmeans(x[lab], y[lab], x[~lab], k=3, seed=0)
    assert cluster_acc_v2(y[~lab], assign, y[~lab] < 2)["all"] > 0.98
    assert np.linalg.norm(cent[0] - centers[0]) < 1 and np.linalg.norm(cent[1] - centers[1]) < 1


def test_hungarian_map_matches_v2():
    from lab.gcd.metrics import hungarian_map

    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([2, 2, 0, 0, 3])
    m = hungarian_map(y, pred, n_pred=5)
    assert m[2] == 0 and m[0] == 1 and m[3] == 2 and m[1] == -1 and m[4] == -1
