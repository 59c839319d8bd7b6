"""Page furniture: title and the sentence that says what to look at, the line that says which settings the page
uses, presenter mode, the footer, error boxes, figures and CSV downloads, the labels every page shows. Pages
stay thin: widgets (``widgets.py``, ``sidebar.py``) -> the cached calls into ``lab`` (``loaders.py``) ->
``lab.viz`` figures, drawn with :func:`show`.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping

import streamlit as st

from lab.data.partition import PartitionError
from lab.utils import LabError

from widgets import LABELS, toggle


class _Lazy(Mapping):
    """``lab.gcd.methods.DISPLAY_NAMES`` read on first use: importing the method table imports torch (seconds),
    which the pages that never name a method (the tour's first load) should not pay."""

    def _d(self) -> dict:
        from lab.gcd.methods import DISPLAY_NAMES

        return DISPLAY_NAMES

    def __getitem__(self, k):
        return self._d()[k]

    def __iter__(self):
        return iter(self._d())

    def __len__(self):
        return len(self._d())


METHOD_LABEL = _Lazy()      # method -> display name (they live once, in lab.gcd.methods)

CONTROLS = LABELS       # setting -> the label of the control that sets it (messages name controls one can see)


# --------------------------------------------------------------------------------------------------------
# Presenter mode: no sidebar, larger text and figures (the tour's toggle; it follows the user to every page)
# --------------------------------------------------------------------------------------------------------

def presenting() -> bool:
    keep = st.session_state.get("_keep", {})
    v = st.session_state.get("present", keep.get("present"))
    if v is None:
        v = st.query_params.get("present") == "1"
    return bool(v)


def presenter_toggle(where=None) -> bool:
    on = toggle("Presenter mode", False, key="present", where=where,
                help="hides the sidebar and enlarges text and figures, on every page until you turn it off; "
                     "the pages keep the settings of the link that opened them")
    if on:
        st.markdown("<style>section[data-testid='stSidebar'], [data-testid='stSidebarCollapsedControl'], "
                    "[data-testid='stExpandSidebarButton'] {display: none !important;} "
                    "[data-testid='stMarkdownContainer'] p, [data-testid='stPageLink'] p {font-size: 1.3rem;} "
                    "[data-testid='stMetricValue'] {font-size: 3rem;}</style>", unsafe_allow_html=True)
    return on


def page_start(title: str, look_at: str, presenter: bool = False) -> float:
    """Title + the one sentence that says what to look at; returns the start time for :func:`footer`. The
    presenter toggle comes first: always with ``presenter`` (the tour), else while presenter mode is on."""
    t0 = time.perf_counter()
    if presenter or presenting():
        presenter_toggle()
    st.title(title)
    st.markdown(f"**What to look at:** {look_at}")
    return t0


def settings_line(text: str) -> None:
    """The settings this page's figures use, stated once, prominently (not only in the sidebar)."""
    st.info(f"**Settings on this page:** {text}", icon=":material/tune:")


def _run_number() -> int:
    n = st.session_state.get("_runs", 0) + 1
    st.session_state["_runs"] = n
    return n


def footer(t0: float) -> None:
    """Last element of every page: compute time and a run counter (the browser test waits for it)."""
    st.caption(f"Page computed in {time.perf_counter() - t0:.2f} s · run {_run_number()} · settings are in the URL: "
               "copy it to share this preset.")


def part_footer(t0: float) -> None:
    """Last element of a fragment (a part of a page whose own widgets rerun it alone): its compute time and the
    page's run counter, which a rerun of the part alone moves on too (the browser test waits for the highest)."""
    st.caption(f"Part computed in {time.perf_counter() - t0:.2f} s · run {_run_number()}")


def partition_message(e: PartitionError) -> str:
    """A partition failure in the words of this page's controls, with values that work (same seed)."""
    s, fx = e.settings, e.fixes
    what = (f"No Dirichlet draw at α = {s.get('alpha', 0):g} gives every one of the {s.get('clients')} clients "
            f"at least {s.get('min_size')} samples.") if s else str(e)
    fixes = []
    if "alpha" in fx:
        fixes.append(f"raise alpha: set **{CONTROLS['alpha']}** to {fx['alpha']:g}")
    if "clients" in fx:
        fixes.append(f"set **{CONTROLS['clients']}** to {fx['clients']}")
    if "partition" in fx:
        fixes.append(f"set **{CONTROLS['partition']}** to {fx['partition']}")
    return what + (" To fix it, " + ", or ".join(fixes) + " (sidebar)." if fixes else "")


@contextlib.contextmanager
def guard():
    """Show a :class:`LabError` (bad settings or data) as an error box instead of a traceback."""
    try:
        yield
    except PartitionError as e:
        st.error(partition_message(e))
    except LabError as e:
        st.error(str(e))


SVG_POINT_LIMIT = int(os.environ.get("LAB_DASH_SVG_LIMIT", "30000"))


def svg_if_small(fig, limit: int = SVG_POINT_LIMIT):
    """Swap WebGL scatter traces for SVG ones when the figure is small (``limit`` points): without a GPU
    (software WebGL) a WebGL context costs one to two seconds per chart. Graph edges are already SVG path
    shapes with legend entries (``lab.viz.gcd.similarity_graph``), so clicking a legend entry still hides
    them."""
    import plotly.graph_objects as go

    gl = [t for t in fig.data if t.type == "scattergl"]
    if not gl or sum(len(t.x) if t.x is not None else 0 for t in gl) > limit:
        return fig
    data = []
    for t in fig.data:
        if t.type == "scattergl":
            d = t.to_plotly_json()
            d.pop("type", None)
            t = go.Scatter(**d)
        data.append(t)
    return go.Figure(data=data, layout=fig.layout)


def show(fig, name: str, key: str | None = None) -> None:
    """A lab.viz figure on the page (plotly's own PNG download keeps working, named ``name``.png); larger
    in presenter mode."""
    fig = svg_if_small(fig)
    if presenting():
        import plotly.graph_objects as go

        fig = go.Figure(fig)        # a cached figure is shared (result_files.figure): restyle a copy
        h = fig.layout.height or 450
        fig.update_layout(font_size=17, height=int(h * 1.3))
    st.plotly_chart(fig, width="stretch", key=key, theme=None,
                    config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": name}})


def download_csv(df, file_name: str, label: str = "Download table (CSV)", key: str | None = None) -> None:
    st.download_button(label, df.to_csv(index=False).encode(), file_name=file_name, mime="text/csv",
                       key=key or f"dl_{file_name}")
