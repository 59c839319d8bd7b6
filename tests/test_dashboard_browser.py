"""The dashboard in a real browser: ``streamlit run`` headless on 127.0.0.1, every page (the tour first) opened
in Debian's Chromium through Playwright; a plotly chart must render and no error box may show. The graph page's
figure at the default settings must draw the edges that join two classes (screenshot
``test-artifacts/graph_figure.png``), and its legend must hide and show them. Two real tables (scikit-learn's
wine, 178 rows, and breast cancer, 569 rows) are uploaded and drive the data, graph and communities pages.
Screenshots go to ``test-artifacts/`` (gitignored). Timings are asserted loosely here (a shared CI box is
noisy); the targets (tour ≤ 5 s cold, ≤ 1 s after a slider change on cached results) are measured by
``bench/bench_dashboard.py``.

Skipped only when ``/usr/bin/chromium`` is missing (``apt-get install -y chromium``; never
``playwright install``, which downloads).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import browser_probe as B  # bench/browser_probe.py, on the path through pyproject.toml's pytest `pythonpath`

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]

if not B.chromium_available():
    pytest.skip(f"{B.CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def app():
    ARTIFACTS.mkdir(exist_ok=True)
    with B.AppServer(log_path=str(ARTIFACTS / "streamlit.log")) as srv, sync_api.sync_playwright() as pw:
        browser = B.launch(pw)
        try:
            yield srv, browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def report(app):
    srv, browser = app
    return {r["path"]: r for r in B.probe_pages(browser, srv.url, ARTIFACTS)}


@pytest.mark.parametrize("path,title,slider", B.PAGES, ids=[p[0] or "tour" for p in B.PAGES])
def test_page_renders_a_chart_without_errors(report, path, title, slider):
    r = report[path or "tour"]
    assert r["charts"] >= 1, r
    assert not r["exceptions"], r["exceptions"]
    assert not r["errors"], r["errors"]
    assert not r["note"], r["note"]
    for shot in r["screenshots"]:
        assert Path(shot).stat().st_size > 10_000
    assert r["cold_s"] < 60, r                               # loose: the targets are reported by the bench
    if slider:
        assert r["slider_back_s"] < 20, r


_slider = B.slider_value


def test_shared_preset_url_opens_on_its_settings(app):
    """A teacher's link to a page with settings: the page opens there (no 'Page not found' on a deep link)."""
    srv, browser = app
    with B.opened(browser, f"{srv.url}/communities?alpha=0.1&clients=7&client=3&k=12&mt=1.05") as page:
        assert page.get_by_text("Page not found").count() == 0
        assert (_slider(page, "alpha"), _slider(page, "clients"), _slider(page, "client"),
                _slider(page, "k")) == ("0.1", "7", "3", "12")
        assert _slider(page, "mt") == "1.05"
        assert page.locator('[data-testid="stException"]').count() == 0


def test_settings_follow_the_user_across_pages(app):
    srv, browser = app
    with B.opened(browser, f"{srv.url}/data?alpha=0.2&clients=6&client=4") as page:
        page.get_by_text("Similarity graph (CLSD)").first.click()
        t_end = time.time() + 60
        while "/graph" not in page.url and time.time() < t_end:
            page.wait_for_timeout(50)
        B._wait_rendered(page, 120)
        assert (_slider(page, "alpha"), _slider(page, "clients"), _slider(page, "client")) == ("0.2", "6", "4")
        assert "alpha=0.2" in page.url                      # the new page's URL is a shareable preset too


def _settled(locator, want: int, timeout_s: float = 10) -> int:
    """How many elements ``locator`` matches once ``want`` do, or after ``timeout_s``: the step before's elements
    (stale in the new run) leave the page just after the run's footer shows, later on a loaded machine (a step
    once read 2 figures here while another job held a core)."""
    t_end = time.time() + timeout_s
    while (n := locator.count()) != want and time.time() < t_end:
        locator.page.wait_for_timeout(50)
    return n


