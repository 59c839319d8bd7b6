"""Flower processes on this machine, and one run submitted to a SuperLink: what ``--engine`` and
``python -m lab flower-local`` drive.

:class:`LocalFlower` starts Flower's own executables — ``flower-superlink`` (deployment, or ``--simulation``:
Ray behind the same API) and ``flower-supernode`` per partition — on free 127.0.0.1 ports, each with a
private ``FLWR_HOME`` under one temporary folder (Ray's session files go there too), telemetry and update
checks off, and never ``uv sync`` (``--disable-runtime-dependency-installation``: the app's code is the
installed ``lab``). Every process it starts, and every process those start (SuperExec helpers, ClientApp and
ServerApp processes, Ray's daemons and workers), carries one environment tag; ``stop()`` ends exactly the
tagged processes, by pid (TERM, then KILL after a grace period), then deletes the folder. No daemon, lock,
port or ``FLWR_HOME`` is left behind — the tests check it.

:func:`submit` runs ``flwr run lab/federated/flower/app CONNECTION --stream`` with the run config in a TOML
file, follows the ServerApp's log lines (``lab-round {...}`` -> ``on_round``) and returns when the run ends.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from lab.federated.flower.common import (CONFIG, DONE_TAG, NODE_TIMEOUT, REPORT, RESULT, ROUND_TAG, THREADS, WEIGHTS,
                                         check_engine_method, config_to_run)
from lab.utils import LabError

APP_DIR = Path(__file__).with_name("app")
TAG = "LAB_FLOWER_TAG"
QUIET = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
         "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


def exe(name: str) -> str:
    """A Flower executable of this Python environment (next to sys.executable), else from PATH."""
    here = Path(sys.executable).with_name(name)
    return str(here) if here.exists() else (shutil.which(name) or name)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LabError(f"superlink must be HOST:PORT (e.g. 127.0.0.1:9091), got {address!r}")
    return address


def healthy(address: str, root_certificates: str | None = None, timeout: float = 1.0) -> bool:
    """Does a SuperLink answer ``/health`` at ``address`` (one probe; HTTPS when a CA file is given)?"""
    ctx = None
    if root_certificates:
        import ssl

        ctx = ssl.create_default_context(cafile=root_certificates)
    url = f"{'https' if root_certificates else 'http'}://{address}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:    # noqa: S310 (an address we were given)
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_healthy(address: str, timeout: float, root_certificates: str | None = None, alive=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if healthy(address, root_certificates, timeout=min(1.0, max(0.1, deadline - time.monotonic()))):
            return True
        time.sleep(0.25)
    return False


def _psutil():
    try:
        import psutil
    except ImportError:    # pragma: no cover - psutil ships with the lab's requirements
        return None
    return psutil


def tagged_pids(tag: str) -> list:
    """Pids of this machine's processes whose environment carries ``LAB_FLOWER_TAG=tag``."""
    ps = _psutil()
    if ps is None:
        return []
    out = []
    for p in ps.process_iter(["pid"]):
        with contextlib.suppress(ps.Error, OSError):
            if p.pid != os.getpid() and p.environ().get(TAG) == tag:
                out.append(p.pid)
    return out


def end_pids(pids, grace: float = 10.0) -> None:
    """TERM the given pids (all of them ours), wait up to ``grace`` s, KILL what is left."""
    ps = _psutil()
    procs = []
    for pid in pids:
        with contextlib.suppress(Exception):
            procs.append(ps.Process(pid) if ps else pid)
    if ps is None:                                   # pragma: no cover
        for pid in procs:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        return
    for p in procs:
        with contextlib.suppress(ps.Error):
            p.terminate()
    _, alive = ps.wait_procs(procs, timeout=grace)
    for p in alive:
        with contextlib.suppress(ps.Error):
            p.kill()
    ps.wait_procs(alive, timeout=5)


