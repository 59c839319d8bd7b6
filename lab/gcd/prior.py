"""From communities to heads to a local prior, and the Local Prior Alignment (LPA) loss.

The model has |old| + K_max heads; the true number of new classes is never needed.

Mapping (:func:`map_communities_to_heads`):
1. a community *claims* the head of its majority labelled class only when labelled samples make up at least
   ``min_labelled_share`` of it. Labels are a fixed fraction of every old class (half, in this lab's split),
   so a community of an old class holds ~that share; a community of a new class holds labels only by
   accident (kNN errors), e.g. a 368-image Shirt community with 2 labelled Trousers must not become the
   Trouser head. With ``claim_z`` it must also hold about the client's labelled fraction (a binomial test,
   :func:`community_claims`). Several communities may claim the same old head (fragments of one old class);
2. the other communities go to *free* heads by one Hungarian matching on their mean predictions (or their mass,
   ``assign_by``). Free = not claimed; with ``old_classes`` given, the old heads are never free: every old
   class present on a client is present in its labels, so an unlabelled community is not an old class the
   client lacks;
3. surplus communities (more than free heads) take the argmax of their mean prediction among the free heads.
Noise samples take their own argmax head; labelled samples always count for their own class's head.

Priors over heads (all smoothed with a pseudo-count ``s`` per head, pi = (m + s) / (n + s H)):
- :func:`empirical_prior`: the histogram of each sample's mapped head ("communities");
- :func:`hybrid_prior`: old heads from the labels, L_c / f_hat (f_hat = labelled share of the communities
  that claimed old heads: the labelled fraction estimated locally), the rest of the client's mass spread over
  the new heads as the communities say;
- :func:`sorted_size_prior`: needs no mapping: community sizes sorted against the heads sorted by the mass
  of the model's mean prediction;
- :func:`argmax_prior`: needs no graph: old heads from labels as in the hybrid, new heads from the argmax
  histogram of the unlabelled samples the model puts on new heads;
- :func:`em_prior`: as the argmax prior, with the new heads' masses by EM under label shift (the
  maximum-likelihood mixture of the model's own posteriors) instead of a histogram of their argmax;
- :func:`excess_prior`: the hybrid, plus what the labels say about communities that MIX an old and a new
  class. A claimed community of an old class holds labelled samples at the client's labelled fraction f, so
  its members beyond L / f are unlabelled samples of something else (InfoMap puts Shirt with Coat or
  T-shirt: a community with labelled share 0.25 where f = 0.5 is half Shirt). That excess goes to the new
  head the model favours for the community's unlabelled members. f is read off the purest claimed community
  (:func:`purest_labelled_fraction`); mixed communities would pull a pooled estimate down;
- :func:`blend_prior`: the mean of two priors. The default is (argmax + excess) / 2: the model's heads and
  the graph's communities err differently (the model mixes new classes on one head; the graph hides a new
  class inside an old community), and KL is convex in its second argument, so the mean is never worse than
  the worse of the two. It had the lowest mean KL(oracle || pi) on the tuning clients
  (``bench/discovery_study.py --stage priors``), on the committed backbone also once ``em_blend`` = (em + excess) / 2
  was added; on the wide backbone that rule prefers ``em_blend``, FedLPA's prior there
  (``bench/results/discovery_study_pretrained-wide.md``).
LPA = KL(p_bar || pi) (``lab.gcd.losses.prior_kl``); with a uniform pi it is SimGCD's mean-entropy term.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from lab.utils import check_choice

#: default labelled share for a community to claim an old head (chosen on tuning seeds 100/101:
#: bench/results/discovery_study.json; 0 reproduces the old "one labelled sample claims" rule)
MIN_LABELLED_SHARE = 0.1
#: a community needs this many members for its labelled share to estimate f (a share of 50 has std <= 0.07)
PURE_MIN_MEMBERS = 50


def community_claims(comm_labels, y_visible, min_labelled_share: float = MIN_LABELLED_SHARE,
                     claim_z: float | None = None) -> np.ndarray:
    """(C,) the old class each community claims (majority labelled class), -1 when its labelled share is
    below ``min_labelled_share`` (or it holds no label at all).

    ``claim_z`` (None: off) adds a test against the client's labelled fraction. Labels are a fixed fraction f
    of every old class, so a community of n samples that is all one old class holds L ~ Binomial(n, f) labels;
    it claims only when L >= f_hat n - z sqrt(n f_hat (1 - f_hat)). A fixed share threshold cannot serve both
    fine and coarse communities: at 0.5 (= f here) half of the pure pieces of an old class fail it and become
    new-class candidates (K_hat over-counts), at 0.1 a community that is half a new class claims the old head
    and hides it. f_hat is the median labelled share of the communities of at least :data:`PURE_MIN_MEMBERS`
    whose share reaches ``min_labelled_share``: the client's own estimate, no true label read."""
    comm_labels = np.asarray(comm_labels)
    y_visible = np.asarray(y_visible)
    C = int(comm_labels.max()) + 1 if (comm_labels >= 0).any() else 0
    size = np.bincount(comm_labels[comm_labels >= 0], minlength=C)[:C]
    n_lab = np.bincount(comm_labels[(comm_labels >= 0) & (y_visible >= 0)], minlength=C)[:C]
    need = min_labelled_share * size
    if claim_z is not None:
        share = n_lab / np.maximum(size, 1)
        pure = (share >= min_labelled_share) & (size >= PURE_MIN_MEMBERS) & (n_lab > 0)
        if pure.any():
            f = float(np.median(share[pure]))
            need = np.maximum(need, f * size - claim_z * np.sqrt(size * f * (1 - f)))
    claims = np.full(C, -1, dtype=np.int64)
    for c in np.flatnonzero((n_lab > 0) & (n_lab >= need)):
        claims[c] = np.bincount(y_visible[(comm_labels == c) & (y_visible >= 0)]).argmax()
    return claims


