"""A client's category discovery in one call: graph -> communities -> K_hat -> heads -> prior pi.

:func:`discover` is the front door the FedLPA client calls after warm-up (and notebooks call directly). It
reads only what a client has: its features (and, optionally, its frozen-prefix features), the model's
predictions, which samples are labelled and their labels (-1 elsewhere), and the old class ids. It never
sees a true label of an unlabelled sample nor the true number of classes (``tests/test_discovery.py``).

1. Graph (``lab.gcd.clsd``): cosine kNN on the chosen features; labelled samples (and, with
   ``refine="confidence"``, confident predictions of old classes) cut links between different old classes and
   add must-links within one.
2. Communities (``lab.gcd.communities``): InfoMap at one markov time; communities under ``min_community``
   of the client are noise.
3. Old or new: a community whose labelled share reaches ``min_labelled_share`` (and, with ``claim_z``, the
   client's labelled fraction up to binomial noise) is a piece of the old class most of its labels have; the
   others are new-class candidates (optionally merged when the model's mean predictions put them on the same
   new head, and, with ``merge_new_cosine``, when those predictions agree).
4. K_hat = K_old + K_new. K_old counts old classes from the labels alone: class c is present when its
   labelled count reaches ``min_community * n * f_hat``, f_hat the labelled fraction estimated from the
   old communities. K_new counts the new-class communities. Old classes thus never depend on how InfoMap
   cuts them (InfoMap splits a large old class and merges Pullover with Coat at the same markov time).
5. Heads and prior (``lab.gcd.prior``): old communities -> their class's head; new ones -> Hungarian over the
   new heads still free; pi from :data:`PRIORS` (default ``blend``: the model's argmax histogram and the
   communities, each community's labelled share telling how much of it is an old class).

How the defaults of :class:`DiscoveryParams` were chosen (tuning seeds 100/101 only, both alpha 0.1 and 1.0,
one setting for both): ``bench/discovery_study.py`` -> ``bench/results/discovery_study.md``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from lab.gcd.clsd import SimilarityGraph, build_graph, graph_features
from lab.gcd.communities import Communities, _relabel, infomap_modules
from lab.gcd.prior import (ASSIGN_BY, MIN_LABELLED_SHARE, argmax_prior, blend_prior, community_claims, em_prior,
                           empirical_prior, equal_masses, excess_prior, free_heads, hybrid_prior, labelled_fraction,
                           map_communities_to_heads, purest_labelled_fraction, sample_heads, sorted_size_prior)
from lab.utils import LabError, check_choice, check_range

FEATURES = ("prefix", "output")
REFINE = ("none", "labels", "confidence")
MERGE_ON = ("predictions", "graph")


def _prior_communities(d: "Discovery", probs, y_visible, old_classes, n_heads, s):
    return empirical_prior(d.heads, n_heads, s), d.heads


def _prior_hybrid(d, probs, y_visible, old_classes, n_heads, s):
    return hybrid_prior(d.heads, y_visible, old_classes, n_heads, d.labelled_fraction, s), d.heads


def _prior_sorted(d, probs, y_visible, old_classes, n_heads, s):
    if probs is None:
        return _prior_uniform(d, probs, y_visible, old_classes, n_heads, s)
    pi, head_of = sorted_size_prior(d.communities.labels, probs, n_heads, s)
    return pi, sample_heads(d.communities.labels, probs, head_of)


def _graph_free(prior_fn):
    """A prior that reads the model and the labels only (argmax, em): each sample's head is its label or argmax."""
    def rule(d, probs, y_visible, old_classes, n_heads, s):
        if probs is None:
            return _prior_uniform(d, probs, y_visible, old_classes, n_heads, s)
        heads = np.where(np.asarray(y_visible) >= 0, y_visible, np.asarray(probs).argmax(1))
        return prior_fn(probs, y_visible, old_classes, n_heads, s), heads
    return rule


