"""Time the dashboard in a real browser and write ``bench/results/dashboard_timings.json``.

    python bench/bench_dashboard.py [--runs 2]

Starts ``streamlit run dashboard/app.py`` headless on 127.0.0.1, opens every page in Debian's Chromium
(Playwright, ``/usr/bin/chromium``), the tour first (the page a newcomer lands on), and measures per page:
  cold_s          the tour: the first visit after the server started (nothing imported, nothing cached);
                  the other pages: their first visit after that (their own imports and computations)
  slider_s        one slider step to a value not computed yet (it may compute)
  slider_back_s   the step back: cached results (the "<= 1 s after a slider change" target)
  warm_reload_s   the page opened again in a fresh browser session (server caches warm)
Same helper as ``tests/test_dashboard_browser.py`` (``bench/browser_probe.py``). Each run starts a fresh
server; with ``--runs`` > 1 the report keeps every run and the per-page median.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import browser_probe as B

ROOT = Path(__file__).resolve().parents[1]

TARGET_TOUR_COLD_S, TARGET_COLD_S, TARGET_SLIDER_S = 5.0, 10.0, 1.0
KEYS = ("cold_s", "server_s", "slider_s", "slider_back_s", "warm_reload_s")


def _median(values):
    """Median of the finite values (a page without a slider has no slider timings), None when there are none."""
    v = [x for x in values if isinstance(x, (int, float)) and math.isfinite(x)]
    return round(statistics.median(v), 3) if v else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "dashboard_timings.json"))
    p.add_argument("--shots", default=str(ROOT / "test-artifacts"))
    a = p.parse_args(argv)
    if not B.chromium_available():
        print(f"{B.CHROMIUM} missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    if a.runs < 1:
        p.error("--runs must be >= 1")
    Path(a.shots).mkdir(parents=True, exist_ok=True)     # the server's log lands there before any screenshot
    runs = []
    for i in range(a.runs):
        load0 = os.getloadavg()
        t = time.time()
        r = B.probe_all(Path(a.shots) if i == 0 else None, log_path=str(Path(a.shots) / "bench_streamlit.log"))
        r["load_avg_before"], r["load_avg_after"] = [round(x, 2) for x in load0], [round(x, 2) for x in os.getloadavg()]
        r["wall_s"] = round(time.time() - t, 1)
        runs.append(r)
    pages = []
    for j, (path, title, slider) in enumerate(B.PAGES):
        rows = [run["pages"][j] for run in runs]
        med = {k: _median([x[k] for x in rows]) for k in KEYS}
        pages.append({"page": title, "path": "/" + path, "slider": slider, **med,
                      "charts": rows[0]["charts"], "errors": sum((x["errors"] + x["exceptions"] for x in rows), [])})
    tour, others = pages[0], pages[1:]
    report = {
        "what": "dashboard timings in headless Chromium (software rendering), median over runs",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "targets": {"tour_cold_s": TARGET_TOUR_COLD_S, "cold_s": TARGET_COLD_S, "slider_back_s": TARGET_SLIDER_S},
        "pages": pages,
        "tour_cold_s": tour["cold_s"],
        "max_cold_s": max(x["cold_s"] for x in others),
        "max_slider_back_s": max(x["slider_back_s"] for x in pages if x["slider"]),
        "runs": runs,
    }
    report["meets_targets"] = (report["tour_cold_s"] <= TARGET_TOUR_COLD_S and report["max_cold_s"] <= TARGET_COLD_S
                               and report["max_slider_back_s"] <= TARGET_SLIDER_S)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    f = lambda v: "    –" if v is None else f"{v:6.2f}"  # noqa: E731
    print(f"{'page':28s} {'cold':>6s} {'server':>7s} {'slider':>7s} {'cached':>7s} {'reload':>7s}")
    for x in pages:
        print(f"{x['page']:28s} {f(x['cold_s'])} {f(x['server_s'])}  {f(x['slider_s'])}  {f(x['slider_back_s'])}  "
              f"{f(x['warm_reload_s'])}")
    print(f"tour cold {report['tour_cold_s']:.2f} s (target {TARGET_TOUR_COLD_S}), other pages' max cold "
          f"{report['max_cold_s']:.2f} s (target {TARGET_COLD_S}), max cached slider "
          f"{report['max_slider_back_s']:.2f} s (target {TARGET_SLIDER_S}); load avg "
          f"{runs[0]['load_avg_before']} -> {runs[-1]['load_avg_after']}; written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
