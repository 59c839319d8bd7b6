"""Widgets whose values live in the URL and survive page switches.

Every setting has a short key and is written to ``st.query_params``, so the address bar holds the preset
(``?alpha=0.1&clients=10&mt=1.05``) and a teacher can share it; a setting also follows the user across pages.

Streamlit's own ``bind="query-params"`` drops a page's parameters on a page switch and remounts the shared
sidebar widgets at their first option, so the helpers below do it by hand:
  before a widget is drawn, its state is primed from (1) its live value, (2) the value this session last saw
  on any page (``_keep``), (3) the URL, (4) the default -- the first valid one wins;
  after it is drawn, the value goes to ``_keep`` and to the URL (removed when it equals the default).
A shared URL therefore opens on exactly its preset, and a setting follows the user from page to page.
"""
from __future__ import annotations

import streamlit as st

from lab.data.partition import ALPHA_STEPS

# The domains of the settings that several pages share
ALPHAS = ALPHA_STEPS                       # the log slider's stops (the values a partition fix may suggest)
MARKOV_TIMES = ("auto", "labelled", 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0, 1.01,
                1.02, 1.03, 1.05, 1.07, 1.1, 1.15, 1.2, 1.3, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)   # fine steps near 1
SUBSAMPLE = (250, 500, 1000, 2000, 4000)
#: the labels of the federation controls (the sidebar draws them, messages name them)
LABELS = {"ds": "Data set", "partition": "Partition", "alpha": "α (Dirichlet concentration, log scale)",
          "clients": "Clients", "seed": "Seed", "client": "Client"}
NODES_DRAWN = (100, 200, 300, 400, 600, 800, 1000, 2000, 4000)   # graph / community figures
LAYOUTS = {"tsne": "t-SNE (cached)", "pca": "PCA (instant)", "spring": "spring (seconds)"}   # lab.viz.layout
LAYOUT_HELP = ("t-SNE separates classes much better than PCA and takes under a second at 400 drawn nodes "
               "(once; cached); PCA is linear and instant; spring lays out the graph itself")


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


def _prime(key: str, default, valid, parse, allowed: str = "") -> None:
    keep = st.session_state.setdefault("_keep", {})
    if key in st.session_state and valid(st.session_state[key]):
        st.session_state[key] = st.session_state[key]     # re-assert: a remounted widget would reset
        return
    url = _from_url(key, parse)
    if key in st.query_params and (url is None or not valid(url)):
        # a shared link with a value this control cannot take: say so (once: the URL is rewritten below)
        st.warning(f"URL setting {key}={st.query_params.get(key)!r} is not allowed here"
                   f"{f' ({allowed})' if allowed else ''}: using {_qs(default)} instead.")
    for v in (keep.get(key), url, default):
        if v is not None and valid(v):
            st.session_state[key] = v
            return
    st.session_state[key] = default


def _choices(options) -> str:
    shown = [_qs(o) for o in options]
    return "one of " + ", ".join(shown if len(shown) <= 8 else shown[:3] + ["…"] + shown[-3:])


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


def select(label, options, default=None, *, key, where=None, url=True, kind="selectbox", **kw):
    """One of ``options`` (``kind``: the Streamlit widget that shows them, a selectbox or radio buttons)."""
    options = list(options)
    default = options[0] if default is None or default not in options else default
    _prime(key, default, lambda v: v in options, _by_text(options), _choices(options))
    return _kept(key, getattr(where or st, kind)(label, options, key=key, **kw), default, url)


def radio(label, options, default=None, **kw):
    return select(label, options, default, kind="radio", **kw)


def select_slider(label, options, default, *, key, where=None, url=True, **kw):
    options = list(options)
    _prime(key, default, lambda v: v in options, _by_text(options), _choices(options))
    return _kept(key, (where or st).select_slider(label, options, key=key, **kw), default, url)


def slider(label, low, high, default, *, key, step=None, where=None, url=True, **kw):
    kind = type(default)

    def valid(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high and (
            kind is float or float(v).is_integer())
    _prime(key, default, valid, lambda raw: kind(float(raw)) if kind is int else float(raw),
           f"{'an integer' if kind is int else 'a number'} in [{low}, {high}]")
    st.session_state[key] = kind(st.session_state[key])
    return _kept(key, (where or st).slider(label, low, high, step=step, key=key, **kw), default, url)


def number(label, low, high, default, *, key, where=None, url=True, **kw):
    _prime(key, default, lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
           lambda raw: int(raw), f"an integer in [{low}, {high}]")
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


def preset(key: str, value) -> None:
    """Set a widget's value from code (an upload's defaults, "use the snapshot's settings"): call it before
    the widget is drawn in this run, or from a callback."""
    st.session_state[key] = value
    st.session_state.setdefault("_keep", {})[key] = value


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