_prior_argmax = _graph_free(argmax_prior)
_prior_em = _graph_free(em_prior)


def _prior_excess(d, probs, y_visible, old_classes, n_heads, s):
    if probs is None:
        return _prior_hybrid(d, probs, y_visible, old_classes, n_heads, s)
    labels = d.communities.labels
    frac = purest_labelled_fraction(labels, y_visible, d.claims)
    return excess_prior(labels, d.claims, d.head_of_comm, probs, y_visible, old_classes, n_heads, frac, s), d.heads


def _with_excess(model_rule):
    """The mean of a graph-free prior and the excess prior (module docstring: they err differently)."""
    def rule(d, probs, y_visible, old_classes, n_heads, s):
        if probs is None:
            return _prior_hybrid(d, probs, y_visible, old_classes, n_heads, s)
        pi_m, _ = model_rule(d, probs, y_visible, old_classes, n_heads, s)
        pi_e, heads = _prior_excess(d, probs, y_visible, old_classes, n_heads, s)
        return blend_prior(pi_m, pi_e), heads
    return rule


_prior_blend = _with_excess(_prior_argmax)
_prior_em_blend = _with_excess(_prior_em)


def _prior_uniform(d, probs, y_visible, old_classes, n_heads, s):
    return np.full(n_heads, 1.0 / n_heads), d.heads


def _prior_equal(d, probs, y_visible, old_classes, n_heads, s):
    """The blend's heads (those holding >= 2 % of the client's samples), equal mass each: an ablation that
    keeps what discovery says is present and drops how much of it there is (the oracle-parts runs found
    FedLPA's masses on the true heads no better than equal ones: bench/results/gcd_summary.md)."""
    _, heads = _prior_blend(d, probs, y_visible, old_classes, n_heads, s)
    return equal_masses(heads, n_heads, s), heads


#: prior name -> fn(discovery, probs, y_visible, old_classes, n_heads, smoothing) -> (pi, head of each sample)
PRIORS = {"communities": _prior_communities, "hybrid": _prior_hybrid, "sorted": _prior_sorted,
          "excess": _prior_excess, "argmax": _prior_argmax, "blend": _prior_blend, "uniform": _prior_uniform,
          "equal": _prior_equal, "em": _prior_em, "em_blend": _prior_em_blend}


