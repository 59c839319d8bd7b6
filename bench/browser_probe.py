"""Drive the dashboard in a real browser: start ``streamlit run`` headless, open each page in Debian's Chromium
through Playwright, check that plotly charts rendered and no error box shows, time the cold load and the
rerun after a slider change, keep screenshots.

Used by ``tests/test_dashboard_browser.py`` (assertions; pytest finds this module through ``pythonpath`` in
``pyproject.toml``) and ``bench/bench_dashboard.py`` (timings JSON).
Never downloads a browser: Chromium comes from ``apt-get install chromium`` (``/usr/bin/chromium``).
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-dev-shm-usage"]

# url path (the default page, the tour, lives at the root), title, key of the slider that the timing moves
PAGES = [
    ("", "A tour of the lab", None),
    ("data", "Data & partitions", "alpha"),
    ("graph", "Similarity graph (CLSD)", "k"),
    ("communities", "InfoMap communities", "mt"),
    ("prior", "Prior alignment", "pclient"),
    ("training", "Federated training", "ralpha"),
    ("privacy", "Privacy–utility", "bound"),
]
FOOTER = re.compile(r"(?:Page|Part) computed in ([0-9.]+) s · run (\d+)")   # a page's footer, or a fragment's


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``python -m streamlit run dashboard/app.py`` on 127.0.0.1:<free port>, stopped on exit."""

    def __init__(self, port: int | None = None, timeout: float = 90, log_path: str | None = None):
        self.port = port or free_port()
        self.timeout = timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc = None
        self.started_in = None

    def __enter__(self):
        cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(self.port), "--browser.gatherUsageStats",
               "false", "--server.fileWatcherType", "none"]
        self._log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        while time.perf_counter() - t0 < self.timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        self.started_in = time.perf_counter() - t0
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        self.__exit__(None, None, None)
        raise TimeoutError(f"streamlit did not answer /_stcore/health within {self.timeout} s")

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        return False


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@dataclass
class PageResult:
    path: str
    title: str
    cold_s: float = float("nan")
    server_s: float = float("nan")           # the page's own compute time (footer)
    slider_s: float = float("nan")           # rerun after moving the slider one step (may compute)
    slider_back_s: float = float("nan")      # moving it back: cached results
    slider_server_s: list = field(default_factory=list)   # the page's own compute time on those two reruns
    charts: int = 0
    figure: dict = field(default_factory=dict)   # the first chart's legend entries and edge shapes
    exceptions: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    screenshots: list = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        return {k: ((round(v, 3) if v == v else None) if isinstance(v, float) else v)   # NaN (not measured): None
                for k, v in self.__dict__.items()}


def _footer(page):
    """(compute time, run number) of the latest run: the page's footer, or a fragment's where a widget inside one
    reran that part alone (``dashboard/page.py``: one run counter for both)."""
    found = [FOOTER.search(t) for t in page.get_by_text(FOOTER).all_inner_texts()]
    runs = [(float(m.group(1)), int(m.group(2))) for m in found if m]
    return max(runs, key=lambda r: r[1]) if runs else None


def _wait_rendered(page, timeout_s, previous_run=None):
    """Until the footer shows a new run, the app is idle and every plotly chart has drawn its SVG."""
    t_end = time.perf_counter() + timeout_s
    idle_without_chart = None
    while time.perf_counter() < t_end:
        f = _footer(page)
        if f is None and page.locator('[data-testid="stException"]').count() and \
                page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return (float("nan"), -1)           # the script died before its footer: report, don't hang
        if f is not None and (previous_run is None or f[1] != previous_run):
            n = page.locator(".js-plotly-plot").count()
            drawn = page.locator(".js-plotly-plot .main-svg").count()
            # a lazily loaded element (plotly's code on a cold browser) shows a skeleton until it is drawn
            running = page.locator('[data-testid="stStatusWidget"], [data-testid="stSkeleton"]').count()
            if n > 0 and drawn >= n and running == 0:
                return f
            if n == 0 and running == 0:     # finished without a chart: give plotly 3 s, then report it
                idle_without_chart = idle_without_chart or time.perf_counter()
                if time.perf_counter() - idle_without_chart > 3:
                    return f
        page.wait_for_timeout(25)
    raise TimeoutError(f"page did not finish rendering within {timeout_s} s")


