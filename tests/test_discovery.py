"""A client's discovery (lab.gcd.discovery / prior): the mapping rules, K_hat on planted structure, and that
nothing in it can read the true labels."""
import inspect

import numpy as np
import pytest

from lab.gcd.discovery import Discovery, DiscoveryParams, discover, finish
from lab.gcd.prior import (argmax_prior, blend_prior, community_claims, em_prior, excess_prior, head_kl, hybrid_prior,
                           labelled_fraction, map_communities_to_heads, purest_labelled_fraction, sample_heads,
                           sorted_size_prior)
from lab.utils import LabError

OLD = [0, 1, 2, 3, 4]
H = 15


def onehot_probs(heads, n_heads=H, p=0.9):
    probs = np.full((len(heads), n_heads), (1 - p) / (n_heads - 1))
    probs[np.arange(len(heads)), heads] = p
    return probs


# ----------------------------------------------------------------------------------------- mapping
def test_a_few_labels_do_not_claim_a_community_a_labelled_majority_does():
    # community 0: 368 unlabelled Shirts (a new class) + 2 labelled Trousers (old class 1), as in the review;
    # community 1: 200 Trousers, half of them labelled
    comm = np.r_[np.zeros(370, int), np.ones(200, int)]
    y_vis = np.full(570, -1)
    y_vis[:2] = 1
    y_vis[370:470] = 1
    probs = onehot_probs(np.r_[np.full(370, 6), np.full(200, 1)])
    head = map_communities_to_heads(comm, probs, y_vis, H, min_labelled_share=0.2, old_classes=OLD)
    assert head[1] == 1                        # labelled majority: the Trouser head
    assert head[0] != 1 and head[0] >= len(OLD)  # 2 labels in 370 (0.5 %) claim nothing: a new head
    assert head[0] == 6                        # ... the one the model predicts for it (Hungarian)
    # the old rule (one labelled sample claims) is the share-0 special case, and it did hijack the community
    assert map_communities_to_heads(comm, probs, y_vis, H, min_labelled_share=0.0, old_classes=OLD)[0] == 1
    # labelled samples keep their own class's head even inside a new community
    heads = sample_heads(comm, probs, head, y_visible=y_vis)
    assert (heads[:2] == 1).all() and (heads[2:370] == 6).all()


def test_claim_threshold_is_a_share_not_a_count():
    comm = np.r_[np.zeros(10, int), np.ones(1000, int)]
    y_vis = np.full(1010, -1)
    y_vis[:3] = 2          # 30 % of a small community
    y_vis[10:40] = 3       # 3 % of a large one: more labels, smaller share
    claims = community_claims(comm, y_vis, 0.2)
    assert claims.tolist() == [2, -1]


def test_claims_tested_against_the_labelled_fraction_keep_pure_pieces_and_refuse_mixed_ones():
    """``claim_z``: f_hat is the median share of the large communities (0.5 here); a piece of an old class that holds
    a little under half labels (binomial noise) still claims, a community that is half a new class does not. A fixed
    share cannot do both: 0.5 drops the pure piece, 0.1 lets the mixed one claim."""
    sizes = [200, 200, 200, 100, 200]             # three pure old classes, a piece of class 0, a mixed community
    labels = [100, 104, 98, 42, 50]               # shares 0.5, 0.52, 0.49, 0.42 (pure, noise), 0.25 (half new)
    comm = np.repeat(np.arange(5), sizes)
    y_vis = np.full(comm.size, -1)
    for c, (cls, n_lab) in enumerate(zip([0, 1, 2, 0, 3], labels)):
        y_vis[np.flatnonzero(comm == c)[:n_lab]] = cls
    assert community_claims(comm, y_vis, 0.1, claim_z=2.0).tolist() == [0, 1, 2, 0, -1]
    assert community_claims(comm, y_vis, 0.5).tolist() == [0, 1, -1, -1, -1]
    assert community_claims(comm, y_vis, 0.1).tolist() == [0, 1, 2, 0, 3]
    # z = 0 asks for the full estimated fraction (the median share, 0.49): the piece below it fails
    assert community_claims(comm, y_vis, 0.1, claim_z=0.0).tolist() == [0, 1, 2, -1, -1]
    # the floor still applies: with it above every share nothing claims
    assert community_claims(comm, y_vis, 0.6, claim_z=2.0).tolist() == [-1] * 5
    with pytest.raises(LabError, match="claim_z"):
        DiscoveryParams(claim_z=-1.0).validate()


