"""Page furniture: title and the sentence that says what to look at, the footer, error boxes, figures and
CSV downloads, the labels every page shows. Pages stay thin: widgets (``widgets.py``, ``sidebar.py``) -> the
cached calls into ``lab`` (``loaders.py``) -> ``lab.viz`` figures, drawn with :func:`show`.
"""
from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import streamlit as st

from lab.utils import LabError

from lab.gcd.methods import DISPLAY_NAMES as METHOD_LABEL  # noqa: F401  (display names live once, in lab)


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
EDGE_SHAPES = os.environ.get("LAB_DASH_EDGE_SHAPES", "1") == "1"


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