def _errors(page, res: PageResult):
    res.exceptions = [e.inner_text()[:300] for e in page.locator('[data-testid="stException"]').all()]
    res.errors = [e.inner_text()[:300] for e in page.locator('[data-testid="stAlertContentError"]').all()]
    res.charts = page.locator(".js-plotly-plot").count()


def figure_facts(page, index: int = 0) -> dict:
    """What the browser drew in the ``index``-th plotly chart: its legend entries (text, and whether each is
    shown) and the stroke colours of its path shapes (graph edges are drawn as one path shape per kind)."""
    charts = page.locator(".js-plotly-plot")
    if charts.count() <= index:
        return {}
    return charts.nth(index).evaluate("""el => ({
        legend: Array.from(el.querySelectorAll('.legend .traces')).map(t => ({
            text: (t.querySelector('.legendtext') || {}).textContent || '',
            hidden: parseFloat(getComputedStyle(t).opacity) < 0.75})),
        shapes: Array.from(el.querySelectorAll('.shapelayer path')).map(p => ({
            stroke: p.style.stroke || p.getAttribute('stroke') || '',
            length: (p.getAttribute('d') || '').length}))
    })""")


def click_legend(page, text_prefix: str, index: int = 0) -> None:
    """Click the legend entry of the ``index``-th chart whose text starts with ``text_prefix``."""
    chart = page.locator(".js-plotly-plot").nth(index)
    chart.locator(".legend .traces").filter(has_text=text_prefix).first.click()
    page.wait_for_timeout(500)


def _thumb(page, widget_key: str):
    """The thumb of the Streamlit slider whose widget key is ``widget_key``."""
    return page.locator(f'.st-key-{widget_key} input[type="range"]')


def slider_value(page, widget_key: str):
    """The value a Streamlit slider shows (its ``aria-valuetext``)."""
    return _thumb(page, widget_key).first.get_attribute("aria-valuetext")


def _move_slider(page, widget_key: str, key: str) -> bool:
    """Focus the slider whose widget key is ``widget_key`` and press an arrow key (one step)."""
    thumb = _thumb(page, widget_key)
    if thumb.count() == 0:
        return False
    thumb.first.focus()
    page.keyboard.press(key)
    return True


@contextlib.contextmanager
def opened(browser, url: str, timeout_s: float = 120, viewport=(1400, 1000)):
    """``url`` in a fresh browser session, once the page has rendered; the session is closed afterwards."""
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = ctx.new_page()
        page.goto(url, wait_until="commit")
        _wait_rendered(page, timeout_s)
        yield page
    finally:
        ctx.close()


def probe_page(page, base_url: str, path: str, title: str, slider: str | None, shots: Path | None,
               timeout_s: float = 120) -> PageResult:
    res = PageResult(path or "tour", title)
    t0 = time.perf_counter()
    page.goto(f"{base_url}/{path}", wait_until="commit")
    if page.get_by_text("Page not found").count():
        res.errors.append("Page not found")
    f = _wait_rendered(page, timeout_s)
    res.cold_s = time.perf_counter() - t0
    res.server_s = f[0]
    _errors(page, res)
    res.figure = figure_facts(page)
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        p = shots / f"{path or 'tour'}.png"
        page.screenshot(path=str(p), full_page=True)
        res.screenshots.append(str(p))
        if res.charts:
            p = shots / f"{path or 'tour'}_figure.png"
            page.locator(".js-plotly-plot").first.screenshot(path=str(p))
            res.screenshots.append(str(p))
    if slider:
        for key, attr in (("ArrowRight", "slider_s"), ("ArrowLeft", "slider_back_s")):
            before = _footer(page)
            if before is None:       # the script died (see ``exceptions``): report it, nothing to time
                res.note = "the page stopped before its footer"
                break
            run = before[1]
            t1 = time.perf_counter()
            if not _move_slider(page, slider, key):
                res.note = f"slider {slider!r} not found"
                break
            f2 = _wait_rendered(page, timeout_s, previous_run=run)
            setattr(res, attr, time.perf_counter() - t1)
            res.slider_server_s.append(f2[0])
        _errors(page, res)
        if shots is not None and not res.note:
            p = shots / f"{path or 'tour'}_after_slider.png"
            page.screenshot(path=str(p), full_page=True)
            res.screenshots.append(str(p))
    return res