def free_heads(claims, n_heads: int, old_classes=None) -> np.ndarray:
    """Heads a community without a claim may take: not claimed, and not an old head if ``old_classes``."""
    taken = set(int(h) for h in claims if h >= 0)
    if old_classes is not None:
        taken |= set(int(c) for c in old_classes)
    return np.array([h for h in range(n_heads) if h not in taken], dtype=np.int64)


#: how the Hungarian matching of unclaimed communities to free heads scores a pair (see ``assign_by``)
ASSIGN_BY = ("mean", "mass")


def map_communities_to_heads(comm_labels, probs, y_visible, n_heads: int, *,
                             min_labelled_share: float = MIN_LABELLED_SHARE, old_classes=None,
                             claim_z: float | None = None, assign_by: str = "mean") -> np.ndarray:
    """Head id for each community id 0..C-1 (see module docstring). ``probs`` None (no trained heads): the
    free heads are dealt to the unclaimed communities in order of size.

    ``assign_by``: the matching maximises the summed score of the pairs, a community's ``"mean"`` prediction on
    the head, or its ``"mass"`` there (the sum of its members' predictions: size x mean), i.e. the expected
    number of the client's samples the model already puts on the head their community gets. Under ``"mean"``
    every community weighs the same, so a community of a few samples can take the head a large one sits on."""
    check_choice("assign_by", assign_by, ASSIGN_BY)
    comm_labels = np.asarray(comm_labels)
    head = community_claims(comm_labels, y_visible, min_labelled_share, claim_z)
    rest = np.flatnonzero(head < 0)
    free = free_heads(head, n_heads, old_classes)
    if not rest.size:
        return head
    if probs is None:
        sizes = np.array([(comm_labels == c).sum() for c in rest])
        order = rest[np.argsort(-sizes, kind="stable")]
        fill = free if free.size else np.arange(n_heads)
        head[order] = fill[np.arange(len(order)) % len(fill)]
        return head
    probs = np.asarray(probs)
    mean_p = np.stack([probs[comm_labels == c].mean(0) for c in rest])          # (R, H)
    score = mean_p if assign_by == "mean" else mean_p * np.array([(comm_labels == c).sum() for c in rest])[:, None]
    if free.size:
        r, f = linear_sum_assignment(-score[:, free])
        head[rest[r]] = free[f]
    pool = free if free.size else np.arange(n_heads)
    for i in np.flatnonzero(head[rest] < 0):                                      # surplus communities
        head[rest[i]] = pool[mean_p[i, pool].argmax()]
    return head


def sample_heads(comm_labels, probs, head_of_comm, *, y_visible=None) -> np.ndarray:
    """Each sample's head: its community's head; noise samples their own argmax (-1 when ``probs`` is None).
    With ``y_visible``, a labelled sample always takes its own class's head."""
    comm_labels = np.asarray(comm_labels)
    out = np.full(len(comm_labels), -1, dtype=np.int64) if probs is None else np.asarray(probs).argmax(1)
    out = out.copy()
    ok = comm_labels >= 0
    out[ok] = np.asarray(head_of_comm)[comm_labels[ok]]
    if y_visible is not None:
        y_visible = np.asarray(y_visible)
        out[y_visible >= 0] = y_visible[y_visible >= 0]
    return out