@dataclass(frozen=True)
class DiscoveryParams:
    """Every knob of :func:`discover`. How the defaults were chosen: ``bench/discovery_study.py`` ran a grid
    (graph features x refinement x markov time 1-6 x labelled share 0-0.5 x merging by head: 600 settings) on
    the tuning seeds 100/101 only, alpha 0.1 and 1.0, on SimGCD models with 15 heads after 6 and 20 rounds;
    one setting had to serve both alphas. ``features``, ``prefix_dim``, ``refine``, ``markov_time``,
    ``min_labelled_share`` and ``merge_new_by_head`` maximise the share of clients with |K_hat - K| <= 1 at
    the worse alpha (smoothed over neighbouring markov times; labelled share 0, the old rule, excluded);
    ``prior`` has the lowest mean KL(oracle || pi) over heads at that setting (``--stage priors`` re-chose
    it among every rule in :data:`PRIORS` when ``excess`` and ``blend`` were added: argmax -> blend; the same rule
    with ``em`` and ``em_blend``, added later, keeps blend on this backbone: ``discovery_levers.py --pick``, tested).
    ``knn_k``, ``min_community``, ``num_trials``, the confidence settings and ``smoothing`` were not searched
    (the lab's earlier values); ``knn_k``, ``num_trials``, ``min_community`` and the anchors (``refine`` with the
    confidence settings, which act only with ``refine="confidence"``) were later searched with the markov time and
    merging on FedLPA's own first discoveries, and with the coarse route (``bench/discovery_knobs.py``, tuning
    clients): no setting keeps K_hat within +-1 on 80 % of them at both alphas without the route, and with it only
    these values do, so they keep them. ``smoothing`` was searched last the same way (it moves no K_hat): every
    count above 0.5 raises the mean KL(oracle || pi) at both alphas, and 0.25 (lower by 0.0003 with the route)
    lost the adoption rule when trained beside FedLPA on the tuning seeds, so it keeps 0.5.
    Evaluation seeds 0/1/2 only report (``bench/results/discovery_study.md``).

    - ``features``: the graph's features. ``"prefix"``: the frozen backbone prefix (32x7x7 maps; kNN-10
      accuracy 86 % vs 82 % for the 64-d output), fixed during training, so the graph does not drift with the
      model; falls back to ``"output"`` when no prefix features are given. ``"output"``: the model's features.
    - ``prefix_dim``: PCA dimension for prefix features (per client, seeded; 0 = keep all 1568).
    - ``knn_k``: neighbours per sample in the kNN graph.
    - ``knn_mutual``: keep a kNN link only when each end is among the other's ``knn_k`` nearest (the issue's
      "mutual-kNN graphs"; :func:`lab.gcd.clsd.knn_edges`). Searched with ``knn_k``, the markov time and merging
      on FedLPA's own first discoveries (``bench/discovery_knobs.py --knob mutual``): some settings keep the K_hat
      bar without the route, with a worse prior than FedLPA's routed one, so it stays off.
    - ``refine``: ``"labels"`` (labelled samples only: their links cut/joined), ``"confidence"`` (plus
      confident old-class predictions as anchors, the CLSD paper's rule), ``"none"``.
    - ``confidence_quantile`` / ``min_confidence``: which predictions are confident (per-class relative
      quantile, or an absolute max-probability threshold when ``min_confidence`` is set).
    - ``markov_time``: InfoMap's markov time; one value for every client (below 1 splits, above merges). A time each
      client chooses by its codelength against shuffled graphs (the issue's candidate) reduces to the finest time
      tried: the shuffles save nothing at these times (``bench/codelength_null.py``).
    - ``num_trials``: InfoMap restarts (the best codelength wins).
    - ``min_community``: communities below this share of the client are noise; also the share above which an
      old class counts in K_hat (the same 2 % as the K_true the lab reports).
    - ``min_labelled_share``: labelled share a community needs to claim an old head (issue 9, item 1).
    - ``claim_z``: None (off), or also test each claim against the client's labelled fraction, z binomial
      standard deviations of slack (:func:`lab.gcd.prior.community_claims`). Not in the study's grid; run as a
      lever by ``bench/discovery_levers.py``.
    - ``merge_new_by_head``: merge new-class communities whose mean prediction has the same argmax new head.
    - ``merge_new_cosine`` / ``merge_new_on``: None (off), or then also merge new-class communities whose mean
      predictions (``"predictions"``) or prototypes in the graph's features (``"graph"``) have cosine >= this
      (:func:`merge_new_by_cosine`). Not in the study's grid (which ran with it off): 0.8 on predictions was
      chosen on FedLPA's own warm-up discoveries of tuning seeds 100-109 by ``bench/kest_anatomy.py``, with the
      study's criterion (K_hat within +-1 at the worse alpha, smoothed over neighbouring thresholds), against
      off and every other threshold and vector; ``bench/discovery_levers.py`` measures it trained, beside
      FedLPA without it. The markov time and the threshold chosen together (``bench/markov_merge.py``, the tuning
      clients of FedLPA's own first discoveries) keep these: no pair keeps K_hat within +-1 on 80 % of them at both
      alphas, and the pair with the best prior (a coarser time) loses that line at alpha 1 when trained.
    - ``split_new_share``: None (off), or, after the merges, carve out of every community the unlabelled samples
      the model puts on one new head, when they are at least this share of it and that head is not already the
      community's own (:func:`split_by_new_heads`). Run as a probe by ``bench/new_split.py``.
    - ``coarse_k``: None (off), or a client whose discovery counts at most this many categories (K_hat <=
      ``coarse_k``) is discovered again on the same graph at ``coarse_markov_time`` with merging at
      ``coarse_merge_cosine``: a client with few classes (strong skew) is over-split at the time that suits a client
      of many, and no one time serves both (``bench/markov_merge.py``). It reads only the client's own count.
      ``bench/coarse_route.py`` picked 7 on the tuning clients and its adoption rule, written before its runs,
      adopted it when trained: the default since, and the tables' FedLPA runs are made with it. The studies of
      FedLPA's first discovery search the discovery the route starts from (``run_gcd_tables.BEFORE_ROUTE``).
      Picked again on twice the tuning clients (``bench/route_more_tuning.py``): there no cutoff keeps K_hat within
      +-1 on 80 % of them at alpha 1 (7 itself: 73 %), and the KL pick, trained, was not adopted; 7 stays.
    - ``assign_by``: how unclaimed communities are matched to free heads, by their ``"mean"`` prediction or their
      ``"mass"`` (:func:`lab.gcd.prior.map_communities_to_heads`). Measured by ``bench/oracle_mapping.py``: on
      FedLPA's own first discoveries the two give the same heads (its communities are >= ``min_community``).
    - ``prior``: a key of :data:`PRIORS`; ``smoothing``: pseudo-count per head.
    """
    features: str = "prefix"
    prefix_dim: int = 0
    knn_k: int = 10
    knn_mutual: bool = False
    refine: str = "labels"
    confidence_quantile: float = 0.5
    min_confidence: float | None = None
    markov_time: float = 1.5
    num_trials: int = 1
    min_community: float = 0.02
    min_labelled_share: float = MIN_LABELLED_SHARE
    claim_z: float | None = None
    merge_new_by_head: bool = True
    merge_new_cosine: float | None = 0.8
    merge_new_on: str = "predictions"
    split_new_share: float | None = None
    coarse_k: int | None = 7
    coarse_markov_time: float = 3.0
    coarse_merge_cosine: float | None = 0.7
    assign_by: str = "mean"
    prior: str = "blend"
    smoothing: float = 0.5

    def validate(self) -> "DiscoveryParams":
        check_choice("features", self.features, FEATURES)
        check_choice("refine", self.refine, REFINE)
        check_choice("prior", self.prior, tuple(PRIORS))
        check_choice("merge_new_on", self.merge_new_on, MERGE_ON)
        check_choice("assign_by", self.assign_by, ASSIGN_BY)
        check_range("prefix_dim", self.prefix_dim, 0, 100000, integer=True)
        check_range("knn_k", self.knn_k, 1, 1000, integer=True)
        check_choice("knn_mutual", self.knn_mutual, (False, True))
        check_range("confidence_quantile", self.confidence_quantile, 0, 1)
        if self.min_confidence is not None:
            check_range("min_confidence", self.min_confidence, 0, 1)
        check_range("markov_time", self.markov_time, 0, 100, low_open=True)
        check_range("num_trials", self.num_trials, 1, 100, integer=True)
        check_range("min_community", self.min_community, 0, 1, high_open=True)
        check_range("min_labelled_share", self.min_labelled_share, 0, 1)
        if self.claim_z is not None:
            check_range("claim_z", self.claim_z, 0, 10)
        if self.merge_new_cosine is not None:
            check_range("merge_new_cosine", self.merge_new_cosine, -1, 1)
        if self.split_new_share is not None:
            check_range("split_new_share", self.split_new_share, 0, 1, low_open=True)
        if self.coarse_k is not None:
            check_range("coarse_k", self.coarse_k, 1, 1000, integer=True)
        check_range("coarse_markov_time", self.coarse_markov_time, 0, 100, low_open=True)
        if self.coarse_merge_cosine is not None:
            check_range("coarse_merge_cosine", self.coarse_merge_cosine, -1, 1)
        check_range("smoothing", self.smoothing, 0, 1000)
        return self

    def replace(self, **kw) -> "DiscoveryParams":
        return replace(self, **kw).validate()

    def routes(self, k_est: int) -> bool:
        """Whether the coarse route discovers a client again: its first discovery counts at most ``coarse_k``
        categories (the rule :func:`discover` applies; the dashboard's communities page draws it too)."""
        return self.coarse_k is not None and k_est <= self.coarse_k