def alerts(page) -> dict:
    """The texts of the success and error boxes on the page."""
    return {"success": page.locator('[data-testid="stAlertContentSuccess"]').all_inner_texts(),
            "error": page.locator('[data-testid="stAlertContentError"]').all_inner_texts()}


def upload_file(page, path: str, timeout_s: float = 120) -> dict:
    """Upload ``path`` through the sidebar's "Bring your own data" box of the page open in ``page`` and wait
    until the app has rerun with it; returns :func:`alerts`."""
    before = _footer(page)
    page.get_by_text("Bring your own data (CSV or npz)").first.click()
    page.locator('.st-key-upload input[type="file"]').set_input_files(path)
    _wait_rendered(page, timeout_s, previous_run=before[1] if before else None)
    t_end = time.perf_counter() + timeout_s        # the upload may take a second rerun to settle
    while not any(alerts(page).values()) and time.perf_counter() < t_end:
        page.wait_for_timeout(100)
    return alerts(page)


def visit(page, title: str, path: str, timeout_s: float = 120, shot: Path | None = None) -> PageResult:
    """Open a page through the sidebar navigation, in the same session (uploads live in the session)."""
    res = PageResult(path, title)
    before = _footer(page)
    t0 = time.perf_counter()
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).first.click()
    t_end = time.perf_counter() + timeout_s
    while f"/{path}" not in page.url and time.perf_counter() < t_end:
        page.wait_for_timeout(50)
    f = _wait_rendered(page, timeout_s, previous_run=before[1] if before else None)
    res.cold_s, res.server_s = time.perf_counter() - t0, f[0]
    _errors(page, res)
    res.figure = figure_facts(page)
    if shot is not None:
        page.screenshot(path=str(shot), full_page=True)
        res.screenshots.append(str(shot))
    return res


def probe_pages(browser, base_url: str, shots: Path | None = None, pages=PAGES, viewport=(1400, 1000)) -> list:
    """Visit every page in a fresh session (cold, then the slider moves), then again in a second fresh
    session (``warm_reload_s``: the caches are warm, the browser's are not)."""
    out = []
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = ctx.new_page()
        for path, title, slider in pages:
            out.append(probe_page(page, base_url, path, title, slider, shots).as_dict())
    finally:
        ctx.close()
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = ctx.new_page()
        for i, (path, title, _) in enumerate(pages):
            out[i]["warm_reload_s"] = round(probe_page(page, base_url, path, title, None, None).cold_s, 3)
    finally:
        ctx.close()
    return out


def probe_all(shots: Path | None = None, pages=PAGES, viewport=(1400, 1000), log_path: str | None = None) -> dict:
    """Start the app, run :func:`probe_pages`; return a JSON-able report."""
    from playwright.sync_api import sync_playwright

    out = {"chromium": CHROMIUM, "viewport": list(viewport)}
    with AppServer(log_path=log_path) as srv, sync_playwright() as pw:
        out["server_start_s"] = round(srv.started_in, 3)
        browser = launch(pw)
        try:
            out["pages"] = probe_pages(browser, srv.url, shots, pages, viewport)
        finally:
            browser.close()
    return out
