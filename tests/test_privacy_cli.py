"""CLI smoke tests: `dp` on tiny settings writes the documented JSON; bad input is one line, exit 2,
no file. Runs the subcommands through `lab.cli.main`, the function behind `python -m lab`, which mounts
`lab.privacy.cli.register()`."""
import json
import os
import subprocess
import sys

import pytest

from lab.cli import main
from lab.utils import data_path

REQUIRED = {"algo", "epsilon_target", "epsilon", "epsilon_example", "delta", "bound", "noise_multiplier",
            "sampling_rate", "steps", "eval_loss", "eval_ppl", "seconds", "accountant"}
TINY_LM = ["--steps", "2", "--bound", "4", "--batch", "8", "--max-train-users", "20", "--eval-windows", "16",
           "--quiet", "--threads", "1"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))


needs_weights = pytest.mark.skipif(not os.path.exists(data_path("charlm_pretrained.safetensors")),
                                   reason="pretrained weights not built (bench/pretrain_charlm.py)")


@pytest.mark.slow
@needs_weights
@pytest.mark.parametrize("algo,privacy", [
    ("uls", ["--epsilon", "8"]),  # calibrated to the user-level target
    ("els", ["--noise-multiplier", "3"]),  # given sigma, accounted (mixture PLD + group + example level)
    ("nonprivate", []),
])
def test_dp_lm_tiny(tmp_path, algo, privacy):
    out = tmp_path / f"{algo}.json"
    rc = main(["dp", "--algo", algo, *privacy, "--delta", "1e-5", "--seed", "1", "--out", str(out), *TINY_LM])
    assert rc == 0
    r = json.loads(out.read_text())
    assert REQUIRED <= set(r)
    assert r["algo"] == algo and r["steps"] == 2 and r["bound"] == 4
    assert 0 < r["eval_loss"] < 6 and r["eval_ppl"] > 1
    if algo == "nonprivate":
        assert r["epsilon"] == "inf" and r["noise_multiplier"] == 0
    elif algo == "uls":
        assert 7.5 < r["epsilon"] <= 8 * 1.001 and r["noise_multiplier"] > 0 and r["epsilon_example"] is None
    else:
        assert r["noise_multiplier"] == 3 and r["epsilon_target"] is None
        assert r["epsilon_example"] < r["epsilon"] <= r["epsilon_group"]
    # same seed -> same numbers
    out2 = tmp_path / f"{algo}2.json"
    main(["dp", "--algo", algo, *privacy, "--seed", "1", "--out", str(out2), *TINY_LM])
    assert json.loads(out2.read_text())["eval_loss"] == r["eval_loss"]


def test_dp_meanest_tiny(tmp_path):
    out = tmp_path / "m.json"
    rc = main(["dp", "--task", "meanest", "--algo", "uls", "--epsilon", "2", "--bound", "4", "--steps", "50",
               "--clip", "1", "--lr", "0.1", "--out", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert REQUIRED <= set(r) and r["task"] == "meanest" and r["epsilon"] <= 2.0


@pytest.mark.parametrize("bad", [
    ["--epsilon", "0"], ["--epsilon", "-1"], ["--delta", "0"], ["--delta", "1"], ["--delta", "1.5"],
    ["--bound", "0"], ["--steps", "0"], ["--epsilon", "nan"],
])
def test_bad_input_one_line_no_file(tmp_path, capsys, bad):
    out = tmp_path / "x.json"
    args = {"--epsilon": "1", "--delta": "1e-5", "--bound": "4", "--steps": "2"}
    args.update(dict(zip(bad[::2], bad[1::2])))
    argv = ["dp", "--algo", "els", "--out", str(out)] + [t for kv in args.items() for t in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    name = bad[0][2:]
    assert name in err
    assert not out.exists()


def test_bad_algo_and_missing_epsilon(tmp_path, capsys):
    out = tmp_path / "x.json"
    with pytest.raises(SystemExit) as e:
        main(["dp", "--algo", "dpsgd", "--epsilon", "1", "--out", str(out)])
    assert e.value.code == 2
    assert main(["dp", "--algo", "uls", "--out", str(out)]) == 2
    assert "epsilon" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_module_entry_point_bad_input(tmp_path):
    out = tmp_path / "x.json"
    p = subprocess.run([sys.executable, "-m", "lab", "dp", "--algo", "uls", "--epsilon", "-2",
                        "--out", str(out)], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "epsilon" in p.stderr
    assert not out.exists()