def _smooth(mass, smoothing: float) -> np.ndarray:
    mass = np.clip(np.asarray(mass, dtype=np.float64), 0, None)
    return (mass + smoothing) / (mass.sum() + smoothing * len(mass))


def empirical_prior(head_labels, n_heads: int, smoothing: float = 0.5) -> np.ndarray:
    """Smoothed histogram over heads (samples with head -1 are left out)."""
    h = np.asarray(head_labels)
    return _smooth(np.bincount(h[h >= 0], minlength=n_heads)[:n_heads], smoothing)


def labelled_fraction(comm_labels, y_visible, claims) -> float:
    """The client's labelled fraction of old classes, estimated without the truth: labelled samples over all
    samples in the communities that claimed an old head. NaN when no community claimed one."""
    comm_labels = np.asarray(comm_labels)
    inside = np.isin(comm_labels, np.flatnonzero(np.asarray(claims) >= 0))
    if not inside.any():
        return float("nan")
    return float((np.asarray(y_visible)[inside] >= 0).mean())


def old_masses(y_visible, old_classes, n: int, frac: float) -> np.ndarray:
    """Per old class (in ``old_classes`` order): its estimated count on the client, L_c / f_hat, scaled down
    if the estimates exceed n. ``frac`` NaN (no estimate) -> 1: only the labelled samples are counted."""
    y_visible = np.asarray(y_visible)
    f = 1.0 if not np.isfinite(frac) or frac <= 0 else min(1.0, float(frac))
    m = np.array([(y_visible == c).sum() / f for c in old_classes], dtype=np.float64)
    return m * min(1.0, n / m.sum()) if m.sum() > 0 else m


def old_then_new(y_visible, old_classes, n: int, frac: float, weights) -> np.ndarray:
    """The unsmoothed mass over heads every label-based prior shares: old heads L_c / f_hat
    (:func:`old_masses`), the rest of the client's n samples over the new heads in proportion to ``weights``
    (one per head; only the new heads' entries are read)."""
    old = [int(c) for c in old_classes]
    w = np.asarray(weights, dtype=np.float64)
    mass = np.zeros(len(w))
    mass[old] = old_masses(y_visible, old, n, frac)
    new = np.setdiff1d(np.arange(len(w)), old)
    if new.size and w[new].sum() > 0:
        mass[new] = max(0.0, n - mass.sum()) * w[new] / w[new].sum()
    return mass


def hybrid_prior(head_labels, y_visible, old_classes, n_heads: int, frac: float,
                 smoothing: float = 0.5) -> np.ndarray:
    """Old heads from labels (L_c / f_hat); the remaining mass n - sum over new heads, shaped by how many
    samples the communities put on each new head (see module docstring)."""
    h = np.asarray(head_labels)
    counts = np.bincount(h[h >= 0], minlength=n_heads)[:n_heads]
    return _smooth(old_then_new(y_visible, old_classes, len(h), frac, counts), smoothing)


def sorted_size_prior(comm_labels, probs, n_heads: int, smoothing: float = 0.5):
    """Mapping-free: the i-th largest community's share goes to the head with the i-th largest mean predicted
    mass (noise samples count for their argmax head's rank as a community of their own). Returns
    (prior, head of each community)."""
    comm_labels = np.asarray(comm_labels)
    probs = np.asarray(probs)
    C = int(comm_labels.max()) + 1 if (comm_labels >= 0).any() else 0
    sizes = np.bincount(comm_labels[comm_labels >= 0], minlength=C).astype(np.float64)
    noise = int((comm_labels < 0).sum())
    sizes_all = np.append(sizes, noise) if noise else sizes
    order_c = np.argsort(-sizes_all, kind="stable")
    order_h = np.argsort(-probs.mean(0), kind="stable")
    mass = np.zeros(n_heads)
    head_of = np.full(len(sizes_all), -1, dtype=np.int64)
    for rank, c in enumerate(order_c[:n_heads]):
        head_of[c] = order_h[rank]
        mass[order_h[rank]] += sizes_all[c]
    return _smooth(mass, smoothing), head_of[:C]


