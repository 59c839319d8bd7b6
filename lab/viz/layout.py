"""2-D positions for drawing a client's samples (graph and community figures)."""
from __future__ import annotations

import numpy as np

from lab.utils import check_choice


def embed_2d(features, method: str = "pca", seed: int = 0, graph=None) -> np.ndarray:
    """(n, 2) positions: ``pca`` (instant), ``tsne`` (scikit-learn, seconds) or ``spring`` (networkx on the
    graph's active edges)."""
    check_choice("layout", method, ("pca", "tsne", "spring"))
    f = np.asarray(features, dtype=np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(f)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, random_state=seed, init="pca", perplexity=min(30, max(5, len(f) // 10))
                    ).fit_transform(f)
    import networkx as nx

    if graph is None:
        raise ValueError("spring layout needs the graph")
    pos = nx.spring_layout(graph.to_networkx(), seed=seed, iterations=50)
    return np.array([pos[i] for i in range(graph.n)])