@dataclass
class Discovery:
    """What one client found. Stays on the client (the server never sees any of it)."""
    graph: SimilarityGraph
    communities: Communities   # after noise removal (and merging of new communities by head)
    claims: np.ndarray         # (C,) old class claimed by each community, -1 = new-class candidate
    head_of_comm: np.ndarray   # (C,) head of each community
    heads: np.ndarray          # (n,) head of each sample (labelled samples: their class)
    prior: np.ndarray          # (H,) pi
    k_old: int                 # old classes present (from labels)
    k_new: int                 # new-class communities
    labelled_fraction: float   # f_hat: labelled share of the old communities (NaN if none)
    features_used: str         # "prefix" or "output"
    seconds: float = 0.0
    first_k_est: int | None = None   # the first discovery's K_hat when the coarse route discovered again, else None

    @property
    def k_est(self) -> int:
        return self.k_old + self.k_new


def build_discovery_graph(features, probs, labelled, y_visible, old_classes, *, prefix_features=None,
                          params: DiscoveryParams = DiscoveryParams(), seed: int = 0):
    """Step 1: (graph, the features it was built on, which kind). Exposed so studies can cache it."""
    kind = params.features if (params.features == "output" or prefix_features is not None) else "output"
    f = graph_features(prefix_features, params.prefix_dim, seed) if kind == "prefix" else graph_features(features)
    use_probs = probs if params.refine == "confidence" else None
    g = build_graph(f, use_probs, labelled, y_visible, old_classes, k=min(params.knn_k, max(1, len(f) - 1)),
                    quantile=params.confidence_quantile, refine=params.refine != "none",
                    min_confidence=params.min_confidence, mutual=params.knn_mutual)
    return g, f, kind


