"""The bad-input matrix: every entry point, every kind of bad input, one parametrised test per entry point.

Entry points: the CLI commands ``fedgcd``, ``dp``, ``dp-sweep`` and ``dp-audit`` (run in-process through
``lab.cli.main``, the function behind ``python -m lab``; one subprocess row checks the real exit status),
the dashboard's uploads (``lab.data.tabular.validate_upload``, and through the page) and its widgets (values
arriving through the URL, the only way around a slider's range).

Every CLI row: exit status != 0, one line on stderr that names the parameter (and, for a range, the allowed
range), no traceback, and no output file — not even a partial one. Every dashboard row: no exception, and
either an error box naming the problem (uploads) or the widget back inside its range (URL values).
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import linked_data_dir
from lab.cli import main
from lab.utils import LabError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    """One calibration cache per module: its tests share sigmas, never another run's files."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def _corrupt_data_dir(tmp_path, name: str) -> str:
    """A data folder that links to the real files, except ``name``, which holds garbage."""
    d = linked_data_dir(tmp_path, leave_out=(name,))
    (d / name).write_bytes(b"\x00\x01 this is not what its name says " * 40)
    return str(d)


def _unwritable(tmp_path) -> str:
    """A path whose parent is a regular file: no user, root included, can create it."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return str(blocker / "out.json")


def check_row(argv, capsys, monkeypatch, tmp_path, names, env=None, out=None):
    """Run one bad command line; assert the matrix's four properties."""
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v(tmp_path) if callable(v) else v)
    out = out(tmp_path) if callable(out) else str(tmp_path / "out.json")
    argv = [a.replace("{out}", out) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:                                 # argparse: unknown choice, malformed number
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc not in (0, None), err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error:"), err
    assert any(n in err for n in names), (names, err)
    if not os.path.isdir(out):                              # (one row aims --out at an existing folder)
        assert not os.path.exists(out)
    assert not list(Path(out if os.path.isdir(out) else os.path.dirname(out)).glob("*.tmp*"))
    return err


# --------------------------------------------------------------------------------------------- fedgcd
FEDGCD = ["fedgcd", "--method", "fedlpa", "--dataset", "digits", "--rounds", "1", "--out", "{out}"]
FEDGCD_ROWS = {
    "alpha<=0": (["--alpha", "0"], ["alpha must be in (0, inf)"], None, None),
    "alpha<0": (["--alpha", "-1"], ["alpha must be in (0, inf)"], None, None),
    "alpha nan": (["--alpha", "nan"], ["alpha must be finite"], None, None),
    "alpha inf": (["--alpha", "inf"], ["alpha must be finite"], None, None),
    "clients>samples": (["--clients", "100000"], ["clients must be in [1, "], None, None),
    "clients=0": (["--clients", "0"], ["clients must be in [1, "], None, None),
    "K=0 (kNN degree)": (["--k", "0"], ["knn_k", "k must"], None, None),
    "k_max_new<1": (["--k-max-new", "0"], ["k_max_new must be in [1, 1000]"], None, None),
    "eps<0 (LPA weight)": (["--eps", "-1"], ["lpa_weight must be in [0, 100]"], None, None),
    "P>1": (["--P", "1.5"], ["confidence_quantile"], None, None),
    "merge cosine>1": (["--merge-new-cosine", "1.5"], ["merge_new_cosine must be in [-1, 1]"], None, None),
    "merge cosine not a number": (["--merge-new-cosine", "high"], ["--merge-new-cosine", "'off'"], None, None),
    "coarse route cutoff 0": (["--coarse-k", "0"], ["coarse_k must be in [1, 1000]"], None, None),
    "coarse route cutoff not a count": (["--coarse-k", "few"], ["--coarse-k", "'off'"], None, None),
    "rounds=0": (["--rounds", "0"], ["rounds must be in [1, 10000]"], None, None),
    "unknown dataset": (["--dataset", "cifar"], ["dataset must be one of"], None, None),
    "unknown method": (["--method", "magic"], ["method must be one of"], None, None),
    "unknown engine": (["--engine", "warp"], ["engine must be one of"], None, None),
    "unknown oracle part": (["--oracle-prior", "labels"], ["--oracle-prior"], None, None),
    "malformed number": (["--alpha", "lots"], ["--alpha"], None, None),
    "corrupt npz": (["--dataset", "fashion_mnist"], ["dataset fashion_mnist: its file under"],
                    {"LAB_DATA_DIR": lambda t: _corrupt_data_dir(t, "fashion_mnist_subset.npz")}, None),
    "corrupt safetensors": (["--dataset", "fashion_mnist"], ["backbone_simclr.safetensors"],
                            {"LAB_DATA_DIR": lambda t: _corrupt_data_dir(t, "backbone_simclr.safetensors")}, None),
    "unknown backbone": (["--backbone", "wide"], ["backbone must be one of"], None, None),
    "corrupt wide backbone": (["--dataset", "fashion_mnist", "--backbone", "pretrained-wide"],
                              ["backbone 'pretrained-wide' weights", "bench/device_backbone.sh pretrain"],
                              {"LAB_DATA_DIR": lambda t: _corrupt_data_dir(t, "backbone_simclr_wide.safetensors")},
                              None),
    "unwritable --out": ([], ["out must be a writable file path"], None, _unwritable),
}


@pytest.mark.parametrize("row", list(FEDGCD_ROWS), ids=list(FEDGCD_ROWS))
def test_fedgcd_bad_input(row, capsys, monkeypatch, tmp_path):
    extra, names, env, out = FEDGCD_ROWS[row]
    argv = list(FEDGCD)
    if extra[:1] == ["--method"]:
        argv[2] = extra[1]
        extra = []
    check_row(argv + extra, capsys, monkeypatch, tmp_path, names, env, out)


# ------------------------------------------------------------------------------------------------- dp
DP = ["dp", "--task", "meanest", "--algo", "uls", "--epsilon", "1", "--bound", "2", "--steps", "5", "--clip", "1",
      "--lr", "0.1", "--quiet", "--out", "{out}"]
DP_ROWS = {
    "eps=0": (["--epsilon", "0"], ["epsilon must be in (0, inf)"], None, None),
    "eps<0": (["--epsilon", "-2"], ["epsilon must be in (0, inf)"], None, None),
    "eps nan": (["--epsilon", "nan"], ["epsilon must be finite"], None, None),
    "delta=1": (["--delta", "1"], ["delta must be in (0, 1)"], None, None),
    "delta>1": (["--delta", "1.5"], ["delta must be in (0, 1)"], None, None),
    "delta=0": (["--delta", "0"], ["delta must be in (0, 1)"], None, None),
    "delta inf": (["--delta", "inf"], ["delta must be finite"], None, None),
    "K=0 (bound)": (["--bound", "0"], ["bound must be in [1, inf)"], None, None),
    "k<1 (bound)": (["--bound", "-3"], ["bound must be in [1, inf)"], None, None),
    "steps=0": (["--steps", "0"], ["steps must be in [1, inf)"], None, None),
    "batch=0": (["--batch", "0"], ["batch must be in [1, "], None, None),
    "batch>examples": (["--batch", "10000000"], ["batch must be in [1, "], None, None),
    "clip=0": (["--clip", "0"], ["clip must be in (0, inf)"], None, None),
    "lr<0": (["--lr", "-1"], ["lr must be in (0, inf)"], None, None),
    "clip inf": (["--clip", "inf"], ["clip must be finite"], None, None),
    "seed<0": (["--seed", "-1"], ["seed must be in [0, inf)"], None, None),
    "threads=0": (["--threads", "0"], ["threads must be in [1, 256]"], None, None),
    "noise multiplier=0 (lm)": (["--task", "lm", "--noise-multiplier", "0"], ["noise_multiplier must be in (0, inf)"],
                                None, None),
    "empty user set (lm)": (["--task", "lm", "--max-train-users", "0"], ["max_train_users must be in [1, inf)"],
                            None, None),
    "missing epsilon": ([], ["epsilon is required"], None, None),
    "unknown algo": (["--algo", "dpsgd"], ["--algo", "algo"], None, None),
    "unknown task": (["--task", "images"], ["--task", "task"], None, None),
    "unknown model": (["--task", "lm", "--model", "gpt9"], ["--model", "model"], None, None),
    "malformed number": (["--delta", "tiny"], ["--delta"], None, None),
    "corrupt safetensors": (["--task", "lm", "--noise-multiplier", "2", "--max-train-users", "10",
                             "--eval-windows", "8", "--batch", "4"], ["charlm_pretrained.safetensors"],
                            {"LAB_DATA_DIR": lambda t: _corrupt_data_dir(t, "charlm_pretrained.safetensors")}, None),
    "unwritable --out": ([], ["out must be a writable file path"], None, _unwritable),
    "--out is a folder": ([], ["out must be a writable file path"], None, lambda t: str(t)),
}


@pytest.mark.parametrize("row", list(DP_ROWS), ids=list(DP_ROWS))
def test_dp_bad_input(row, capsys, monkeypatch, tmp_path):
    extra, names, env, out = DP_ROWS[row]
    argv = list(DP)
    if row == "missing epsilon":
        i = argv.index("--epsilon")
        del argv[i:i + 2]
    check_row(argv + extra, capsys, monkeypatch, tmp_path, names, env, out)


# -------------------------------------------------------------------------------------------- dp-sweep
SWEEP = ["dp-sweep", "--kind", "accounting", "--bounds", "1", "2", "--steps", "10", "--out", "{out}"]
SWEEP_ROWS = {
    "eps=0 (list)": (["--kind", "tier1", "--epsilons", "1", "0"], ["epsilon must be in (0, inf)"]),
    "eps<0": (["--kind", "bound", "--epsilon", "-1"], ["epsilon must be in (0, inf)"]),
    "eps nan": (["--kind", "tier1", "--epsilons", "nan"], ["epsilon must be finite"]),
    "delta=1": (["--delta", "1"], ["delta must be in (0, 1)"]),
    "delta>1": (["--delta", "2"], ["delta must be in (0, 1)"]),
    "K=0 (bounds)": (["--bounds", "0"], ["bound must be in [1, inf)"]),
    "k<1 (bound)": (["--kind", "privacy-utility", "--bound", "0"], ["bound must be in [1, inf)"]),
    "steps=0": (["--steps", "0"], ["steps must be in [1, inf)"]),
    "noise multiplier=0": (["--noise-multiplier", "0"], ["noise_multiplier must be in (0, inf)"]),
    "noise multiplier nan": (["--noise-multiplier", "nan"], ["noise_multiplier must be finite"]),
    "seed<0": (["--kind", "tier1", "--seeds", "-1"], ["seed must be in [0, inf)"]),
    "unknown kind": (["--kind", "everything"], ["--kind"]),
    "unknown model": (["--model", "gpt9"], ["--model"]),
    "malformed number": (["--steps", "many"], ["--steps"]),
    "unwritable --out": (["OUT"], ["out must be a writable file path"]),
}


@pytest.mark.parametrize("row", list(SWEEP_ROWS), ids=list(SWEEP_ROWS))
def test_dp_sweep_bad_input(row, capsys, monkeypatch, tmp_path):
    extra, names = SWEEP_ROWS[row]
    out = None
    if extra == ["OUT"]:
        extra, out = [], _unwritable
    check_row(SWEEP + extra, capsys, monkeypatch, tmp_path, names, None, out)


# -------------------------------------------------------------------------------------------- dp-audit
AUDIT = ["dp-audit", "--task", "meanest", "--algo", "uls", "--epsilon", "1", "--bound", "2", "--canaries", "20",
         "--steps", "5", "--quiet", "--out", "{out}"]
AUDIT_ROWS = {
    "eps=0": (["--epsilon", "0"], ["epsilon must be in (0, inf)"], None, None),
    "eps<0": (["--epsilon", "-1"], ["epsilon must be in (0, inf)"], None, None),
    "eps nan": (["--epsilon", "nan"], ["epsilon must be finite"], None, None),
    "eps inf (a claim must be finite)": (["--epsilon", "inf"], ["epsilon must be finite"], None, None),
    "delta=1": (["--delta", "1"], ["delta must be in (0, 1)"], None, None),
    "delta=0": (["--delta", "0"], ["delta must be in (0, 1)"], None, None),
    "K=0 (bound)": (["--bound", "0"], ["bound must be in [1, inf)"], None, None),
    "k<1 (bound)": (["--bound", "-1"], ["bound must be in [1, inf)"], None, None),
    "too few canaries": (["--canaries", "4"], ["canaries must be in [10, 20000]"], None, None),
    "canaries beyond memory (meanest)": (["--canaries", "20000", "--bound", "64"], ["canaries must be in [10, "],
                                         None, None),
    "steps=0": (["--steps", "0"], ["steps must be in [1, inf)"], None, None),
    "batch=0": (["--batch", "0"], ["batch must be in [1, "], None, None),
    "clip=0": (["--clip", "0"], ["clip must be in (0, inf)"], None, None),
    "lr=0": (["--lr", "0"], ["lr must be in (0, inf)"], None, None),
    "seed<0": (["--seed", "-2"], ["seed must be in [0, inf)"], None, None),
    "threads=0": (["--threads", "0"], ["threads must be in [1, 256]"], None, None),
    "empty user set (charlm)": (["--task", "charlm", "--max-train-users", "0"],
                                ["max_train_users must be in [1, inf)"], None, None),
    "missing epsilon": (["--algo", "els", "--epsilon", "NONE"], ["epsilon is required"], None, None),
    "unknown task": (["--task", "cifar"], ["--task"], None, None),
    "unknown algo": (["--algo", "magic"], ["--algo"], None, None),
    "unknown score": (["--score", "grey"], ["--score"], None, None),
    "corrupt safetensors (charlm)": (["--task", "charlm", "--max-train-users", "10", "--batch", "4"],
                                     ["charlm_pretrained.safetensors"],
                                     {"LAB_DATA_DIR": lambda t: _corrupt_data_dir(t, "charlm_pretrained.safetensors")},
                                     None),
    "unwritable --out": ([], ["out must be a writable file path"], None, _unwritable),
}


@pytest.mark.parametrize("row", list(AUDIT_ROWS), ids=list(AUDIT_ROWS))
def test_dp_audit_bad_input(row, capsys, monkeypatch, tmp_path):
    extra, names, env, out = AUDIT_ROWS[row]
    argv = AUDIT + extra
    if "NONE" in extra:
        argv = [a for a in AUDIT if a not in ("--epsilon", "1")] + ["--algo", "els"]
    check_row(argv, capsys, monkeypatch, tmp_path, names, env, out)


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["fedgcd", "--method", "fedlpa", "--alpha", "0"],
                                  ["dp", "--algo", "uls", "--epsilon", "-2"],
                                  ["dp-sweep", "--kind", "tier1", "--delta", "1"],
                                  ["dp-audit", "--algo", "uls", "--epsilon", "1", "--canaries", "3"]],
                         ids=["fedgcd", "dp", "dp-sweep", "dp-audit"])
