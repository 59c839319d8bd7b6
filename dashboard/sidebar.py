"""The shared sidebar of the category-discovery pages: data set (or your upload), partition, α, clients, seed,
client, model and subsample, every one bound to the URL (``widgets.py``).

Bring your own data: :func:`lab.data.tabular.validate_upload` turns the bytes of a CSV or npz into arrays or
raises :class:`lab.utils.LabError` with a message for the user. CSVs are parsed by pandas' C reader, npz files
are read with ``allow_pickle=False`` after their members' sizes were checked; nothing in an upload is executed
or unpickled.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import streamlit as st

from lab.data.tabular import MAX_ROWS, MAX_UPLOAD_MB, MIN_ROWS, validate_upload
from lab.utils import LabError

import loaders
from page import METHOD_LABEL
from widgets import ALPHAS, SUBSAMPLE, number, select, select_slider, slider


@dataclass
class Settings:
    dataset: str
    pool_key: str
    scheme: str
    alpha: float
    clients: int
    seed: int
    client: int
    model: str
    n_max: int

    @property
    def fed_args(self) -> tuple:
        return (self.pool_key, self.scheme, self.alpha, self.clients, self.seed)

    def ckey(self, client: int | None = None) -> tuple:
        return (*self.fed_args, self.client if client is None else client, self.model, self.n_max)


def model_label(m: str) -> str:
    if m.startswith("snap:"):
        g = re.fullmatch(r"(\w+?)_alpha([0-9.e-]+)_seed(\d+)", m[5:])
        if g:
            return f"{METHOD_LABEL.get(g[1], g[1])} trained at α={g[2]} (seed {g[3]})"
        return f"trained: {m[5:]}"
    return {"backbone": "pretrained backbone (no trained heads)", "pixels": "raw pixels",
            "features": "uploaded features (standardised)"}.get(m, m)


def upload_box() -> None:
    """The bring-your-own-data uploader (sidebar expander); a valid upload becomes the data set."""
    with st.sidebar.expander("Bring your own data (CSV or npz)", expanded=False):
        st.caption(f"CSV: numeric feature columns, one `label` column (or class/target/y), optionally a "
                   f"`user`/`client` column. npz: arrays `X` (rows × features, or rows × H × W) and `y`, "
                   f"optionally `user`. {MIN_ROWS}–{MAX_ROWS:,} rows, ≤ {MAX_UPLOAD_MB} MB. Nothing in the file "
                   "is executed or unpickled.")
        f = st.file_uploader("Upload a data set", type=["csv", "npz"], key="upload",
                             max_upload_size=MAX_UPLOAD_MB * 2)   # beyond this Streamlit refuses it itself
        if f is None:
            return
        data = f.getvalue()
        digest = hashlib.sha256(data).hexdigest()[:16]
        cached = st.session_state.get("_upload_ok")
        if cached and cached[0] == digest:
            st.success(cached[1])
            return
        try:
            ud = validate_upload(f.name, data)
        except LabError as e:
            st.session_state.pop("_upload_ok", None)
            st.error(f"Upload rejected: {e}")
            return
        key = loaders.register_upload(ud)
        st.session_state["_upload_ok"] = (ud.digest, f"Loaded {ud.summary()}.")
        st.session_state["_upload_key"] = key
        st.session_state["ds"] = "upload"          # switch to the new data (before the selectbox is drawn)
        st.success(f"Loaded {ud.summary()}.")


def federation_sidebar(client: bool = True, model: bool = True) -> Settings:
    """Data set, partition, α, clients, seed (+ client, model, subsample) in the sidebar, bound to the URL."""
    top = st.sidebar.container()
    upload_box()
    up_key = st.session_state.get("_upload_key")
    if up_key and not loaders.has_upload(up_key):
        up_key = None
    datasets = ["fashion_mnist", "digits"] + (["upload"] if up_key else [])
    names = {"fashion_mnist": "Fashion-MNIST (committed subset, 6,000 train)", "digits": "sklearn digits (8×8)",
             "upload": "your upload"}
    with top:
        st.subheader("Federation")
        dataset = select("Data set", datasets, key="ds", format_func=names.get)
        pool_key = up_key if dataset == "upload" else dataset
        has_users = dataset == "upload" and loaders.load_pool(pool_key).users is not None
        schemes = ["dirichlet", "iid", "shards"] + (["natural"] if has_users else [])
        scheme = select("Partition", schemes, key="part",
                        help="dirichlet: label skew set by α; shards: 2 classes per client; "
                             "natural: by the upload's user column")
        alpha = select_slider("α (Dirichlet concentration, log scale)", ALPHAS, 0.5, key="alpha",
                              format_func=lambda a: f"{a:g}", disabled=scheme != "dirichlet",
                              help="small α: each client holds a few classes; large α: close to IID")
        clients = slider("Clients", 2, 20, 5, key="clients")
        seed = number("Seed", 0, 10_000, 0, key="seed")
        c, m, n_max = 0, "pixels", 1000
        if client:
            c = slider("Client", 0, clients - 1, 0, key="client")
        if model:
            m = select("Features from", loaders.model_options(pool_key), key="model", format_func=model_label,
                       help="a trained model's features and confident predictions refine the graph; "
                            "without trained heads only the visible labels do")
            n_max = select_slider("Samples per client (at most)", SUBSAMPLE, 1000, key="nmax",
                                  help="larger clients are subsampled (seeded) to keep graphs responsive")
    return Settings(dataset, pool_key, scheme, float(alpha), int(clients), int(seed), int(c), m, int(n_max))
