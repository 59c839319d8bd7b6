"""The Flower engines reproduce the in-process engine exactly, and leave nothing behind.

Fast: the record codec is bit-exact; a client rebuilt from (get_state, export_cache) continues exactly like the
object that never went away (the property every Flower message relies on); the engine flags fail early with
one-line errors. Slow (real Flower processes): flower-sim and a SuperLink + 3 SuperNodes give the in-process
record and final weights bit for bit; afterwards no Flower/Ray process, port or FLWR_HOME of theirs is left.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from lab.federated.flower import records
from lab.federated.flower.engine import free_port, port_in_use, preflight, run_flower
from lab.gcd.config import FedGCDConfig
from lab.gcd.experiment import Experiment, run_experiment
from lab.gcd.snapshots import load_weights
from lab.utils import LabError

ROOT = Path(__file__).resolve().parents[1]
FLOWER_PROCS = r"flower-superlink|flower-supernode|flower-superexec|flwr-serverapp|flwr-clientapp|flwr-simulation|" \
               r"raylet|gcs_server|ray::|default_worker.py"


def _tiny(method, **kw):
    base = dict(method=method, dataset="digits", clients=3, alpha=0.5, rounds=2, seed=0)
    return FedGCDConfig(**{**base, **kw})


def _same_record(a: dict, b: dict):
    """Every key of the result record equal (floats exactly), except the wall-clock seconds."""
    assert a.keys() == b.keys()
    diff = {k: (a[k], b[k]) for k in a if k != "seconds" and a[k] != b[k]}
    assert not diff, diff


def _same_weights(a: dict, b: dict):
    assert sorted(a) == sorted(b)                  # (a safetensors file lists its tensors sorted by name)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def _flower_pids() -> set:
    out = subprocess.run(["pgrep", "-f", FLOWER_PROCS], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()} - {os.getpid()}


def _labfl_dirs() -> set:
    return set(Path(tempfile.gettempdir()).glob("labfl-*"))


# --------------------------------------------------------------------------------------------------------
# fast
# --------------------------------------------------------------------------------------------------------
def test_records_round_trip_is_bit_exact():
    rng = np.random.default_rng(0)
    d = {"w": rng.normal(size=(3, 4)), "b32": rng.normal(size=5).astype(np.float32),
         "h16": rng.normal(size=(2, 2)).astype(np.float16), "u8": np.arange(7, dtype=np.uint8),
         "i64": np.array(3, dtype=np.int64), "task": "kmeans-step", "k": 10, "x": 0.1 + 0.2, "flag": True,
         "np_scalar": np.float64(1 / 3)}
    from flwr.common.serde import recorddict_from_proto, recorddict_to_proto

    wire = recorddict_to_proto(records.pack(msg=d)).SerializeToString()      # what a message carries
    back = records.take(recorddict_from_proto(type(recorddict_to_proto(records.pack())).FromString(wire)), "msg")
    assert set(back) == set(d)
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)
        else:
            assert back[k] == v and type(back[k]) is type(v.item() if isinstance(v, np.generic) else v)
    w = {f"layer{i}.weight": rng.normal(size=3).astype(np.float32) for i in (3, 1, 2)}
    assert list(records.numpy(records.arrays(w))) == list(w)          # key order = averaging order


@pytest.mark.parametrize("method", ["simgcd", "fedlpa"])
def test_client_rebuilt_from_state_and_cache_continues_exactly(method):
    """A Flower node rebuilds its client for every message: with get_state + export_cache restored, the
    rebuilt client's next round is bit-identical to the one of the object that stayed alive. Fashion-MNIST
    has a frozen pretrained prefix, so the view bank (drawn once from the torch stream) is in the cache;
    without the cache the bank is redrawn from the advanced stream and the round differs."""
    cfg = FedGCDConfig(method=method, dataset="fashion_mnist", clients=10, alpha=0.5, rounds=3, seed=0,
                       warmup_rounds=1)
    exp = Experiment(cfg)
    pid = int(exp.part.sizes().argmin())                  # the smallest client keeps this test fast
    alive = exp.client(pid)
    r1 = alive.fit(exp.initial_weights(), {"round": 1, "local_epochs": 1})
    state = records.numpy(records.arrays(alive.get_state()))          # through Flower records, as on a node
    cache = records.numpy(records.arrays(alive.export_cache()))
    assert "bank" in cache
    early_view = alive.local_view()[0]
    early_report = alive.report() if method == "fedlpa" else None    # before any discovery: on the local model
    r2 = alive.fit(r1.weights, {"round": 2, "local_epochs": 1})       # FedLPA: discovery + prior from here on

    rebuilt = exp.client(pid)
    rebuilt.import_cache(cache)
    rebuilt.set_state(state)
    # the model a client holds between calls (its last local weights) comes back too: a FedLPA run that ends
    # before discovery reports on it
    assert np.array_equal(early_view, rebuilt.local_view()[0])
    if method == "fedlpa":
        rep = rebuilt.report()
        assert rep["k_est"] == early_report["k_est"] and np.array_equal(rep["heads"], early_report["heads"])
    r2b = rebuilt.fit(r1.weights, {"round": 2, "local_epochs": 1})
    _same_weights(r2.weights, r2b.weights)
    assert r2.metrics == r2b.metrics

    no_cache = exp.client(pid)
    no_cache.set_state(state)
    r2c = no_cache.fit(r1.weights, {"round": 2, "local_epochs": 1})
    assert any(not np.array_equal(r2.weights[k], r2c.weights[k]) for k in r2.weights)

    if method == "fedlpa":                      # round 3 uses the prior found in round 2: it lives in the state
        state2, cache2 = alive.get_state(), alive.export_cache()
        assert "prior" in state2
        r3 = alive.fit(r2.weights, {"round": 3, "local_epochs": 1})
        again = exp.client(pid)
        again.import_cache(cache2)
        again.set_state(state2)
        _same_weights(r3.weights, again.fit(r2.weights, {"round": 3, "local_epochs": 1}).weights)


def test_engine_preflight_errors_name_the_parameter():
    cfg = _tiny("simgcd")
    with pytest.raises(LabError, match="no server"):
        preflight(_tiny("local"), "flower-sim")
    with pytest.raises(LabError, match="superlink is required"):
        preflight(cfg, "flower")
    with pytest.raises(LabError, match="superlink must be HOST:PORT"):
        preflight(cfg, "flower", "localhost")
    with pytest.raises(LabError, match="root_certificates is required"):
        preflight(cfg, "flower", "192.0.2.1:9091")
    port = free_port()
    with pytest.raises(LabError, match=f"superlink 127.0.0.1:{port} does not answer"):
        preflight(cfg, "flower", f"127.0.0.1:{port}", connect_timeout=1.0)


# --------------------------------------------------------------------------------------------------------
# slow: real Flower processes
# --------------------------------------------------------------------------------------------------------
@pytest.fixture
def no_leftovers():
    """Whatever a test starts, no Flower/Ray process, no labfl-* folder and no ~/.flwr may outlive it."""
    pids, dirs, home = _flower_pids(), _labfl_dirs(), (Path.home() / ".flwr").exists()
    yield
    deadline = time.time() + 20
    while _flower_pids() - pids and time.time() < deadline:
        time.sleep(0.5)
    assert not _flower_pids() - pids, subprocess.run(["ps", "-o", "pid,cmd", "-p", ",".join(
        map(str, _flower_pids() - pids))], capture_output=True, text=True).stdout
    assert _labfl_dirs() == dirs
    assert (Path.home() / ".flwr").exists() == home


@pytest.mark.slow
def test_flower_sim_matches_inprocess(tmp_path, no_leftovers):
    """FedLPA (SimGCD + its discovered prior): 2 of 3 clients per round, sampled as partitions (not Flower
    node ids) from the same stream; the prior found in round 2 lives in Context.state until round 3."""
    cfg = _tiny("fedlpa", rounds=3, warmup_rounds=1, client_fraction=0.67)
    ref, w_ref = run_experiment(cfg, return_weights=True)
    rows = []
    rec = run_flower(cfg, "flower-sim", weights_out=str(tmp_path / "w.safetensors"),
                     on_round=lambda r, R, row: rows.append(r))
    _same_record(ref, rec)
    _same_weights(w_ref, load_weights(str(tmp_path / "w.safetensors"))[0])
    assert rows == list(range(1, cfg.rounds + 1))
    assert rec["k_est"] is not None and rec["prior_kl"] is not None


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True, **kw)


@pytest.mark.slow
def test_cli_flower_sim_gcd_matches_inprocess(tmp_path, no_leftovers):
    """FedAvg+GCD clusters by federated k-means: dozens of evaluate messages per evaluation, replies in
    partition order (k-means++ draws from the concatenated candidates)."""
    r = _cli("fedgcd", "--method", "gcd", "--dataset", "digits", "--clients", "3", "--alpha", "0.5", "--rounds", "2",
             "--seed", "0", "--engine", "flower-sim", "--out", str(tmp_path / "fl.json"), timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    _same_record(run_experiment(_tiny("gcd")), json.loads((tmp_path / "fl.json").read_text()))


@pytest.mark.slow
def test_deployment_superlink_and_three_supernodes(tmp_path, no_leftovers):
    """`flower-local` (a SuperLink + 3 SuperNodes, every message in a fresh ClientApp process) runs FedLPA
    for 2 rounds with the in-process numbers, and refuses a run that does not match its nodes with a one-line
    error; SIGTERM stops everything: processes, ports, FLWR_HOME."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}           # every labfl-* folder lands here
    (tmp_path / "tmp").mkdir()
    local = subprocess.Popen([sys.executable, "-m", "lab", "flower-local", "--nodes", "3", "--port", str(port)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        line = local.stdout.readline()
        assert line.startswith(f"SuperLink: 127.0.0.1:{port}"), line + local.stderr.read()
        cfg = _tiny("fedlpa", warmup_rounds=1)
        out = tmp_path / "dep.json"
        r = _cli("fedgcd", "--method", "fedlpa", "--dataset", "digits", "--clients", "3", "--alpha", "0.5",
                 "--rounds", "2", "--warmup", "1", "--seed", "0", "--engine", "flower",
                 "--superlink", f"127.0.0.1:{port}", "--out", str(out), timeout=1200)
        assert r.returncode == 0, r.stderr[-2000:]
        _same_record(run_experiment(cfg), json.loads(out.read_text()))
        # a run whose split does not match the nodes' (2 clients, 3 nodes) fails with the nodes' own reason
        bad = _cli("fedgcd", "--method", "simgcd", "--dataset", "digits", "--clients", "2", "--rounds", "1",
                   "--engine", "flower", "--superlink", f"127.0.0.1:{port}", timeout=600)
        err = [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")]
        assert bad.returncode == 2 and len(err) == 1 and "does not fit a run with 2 clients" in err[0], bad.stderr
    finally:
        local.send_signal(signal.SIGTERM)
        _, err = local.communicate(timeout=120)
    assert local.returncode == 0, err
    node_ports = [int(p) for p in re.findall(r"\d+", err.split("ClientApp API port", 1)[1].splitlines()[0])]
    assert len(node_ports) == 3
    assert not any(port_in_use(p) for p in [port, *node_ports])
    assert not any((tmp_path / "tmp").iterdir())


@pytest.mark.slow
def test_unreachable_superlink_is_a_one_line_error(tmp_path):
    port = free_port()
    r = _cli("fedgcd", "--method", "simgcd", "--dataset", "digits", "--clients", "3", "--rounds", "2",
             "--engine", "flower", "--superlink", f"127.0.0.1:{port}", "--out", str(tmp_path / "x.json"),
             timeout=120)                                     # a hang fails here instead of blocking CI
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and f"superlink 127.0.0.1:{port} does not answer" in err[0], r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x.json").exists()