def min_size(n: int, params: DiscoveryParams) -> int:
    return max(2, int(np.ceil(params.min_community * n)))


def raw_modules(graph: SimilarityGraph, params: DiscoveryParams, seed: int = 0) -> np.ndarray:
    """Step 2a: InfoMap's module of each node (cacheable: depends on the graph, time, trials and seed)."""
    return infomap_modules(graph, params.markov_time, seed=seed + 1, num_trials=params.num_trials)


def merge_new_by_head(labels, claims, probs, candidate_heads) -> np.ndarray:
    """Community labels after merging new-class candidates whose mean prediction peaks on the same head of
    ``candidate_heads`` (prototype merging in the model's own prediction space)."""
    labels = np.asarray(labels).copy()
    first = {}
    for c in np.flatnonzero(np.asarray(claims) < 0):
        h = int(candidate_heads[np.asarray(probs)[labels == c][:, candidate_heads].mean(0).argmax()])
        if h in first:
            labels[labels == c] = first[h]
        else:
            first[h] = c
    return labels


def merge_new_by_cosine(labels, claims, vectors, threshold: float) -> np.ndarray:
    """Community labels after merging new-class candidates whose mean ``vectors`` (one row per sample: the
    model's predictions over all heads, or the graph's features) have cosine >= ``threshold``: the connected
    components of that relation (single linkage on the communities as they are before any of these merges, so
    their order does not matter).

    Why: a new class with two visual modes (in Fashion-MNIST, e.g. two pure bag communities) forms two
    communities whose mean predictions peak on different new heads of the warm-up model, so merging by head keeps
    both and K_hat over-counts (``bench/kest_anatomy.py``); their whole prediction vectors usually agree more
    than two classes' do."""
    labels = np.asarray(labels).copy()
    new = np.flatnonzero(np.asarray(claims) < 0)
    if len(new) < 2:
        return labels
    Q = np.stack([np.asarray(vectors)[labels == c].mean(0) for c in new])
    Q = Q / (np.linalg.norm(Q, axis=1, keepdims=True) + 1e-12)
    root = list(range(len(new)))

    def find(i):
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i
    for i, j in zip(*np.nonzero(np.triu(Q @ Q.T >= threshold, 1))):
        root[find(i)] = find(j)
    out = labels.copy()
    for i, c in enumerate(new):
        out[labels == c] = new[find(i)]
    return out