def test_hungarian_only_over_free_heads_no_sharing_while_free_heads_remain():
    # three unclaimed communities all prefer head 7; one also likes claimed head 1 and old head 3
    n = 40
    comm = np.repeat(np.arange(5), n)
    y_vis = np.full(5 * n, -1)
    y_vis[3 * n:3 * n + n // 2] = 1            # community 3 claims head 1
    y_vis[4 * n:4 * n + n // 2] = 0            # community 4 claims head 0
    pref = np.zeros((5 * n, H)) + 0.01
    pref[:3 * n, 7] = 0.6
    pref[:n, 1] = 0.9
    pref[n:2 * n, 3] = 0.8
    pref[2 * n:3 * n, 9] = 0.3
    probs = pref / pref.sum(1, keepdims=True)
    head = map_communities_to_heads(comm, probs, y_vis, H, min_labelled_share=0.2, old_classes=OLD)
    assert head[3] == 1 and head[4] == 0
    new = head[:3]
    assert len(set(new.tolist())) == 3                       # no two communities share a head
    assert not set(new.tolist()) & set(OLD)                  # never a claimed or an old head
    assert 7 in new.tolist()                                 # the best assignment still uses head 7


def test_matching_by_mass_keeps_a_large_community_on_its_head_where_by_mean_a_few_samples_take_it():
    """The Hungarian matching by mean weighs every community the same; by mass (size x mean) each weighs its
    samples. A 500-sample community that the model puts on head 7 (0.6, head 6 0.3) and a 2-sample one sure of
    head 7 (0.9): by mean the pair's best is small -> 7, large -> 6 (0.9 + 0.3 > 0.6 + 0.05), by mass large -> 7."""
    from lab.gcd.prior import oracle_heads

    sizes = (500, 2)
    comm = np.repeat([0, 1], sizes)
    probs = np.full((sum(sizes), H), 0.0)
    probs[:500, [7, 6]] = 0.6, 0.3
    probs[500:, [7, 6]] = 0.9, 0.05
    probs[:, 10] = 1 - probs.sum(1)                          # the rest on a head neither prefers
    y_vis = np.full(sum(sizes), -1)
    by_mean = map_communities_to_heads(comm, probs, y_vis, H, old_classes=OLD)
    by_mass = map_communities_to_heads(comm, probs, y_vis, H, old_classes=OLD, assign_by="mass")
    assert by_mean.tolist() == [6, 7] and by_mass.tolist() == [7, 6]
    # the oracle takes the true classes as communities and maps them the same way
    y_true = np.where(comm == 0, 7, 8)
    assert oracle_heads(y_true, probs, OLD, H)[0] == 6
    assert oracle_heads(y_true, probs, OLD, H, "mass")[0] == 7
    # discovery's parameter and the run config's oracle field take only the two rules, with a message naming them
    with pytest.raises(LabError, match="assign_by"):
        DiscoveryParams(assign_by="size").validate()
    with pytest.raises(LabError, match="assign_by"):
        map_communities_to_heads(comm, probs, y_vis, H, old_classes=OLD, assign_by="size")
    from lab.gcd.config import FedGCDConfig
    with pytest.raises(LabError, match="oracle_assign"):
        FedGCDConfig(oracle_assign="size").validate()
    # the field came after the committed oracle runs: at its earlier value it stays out of the key (the committed
    # names: test_every_run_the_tables_name_is_committed), set it names another run
    assert FedGCDConfig(oracle_prior=True).key() == FedGCDConfig(oracle_prior=True, oracle_assign="mean").key()
    assert FedGCDConfig(oracle_prior=True).key() != FedGCDConfig(oracle_prior=True, oracle_assign="mass").key()


def test_surplus_communities_take_their_argmax_among_free_heads():
    n_heads = 7                                               # old 0-4, only two new heads (5, 6)
    comm = np.repeat(np.arange(3), 10)
    y_vis = np.full(30, -1)
    probs = onehot_probs(np.r_[np.full(10, 5), np.full(10, 6), np.full(10, 2)], n_heads, p=0.6)
    probs[20:, 6] += 0.2                                      # community 2: old head 2 first, head 6 second
    head = map_communities_to_heads(comm, probs, y_vis, n_heads, old_classes=OLD)
    assert sorted(head[:2].tolist()) == [5, 6] and head[2] == 6


# ----------------------------------------------------------------------------------------- priors
def test_hybrid_prior_reads_old_masses_from_labels_and_new_masses_from_communities():
    # old class 0: 300 samples, 150 labelled; new class: 200 samples on head 9 by its community
    comm = np.r_[np.zeros(300, int), np.ones(200, int)]
    y_vis = np.full(500, -1)
    y_vis[:150] = 0
    claims = community_claims(comm, y_vis, 0.2)
    frac = labelled_fraction(comm, y_vis, claims)
    assert frac == pytest.approx(0.5)
    heads = np.r_[np.zeros(300, int), np.full(200, 9)]
    heads[300:350] = 0        # a community that swallowed part of the new class into the old head...
    pi = hybrid_prior(heads, y_vis, OLD, H, frac, smoothing=0.0)
    # ... does not move the old mass: it is L_c / f_hat from the labels; the rest goes to the new heads
    assert pi[0] == pytest.approx(0.6) and pi[9] == pytest.approx(0.4) and pi.sum() == pytest.approx(1)


def mixed_client():
    """Community 0: 100 of old class 0 (50 labelled) + 100 unlabelled of a new class the model puts on head 9
    (InfoMap hid the new class in the old community); community 1: 100 of old class 1, 50 labelled."""
    comm = np.r_[np.zeros(200, int), np.ones(100, int)]
    y_vis = np.full(300, -1)
    y_vis[:50] = 0
    y_vis[200:250] = 1
    probs = onehot_probs(np.r_[np.zeros(100, int), np.full(100, 9), np.ones(100, int)], p=0.6)
    claims = community_claims(comm, y_vis, 0.1)
    return comm, y_vis, probs, claims


def test_labelled_fraction_is_read_off_the_purest_community():
    comm, y_vis, _, claims = mixed_client()
    assert claims.tolist() == [0, 1]
    assert labelled_fraction(comm, y_vis, claims) == pytest.approx(100 / 300)    # pulled down by the mix
    assert purest_labelled_fraction(comm, y_vis, claims) == pytest.approx(0.5)
    assert purest_labelled_fraction(comm, y_vis, claims, min_members=500) == pytest.approx(100 / 300)


def test_excess_prior_gives_a_mixed_communitys_surplus_to_a_new_head():
    comm, y_vis, probs, claims = mixed_client()
    head_of = np.array([0, 1])
    pi = excess_prior(comm, claims, head_of, probs, y_vis, OLD, H, 0.5, smoothing=0.0)
    # old masses L_c / f = 100 each; community 0's members beyond 50 / 0.5 = 100 go to head 9
    assert pi[0] == pytest.approx(1 / 3) and pi[1] == pytest.approx(1 / 3) and pi[9] == pytest.approx(1 / 3)
    # the hybrid with the pooled fraction puts every sample on an old head and the new class vanishes
    heads = np.r_[np.zeros(200, int), np.ones(100, int)]
    assert hybrid_prior(heads, y_vis, OLD, H, labelled_fraction(comm, y_vis, claims), smoothing=0.0)[9] == 0


def test_blend_is_the_mean_and_never_worse_than_the_worse_prior():
    rng = np.random.default_rng(0)
    truth, a, b = (rng.dirichlet(np.ones(H)) for _ in range(3))
    m = blend_prior(a, b)
    assert m == pytest.approx((a + b) / 2) and m.sum() == pytest.approx(1)
    assert head_kl(truth, m) <= max(head_kl(truth, a), head_kl(truth, b))


def test_mapping_free_priors():
    probs = onehot_probs(np.r_[np.full(60, 9), np.full(30, 0), np.full(10, 12)], p=0.8)
    comm = np.r_[np.zeros(60, int), np.ones(30, int), np.full(10, 2)]
    pi, head_of = sorted_size_prior(comm, probs, H, smoothing=0.0)
    assert head_of.tolist() == [9, 0, 12] and pi[9] == pytest.approx(0.6)
    y_vis = np.full(100, -1)
    y_vis[60:75] = 0                                           # half of the 30 class-0 samples labelled
    pa = argmax_prior(probs, y_vis, OLD, H, smoothing=0.0)
    assert pa[0] == pytest.approx(0.3) and pa[9] == pytest.approx(0.6) and pa[12] == pytest.approx(0.1)


def test_em_prior_drains_a_new_head_only_ambiguous_samples_support():
    """A client holds two of three new classes, 70/30. The model's posteriors are exact under a uniform prior over
    the new heads (1-d Gaussians at 0, 1.5 and 3): the middle class is ambiguous with both others, so its argmax
    histogram leaks about a fifth of it onto head 7, whose class the client lacks. EM under label shift finds the
    mixture weights the posteriors imply (about 0.7 / 0.3 / 0); old masses come from the labels as in the argmax
    prior."""
    rng = np.random.default_rng(0)
    new = np.array([5, 6, 7])
    mu = np.array([0.0, 1.5, 3.0])
    comp = np.r_[np.zeros(1400, int), np.ones(600, int)]             # new classes on heads 5 and 6 only
    x = mu[comp] + rng.normal(size=comp.size)
    lik = np.exp(-0.5 * (x[:, None] - mu) ** 2)
    probs = np.full((comp.size + 400, H), 1e-4)
    probs[:comp.size, new] = lik / lik.sum(1, keepdims=True)
    probs[comp.size:, 0] = 1.0                                          # 400 samples of old class 0
    probs /= probs.sum(1, keepdims=True)
    y_vis = np.full(len(probs), -1)
    y_vis[comp.size:comp.size + 200] = 0                                # half of old class 0 labelled
    pa, pe = (f(probs, y_vis, OLD, H, smoothing=0.0) for f in (argmax_prior, em_prior))
    truth = np.zeros(H)
    truth[[0, 5, 6]] = [400, 1400, 600]
    truth /= truth.sum()
    assert pe[0] == pytest.approx(truth[0]) and pa[0] == pytest.approx(truth[0])
    assert pa[7] > 0.05                                                 # the histogram's leak
    assert pe[7] < 0.01 and pe[new] == pytest.approx(truth[new], abs=0.02)
    assert np.abs(pe - truth).sum() < np.abs(pa - truth).sum() / 4


# ----------------------------------------------------------------------------------------- K_hat
def planted(sizes, n_old, dim=24, seed=0, spread=1.0, labelled_fraction=0.5):
    """Gaussian classes; the first n_old are old (class id = head id) with a labelled fraction. At spread 1.0
    one markov time is not right for everything: markov time >= 2.5 merges classes of both planted clients
    below, <= 1 cuts the large classes into fragments."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(sizes), dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    x = np.concatenate([c + spread / np.sqrt(dim) * rng.normal(size=(s, dim)) for c, s in zip(centers, sizes)])
    y = np.repeat(np.arange(len(sizes)), sizes)
    lab = (y < n_old) & (rng.random(len(y)) < labelled_fraction)
    return x.astype(np.float32), y, lab, np.where(lab, y, -1)


def model_probs(y, p=0.5):
    """A model that puts old class c on head c and new class j on head 5 + j, with 50 % confidence."""
    return onehot_probs(np.where(y < len(OLD), y, len(OLD) + y), p=p)


FEW_LARGE = ((900, 700, 500), 2)              # a client at alpha ~ 0.1: few large classes
MANY_SMALL = ((70,) * 5 + (60,) * 5, 5)       # a client at alpha ~ 1.0: many small ones


@pytest.mark.parametrize("with_model", [True, False])
@pytest.mark.parametrize("sizes,n_old", [FEW_LARGE, MANY_SMALL])
def test_k_hat_recovers_planted_classes_with_one_setting(sizes, n_old, with_model):
    x, y, lab, y_vis = planted(sizes, n_old)
    params = DiscoveryParams()                                   # the one setting, for both clients
    probs = model_probs(y) if with_model else None
    d = discover(x, probs, lab, y_vis, OLD, H, prefix_features=x, params=params, seed=0)
    assert (d.k_old, d.k_new) == (n_old, len(sizes) - n_old)
    assert d.k_est == len(sizes)
    # every planted new class is one community (up to renaming), holding >= 90 % of its samples
    comm = d.communities.labels
    for c in range(n_old, len(sizes)):
        m = y == c
        assert np.bincount(comm[m][comm[m] >= 0]).max() >= 0.9 * m.sum()


def test_equal_masses_keep_the_blends_heads_and_drop_their_proportions():
    """The ``equal masses`` ablation: the heads the blend's discovery maps samples to (>= 2 % of the client) get
    the same mass; the head a 1 %-fragment lands on gets none; the blend itself puts unequal mass there."""
    sizes = (900, 700, 500, 20)                                   # the last: a 1 % class, not "held"
    x, y, lab, y_vis = planted(sizes, 2)
    probs = model_probs(y)
    params = DiscoveryParams()
    blend = discover(x, probs, lab, y_vis, OLD, H, prefix_features=x, params=params, seed=0)
    equal = discover(x, probs, lab, y_vis, OLD, H, prefix_features=x, params=params.replace(prior="equal"), seed=0)
    share = np.bincount(equal.heads, minlength=H) / len(y)
    held = share >= 0.02
    assert (equal.heads == blend.heads).all() and held.sum() == 3
    s = params.smoothing
    assert np.allclose(equal.prior[held], (len(y) / 3 + s) / (len(y) + s * H))
    assert np.allclose(equal.prior[~held], s / (len(y) + s * H))
    assert np.ptp(blend.prior[held]) > 0.1                        # the blend's masses did differ


def test_new_class_heads_compares_each_held_new_class_with_the_oracles_head():
    """The masses report's mapping check: per NEW class holding >= 2 % of the client, whether most of its samples
    are mapped to the oracle's head for it, and the share mapped there. Old classes and a 1 % class are left out."""
    from lab.gcd.prior import new_class_heads, new_class_map

    y = np.repeat([0, 1, 5, 6, 7, 8], [300, 200, 200, 150, 140, 10])      # class 8: 1 % of 1000, not held
    oracle = np.repeat([0, 1, 7, 8, 9, 10], [300, 200, 200, 150, 140, 10])
    found = oracle.copy()
    found[:300] = 1                                                          # old classes: never reported
    found[500:540] = 11                                                      # class 5: 80 % on its head 7
    found[700:790] = 9                                                       # class 6: 60 % on head 9, 40 % on 8
    found[990:] = 3                                                          # class 8 is not held
    got = new_class_heads(y, found, oracle, [0, 1, 2, 3, 4])
    assert [a for a, _ in got] == [True, False, True]
    assert np.allclose([sh for _, sh in got], [0.8, 0.4, 1.0])
    # the map behind it: (class, the head most of its samples are mapped to, the oracle's head)
    assert new_class_map(y, found, oracle, [0, 1, 2, 3, 4]) == [(5, 7, 7), (6, 9, 8), (7, 9, 9)]


def test_new_class_fates_say_why_a_new_class_misses_its_head():
    """Each held new class's community: its own (mapped to the oracle's head or not), shared with another held new
    class, a claimed (old) community, or mostly noise. Old classes are left out."""
    from lab.gcd.prior import FATES, new_class_fates

    old = [0, 1, 2, 3, 4]
    # old classes 0 and 3 (never reported), new classes 5 to 9
    y = np.repeat([0, 5, 6, 7, 8, 9, 3], [200, 150, 150, 150, 150, 190, 10])
    comm = np.repeat([0, 1, 2, 3, 3, 4, 0], [200, 150, 150, 150, 150, 190, 10])
    comm[800:900] = -1                      # most of class 9 is noise
    claims = np.array([0, -1, -1, -1, -1])
    oracle = np.repeat([0, 5, 6, 7, 8, 9, 3], [200, 150, 150, 150, 150, 190, 10])
    heads = oracle.copy()
    heads[350:500] = 11                     # class 6 on another head than the oracle's
    got = dict(new_class_fates(y, comm, claims, heads, oracle, old))
    assert got == {5: FATES[0], 6: FATES[1], 7: FATES[2], 8: FATES[2], 9: FATES[4]}
    comm[800:900] = 0                       # most of class 9 inside the old class 0's community
    assert dict(new_class_fates(y, comm, claims, heads, oracle, old))[9] == FATES[3]


def test_head_consensus_is_the_share_of_clients_on_a_classs_most_common_head():
    """Across one federation's clients: per class held by >= 2 clients, the share of them using its most common
    head (a client that maps the class to no head never agrees); classes on a single client are left out."""
    from lab.gcd.prior import head_consensus

    got, n = head_consensus({5: [7, 7, 7, 9], 6: [8, 8], 7: [9, -1, 10], 8: [11]})
    assert n == 3
    assert got == pytest.approx(np.mean([3 / 4, 1.0, 1 / 3]))
    assert head_consensus({8: [11]}) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_merging_by_head_reunites_a_large_class_cut_by_a_fine_markov_time():
    x, y, lab, y_vis = planted(*FEW_LARGE)
    fine = DiscoveryParams(markov_time=1.0, merge_new_cosine=None)      # merging by head alone
    cut = discover(x, model_probs(y), lab, y_vis, OLD, H, prefix_features=x,
                   params=fine.replace(merge_new_by_head=False), seed=0)
    merged = discover(x, model_probs(y), lab, y_vis, OLD, H, prefix_features=x, params=fine, seed=0)
    assert cut.k_new > 1 and merged.k_new == 1
    assert len(set(merged.head_of_comm[merged.claims < 0].tolist())) == merged.k_new


def test_splitting_by_new_heads_cuts_a_second_class_out_of_a_new_and_an_old_community():
    # InfoMap's modules on a 1000-sample client: an old class (300 samples on head 0, half labelled) whose module
    # also holds 100 unlabelled samples the warm-up model puts on new head 9; a module of two new classes the model
    # puts on heads 6 (300 samples) and 8 (200); a new class alone on head 7 (100)
    mods = np.repeat([0, 0, 1, 1, 2], [300, 100, 300, 200, 100])
    heads = np.repeat([0, 9, 6, 8, 7], [300, 100, 300, 200, 100])
    lab = np.zeros(1000, bool)
    lab[:150] = lab[300:310] = True      # 10 labelled T-shirts the model also puts on head 9 stay where they are
    y_vis = np.where(lab, 0, -1)
    probs = np.full((1000, H), 0.01)
    probs[np.arange(1000), heads] = 0.86
    feats = (np.eye(3)[mods] + 0.1 * np.random.default_rng(0).normal(size=(1000, 3))).astype(np.float32)
    base = DiscoveryParams(merge_new_cosine=None, merge_new_by_head=False)
    off = finish(mods, feats, probs, lab, y_vis, OLD, H, base)
    assert (off.k_old, off.k_new) == (1, 2)
    cut = finish(mods, feats, probs, lab, y_vis, OLD, H, base.replace(split_new_share=0.2))
    assert (cut.k_old, cut.k_new) == (1, 4)
    got = cut.communities.labels
    # each piece is the samples of one head; the community keeps its own (most common new) head; labels never move
    for a, b in ((0, 310), (310, 400), (400, 700), (700, 900), (900, 1000)):
        assert len(set(got[a:b])) == 1
    assert len({got[0], got[310], got[400], got[700], got[900]}) == 5
    assert set(cut.head_of_comm[cut.claims < 0].tolist()) == {6, 7, 8, 9}
    # the share is the rule: the old module's piece is 90/400 of it, the new module's second class 2/5
    assert finish(mods, feats, probs, lab, y_vis, OLD, H, base.replace(split_new_share=0.3)).k_new == 3
    assert finish(mods, feats, probs, lab, y_vis, OLD, H, base.replace(split_new_share=0.45)).k_new == 2
    with pytest.raises(LabError, match="split_new_share"):
        DiscoveryParams(split_new_share=0.0).validate()


def test_merging_by_cosine_joins_a_new_class_split_over_two_heads_and_keeps_two_classes_apart():
    # InfoMap's modules on a 1000-sample client: one old class (0, half labelled), a new class in two modes
    # (1, 2) that the warm-up model puts on heads 6 and 7 with the rest of its mass alike, and a new class (3) on
    # head 8; merging by head keeps 1 and 2 apart, merging by cosine of the mean predictions joins them
    mods = np.repeat([0, 1, 2, 3], 250)
    lab = np.zeros(1000, bool)
    lab[:125] = True
    y_vis = np.where(lab, 0, -1)
    probs = np.full((1000, H), 0.01)
    probs[:250, 0] = 0.86
    probs[250:500, 6], probs[250:500, 7] = 0.45, 0.42
    probs[500:750, 6], probs[500:750, 7] = 0.42, 0.45
    probs[750:, 8] = 0.86
    feats = (np.eye(4)[mods] + 0.1 * np.random.default_rng(0).normal(size=(1000, 4))).astype(np.float32)
    by_head = finish(mods, feats, probs, lab, y_vis, OLD, H, DiscoveryParams(merge_new_cosine=None))
    assert (by_head.k_old, by_head.k_new) == (1, 3)
    both = finish(mods, feats, probs, lab, y_vis, OLD, H, DiscoveryParams(merge_new_cosine=0.8))
    assert (both.k_old, both.k_new) == (1, 2)
    joined = both.communities.labels
    assert len(set(joined[250:750])) == 1 and joined[250] != joined[800] and joined[0] != joined[250]
    # the threshold is the rule: at 0.999 the two modes (cosine about 0.99) stay apart
    assert finish(mods, feats, probs, lab, y_vis, OLD, H, DiscoveryParams(merge_new_cosine=0.999)).k_new == 3
    # the same on the graph's features when asked: there the four modules are orthogonal
    on_graph = DiscoveryParams(merge_new_cosine=0.8, merge_new_on="graph")
    assert finish(mods, feats, probs, lab, y_vis, OLD, H, on_graph).k_new == 3
    # single linkage on the communities as found: their order (InfoMap's module ids) does not change what is merged
    order = np.r_[750:1000, 500:750, 250:500, 0:250]
    again = finish(3 - mods[order], feats[order], probs[order], lab[order], y_vis[order], OLD, H,
                   DiscoveryParams(merge_new_cosine=0.8))
    assert again.k_new == 2 and len(set(again.communities.labels[250:750])) == 1
    # the library's default since bench/kest_anatomy.py picked it
    assert DiscoveryParams() == DiscoveryParams(merge_new_cosine=0.8, merge_new_on="predictions")
    with pytest.raises(LabError, match="merge_new_cosine"):
        DiscoveryParams(merge_new_cosine=1.5).validate()
    with pytest.raises(LabError, match="merge_new_on"):
        DiscoveryParams(merge_new_on="labels").validate()


def test_old_classes_are_counted_from_labels_and_small_fragments_are_noise():
    # InfoMap's modules on a 1000-sample client: old class 0 cut in two (0, 1), old classes 1 and 2 merged (2),
    # a new class (3) holding 8 samples of old class 3 (4 labelled: under 2 % x f_hat of the client), and a
    # 15-sample fragment (4), under the 2 % noise floor
    mods = np.repeat([0, 1, 2, 3, 4], [150, 150, 300, 385, 15])
    y = np.r_[np.zeros(300, int), np.ones(150, int), np.full(150, 2), np.full(377, 7), np.full(8, 3), np.full(15, 7)]
    lab = np.zeros(1000, bool)
    lab[np.r_[0:75, 150:225, 300:375, 450:525, 977:981]] = True
    y_vis = np.where(lab, y, -1)
    feats = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    d = finish(mods, feats, None, lab, y_vis, OLD, H, DiscoveryParams(merge_new_by_head=False))
    assert d.labelled_fraction == pytest.approx(0.5)
    assert (d.k_old, d.k_new, d.k_est) == (3, 1, 4)
    assert (d.communities.labels[-15:] == -1).all()


def test_a_mutual_knn_graph_keeps_exactly_the_pairs_that_list_each_other_and_every_must_link():
    from lab.gcd.clsd import KNN, MUST, knn_edges
    from lab.gcd.discovery import build_discovery_graph

    x = np.random.default_rng(5).normal(size=(240, 6)).astype(np.float32)
    f = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    lists = [set(r) for r in np.argsort(-sim, axis=1)[:, :8].tolist()]
    union = {(min(i, j), max(i, j)) for i in range(240) for j in lists[i]}
    mutual = {(i, j) for i, j in union if i in lists[j] and j in lists[i]}
    assert 0 < len(mutual) < len(union)
    for flag, want in ((False, union), (True, mutual)):
        a, b, _ = knn_edges(x, 8, mutual=flag)
        assert set(zip(a.tolist(), b.tolist())) == want
    # through a client's discovery: the kNN links are the mutual ones, the labels' must-links are all kept
    lab = np.zeros(240, bool)
    lab[:60] = True
    y_vis = np.where(lab, np.arange(240) % 3, -1)
    g = {flag: build_discovery_graph(x, None, lab, y_vis, OLD, params=DiscoveryParams(knn_k=8, knn_mutual=flag))[0]
         for flag in (False, True)}
    kept = g[True].kind == KNN
    assert {(min(i, j), max(i, j)) for i, j in zip(g[True].src[kept].tolist(), g[True].dst[kept].tolist())} < mutual
    assert (g[True].kind == MUST).sum() == (g[False].kind == MUST).sum() > 0


def test_discover_reads_no_truth_and_is_deterministic():
    for forbidden in ("y_true", "y", "labels", "k_true", "n_classes", "true_k"):
        assert forbidden not in inspect.signature(discover).parameters
    x, y, lab, y_vis = planted((200, 150, 120, 100), 2, seed=3)
    probs = onehot_probs(np.where(y < 2, y, 5 + y))
    a = discover(x, probs, lab, y_vis, OLD, H, prefix_features=x, seed=4)
    # permuting the true labels of the unlabelled samples changes nothing a client can see, nor the result
    rng = np.random.default_rng(0)
    y2 = y.copy()
    unl = np.flatnonzero(~lab)
    y2[unl] = y2[rng.permutation(unl)]
    b = discover(x, probs, lab, np.where(lab, y2, -1), OLD, H, prefix_features=x, seed=4)
    assert isinstance(a, Discovery)
    assert a.k_est == b.k_est and np.array_equal(a.communities.labels, b.communities.labels)
    assert np.array_equal(a.heads, b.heads) and np.allclose(a.prior, b.prior)
    assert np.isclose(a.prior.sum(), 1) and (a.prior > 0).all()


def test_bad_parameters_and_inputs_name_the_parameter():
    with pytest.raises(LabError, match="markov_time"):
        DiscoveryParams(markov_time=0).validate()
    with pytest.raises(LabError, match="prior"):
        DiscoveryParams(prior="magic").validate()
    x, y, lab, y_vis = planted((30, 30), 1)
    with pytest.raises(LabError, match="y_visible"):
        discover(x, None, ~lab, y_vis, OLD, H)


@pytest.mark.slow
def test_a_snapshot_client_reads_every_prior_rule_on_one_discovery_and_the_rule_in_use_is_its_prior():
    """The dashboard's prior page shows each rule of ``PRIORS`` on the committed FedLPA snapshot's client: the rule
    in use must give exactly the prior that client trains with (same discovery, same smoothing), the others differ."""
    from lab.gcd.discovery import PRIORS
    from lab.gcd.snapshots import load_snapshot, snapshot_client

    weights, cfg = load_snapshot("fedlpa_alpha0.1_seed0")
    v = snapshot_client(weights, cfg, 0)
    assert list(v["priors"]) == list(PRIORS) and v["prior_rule"] == cfg.prior_rule
    np.testing.assert_allclose(v["priors"][v["prior_rule"]], v["prior"], atol=1e-12)
    others = [p for rule, p in v["priors"].items() if rule != v["prior_rule"]]
    assert all(np.abs(p - v["prior"]).max() > 1e-3 for p in others)
    assert all(abs(p.sum() - 1) < 1e-9 and (p >= 0).all() for p in v["priors"].values())


def test_the_cli_switches_merging_by_predictions_off_or_sets_its_threshold():
    """``python -m lab fedgcd --merge-new-cosine``: the library's default when absent, ``off`` -> None (FedLPA as it
    was before the rule), a number -> that threshold; the run's config carries it."""
    from lab.cli import build_parser
    from lab.gcd.cli import config_from_args

    def cfg(*extra):
        return config_from_args(build_parser().parse_args(["fedgcd", "--method", "fedlpa", *extra]))

    assert cfg().merge_new_cosine == DiscoveryParams().merge_new_cosine
    assert cfg("--merge-new-cosine", "off").merge_new_cosine is None
    assert cfg("--merge-new-cosine", "0.9").discovery_params().merge_new_cosine == 0.9
    # the mutual kNN graph: off unless asked for, and then the discovery's
    assert not cfg().discovery_params().knn_mutual
    assert cfg("--mutual-knn", "--k", "30").discovery_params().replace(markov_time=1.5) == DiscoveryParams().replace(
        knn_k=30, knn_mutual=True, markov_time=1.5)
