"""Data & partitions: how α and the partition scheme spread classes over clients."""
import numpy as np
import pandas as pd
import streamlit as st

from lab.viz.gcd import label_histograms, partition_heatmap, sample_images

import loaders as L
from page import download_csv, footer, guard, page_start, settings_line, show
from sidebar import federation_sidebar

t0 = page_start("Data & partitions",
                "move α on the log slider: at small α each row of the heatmap lights up only a few classes "
                "(every client sees its own few categories), at large α all rows look alike (IID).")
s = federation_sidebar(model=False)

with guard():
    settings_line(s.federation_text())
    fed = L.federation(*s.fed_args)
    pool, part = fed.pool, fed.part
    names = pool.class_names
    k_true = part.k_true(0.02)
    sizes = part.sizes()
    a, b, c, d = st.columns(4)
    a.metric("Clients", part.n_clients)
    b.metric("Samples per client", f"{sizes.min()}–{sizes.max()}")
    c.metric("Classes per client (≥ 2 % of it)", f"{np.mean(k_true):.1f}", help=f"per client: {k_true}")
    d.metric("Old (labelled) classes", len(pool.old_classes), help="half of each old class's samples carry "
             "their label; new classes are never labelled")

    left, right = st.columns(2)
    with left:
        show(partition_heatmap(part.counts, names), "partition_heatmap")
    with right:
        show(label_histograms(part.counts, names, old_classes=list(pool.old_classes)), "label_histograms")

    df = pd.DataFrame(part.counts, columns=names)
    df.insert(0, "client", range(part.n_clients))
    df["total"] = sizes
    df["classes >= 2%"] = k_true
    download_csv(df, "partition_counts.csv", "Download client × class counts (CSV)")

    st.subheader(f"Samples of client {s.client}")
    idx = part.client_indices[s.client]
    if pool.images is None:
        st.info("This data set has no images (uploaded features): the similarity-graph page draws its samples.")
    else:
        rng = np.random.default_rng(s.seed)
        pick = np.sort(rng.choice(idx, min(16, len(idx)), replace=False))
        titles = [names[int(pool.y[i])][:12] for i in pick]
        show(sample_images(pool.images[pick], titles, cols=8, title=f"16 random samples of client {s.client}"),
             "samples")

footer(t0)
