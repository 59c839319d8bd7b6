"""2-D positions for drawing a client's samples (graph and community figures), and the node subsample drawn.

Layouts only place the dots; every graph and community is computed in the full feature space.

=========  ==============================================================  =====================================
layout     what                                                            cost (one thread, 400 nodes, 64-d)
=========  ==============================================================  =====================================
``pca``    the two main directions of the features (linear)                ~0.02 s
``tsne``   t-SNE on the L2-normalised features (the cosine geometry the    ~0.5 s; separates classes much better
           kNN graph uses), 300 iterations, PCA start                      (kNN-5 accuracy of the 2-D points
                                                                           0.79 vs PCA's 0.66 on a Fashion client)
``spring`` networkx's force layout of the graph's active edges             seconds
=========  ==============================================================  =====================================
"""
from __future__ import annotations

import numpy as np

from lab.utils import check_choice

LAYOUTS = ("tsne", "pca", "spring")
TSNE_ITERATIONS = 300       # sklearn's minimum is 250 (its early-exaggeration phase); 300 adds the settling


def draw_subset(n: int, n_draw: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of the nodes drawn: all ``n`` when ``n_draw`` is None or large enough, else a seeded
    uniform subsample of ``n_draw``."""
    if n_draw is None or n <= n_draw:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, int(n_draw), replace=False))


def induced_edges(keep, src, dst, *per_edge):
    """The edges with both ends among the nodes ``keep`` (sorted indices), their ends renumbered to positions
    in ``keep``; ``per_edge`` arrays (e.g. edge kinds) are filtered alike. Returns ``(src, dst, *per_edge)``."""
    keep = np.asarray(keep)
    src, dst = np.asarray(src), np.asarray(dst)
    n = int(max(keep.max(initial=-1), src.max(initial=-1), dst.max(initial=-1))) + 1
    where = np.full(n, -1, dtype=np.int64)
    where[keep] = np.arange(len(keep))
    m = (where[src] >= 0) & (where[dst] >= 0)
    return (where[src[m]], where[dst[m]], *[np.asarray(a)[m] for a in per_edge])


def embed_2d(features, method: str = "tsne", seed: int = 0, graph=None, threads: int = 1) -> np.ndarray:
    """(n, 2) positions (see the table above). ``threads`` caps BLAS/OpenMP threads: on a shared 2-core machine
    one thread was 4x faster for t-SNE than letting it take both."""
    check_choice("layout", method, LAYOUTS)
    f = np.asarray(features, dtype=np.float64)
    n = len(f)
    if n < 3 or f.ndim != 2 or f.shape[1] < 2:          # nothing to project: spread the few points on a line
        x = f[:, 0] if f.ndim == 2 and f.shape[1] else np.arange(n, dtype=float)
        return np.column_stack([x, np.arange(n, dtype=float)]) if n else np.zeros((0, 2))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        if method == "pca":
            from sklearn.decomposition import PCA

            return PCA(n_components=2, random_state=seed).fit_transform(f)
        if method == "tsne":
            from sklearn.manifold import TSNE

            u = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
            return TSNE(n_components=2, random_state=seed, init="pca", max_iter=TSNE_ITERATIONS,
                        perplexity=float(min(30, max(2, (n - 1) / 3)))).fit_transform(u)
    import networkx as nx

    if graph is None:
        raise ValueError("spring layout needs the graph")
    pos = nx.spring_layout(graph.to_networkx(), seed=seed, iterations=50)
    return np.array([pos[i] for i in range(graph.n)])