def _model_evidence(probs, y_visible, old_classes):
    """What the graph-free priors read: (f_hat = labelled / (labelled + unlabelled samples predicted as an old class
    present in the labels), the argmax head of each sample, which samples are unlabelled)."""
    pred = np.asarray(probs).argmax(1)
    y_visible = np.asarray(y_visible)
    unl = y_visible < 0
    present = [int(c) for c in old_classes if (y_visible == c).any()]
    n_lab = int((~unl).sum())
    n_unl_old = int((unl & np.isin(pred, present)).sum())
    return (n_lab / (n_lab + n_unl_old) if n_lab else float("nan")), pred, unl


def argmax_prior(probs, y_visible, old_classes, n_heads: int, smoothing: float = 0.5) -> np.ndarray:
    """Graph-free: old heads from labels, L_c / f_hat (f_hat as :func:`_model_evidence` estimates it); new heads
    from the argmax histogram of the unlabelled samples the model puts on new heads, scaled to the remaining mass."""
    frac, pred, unl = _model_evidence(probs, y_visible, old_classes)
    counts = np.bincount(pred[unl], minlength=n_heads)[:n_heads]
    return _smooth(old_then_new(y_visible, old_classes, len(pred), frac, counts), smoothing)


#: most EM steps of :func:`em_prior` (it stops once no head's mass moves by 1e-9)
EM_STEPS = 500


def em_prior(probs, y_visible, old_classes, n_heads: int, smoothing: float = 0.5, steps: int = EM_STEPS) -> np.ndarray:
    """Graph-free, as :func:`argmax_prior` (old heads from labels, the same f_hat), but the new heads' masses are the
    maximum-likelihood prior given the model's posteriors: EM under label shift (Saerens, Latinne & Decaestecker,
    Neural Computation 2002).

    SimGCD's mean-entropy term trains the heads towards a uniform marginal, so on a client whose new classes come
    in proportions w the posterior of head h is q_h(x) = p_h(x) w_h / sum_g p_g(x) w_g. EM alternates that E-step
    with w_h <- mean_x q_h(x) over the unlabelled samples the model puts on a new head (p renormalised over the new
    heads), from w uniform, to its fixed point. The argmax histogram is a hard version of one step: every
    ambiguous sample counts for its top head, so a client's mass leaks onto new heads its classes are not on; EM
    drains a head that only ambiguous samples support. Per unit of privacy nothing changes: it reads what
    :func:`argmax_prior` reads, on the client."""
    frac, pred, unl = _model_evidence(probs, y_visible, old_classes)
    new = np.setdiff1d(np.arange(n_heads), [int(c) for c in old_classes])
    w = np.zeros(n_heads)
    sel = unl & np.isin(pred, new)
    if sel.any() and new.size:
        p = np.asarray(probs, dtype=np.float64)[sel][:, new]
        p /= np.maximum(p.sum(1, keepdims=True), 1e-300)
        wn = np.full(new.size, 1.0 / new.size)
        for _ in range(steps):
            q = p * wn
            q /= np.maximum(q.sum(1, keepdims=True), 1e-300)
            nxt = q.mean(0)
            done = np.abs(nxt - wn).max() < 1e-9
            wn = nxt
            if done:
                break
        w[new] = wn
    return _smooth(old_then_new(y_visible, old_classes, len(pred), frac, w), smoothing)


def purest_labelled_fraction(comm_labels, y_visible, claims, min_members: int = PURE_MIN_MEMBERS) -> float:
    """f_hat from the claimed community (>= ``min_members``) with the highest labelled share: a pure old
    community holds labels at exactly the client's labelled fraction, a community mixed with a new class at
    less. Falls back to :func:`labelled_fraction` when no claimed community is that large."""
    comm_labels = np.asarray(comm_labels)
    y_visible = np.asarray(y_visible)
    shares = [float((y_visible[comm_labels == c] >= 0).mean()) for c in np.flatnonzero(np.asarray(claims) >= 0)
              if (comm_labels == c).sum() >= min_members]
    return max(shares) if shares else labelled_fraction(comm_labels, y_visible, claims)


