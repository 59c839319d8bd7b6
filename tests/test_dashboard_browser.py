"""The dashboard in a real browser: ``streamlit run`` headless on 127.0.0.1, every page opened in Debian's
Chromium through Playwright; a plotly chart must render and no error box may show. Screenshots go to
``test-artifacts/`` (gitignored). Timings are asserted loosely here (a shared CI box is noisy); the targets
(≤ 10 s cold, ≤ 1 s after a slider change on cached results) are measured by ``bench/bench_dashboard.py``.

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


@pytest.mark.parametrize("path,title,slider", B.PAGES, ids=[p[0] or "data" for p in B.PAGES])
def test_page_renders_a_chart_without_errors(report, path, title, slider):
    r = report[path or "data"]
    assert r["charts"] >= 1, r
    assert not r["exceptions"], r["exceptions"]
    assert not r["errors"], r["errors"]
    assert not r["note"], r["note"]
    for shot in r["screenshots"]:
        assert Path(shot).stat().st_size > 10_000
    assert r["cold_s"] < 60 and r["slider_back_s"] < 20, r   # loose: the targets are reported by the bench


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
    with B.opened(browser, f"{srv.url}/?alpha=0.2&clients=6&client=4") as page:
        page.get_by_text("Similarity graph (CLSD)").first.click()
        t_end = time.time() + 60
        while "/graph" not in page.url and time.time() < t_end:
            page.wait_for_timeout(50)
        B._wait_rendered(page, 120)
        assert (_slider(page, "alpha"), _slider(page, "clients"), _slider(page, "client")) == ("0.2", "6", "4")
        assert "alpha=0.2" in page.url                      # the new page's URL is a shareable preset too