def test_clicking_through_the_tour_opens_each_page_on_its_preset(app):
    """A newcomer lands on the tour (step 1) and, step by step, clicks the step's link: the page opens (same
    session) with the settings of the link in its URL and in its widgets, and draws its figures without an
    error; back on the tour (same step), Next goes on. Six steps, six different pages."""
    srv, browser = app
    with B.opened(browser, srv.url) as page:
        assert page.get_by_role("heading", name="A tour of the lab").count() == 1
        visited = []
        for i in range(6):
            links = page.locator('[data-testid="stPageLink"] a')
            assert _settled(links, 1) == 1, i
            assert _settled(page.locator(".js-plotly-plot"), 1) == 1, i
            href = links.first.get_attribute("href")
            label = href
            before = B._footer(page)
            links.first.click()
            path = href.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            visited.append(path)
            t_end = time.time() + 60
            while f"/{path}" not in page.url and time.time() < t_end:
                page.wait_for_timeout(50)
            B._wait_rendered(page, 120, previous_run=before[1] if before else None)
            assert page.locator('[data-testid="stException"]').count() == 0, label
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0, label
            assert page.locator(".js-plotly-plot").count() >= 1, label
            query = dict(q.split("=") for q in href.split("?", 1)[1].split("&")) if "?" in href else {}
            for key in ("alpha", "client", "ndraw", "pclient", "ralpha"):
                if key in query and page.locator(f'.st-key-{key} input[type="range"]').count():
                    assert _slider(page, key) == query[key], (label, key)
            before = B._footer(page)
            page.locator('[data-testid="stSidebarNav"]').get_by_text("Tour", exact=True).first.click()
            B._wait_rendered(page, 120, previous_run=before[1] if before else None)
            if i < 5:
                before = B._footer(page)
                page.locator(".st-key-tour_next button").click()
                B._wait_rendered(page, 120, previous_run=before[1] if before else None)
        assert len(set(visited)) == 6, visited


def test_the_training_pages_alpha_slider_reruns_its_part_only(app):
    """The runs at one α are a fragment: moving its slider redraws that part (its curves' title names the new α)
    and leaves the rest of the page as it was: the page footer's run stays, the part's own footer moves on."""
    srv, browser = app
    with B.opened(browser, f"{srv.url}/training") as page:
        if not B._thumb(page, "ralpha").count():
            pytest.skip("one α or no committed runs: no α slider")
        texts = lambda: page.get_by_text(B.FOOTER).all_inner_texts()  # noqa: E731
        page_run = [t for t in texts() if t.startswith("Page computed")]
        before = B._footer(page)
        assert B._move_slider(page, "ralpha", "ArrowRight")
        after = B._wait_rendered(page, 120, previous_run=before[1])
        assert after[1] > before[1]
        assert [t for t in texts() if t.startswith("Page computed")] == page_run
        assert any(t.startswith("Part computed") and f"run {after[1]}" in t for t in texts())
        titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
        (curves,) = [t for t in titles if t.startswith("Accuracy per round at α = ")]
        assert curves == f"Accuracy per round at α = {B.slider_value(page, 'ralpha')} (mean over seeds)" != \
            "Accuracy per round at α = 0.1 (mean over seeds)"


CROSS = "kNN, joins two classes"


def _shapes(facts, rgb="214, 39, 40"):
    return [x for x in facts["shapes"] if rgb in x["stroke"] and x["length"] > 10]


def test_graph_page_draws_the_cross_class_edges_at_default_settings(report):
    """At the default settings the red edges that join two classes are drawn (one SVG path) with a legend entry
    that counts them; the figure's screenshot is kept for the eye."""
    r = report["graph"]
    entry = [e for e in r["figure"]["legend"] if e["text"].startswith(CROSS)]
    assert entry and not entry[0]["hidden"], r["figure"]["legend"]
    assert int(entry[0]["text"].rsplit("(", 1)[1].rstrip(")")) > 0
    assert _shapes(r["figure"]), r["figure"]["shapes"]
    shot = ARTIFACTS / "graph_figure.png"
    assert shot.exists() and shot.stat().st_size > 20_000


def test_graph_legend_hides_and_shows_an_edge_kind(app):
    srv, browser = app
    with B.opened(browser, f"{srv.url}/graph") as page:
        assert _shapes(B.figure_facts(page))
        B.click_legend(page, CROSS)
        facts = B.figure_facts(page)
        assert not _shapes(facts)
        assert next(e for e in facts["legend"] if e["text"].startswith(CROSS))["hidden"]
        B.click_legend(page, CROSS)
        assert _shapes(B.figure_facts(page))


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    from test_uploads import sklearn_csv

    folder = tmp_path_factory.mktemp("uploads")
    for name in ("wine", "breast_cancer"):
        (folder / f"{name}.csv").write_bytes(sklearn_csv(name))
    return folder


@pytest.mark.parametrize("name,rows", [("wine", 178), ("breast_cancer", 569)])
def test_an_uploaded_table_drives_data_graph_and_communities(app, tables, name, rows):
    srv, browser = app
    with B.opened(browser, f"{srv.url}/data") as page:
        msg = B.upload_file(page, str(tables / f"{name}.csv"))
        assert not msg["error"], msg
        assert any(f"Loaded {name}.csv: {rows} rows" in m for m in msg["success"]), msg
        B._wait_rendered(page, 120)
        for title, path in (("Similarity graph (CLSD)", "graph"), ("InfoMap communities", "communities"),
                            ("Data & partitions", "data")):
            r = B.visit(page, title, path, shot=ARTIFACTS / f"upload_{name}_{path}.png")
            assert r.charts >= 1 and not r.errors and not r.exceptions, r.as_dict()
            assert page.get_by_text(f"{name}.csv").count() > 0        # still the upload, in the same session