class LocalFlower:
    """SuperLink and SuperNodes on 127.0.0.1, started and stopped by this object (a context manager)."""

    def __init__(self, log=None):
        # short path: Ray puts Unix sockets under RAY_TMPDIR (a socket path must stay < 108 bytes)
        self.root = Path(tempfile.mkdtemp(prefix="labfl-"))
        self.tag = uuid.uuid4().hex
        self.procs: list[subprocess.Popen] = []
        self.names: list[str] = []
        self.ports: list[int] = []
        self.address: str | None = None
        self.log = log or (lambda msg: None)

    # --- environment ----------------------------------------------------------------------------------
    def env(self, name: str) -> dict:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        return {**os.environ, **QUIET, **_python_path_env(), "FLWR_HOME": str(home),
                "RAY_TMPDIR": str(self.root / "ray"), TAG: self.tag}

    def _spawn(self, name: str, cmd: list) -> subprocess.Popen:
        logf = open(self.root / f"{name}.log", "ab")
        p = subprocess.Popen(cmd, env=self.env(name), stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        self.procs.append(p)
        self.names.append(name)
        return p

    def log_tail(self, name: str, n: int = 5) -> str:
        f = self.root / f"{name}.log"
        lines = f.read_text(errors="replace").strip().splitlines() if f.exists() else []
        return " | ".join(x.strip() for x in lines[-n:])

    # --- processes ------------------------------------------------------------------------------------
    def start_superlink(self, simulation: bool = False, port: int | None = None, timeout: float = 60.0) -> str:
        port = port or free_port()
        if port_in_use(port):
            raise LabError(f"port must be free: 127.0.0.1:{port} is in use (choose another with --port)")
        cmd = [exe("flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
               "--host", "127.0.0.1", "--port", str(port)]
        if simulation:
            cmd.append("--simulation")
        p = self._spawn("superlink", cmd)
        self.ports.append(port)
        self.address = f"127.0.0.1:{port}"
        if not wait_healthy(self.address, timeout, alive=lambda: p.poll() is None):
            raise LabError(f"flower-superlink did not come up on {self.address} within {timeout:.0f} s: "
                           f"{self.log_tail('superlink') or 'no output'}")
        self.log(f"SuperLink{' (simulation)' if simulation else ''} on {self.address}")
        return self.address

    def start_supernodes(self, n: int, ports: list | None = None) -> list:
        """``n`` SuperNodes, node i serving partition i of n; each needs its own ClientApp API port."""
        if self.address is None:
            raise RuntimeError("start the SuperLink first")
        ports = ports or [free_port() for _ in range(n)]
        for i, port in enumerate(ports):
            if port_in_use(port):
                raise LabError(f"port must be free: 127.0.0.1:{port} (SuperNode {i}) is in use")
            self._spawn(f"supernode-{i}", [
                exe("flower-supernode"), "--insecure", "--superlink", self.address, "--host", "127.0.0.1",
                "--port", str(port), "--node-config", f"partition-id={i} num-partitions={n}"])
            self.ports.append(port)
        self.log(f"{n} SuperNodes (partition i on ClientApp API port {ports[0] if n == 1 else ports})")
        return ports

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def dead(self) -> str:
        """Which started process exited, with its last log lines."""
        for p, name in zip(self.procs, self.names):
            if p.poll() is not None:
                return f"{name}: exit {p.returncode}: {self.log_tail(name, 2) or 'no output'}"
        return "none"

    def stop(self) -> list:
        """End every process this object started (and their descendants, by tag), delete the folder; returns
        :meth:`leftovers` (empty when all is gone)."""
        for _ in range(3):        # a process may spawn a child while we stop its parent: look again
            pids = {p.pid for p in self.procs if p.poll() is None} | set(tagged_pids(self.tag))
            if not pids:
                break
            end_pids(sorted(pids))
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)
        return self.leftovers()

    def leftovers(self) -> list:
        """What is still there of what this object started: processes, listening ports, its folder."""
        left = [f"process {pid}" for pid in tagged_pids(self.tag)]
        left += [f"port {port}" for port in self.ports if port_in_use(port)]
        return left + ([str(self.root)] if self.root.exists() else [])

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        left = self.stop()
        if left and exc_type is None:
            raise LabError(f"could not clean up the Flower processes: {', '.join(left)}")


# ------------------------------------------------------------------------------------------------------
# one run
# ------------------------------------------------------------------------------------------------------
def write_connection(home: Path, address: str, root_certificates: str | None = None) -> str:
    """``$FLWR_HOME/config.toml`` with one SuperLink connection named ``lab`` (the default)."""
    lines = ["[superlink]", 'default = "lab"', "", "[superlink.lab]", f'address = "{address}"']
    if root_certificates:
        lines.append(f"root-certificates = {json.dumps(str(Path(root_certificates).resolve()))}")
    else:
        lines.append("insecure = true")
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    return "lab"


def run_config(cfg, threads: int = 1, report: bool = True, node_timeout: float = 120.0, result_path: str = "",
               weights_path: str = "") -> dict:
    """The app's run config (keys: lab.federated.flower.common; defaults: app/pyproject.toml)."""
    return {CONFIG: config_to_run(cfg), RESULT: str(result_path), WEIGHTS: str(weights_path), THREADS: int(threads),
            REPORT: bool(report), NODE_TIMEOUT: float(node_timeout)}


def submit(env: dict, home: Path, run_cfg: dict, federation: dict | None = None, on_round=None,
           on_line=None) -> dict:
    """``flwr run`` the lab's app on the ``lab`` connection of ``home``; returns the record the ServerApp
    logged (``lab-record {...}``) or raises LabError with the most telling line of the run's log."""
    import tomli_w

    cfg_file = home / "run-config.toml"
    cfg_file.write_bytes(tomli_w.dumps(run_cfg).encode())
    cmd = [sys.executable, "-m", "flwr.cli.app", "run", str(APP_DIR), "lab", "--stream", "-c", str(cfg_file)]
    if federation:
        cmd += ["--federation-config", " ".join(f"{k}={v}" for k, v in federation.items())]
    done, tail, run_id = None, [], None
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL) as p:
        try:
            for line in p.stdout:
                if on_line is not None:
                    on_line(line)
                if ROUND_TAG in line:
                    row = json.loads(line[line.index(ROUND_TAG) + len(ROUND_TAG):])
                    if on_round is not None:
                        on_round(row["round"], row["rounds"], row)
                elif DONE_TAG in line:
                    done = json.loads(line[line.index(DONE_TAG) + len(DONE_TAG):])
                elif line.strip():
                    tail.append(line.strip())
                    if run_id is None and line.startswith("Successfully started run "):
                        run_id = line.split()[3]
        except KeyboardInterrupt:
            if run_id is not None:       # the run lives on the SuperLink: stop it there too
                subprocess.run([sys.executable, "-m", "flwr.cli.app", "stop", run_id, "lab"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False)
            raise
        finally:
            if p.poll() is None:
                p.terminate()
    if done is None:
        tail = tail[-400:]
        err = RayStartTimeout if any("timed out during startup" in line for line in tail) else LabError
        raise err(f"the Flower run did not finish: {_reason(tail)}")
    return done


ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


def _reason(lines: list) -> str:
    """The most telling line of a failed run's log. Flower logs a simulation's root cause first ("An
    exception occurred !! ...") and wraps it in generic errors; a ServerApp's traceback ends with its own
    exception line (the first such line is the root of a chain)."""
    lines = [ANSI.sub("", line).strip() for line in lines]
    for pick in ([ln for ln in lines if "An exception occur" in ln], [ln for ln in lines if EXC_LINE.match(ln)],
                 [ln for ln in lines if "LabError" in ln or "rror" in ln]):
        if pick:
            return pick[0][-300:]
    return lines[-1][-300:] if lines else "no output from flwr run"


class RayStartTimeout(LabError):
    """Ray gave up starting (its raylet must register within a fixed 30 s): a busy machine, not the run."""


def _python_path_env() -> dict:
    """Processes started from a checkout must import this checkout's ``lab`` (editable install or not)."""
    root = str(Path(__file__).resolve().parents[3])
    pp = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": root + (os.pathsep + pp if pp else "")}


CONNECT_TIMEOUT = 15.0


def preflight(cfg, engine: str, superlink: str | None = None, root_certificates: str | None = None,
              connect_timeout: float = CONNECT_TIMEOUT) -> None:
    """Every check that can fail before a process starts; for ``flower``, that the SuperLink answers.

    A SuperLink that is still starting refuses connections for a while, so a refused address is retried —
    but never longer than ``connect_timeout`` seconds."""
    check_engine_method(cfg, engine)
    if engine == "flower-sim":
        if superlink or root_certificates:
            raise LabError("superlink/root_certificates are only used with --engine flower")
        return
    if engine != "flower":
        raise LabError(f"engine must be one of flower-sim, flower here; got {engine!r}")
    if not superlink:
        raise LabError("superlink is required with --engine flower: HOST:PORT of a running SuperLink "
                       "(`python -m lab flower-local --nodes N` starts one on this machine)")
    address = check_address(superlink)
    if root_certificates and not Path(root_certificates).is_file():
        raise LabError(f"root_certificates must be a PEM file, got {root_certificates!r} (not found)")
    if not is_loopback(address) and not root_certificates:
        raise LabError(f"root_certificates is required for a SuperLink that is not on this machine ({address}): "
                       "Flower's insecure mode is for 127.0.0.1 only (see the README, 'Beyond one machine')")
    if not wait_healthy(address, connect_timeout, root_certificates):
        raise LabError(f"superlink {address} does not answer (no Flower SuperLink health reply within "
                       f"{connect_timeout:.0f} s); start one with `python -m lab flower-local --nodes {cfg.clients}`"
                       " or check the address")


def run_flower(cfg, engine: str, *, superlink: str | None = None, root_certificates: str | None = None,
               threads: int = 1, on_round=None, connect_timeout: float = CONNECT_TIMEOUT,
               node_timeout: float = 120.0, report: bool = True, weights_out: str | None = None, log=None,
               ray_attempts: int = 3) -> dict:
    """Run ``cfg`` on Flower and return the result record (the CLI's JSON, same keys as in-process).

    ``engine='flower-sim'``: start a simulation SuperLink here (Ray, one simulated SuperNode per client),
    run, stop it. ``engine='flower'``: submit to the SuperLink at ``superlink`` (HOST:PORT) whose SuperNodes
    serve partitions 0..clients-1 (``python -m lab flower-local --nodes N`` starts such a federation here).
    ``node_timeout``: how long the ServerApp waits for one SuperNode per client; ``weights_out``: the
    ServerApp also saves the final global weights there (a path on the SuperLink's host), as
    ``run_experiment(weights_out=...)`` does. ``ray_attempts``: Ray gives its raylet a fixed 30 s to start,
    which a loaded machine can miss; the run is then submitted again (nothing of it had started).
    """
    preflight(cfg, engine, superlink, root_certificates, connect_timeout)
    with LocalFlower(log) as fl:
        env = fl.env("cli")
        home = Path(env["FLWR_HOME"])
        federation = None
        if engine == "flower-sim":
            address = fl.start_superlink(simulation=True)
            federation = {"num-supernodes": cfg.clients}
        else:
            address = superlink
        write_connection(home, address, root_certificates)
        # no result-path: the ServerApp's host may be another machine; the record comes back in the run's log
        wpath = os.path.abspath(weights_out) if weights_out else ""
        rc = run_config(cfg, threads, report, node_timeout, weights_path=wpath)
        for attempt in range(1, ray_attempts + 1):
            try:
                return submit(env, home, rc, federation, on_round)
            except RayStartTimeout:
                if attempt == ray_attempts:
                    raise
                fl.log(f"Ray did not start within its 30 s on this busy machine; retrying ({attempt}/{ray_attempts})")