def excess_prior(comm_labels, claims, head_of_comm, probs, y_visible, old_classes, n_heads: int, frac: float,
                 smoothing: float = 0.5) -> np.ndarray:
    """Old heads from labels (L_c / f_hat); the rest of the client's mass over the new heads in proportion to
    (a) the size of each unclaimed community on its head, (b) each claimed community's excess
    n_comm - L_comm / f_hat on the new head with the highest mean prediction over its unlabelled members,
    (c) unlabelled noise samples on their argmax head (see module docstring)."""
    comm_labels = np.asarray(comm_labels)
    y_visible = np.asarray(y_visible)
    probs = np.asarray(probs)
    f = 1.0 if not np.isfinite(frac) or frac <= 0 else min(1.0, float(frac))
    new = np.setdiff1d(np.arange(n_heads), [int(c) for c in old_classes])
    w = np.zeros(n_heads)
    for c, claim in enumerate(np.asarray(claims)):
        members = comm_labels == c
        if claim < 0:
            w[head_of_comm[c]] += members.sum()
            continue
        unl = members & (y_visible < 0)
        excess = members.sum() - (members & (y_visible >= 0)).sum() / f
        if excess > 0 and unl.any() and new.size:
            w[new[probs[unl][:, new].mean(0).argmax()]] += excess
    noise = (comm_labels < 0) & (y_visible < 0)
    w += np.bincount(probs[noise].argmax(1), minlength=n_heads)[:n_heads]
    return _smooth(old_then_new(y_visible, old_classes, len(y_visible), f, w), smoothing)


def blend_prior(*priors) -> np.ndarray:
    """The mean of priors over the same heads (see module docstring)."""
    return np.mean([np.asarray(p, dtype=np.float64) for p in priors], axis=0)


def oracle_heads(y_true, probs, old_classes, n_heads: int, assign_by: str = "mean") -> np.ndarray:
    """Ablation: true classes as the communities (old class c -> head c; new classes by Hungarian over the
    new heads, as :func:`map_communities_to_heads` maps unclaimed communities, by ``assign_by``).

    Every class the client holds is a community here, however few its samples (discovery drops communities
    under ``min_community`` as noise), so by ``"mean"`` a class of one or two samples can take the head where the
    model puts a class of hundreds, which then trains towards a head the model does not give it
    (``bench/oracle_mapping.md``: a few clients, mostly at alpha 0.1); ``"mass"`` weighs each class by its samples.
    Trained, the two oracles differ within the runs' seed-to-seed noise; the committed oracle runs are by mean."""
    y_true = np.asarray(y_true)
    y_vis = np.where(np.isin(y_true, old_classes), y_true, -1)
    classes, comm = np.unique(y_true, return_inverse=True)
    head_of = map_communities_to_heads(comm, probs, y_vis, n_heads, old_classes=old_classes, assign_by=assign_by)
    return head_of[comm]


#: a class counts as held by a client from this share of its samples on (the K of ``k_true`` in the reports)
HELD_SHARE = 0.02


def held_heads(head_labels, n_heads: int, min_share: float = HELD_SHARE) -> np.ndarray:
    """(n_heads,) bool: the heads holding at least ``min_share`` of the client's samples under a sample -> head
    map (the oracle's, or the one discovery made)."""
    h = np.asarray(head_labels)
    return np.bincount(h[h >= 0], minlength=n_heads)[:n_heads] >= min_share * len(h)


def equal_masses(head_labels, n_heads: int, smoothing: float, estimate=None) -> np.ndarray:
    """A prior on the :func:`held_heads` of ``head_labels`` only: ``estimate``'s masses renormalised there, or
    equal masses when it is None. Masses are counts (x n samples) so that ``smoothing`` is the same
    pseudo-count per head as in every other prior."""
    h = np.asarray(head_labels)
    held = held_heads(h, n_heads)
    mass = held.astype(np.float64) if estimate is None else np.where(held, np.asarray(estimate, np.float64), 0.0)
    return _smooth(len(h) * mass / max(mass.sum(), 1e-12), smoothing)


def oracle_prior(mode, oracle_head_labels, estimate, n_heads: int, smoothing: float) -> np.ndarray:
    """The oracle-prior ablations, each told one thing more than FedLPA (a ceiling, they read true labels):

    - ``True``: the true local class proportions (so also the true K and the true heads);
    - ``"support"``: FedLPA's own estimate kept only on the heads of the classes the client holds
      (:func:`held_heads`), i.e. the true K and heads, FedLPA's masses;
    - ``"uniform"``: the same heads, equal mass each: the true K and heads, no masses at all.
    Support and uniform split the oracle's lead over FedLPA into what knowing which heads (K) are present
    is worth, and what the masses add."""
    if mode is True:
        return empirical_prior(oracle_head_labels, n_heads, smoothing)
    return equal_masses(oracle_head_labels, n_heads, smoothing, estimate if mode == "support" else None)


