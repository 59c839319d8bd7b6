"""Shared pieces of the dashboard: settings bound to the URL, cached loaders, upload validation, layout helpers.

Pages stay thin: widgets -> the cached calls below (which call ``lab``) -> ``lab.viz`` figures.

* **Settings live in the URL.** Every setting has a short key and is written to ``st.query_params``, so the
  address bar holds the preset (``?alpha=0.1&clients=10&mt=1.05``) and a teacher can share it; a setting
  also follows the user across pages (see the widget helpers below).
* **Heavy work is cached** with ``st.cache_resource`` (read-only arrays, graphs, models: no copy on a hit),
  keyed by plain tuples of settings.
* **Bring your own data:** :func:`validate_upload` turns the bytes of a CSV or npz into arrays or raises
  :class:`lab.utils.LabError` with a message for the user. CSVs are parsed by pandas' C reader, npz files are
  read with ``allow_pickle=False`` after their members' sizes were checked; nothing in an upload is executed
  or unpickled.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from lab.utils import LabError  # noqa: E402

SNAPSHOT_DIR = ROOT / "data" / "snapshots"
GCD_RESULTS_DIR = ROOT / "bench" / "results" / "gcd"
DP_RESULTS_DIR = ROOT / "bench" / "results"

OLD_CLASSES = (0, 1, 2, 3, 4)
ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)   # the log slider's stops
MARKOV_TIMES = ("auto", "labelled", 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0, 1.01,
                1.02, 1.03, 1.05, 1.07, 1.1, 1.15, 1.2, 1.3, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)   # fine steps near 1
SUBSAMPLE = (250, 500, 1000, 2000, 4000)

# Upload limits (bring your own data)
from lab.data.tabular import (  # noqa: E402,F401  (re-exported for the pages and tests)
    LABEL_COLUMNS, MAX_CLASSES, MAX_DECOMPRESSED_BYTES, MAX_FEATURES, MAX_ROWS, MAX_UPLOAD_BYTES, MAX_UPLOAD_MB,
    MIN_ROWS, NPZ_FEATURES, USER_COLUMNS, UserData, validate_upload)


def _set_threads():
    import torch

    torch.set_num_threads(1)    # 2 shared cores: one thread is faster than two (FIELD_NOTES)


# --------------------------------------------------------------------------------------------------------
# Page furniture
# --------------------------------------------------------------------------------------------------------

def page_start(title: str, look_at: str) -> float:
    """Title + the one sentence that says what to look at; returns the start time for :func:`footer`."""
    t0 = time.perf_counter()
    st.title(title)
    st.markdown(f"**What to look at:** {look_at}")
    return t0


def footer(t0: float) -> None:
    """Last element of every page: compute time and a run counter (the browser test waits for it)."""
    n = st.session_state.get("_runs", 0) + 1
    st.session_state["_runs"] = n
    st.caption(f"Page computed in {time.perf_counter() - t0:.2f} s · run {n} · settings are in the URL: "
               "copy it to share this preset.")


@contextlib.contextmanager
def guard():
    """Show a :class:`LabError` (bad settings or data) as an error box instead of a traceback."""
    try:
        yield
    except LabError as e:
        st.error(str(e))


SVG_POINT_LIMIT = int(os.environ.get("LAB_DASH_SVG_LIMIT", "30000"))


def svg_if_small(fig, limit: int = SVG_POINT_LIMIT):
    """Swap WebGL scatter traces for SVG ones when the figure is small (``limit`` points): without a GPU
    (software WebGL) a WebGL context costs one to two seconds per chart. Edge traces (NaN-separated line
    segments) become ONE SVG path shape each, since plotly's SVG scatter draws a DOM node per segment; their
    legend entries stay (clicking them no longer hides the edges). Measured on the graph page, cached rerun:
    ~2.5 s WebGL, ~2 s SVG traces, ~0.9 s SVG path shapes (5,000 edges, loaded 2-core machine)."""
    import plotly.graph_objects as go

    gl = [t for t in fig.data if t.type == "scattergl"]
    if not gl or sum(len(t.x) if t.x is not None else 0 for t in gl) > limit:
        return fig
    data, shapes = [], []
    for t in fig.data:
        if t.type == "scattergl":
            d = t.to_plotly_json()
            d.pop("type", None)
            if EDGE_SHAPES and d.get("mode") == "lines" and d.get("x") is not None and len(d["x"]) > 300:
                shapes.append(_segments_path(d["x"], d["y"], d.get("line", {})))
                d["x"], d["y"] = [None], [None]          # legend entry only; the segments are one SVG path
            t = go.Scatter(**d)
        data.append(t)
    out = go.Figure(data=data, layout=fig.layout)
    if shapes:
        out.update_layout(shapes=list(out.layout.shapes or ()) + shapes)
    return out


EDGE_SHAPES = os.environ.get("LAB_DASH_EDGE_SHAPES", "1") == "1"


def _segments_path(xs, ys, line: dict) -> dict:
    """Line segments separated by NaN as ONE SVG path shape (plotly draws one DOM node per segment)."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    pen_up = np.r_[True, ~ok[:-1]][ok]                      # a point after a gap starts a new subpath
    cmd = np.where(pen_up, "M", "L")
    pts = np.char.add(np.char.add(np.char.mod("%.5g", xs[ok]), ","), np.char.mod("%.5g", ys[ok]))
    path = "".join(np.char.add(cmd, pts).tolist()) or "M0,0"
    return dict(type="path", path=path, xref="x", yref="y", layer="below",
                line=dict(color=line.get("color", "#999"), width=line.get("width", 1)))