def test_module_entry_point_exit_status(argv, tmp_path):
    """The real process: ``python -m lab ...`` exits 2 with one line on stderr and writes nothing."""
    out = tmp_path / "out.json"
    p = subprocess.run([sys.executable, "-m", "lab", *argv, "--out", str(out)], capture_output=True, text=True,
                       cwd=ROOT)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------- dashboard: uploads
def _csv(rows=60, label=lambda i: i % 3, feats=lambda i: (i * 0.1, (i * 7) % 5), user=None) -> bytes:
    head = "f0,f1,label" + (",user" if user else "")
    lines = [head] + [",".join(map(str, (*feats(i), label(i), *((user(i),) if user else ())))) for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _corrupt_npz() -> bytes:
    good = _npz(X=np.zeros((60, 4)), y=np.arange(60) % 3)
    return good[: len(good) // 2]                          # a zip cut in half


UPLOAD_ROWS = {
    "NaN features": ("nan.csv", _csv(feats=lambda i: (float("nan") if i == 7 else i, 1.0)), "missing or infinite"),
    "inf features": ("inf.csv", _csv(feats=lambda i: (float("inf") if i == 3 else i, 1.0)), "missing or infinite"),
    "NaN features (npz)": ("nan.npz", _npz(X=np.where(np.eye(60, 4) > 0, np.nan, 1.0), y=np.arange(60) % 3),
                           "missing or infinite"),
    "one class": ("one.csv", _csv(label=lambda i: "a"), "single class"),
    "empty user": ("user.csv", _csv(user=lambda i: "" if i == 5 else f"u{i % 4}"), "user column"),
    "too few rows": ("small.csv", _csv(rows=5), "at least 50"),
    "corrupt npz": ("broken.npz", _corrupt_npz(), "npz"),
    "empty file": ("empty.csv", b"", "empty"),
    "unknown format": ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "only .csv and .npz"),
    "no label column": ("nolabel.csv", _csv().replace(b"label", b"species"), "no label column"),
}


@pytest.mark.parametrize("row", list(UPLOAD_ROWS), ids=list(UPLOAD_ROWS))
def test_dashboard_upload_bad_input(row):
    """The upload validator every dashboard upload goes through: a LabError, one line, naming the problem."""
    from lab.data.tabular import validate_upload

    name, data, phrase = UPLOAD_ROWS[row]
    with pytest.raises(LabError) as e:
        validate_upload(name, data)
    msg = str(e.value)
    assert "\n" not in msg and phrase in msg, msg


PAGE_UPLOAD_ROWS = [pytest.param(r, marks=pytest.mark.xfail(
    strict=True, reason="AppTest bypasses the browser's extension filter of st.file_uploader; Streamlit then raises "
    "StreamlitAPIException ('Invalid file extension') from its own session-state read, outside the page's code "
    "(a try around st.file_uploader does not catch it). A real browser refuses the file before upload."))
    if r == "unknown format" else r for r in UPLOAD_ROWS]


@pytest.mark.slow
@pytest.mark.parametrize("row", PAGE_UPLOAD_ROWS)
def test_dashboard_upload_bad_input_through_the_page(row):
    """The same files through the real page: an error box, no exception, the committed data stays selected."""
    from test_dashboard_apptest import _upload, open_page

    name, data, phrase = UPLOAD_ROWS[row]
    at = open_page("data")
    _upload(at, name, data, mime="application/octet-stream")
    assert not at.exception
    if name.endswith((".csv", ".npz")):
        assert any("Upload rejected" in e.value and phrase in e.value for e in at.error), [e.value for e in at.error]
    assert at.selectbox(key="ds").value == "fashion_mnist"


# ---------------------------------------------------------------------------------- dashboard: widgets
# URL values outside a widget's range (a slider cannot produce them): the page must not fail and the
# widget must come back at a value inside its range.
WIDGET_ROWS = {
    "alpha<=0": ("data", {"alpha": "0"}, "alpha", 0.5),
    "alpha nan": ("data", {"alpha": "nan"}, "alpha", 0.5),
    "clients>samples": ("data", {"clients": "100000"}, "clients", 5),
    "clients=0": ("data", {"clients": "0"}, "clients", 5),
    "unknown dataset": ("data", {"ds": "cifar"}, "ds", "fashion_mnist"),
    "K=0 (bound)": ("privacy", {"bound": "0"}, "bound", 16),
    "sigma<=0": ("privacy", {"sigma": "-1"}, "sigma", 1.0),
    "delta>=1": ("privacy", {"delta": "1"}, "delta", 1e-5),
    "steps=0": ("privacy", {"steps": "0"}, "steps", 300),
    "batch inf": ("privacy", {"batch": "inf"}, "batch", 64),
}


@pytest.mark.slow
@pytest.mark.parametrize("row", list(WIDGET_ROWS), ids=list(WIDGET_ROWS))
def test_dashboard_widget_bad_url_values(row):
    from test_dashboard_apptest import open_page, widget

    page, query, key, default = WIDGET_ROWS[row]
    at = open_page(page, query)
    assert not at.exception, [e.value for e in at.exception]
    assert widget(at, key).value == default


@pytest.mark.slow
@pytest.mark.parametrize("row", list(WIDGET_ROWS), ids=list(WIDGET_ROWS))
def test_dashboard_widget_bad_url_value_is_reported(row):
    from test_dashboard_apptest import open_page

    page, query, key, default = WIDGET_ROWS[row]
    at = open_page(page, query)
    shown = [e.value for kind in ("warning", "info", "error", "caption") for e in getattr(at, kind)]
    assert any(f"{key}=" in s and "URL" in s and "not allowed here (" in s and "\n" not in s for s in shown), shown