def head_kl(p, q, eps: float = 1e-12) -> float:
    """KL(p || q) between two distributions over heads (for reports: p = oracle prior, q = an estimate)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], eps))))


def new_class_map(y_true, head_labels, oracle_head_labels, old_classes, min_share: float = HELD_SHARE) -> list:
    """For reports: (class, the head most of its samples are mapped to (-1: none), the oracle's head for it) for each
    NEW class holding >= ``min_share`` of the client."""
    y = np.asarray(y_true)
    h = np.asarray(head_labels)
    oh = np.asarray(oracle_head_labels)
    old = {int(o) for o in old_classes}
    out = []
    for c in np.unique(y):
        m = y == c
        if int(c) in old or m.sum() < min_share * len(y):
            continue
        mapped = h[m][h[m] >= 0]
        out.append((int(c), int(np.bincount(mapped).argmax()) if mapped.size else -1, int(np.bincount(oh[m]).argmax())))
    return out


def new_class_heads(y_true, head_labels, oracle_head_labels, old_classes, min_share: float = HELD_SHARE) -> list:
    """For reports: for each NEW class holding >= ``min_share`` of the client, (whether the head most of its
    samples are mapped to is the oracle's head for it, the share of its samples mapped there). The oracle's masses
    are the true class sizes on those heads; a prior's masses for a new class sit on the head discovery mapped
    it to, so where the two heads differ, even a right size lands on a wrong head."""
    y = np.asarray(y_true)
    h = np.asarray(head_labels)
    return [(mine == target, float((h[y == c] == target).mean()))
            for c, mine, target in new_class_map(y_true, head_labels, oracle_head_labels, old_classes, min_share)]


#: where a held new class ends up after discovery (:func:`new_class_fates`), in report order
FATES = ("own community, oracle's head", "own community, another head", "shares a community with another new class",
         "inside an old class's community", "noise")


def new_class_fates(y_true, comm_labels, claims, head_labels, oracle_head_labels, old_classes,
                    min_share: float = HELD_SHARE) -> list:
    """For reports: for each NEW class holding >= ``min_share`` of the client, (class, one of :data:`FATES`).

    A class's community is the one most of its non-noise samples are in ("noise" when most of its samples are
    noise). A mapping can only put a class on its own head when that community is the class's alone: one inside
    a claimed (old) community takes the old head, and new classes sharing a community share its one head."""
    y = np.asarray(y_true)
    comm = np.asarray(comm_labels)
    rows = new_class_map(y_true, head_labels, oracle_head_labels, old_classes, min_share)
    home = {}
    for c, _, _ in rows:
        cm = comm[y == c]
        home[c] = -1 if (cm < 0).mean() > 0.5 else int(np.bincount(cm[cm >= 0]).argmax())
    out = []
    for c, mine, target in rows:
        if home[c] < 0:
            fate = FATES[4]
        elif np.asarray(claims)[home[c]] >= 0:
            fate = FATES[3]
        elif sum(h == home[c] for h in home.values()) > 1:
            fate = FATES[2]
        else:
            fate = FATES[0] if mine == target else FATES[1]
        out.append((c, fate))
    return out


def head_consensus(heads_by_class: dict) -> tuple:
    """For reports, across the clients of one federation: ``heads_by_class`` maps a class to the head each client
    holding it maps it to. FedAvg averages the clients' heads, so a class trained onto head 7 on one client and head
    9 on another pulls the shared model two ways. Returns (the mean over classes held by >= 2 clients of the share
    of those clients that use the class's most common head, how many such classes); (NaN, 0) when none."""
    shares = [(np.bincount(hs[hs >= 0]).max() if (hs >= 0).any() else 0) / len(hs)     # -1 (no head) never agrees
              for hs in (np.asarray(v, dtype=np.int64) for v in heads_by_class.values()) if len(hs) >= 2]
    return (float(np.mean(shares)) if shares else float("nan")), len(shares)


def prior_vs_truth_kl(y_true, head_labels, prior, n_classes: int, smoothing: float = 1e-3) -> float:
    """KL(true class histogram || estimated prior read in class space), for reporting only.

    Each head is read as the true class most of its samples have (an oracle view), and the prior mass of the
    heads of one class is summed."""
    y_true = np.asarray(y_true)
    head_labels = np.asarray(head_labels)
    q = np.full(n_classes, 0.0)
    for h in range(len(prior)):
        members = y_true[head_labels == h]
        cls = np.bincount(members, minlength=n_classes).argmax() if members.size else None
        if cls is not None:
            q[cls] += prior[h]
    q = (q + smoothing) / (q + smoothing).sum()
    p = np.bincount(y_true, minlength=n_classes).astype(float)
    p = p / p.sum()
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / q[m])))