def split_by_new_heads(labels, claims, probs, labelled, new_heads, share: float) -> np.ndarray:
    """Community labels after carving, out of each community, the unlabelled samples whose argmax head is a new
    head ``h`` other than the community's own, when they are at least ``share`` of it: one new community per such
    head. A new-class candidate's own head is the new head most of its samples peak on; a claimed (old) community
    has none, so any new head with that share leaves it.

    Why: at alpha 1 many held new classes share a community with another new class, or sit inside an old class's
    community (``bench/results/discovery_study.md``, section Masses); the graph cannot tell them apart, and the
    mapping then puts both classes' mass on one head. The global model's heads are the one thing every client
    shares, so a piece cut along them would land on the same head on every client. Measured on the tuning clients
    (``bench/results/new_split.md``), it adds splits faster than it removes hidden classes: off by default."""
    labels = np.asarray(labels).copy()
    pred = np.asarray(probs).argmax(1)
    is_new = np.isin(pred, new_heads) & ~np.asarray(labelled, bool)
    nxt = int(labels.max()) + 1 if labels.size else 0
    for c, claim in enumerate(claims):
        members = labels == c
        size = members.sum()
        on_new = pred[members & is_new]
        counts = np.bincount(on_new, minlength=probs.shape[1])
        own = int(counts.argmax()) if claim < 0 and on_new.size else -1
        for h in np.flatnonzero(counts >= share * size):
            if h != own:
                labels[members & is_new & (pred == h)] = nxt
                nxt += 1
    return labels


def finish(modules, graph_feats, probs, labelled, y_visible, old_classes, n_heads: int,
           params: DiscoveryParams, graph: SimilarityGraph | None = None, kind: str = "output") -> Discovery:
    """Steps 2b-5 from InfoMap's raw modules: noise, old/new split, K_hat, mapping, prior."""
    y_visible = np.asarray(y_visible)
    n = len(y_visible)
    ms = min_size(n, params)
    labels, _ = _relabel(np.asarray(modules), graph_feats, ms)
    claims = community_claims(labels, y_visible, params.min_labelled_share, params.claim_z)
    if params.merge_new_by_head and probs is not None and (claims < 0).sum() > 1:
        cand = free_heads(np.array([], dtype=np.int64), n_heads, old_classes)
        if cand.size:
            labels, _ = _relabel(merge_new_by_head(labels, claims, probs, cand), graph_feats, ms)
            claims = community_claims(labels, y_visible, params.min_labelled_share, params.claim_z)
    vectors = {"predictions": probs, "graph": graph_feats}[params.merge_new_on]
    if params.merge_new_cosine is not None and vectors is not None and (claims < 0).sum() > 1:
        labels, _ = _relabel(merge_new_by_cosine(labels, claims, vectors, params.merge_new_cosine),
                             graph_feats, ms)
        claims = community_claims(labels, y_visible, params.min_labelled_share, params.claim_z)
    if params.split_new_share is not None and probs is not None and len(claims):
        new_heads = free_heads(np.array([], dtype=np.int64), n_heads, old_classes)
        labels, _ = _relabel(split_by_new_heads(labels, claims, probs, labelled, new_heads, params.split_new_share),
                             graph_feats, ms)
        claims = community_claims(labels, y_visible, params.min_labelled_share, params.claim_z)
    frac = labelled_fraction(labels, y_visible, claims)
    f_used = frac if np.isfinite(frac) and frac > 0 else 1.0
    counts = np.array([(y_visible == c).sum() for c in old_classes])
    k_old = int((counts >= max(1.0, params.min_community * n * f_used)).sum())
    k_new = int((claims < 0).sum())
    protos = (np.stack([graph_feats[labels == c].mean(0) for c in range(len(claims))]) if len(claims)
              else np.zeros((0, graph_feats.shape[1])))
    sizes = np.bincount(labels[labels >= 0], minlength=len(claims)) if len(claims) else np.zeros(0, int)
    comm = Communities(labels, protos, sizes, int(np.max(modules)) + 1, params.markov_time)
    head_of = map_communities_to_heads(labels, probs, y_visible, n_heads,
                                       min_labelled_share=params.min_labelled_share, old_classes=old_classes,
                                       claim_z=params.claim_z, assign_by=params.assign_by)
    heads = sample_heads(labels, probs, head_of, y_visible=y_visible)
    d = Discovery(graph, comm, claims, head_of, heads, np.full(n_heads, 1.0 / n_heads), k_old, k_new, frac, kind)
    d.prior, _ = PRIORS[params.prior](d, probs, y_visible, old_classes, n_heads, params.smoothing)
    return d


