"""The committed result files (``bench/results/``) as the pages read them: per-run training records, the tuned
settings, the accuracy-against-α curve, the privacy sweeps and the tour's headline numbers. Reading rules live
in :mod:`lab.results`; here they are cached and re-read when a file changes. The folders are module attributes
so that the tests can point them at an empty folder (``LAB_RESULTS_DIR`` does it for a whole server).
"""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import streamlit as st

from lab.utils import LabError

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(os.environ.get("LAB_RESULTS_DIR") or ROOT / "bench" / "results")   # the env: stand-ins
GCD_RESULTS_DIR = RESULTS_DIR / "gcd"


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


def _mtime(path) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def headlines() -> dict:
    """The tour's two headline numbers (:func:`lab.results.headlines`), re-read when a results file changes."""
    from lab.results import DP_FILES, GCD_SUMMARY

    folder = Path(RESULTS_DIR)
    stamps = tuple(_mtime(folder / n) for n in (GCD_SUMMARY, *DP_FILES))
    return _headlines(str(folder), stamps)


@st.cache_data(show_spinner=False)
def _headlines(folder: str, stamps: tuple) -> dict:
    from lab.results import headlines as read

    del stamps  # cache key only
    return read(folder)


def alpha_curve() -> tuple:
    """(rows of :func:`lab.results.alpha_curve`, the file, its ``best`` settings) or (None, file, None)."""
    from lab.results import ALPHA_CURVE

    path = Path(RESULTS_DIR) / ALPHA_CURVE
    return _alpha_curve(str(path), _mtime(path))


@st.cache_data(show_spinner=False)
def _alpha_curve(path: str, stamp: float) -> tuple:
    from lab.results import alpha_curve as rows_of, read_json

    del stamp
    rel = os.path.relpath(path, ROOT)
    try:
        d = read_json(path)
        return rows_of(d), rel, d.get("best")
    except (LabError, KeyError, TypeError, ValueError):
        return None, rel, None


def dp_summary() -> tuple:
    """(the privacy results object the tour draws, its file): the tuned curve when it exists."""
    from lab.results import dp_file

    path = dp_file(str(RESULTS_DIR))
    return _dp_summary(path, _mtime(path)), os.path.relpath(path, ROOT)


@st.cache_data(show_spinner=False)
def _dp_summary(path: str, stamp: float):
    from lab.results import read_json

    del stamp
    try:
        return read_json(path)
    except LabError:
        return None


def gcd_results() -> tuple:
    """(records, source): the committed runs of ``bench/run_gcd_tables.py`` (``bench/results/gcd/*.json``) on
    evaluation seeds; the tuning-seed runs (they chose the settings) are left out."""
    return _gcd_results(str(GCD_RESULTS_DIR), tuple(tuning().get("tuning_seeds", ())))


@st.cache_data(show_spinner=False, ttl=30)
def _gcd_results(results_dir: str, tuning_seeds: tuple) -> tuple:
    ok = lambda r: "history" in r and "method" in r and "acc_all" in r and r.get("seed") not in tuning_seeds  # noqa: E731
    recs = [r for r in read_json_files(os.path.join(results_dir, "*.json")) if ok(r)]
    return recs, os.path.relpath(results_dir, ROOT)


def seed_study() -> tuple:
    """(the ``seed_study`` of ``gcd_summary.json`` or None, the file): FedLPA − each federated baseline paired
    over more evaluation seeds (``bench/run_gcd_tables.py --stage seeds``)."""
    return _summary_section("seed_study")


def done_when() -> tuple:
    """(the ``done_when`` of ``gcd_summary.json`` or None, the file): issue 9's bars read off the runs
    (``bench/run_gcd_tables.py``; rows for display: ``lab.results.done_when_rows``)."""
    return _summary_section("done_when", need="eval_seeds")


def backbone_study(key: str = "backbones") -> tuple:
    """(the ``key`` section of ``gcd_summary.json`` (one of ``lab.results.BACKBONE_STUDIES``) or None, the file):
    the core runs on each pretrained backbone, made on one machine (issue 9 item 7); its rows:
    ``lab.results.backbone_rows``."""
    return _summary_section(key)


def _summary_section(key: str, need: str = "alphas") -> tuple:
    from lab.results import GCD_SUMMARY

    path = Path(RESULTS_DIR) / GCD_SUMMARY
    return _section(str(path), key, need, _mtime(path)), os.path.relpath(path, ROOT)


@st.cache_data(show_spinner=False)
def _section(path: str, key: str, need: str, stamp: float):
    """The ``key`` section of a summary, or None where it is missing or its ``need`` part is empty."""
    from lab.results import read_json

    del stamp
    try:
        study = read_json(path).get(key)
    except LabError:
        return None
    return study if study and study.get(need) else None


def tuned_best() -> dict:
    """method -> the settings tuned on the tuning seeds (``gcd_tuning.json``'s ``best``), {} when missing."""
    return tuning().get("best", {})


def tuning() -> dict:
    """``bench/results/gcd_tuning.json`` (grid, best, tuning seeds), {} when missing."""
    path = Path(RESULTS_DIR) / "gcd_tuning.json"
    try:
        return _tuning(str(path), _mtime(path))
    except LabError:
        return {}


@st.cache_data(show_spinner=False)
def _tuning(path: str, stamp: float) -> dict:
    from lab.results import read_json

    del stamp
    return read_json(path)


def stamp(*names: str) -> tuple:
    """(path, modification time) of each named results file: a cache key that changes when a script rewrites one."""
    folder = Path(RESULTS_DIR)
    return tuple((str(folder / n), _mtime(folder / n)) for n in names)


def figure(name: str, build, key: tuple):
    """``build()``, a ``lab.viz`` figure of committed results, made once per (``name``, ``key``) for every rerun and
    session: a page reruns top to bottom on each widget move, and building a plotly figure costs more than sending
    it. ``key``: :func:`stamp` of the files it reads (and what else it depends on). The figure is shared, so nothing
    may change it (``page.show`` restyles a copy)."""
    return _figure(name, key, build)


@st.cache_resource(show_spinner=False, max_entries=64)
def _figure(name: str, key: tuple, _build):
    del name, key  # cache key only
    return _build()


def k_hat_frontier() -> list:
    """:func:`lab.results.k_hat_frontier_rows` of :data:`lab.results.K_HAT_STUDIES`, re-read when one changes (the
    studies' files hold every client's records, megabytes the rows do not need)."""
    from lab.results import K_HAT_STUDIES

    return _k_hat_frontier(stamp(*K_HAT_STUDIES.values()))


@st.cache_data(show_spinner=False)
def _k_hat_frontier(key: tuple) -> list:
    from lab.results import K_HAT_STUDIES, k_hat_frontier_rows

    del key  # cache key only
    return k_hat_frontier_rows(named_files(K_HAT_STUDIES))


def named_files(files: dict) -> dict:
    """key -> the parsed results file ``RESULTS_DIR/<name>`` (None when missing or unreadable), for ``files``:
    key -> name; re-read when one of them changes."""
    folder = Path(RESULTS_DIR)
    stamps = tuple(_mtime(folder / n) for n in files.values())
    return _named_files(str(folder), tuple(files.items()), stamps)


@st.cache_data(show_spinner=False, ttl=60)
def _named_files(folder: str, files: tuple, stamps: tuple) -> dict:
    del stamps  # cache key only
    out = {}
    for key, name in files:
        found = read_json_files(str(Path(folder) / name))
        out[key] = found[0] if found else None
    return out