def show(fig, name: str, key: str | None = None) -> None:
    """A lab.viz figure on the page (plotly's own PNG download keeps working, named ``name``.png)."""
    fig = svg_if_small(fig)
    st.plotly_chart(fig, width="stretch", key=key, theme=None,
                    config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": name}})


def download_csv(df, file_name: str, label: str = "Download table (CSV)", key: str | None = None) -> None:
    st.download_button(label, df.to_csv(index=False).encode(), file_name=file_name, mime="text/csv",
                       key=key or f"dl_{file_name}")


# --------------------------------------------------------------------------------------------------------
# Widgets whose values live in the URL and survive page switches
# --------------------------------------------------------------------------------------------------------
# Streamlit's own ``bind="query-params"`` drops a page's parameters on a page switch and remounts the
# shared sidebar widgets at their first option, so the helpers below do it by hand:
#   before a widget is drawn, its state is primed from (1) its live value, (2) the value this session last
#   saw on any page (``_keep``), (3) the URL, (4) the default -- the first valid one wins;
#   after it is drawn, the value goes to ``_keep`` and to the URL (removed when it equals the default).
# A shared URL therefore opens on exactly its preset, and a setting follows the user from page to page.

def _qs(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_qs(x) for x in v)
    return str(v)


def _from_url(key: str, parse):
    raw = st.query_params.get(key)
    if raw is None:
        return None
    try:
        return parse(raw)
    except (TypeError, ValueError, KeyError):
        return None


def _prime(key: str, default, valid, parse) -> None:
    keep = st.session_state.setdefault("_keep", {})
    if key in st.session_state and valid(st.session_state[key]):
        st.session_state[key] = st.session_state[key]     # re-assert: a remounted widget would reset
        return
    for v in (keep.get(key), _from_url(key, parse), default):
        if v is not None and valid(v):
            st.session_state[key] = v
            return
    st.session_state[key] = default


def _kept(key: str, value, default, url: bool = True):
    st.session_state.setdefault("_keep", {})[key] = value
    if url:
        if _qs(value) == _qs(default):
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != _qs(value):
            st.query_params[key] = _qs(value)
    return value


def _by_text(options):
    table = {_qs(o): o for o in options}
    return lambda raw: table[raw]


def select(label, options, default=None, *, key, where=None, url=True, **kw):
    options = list(options)
    default = options[0] if default is None or default not in options else default
    _prime(key, default, lambda v: v in options, _by_text(options))
    return _kept(key, (where or st).selectbox(label, options, key=key, **kw), default, url)


def select_slider(label, options, default, *, key, where=None, url=True, **kw):
    options = list(options)
    _prime(key, default, lambda v: v in options, _by_text(options))
    return _kept(key, (where or st).select_slider(label, options, key=key, **kw), default, url)


def slider(label, low, high, default, *, key, step=None, where=None, url=True, **kw):
    kind = type(default)

    def valid(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high and (
            kind is float or float(v).is_integer())
    _prime(key, default, valid, lambda raw: kind(float(raw)) if kind is int else float(raw))
    st.session_state[key] = kind(st.session_state[key])
    return _kept(key, (where or st).slider(label, low, high, step=step, key=key, **kw), default, url)


def number(label, low, high, default, *, key, where=None, url=True, **kw):
    _prime(key, default, lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
           lambda raw: int(raw))
    return _kept(key, (where or st).number_input(label, low, high, step=1, key=key, **kw), default, url)


def multiselect(label, options, default, *, key, where=None, url=True, **kw):
    options = list(options)
    default = [d for d in default if d in options]
    text = _by_text(options)
    _prime(key, default, lambda v: isinstance(v, list) and all(x in options for x in v),
           lambda raw: [text(x) for x in raw.split(",") if x])
    return _kept(key, (where or st).multiselect(label, options, key=key, **kw), default, url)


def toggle(label, default, *, key, where=None, url=True, **kw):
    _prime(key, bool(default), lambda v: isinstance(v, bool), lambda raw: {"1": True, "0": False}[raw])
    return _kept(key, (where or st).toggle(label, key=key, **kw), bool(default), url)


def carried(key: str, default, cast=float):
    """A setting owned by another page: its live or last-seen value, else its URL parameter, else ``default``."""
    v = st.session_state.get(key)
    if v is None:
        v = st.session_state.get("_keep", {}).get(key)
    if v is None:
        v = st.query_params.get(key)
    try:
        return default if v is None else cast(v)
    except (TypeError, ValueError):
        return default


def fmt_markov(v) -> str:
    return {"auto": "auto (merge)", "labelled": "labelled (per client)"}.get(v) or f"{v:g}"


def default_markov_time():
    """The lab's default rule (FedGCDConfig.markov_time), when the slider offers it."""
    from lab.gcd.config import FedGCDConfig

    v = FedGCDConfig().markov_time
    return v if v in MARKOV_TIMES else "auto"


# --------------------------------------------------------------------------------------------------------
# Bring your own data: validation
# --------------------------------------------------------------------------------------------------------

@st.cache_resource
def _upload_registry() -> dict:
    """digest -> UserData, shared by the cached loaders (the digest is the cache key)."""
    return {}


def register_upload(ud: UserData) -> str:
    reg = _upload_registry()
    if len(reg) > 16:
        reg.pop(next(iter(reg)))
    reg[ud.digest] = ud
    return f"upload:{ud.digest}"


# --------------------------------------------------------------------------------------------------------
# Cached loaders
# --------------------------------------------------------------------------------------------------------

@dataclass
class Pool:
    """One whole data set (all training samples) as the partition pages see it."""
    key: str
    y: np.ndarray
    class_names: list
    images: np.ndarray | None       # (N, H, W) uint8 or None
    features: np.ndarray | None     # (N, d) float32 standardised (uploads) or None
    users: np.ndarray | None
    old_classes: tuple


@st.cache_resource(show_spinner=False)
def load_pool(key: str) -> Pool:
    if key.startswith("upload:"):
        ud = _upload_registry().get(key.split(":", 1)[1])
        if ud is None:
            raise LabError("the uploaded file is no longer in memory: upload it again")
        f = ud.features
        f = (f - f.mean(0)) / (f.std(0) + 1e-8)
        imgs = None
        if ud.image_shape is not None:
            raw = ud.features
            lo, hi = raw.min(), raw.max()
            imgs = ((raw - lo) / max(hi - lo, 1e-12) * 255).round().astype(np.uint8).reshape((-1, *ud.image_shape))
        n_old = max(1, len(ud.class_names) // 2)
        return Pool(key, ud.labels, list(ud.class_names), imgs, f.astype(np.float32), ud.users,
                    tuple(range(n_old)))
    from lab.data.images import load_dataset

    d = load_dataset(key)
    return Pool(key, d.y_train, list(d.class_names), d.x_train, None, None, OLD_CLASSES)


@dataclass
class Federation:
    pool: Pool
    split: object          # lab.data.split.GCDSplit
    part: object           # lab.data.partition.Partition


def fed_config(dataset, scheme, alpha, clients, seed):
    from lab.gcd.config import FedGCDConfig

    return FedGCDConfig(dataset=dataset, partition=scheme, alpha=float(alpha), clients=int(clients), seed=int(seed))


@st.cache_resource(show_spinner=False, max_entries=64)
def federation(pool_key: str, scheme: str, alpha: float, clients: int, seed: int) -> Federation:
    """GCD split + partition: for the committed data sets exactly :func:`lab.gcd.experiment.prepare`."""
    from lab.data.partition import make_partition
    from lab.data.split import gcd_split

    pool = load_pool(pool_key)
    if pool_key.startswith("upload:"):
        split = gcd_split(pool.y, pool.old_classes, 0.5, seed=seed)
        part = make_partition(scheme, pool.y, clients, alpha=alpha, min_size=min(50, len(pool.y) // clients),
                              strata=split.labelled, user_ids=pool.users, seed=seed)
    else:
        from lab.gcd.experiment import prepare

        _, split, part = prepare(fed_config(pool_key, scheme, alpha, clients, seed))
    return Federation(pool, split, part)


def snapshots() -> dict:
    """Committed trained models: stem -> path (``data/snapshots/*.safetensors``)."""
    from lab.gcd.snapshots import snapshot_paths

    return snapshot_paths(str(SNAPSHOT_DIR))


@st.cache_resource(show_spinner=False)
def load_snapshot(path: str):
    """(weights, FedGCDConfig) of a committed snapshot."""
    from lab.gcd.snapshots import load_weights

    return load_weights(path)


def model_options(pool_key: str) -> list:
    if pool_key.startswith("upload:"):
        return ["features"]
    if pool_key == "digits":
        return ["pixels"]
    snaps = sorted(snapshots(), key=lambda s: (not s.startswith("fedlpa"), not s.startswith("simgcd"), s))
    return [f"snap:{s}" for s in snaps] + ["backbone", "pixels"]


METHOD_LABEL = {"simgcd": "FedAvg+SimGCD", "gcd": "FedAvg+GCD", "fedlpa": "FedLPA", "local": "local only",
                "central": "centralized"}


def model_label(m: str) -> str:
    if m.startswith("snap:"):
        import re

        g = re.fullmatch(r"(\w+?)_alpha([0-9.e-]+)_seed(\d+)", m[5:])
        if g:
            return f"{METHOD_LABEL.get(g[1], g[1])} trained at α={g[2]} (seed {g[3]})"
        return f"trained: {m[5:]}"
    return {"backbone": "pretrained backbone (no trained heads)", "pixels": "raw pixels",
            "features": "uploaded features (standardised)"}.get(m, m)


@st.cache_resource(show_spinner=False, max_entries=64)
def client_arrays(pool_key, scheme, alpha, clients, seed, client, model, n_max) -> dict:
    """One client's samples seen through ``model``: features, predictions (None without trained heads),
    true / visible labels, labelled mask, images; subsampled (seeded) to at most ``n_max`` samples."""
    _set_threads()
    fed = federation(pool_key, scheme, alpha, clients, seed)
    if not 0 <= client < fed.part.n_clients:
        raise LabError(f"client must be in [0, {fed.part.n_clients - 1}], got {client}")
    idx = fed.part.client_indices[client]
    pool = fed.pool
    probs = None
    if model == "pixels":
        if pool.images is None:
            raise LabError("this data set has no images: choose its features")
        feats = pool.images[idx].reshape(len(idx), -1).astype(np.float32) / 255.0
    elif model == "features":
        feats = pool.features[idx]
    elif model == "backbone" or model.startswith("snap:"):
        from lab.gcd.snapshots import client_view

        weights = None
        if model.startswith("snap:"):
            path = snapshots().get(model[5:])
            if path is None:
                raise LabError(f"snapshot {model[5:]} not found under data/snapshots/")
            weights, _ = load_snapshot(path)
        v = client_view(fed_config(pool_key, scheme, alpha, clients, seed), client, weights)
        feats = v["features"]
        probs = v["probs"] if weights is not None else None   # untrained heads give meaningless confidence
    else:
        raise LabError(f"unknown model {model!r}")
    y = pool.y[idx]
    lab = fed.split.labelled[idx]
    sel = np.arange(len(idx))
    if len(idx) > n_max:
        sel = np.sort(np.random.default_rng(seed).choice(len(idx), int(n_max), replace=False))
    out = {"index": idx[sel], "features": np.ascontiguousarray(feats[sel]), "probs": None if probs is None else probs[sel],
           "y_true": y[sel], "labelled": lab[sel], "y_visible": np.where(lab[sel], y[sel], -1),
           "images": None if pool.images is None else pool.images[idx[sel]],
           "old_classes": np.asarray(pool.old_classes), "class_names": pool.class_names, "n_client": len(idx)}
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    return out


@st.cache_resource(show_spinner=False, max_entries=128)
def graph_for(ckey: tuple, k: int, quantile: float, floor: float, refine: bool = True):
    from lab.gcd.clsd import build_graph

    c = client_arrays(*ckey)
    # probs=None (raw features, uploads): only labelled samples refine the graph
    return build_graph(c["features"], c["probs"], c["labelled"], c["y_visible"], c["old_classes"], k=int(k),
                       quantile=float(quantile), sim_floor=float(floor), refine=refine)


@st.cache_resource(show_spinner=False, max_entries=64)
def layout_for(ckey: tuple, method: str, k: int = 10, quantile: float = 0.5, floor: float = 0.0) -> np.ndarray:
    from lab.viz.layout import embed_2d

    c = client_arrays(*ckey)
    g = graph_for(ckey, k, quantile, floor) if method == "spring" else None
    return embed_2d(c["features"], method, seed=0, graph=g)


@st.cache_resource(show_spinner=False, max_entries=256)
def communities_for(ckey: tuple, k: int, quantile: float, floor: float, markov_time, min_share: float):
    from lab.gcd.communities import find_communities

    c = client_arrays(*ckey)
    g = graph_for(ckey, k, quantile, floor)
    min_size = max(2, int(math.ceil(min_share * len(c["y_true"]))))
    return find_communities(g, c["features"], markov_time=markov_time, min_size=min_size, seed=1,
                            y_visible=c["y_visible"])


# --------------------------------------------------------------------------------------------------------
# Shared sidebar: data set, partition, client, model
# --------------------------------------------------------------------------------------------------------

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
        key = register_upload(ud)
        st.session_state["_upload_ok"] = (ud.digest, f"Loaded {ud.summary()}.")
        st.session_state["_upload_key"] = key
        st.session_state["ds"] = "upload"          # switch to the new data (before the selectbox is drawn)
        st.success(f"Loaded {ud.summary()}.")


def federation_sidebar(client: bool = True, model: bool = True) -> Settings:
    """Data set, partition, α, clients, seed (+ client, model, subsample) in the sidebar, bound to the URL."""
    top = st.sidebar.container()
    upload_box()
    up_key = st.session_state.get("_upload_key")
    if up_key and up_key.split(":", 1)[1] not in _upload_registry():
        up_key = None
    datasets = ["fashion_mnist", "digits"] + (["upload"] if up_key else [])
    names = {"fashion_mnist": "Fashion-MNIST (committed subset, 6,000 train)", "digits": "sklearn digits (8×8)",
             "upload": "your upload"}
    with top:
        st.subheader("Federation")
        dataset = select("Data set", datasets, key="ds", format_func=names.get)
        pool_key = up_key if dataset == "upload" else dataset
        has_users = dataset == "upload" and load_pool(pool_key).users is not None
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
            m = select("Features from", model_options(pool_key), key="model", format_func=model_label,
                       help="a trained model's features and confident predictions refine the graph; "
                            "without trained heads only the visible labels do")
            n_max = select_slider("Samples per client (at most)", SUBSAMPLE, 1000, key="nmax",
                                  help="larger clients are subsampled (seeded) to keep graphs responsive")
    return Settings(dataset, pool_key, scheme, float(alpha), int(clients), int(seed), int(c), m, int(n_max))


# --------------------------------------------------------------------------------------------------------
# Result files
# --------------------------------------------------------------------------------------------------------

def read_json_files(pattern: str) -> list:
    """Parsed JSON files matching ``pattern`` (unreadable files are skipped), each with ``_file`` added."""
    out = []
    for p in sorted(glob.glob(pattern)):
        try:
            with open(p) as f:
                d = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(d, dict):
            d["_file"] = os.path.relpath(p, ROOT)
            out.append(d)
    return out


def gcd_results() -> tuple:
    """(records, source): the committed runs of ``bench/run_gcd_tables.py`` (``bench/results/gcd/*.json``)."""
    return _gcd_results(str(GCD_RESULTS_DIR))


@st.cache_data(show_spinner=False, ttl=30)
def _gcd_results(results_dir: str) -> tuple:
    ok = lambda r: "history" in r and "method" in r and "acc_all" in r  # noqa: E731
    recs = [r for r in read_json_files(os.path.join(results_dir, "*.json")) if ok(r)]
    return recs, os.path.relpath(results_dir, ROOT)


# --------------------------------------------------------------------------------------------------------
# Prior alignment (trained snapshots)
# --------------------------------------------------------------------------------------------------------

def snapshot_pairs() -> dict:
    """Snapshots grouped by setting: "alpha=0.1, seed 0" -> {method: path}, from each file's stored config."""
    out = {}
    for stem, path in snapshots().items():
        try:
            _, cfg = load_snapshot(path)
        except Exception:  # noqa: BLE001 - a half-written or foreign file is skipped, not fatal
            continue
        key = f"{cfg.dataset}, α={cfg.alpha:g}, {cfg.clients} clients, seed {cfg.seed}"
        out.setdefault(key, {})[cfg.method] = path
    return out


@st.cache_resource(show_spinner=False)
def head_classes(path: str) -> np.ndarray:
    """Each head of a snapshot read as a class (:func:`lab.gcd.snapshots.head_classes`), cached."""
    from lab.gcd.snapshots import head_classes as _head_classes

    _set_threads()
    return _head_classes(*load_snapshot(path))


def to_class_space(p_heads, head_class, n_classes: int) -> np.ndarray:
    from lab.gcd.snapshots import to_class_space as _to_class_space

    return _to_class_space(p_heads, head_class, n_classes)


@st.cache_resource(show_spinner=False, max_entries=32)
def snapshot_client(path: str, client: int) -> dict:
    """A client seen through a snapshot (:func:`lab.gcd.snapshots.snapshot_client`), cached."""
    from lab.gcd.snapshots import snapshot_client as _snapshot_client

    _set_threads()
    return _snapshot_client(*load_snapshot(path), client)