def discover(features, probs, labelled, y_visible, old_classes, n_heads: int, *, prefix_features=None,
             params: DiscoveryParams = DiscoveryParams(), seed: int = 0) -> Discovery:
    """One client's discovery (see module docstring).

    ``features`` (n, d): the model's features; ``probs`` (n, n_heads) or None (no trained heads: the graph is
    refined by labels only and free heads are dealt by community size); ``labelled`` (n,) bool;
    ``y_visible`` (n,) labels of labelled samples, -1 elsewhere; ``old_classes``: the seen class ids (= their
    heads); ``n_heads``: the model's head count; ``prefix_features`` (n, ...): frozen-prefix outputs (any
    shape per sample; flattened). Deterministic for a given ``seed``."""
    t0 = time.perf_counter()
    params.validate()
    labelled = np.asarray(labelled, bool)
    y_visible = np.asarray(y_visible)
    n = len(y_visible)
    if len(labelled) != n or len(features) != n or (probs is not None and len(probs) != n):
        raise LabError("features, probs, labelled and y_visible must have one row per sample")
    if probs is not None and np.asarray(probs).shape[1] != n_heads:
        raise LabError(f"probs must have n_heads={n_heads} columns, got {np.asarray(probs).shape[1]}")
    if prefix_features is not None and len(prefix_features) != n:
        raise LabError("prefix_features must have one row per sample")
    if ((y_visible >= 0) != labelled).any():
        raise LabError("y_visible must be >= 0 exactly where labelled is True")
    old_classes = [int(c) for c in old_classes]
    if params.refine == "confidence" and probs is None:
        params = params.replace(refine="labels")
    graph, f, kind = build_discovery_graph(features, probs, labelled, y_visible, old_classes,
                                           prefix_features=prefix_features, params=params, seed=seed)
    d = finish(raw_modules(graph, params, seed), f, probs, labelled, y_visible, old_classes, n_heads, params,
               graph, kind)
    if params.routes(d.k_est):
        # few categories found: a skewed client, which the time that suits a client of many classes over-splits
        coarse = params.replace(markov_time=params.coarse_markov_time, merge_new_cosine=params.coarse_merge_cosine,
                                coarse_k=None)
        first = d.k_est
        d = finish(raw_modules(graph, coarse, seed), f, probs, labelled, y_visible, old_classes, n_heads, coarse,
                   graph, kind)
        d.first_k_est = first
    d.seconds = time.perf_counter() - t0
    return d
