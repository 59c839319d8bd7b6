"""Command line for the Flower engines (registered by :func:`lab.gcd.cli.register`).

- ``python -m lab fedgcd ... --engine flower-sim``: the run on Flower's simulation engine, started and stopped
  here; ``--engine flower --superlink HOST:PORT``: the run on a running SuperLink and its SuperNodes.
- ``python -m lab flower-local --nodes N [--port P]``: a SuperLink and N SuperNodes on 127.0.0.1 until Ctrl-C
  (or SIGTERM); everything it started is stopped and deleted on exit.

Nothing here imports flwr or torch at start-up: ``python -m lab --help`` stays fast.
"""
from __future__ import annotations

import signal
import sys
import time

from lab.utils import LabError, check_range

ENGINES = ("inprocess", "flower-sim", "flower")
DEFAULT_PORT = 9091


def add_engine_args(p) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", default="inprocess", help=f"one of {', '.join(ENGINES)} (default: inprocess)")
    g.add_argument("--superlink", default=None, metavar="HOST:PORT",
                   help="--engine flower: the SuperLink's address (`python -m lab flower-local` prints one)")
    g.add_argument("--root-certificates", default=None, metavar="CA.pem",
                   help="--engine flower: CA certificate of a TLS SuperLink (required unless on 127.0.0.1)")


def check_engine_args(a, cfg) -> None:
    """Before any work or output: one-line errors for the engine flags (and, for ``flower``, that the
    SuperLink answers within a bounded time)."""
    if a.engine not in ENGINES:
        raise LabError(f"engine must be one of {', '.join(ENGINES)}; got {a.engine!r}")
    if a.engine == "inprocess":
        if a.superlink or a.root_certificates:
            raise LabError("superlink/root_certificates are only used with --engine flower")
        return
    from lab.federated.flower.engine import preflight

    preflight(cfg, a.engine, a.superlink, a.root_certificates)


def _sigterm_as_interrupt():
    """SIGTERM ends like Ctrl-C: the `finally` blocks that stop Flower processes run."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    return signal.signal(signal.SIGTERM, handler)


def run_engine(cfg, a, on_round, bar=None) -> dict:
    """``--engine flower-sim|flower``: the record of the run, as ``run_experiment`` returns it in-process.
    ``bar``: the caller's progress bar, closed before an error line is printed (so the error starts a line)."""
    from tqdm import tqdm

    from lab.federated.flower.engine import run_flower

    def log(msg):
        tqdm.write(msg, file=sys.stderr)

    if a.engine == "flower-sim":
        log("starting Flower's simulation engine (Ray): its start-up takes 20-60 s before round 1")
    previous = _sigterm_as_interrupt()
    try:
        return run_flower(cfg, a.engine, superlink=a.superlink, root_certificates=a.root_certificates,
                          threads=a.threads, on_round=on_round, log=log)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        raise LabError("interrupted: the run was stopped and every Flower process this command started ended") \
            from None
    except LabError:
        if bar is not None:
            bar.close()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------------------------
# flower-local
# ------------------------------------------------------------------------------------------------------
def register(sub) -> None:
    p = sub.add_parser("flower-local", help="a Flower SuperLink and N SuperNodes on 127.0.0.1 (demo)",
                       description="Start a Flower SuperLink and N SuperNodes (node i serves partition i) on "
                                   "127.0.0.1 and keep them until Ctrl-C or SIGTERM; then stop them all.")
    p.add_argument("--nodes", type=int, required=True, help="number of SuperNodes = --clients of the runs (1-64)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"SuperLink port (default {DEFAULT_PORT})")
    p.set_defaults(func=run_local)


def run_local(a) -> int:
    from lab.federated.flower.engine import LocalFlower, port_in_use

    check_range("nodes", a.nodes, 1, 64, integer=True)
    check_range("port", a.port, 1024, 65535, integer=True)
    if port_in_use(a.port):
        raise LabError(f"port must be free: 127.0.0.1:{a.port} is in use (choose another with --port)")
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    stop_reason = "stopped"
    previous = _sigterm_as_interrupt()
    fl = LocalFlower(log=say)
    try:
        address = fl.start_superlink(port=a.port)
        fl.start_supernodes(a.nodes)
        print(f"SuperLink: {address}  ({a.nodes} SuperNodes; node i serves partition i of {a.nodes})", flush=True)
        print(f"run against it:  python -m lab fedgcd --method simgcd --clients {a.nodes} --rounds 10 "
              f"--engine flower --superlink {address} --out run.json", flush=True)
        say("Ctrl-C stops the SuperLink and every SuperNode")
        while fl.alive():
            time.sleep(0.5)
        stop_reason = f"a Flower process exited on its own ({fl.dead()})"
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping the SuperLink and SuperNodes ...")
        left = fl.stop()
        signal.signal(signal.SIGTERM, previous)
    if left:
        raise LabError(f"flower-local: could not clean up {', '.join(left)}")
    if stop_reason != "stopped":
        raise LabError(f"flower-local: {stop_reason}; everything it started was stopped")
    say("stopped: no Flower process, port or FLWR_HOME of this command is left")
    return 0
