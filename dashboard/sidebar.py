"""The sidebar of the category-discovery pages, grouped by the pages that use each control, every control bound
to the URL (``widgets.py``):

- **Data & federation** (Data & partitions, Similarity graph, InfoMap communities): data set (or your upload),
  partition, α, clients, seed.
- **One client** (Similarity graph, InfoMap communities; the data page shows its images): client, features,
  samples per client.

Pages that do not use a group draw it greyed out with the reason (:func:`inactive_sidebar`) or not at all.

Bring your own data: :func:`lab.data.tabular.validate_upload` turns the bytes of a CSV or npz into arrays or
raises :class:`lab.utils.LabError` with a message for the user. CSVs are parsed by pandas' C reader, npz files
are read with ``allow_pickle=False`` after their members' sizes were checked; nothing in an upload is executed
or unpickled. A new upload starts at a client count it can carry (:meth:`UserData.default_clients`).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import streamlit as st

from lab.data.partition import max_clients
from lab.data.tabular import MAX_ROWS, MAX_UPLOAD_MB, MIN_ROWS, validate_upload
from lab.utils import LabError

import loaders
from page import METHOD_LABEL
from widgets import ALPHAS, LABELS, SUBSAMPLE, number, preset, select, select_slider, slider

DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST (committed subset, 6,000 train)", "digits": "sklearn digits (8×8)",
                 "upload": "your upload"}
MAX_CLIENTS = 20


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

    def federation_text(self) -> str:
        name = loaders.load_pool(self.pool_key).name if self.dataset == "upload" else DATASET_NAMES[self.dataset]
        part = f"Dirichlet α = {self.alpha:g}" if self.scheme == "dirichlet" else f"{self.scheme} partition"
        return f"{name} · {part} · {self.clients} clients · seed {self.seed}"


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
        msg = f"Loaded {ud.summary()}. Starts at {ud.carries()}."
        st.session_state["_upload_ok"] = (ud.digest, msg)
        st.session_state["_upload_key"] = key
        # switch to the new data at settings it can carry (before the widgets are drawn)
        for k, v in (("ds", "upload"), ("clients", ud.default_clients()), ("client", 0), ("part", "dirichlet")):
            preset(k, v)
        st.success(msg)


def _datasets():
    up_key = st.session_state.get("_upload_key")
    if up_key and not loaders.has_upload(up_key):
        up_key = None
    return ["fashion_mnist", "digits"] + (["upload"] if up_key else []), up_key


def federation_sidebar(client: bool = True, model: bool = True) -> Settings:
    """Data set, partition, α, clients, seed (+ client, model, subsample) in the sidebar, bound to the URL."""
    top = st.sidebar.container()
    upload_box()
    datasets, up_key = _datasets()
    with top:
        st.subheader("Data & federation")
        st.caption("Used by: Data & partitions · Similarity graph · InfoMap communities")
        dataset = select(LABELS["ds"], datasets, key="ds", format_func=DATASET_NAMES.get)
        pool_key = up_key if dataset == "upload" else dataset
        ud = loaders.upload_data(pool_key) if dataset == "upload" else None
        schemes = ["dirichlet", "iid", "shards"] + (["natural"] if ud is not None and ud.has_natural_partition
                                                    else [])
        scheme = select(LABELS["partition"], schemes, key="part",
                        help="dirichlet: label skew set by α; shards: 2 classes per client; "
                             "natural: by the upload's user column")
        alpha = select_slider(LABELS["alpha"], ALPHAS, 0.5, key="alpha",
                              format_func=lambda a: f"{a:g}", disabled=scheme != "dirichlet",
                              help="small α: each client holds a few classes; large α: close to IID")
        n = len(loaders.load_pool(pool_key).y)
        hi = min(MAX_CLIENTS, max(2, max_clients(n)), ud.n_users if scheme == "natural" else MAX_CLIENTS)
        default = ud.default_clients() if ud is not None else 5
        clients = slider(LABELS["clients"], 2, hi, min(default, hi), key="clients",
                         help=None if ud is None else f"at most {hi} for {n} rows (≥ 10 samples per client)")
        seed = number(LABELS["seed"], 0, 10_000, 0, key="seed")
        if ud is not None:
            st.caption(ud.carries(clients) + (" (dealt by user)" if scheme == "natural" else ""))
        c, m, n_max = 0, "pixels", 1000
        if client or model:
            st.subheader("One client")
            st.caption("Used by: Similarity graph · InfoMap communities (and the data page's images)")
        if client:
            c = slider(LABELS["client"], 0, clients - 1, 0, key="client")
        if model:
            m = select("Features from", loaders.model_options(pool_key), key="model", format_func=model_label,
                       help="a trained model's features and confident predictions refine the graph; "
                            "without trained heads only the visible labels do")
            n_max = select_slider("Samples per client (at most)", SUBSAMPLE, 1000, key="nmax",
                                  help="larger clients are subsampled (seeded) before the graph is built")
    return Settings(dataset, pool_key, scheme, float(alpha), int(clients), int(seed), int(c), m, int(n_max))


def inactive_sidebar(reason: str) -> None:
    """The federation group greyed out, with why this page does not use it (its values stay for the other
    pages)."""
    datasets, _ = _datasets()
    with st.sidebar:
        st.subheader("Data & federation")
        st.caption(f"Not used on this page: {reason}")
        select(LABELS["ds"], datasets, key="ds", format_func=DATASET_NAMES.get, disabled=True)
        select_slider(LABELS["alpha"], ALPHAS, 0.5, key="alpha",
                      format_func=lambda a: f"{a:g}", disabled=True)
        slider(LABELS["clients"], 2, MAX_CLIENTS, 5, key="clients", disabled=True)
        number(LABELS["seed"], 0, 10_000, 0, key="seed", disabled=True)
