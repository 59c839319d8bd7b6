"""What the ServerApp and the ClientApp agree on: run-config keys, message names, building the Experiment."""
from __future__ import annotations

import json

from lab.gcd.config import FedGCDConfig
from lab.utils import LabError

# run config (pyproject.toml of the app: lab/federated/flower/app/; set per run with `flwr run -c`)
CONFIG = "fedgcd-config"          # the FedGCDConfig as JSON
RESULT = "result-path"            # where the ServerApp writes the record ("" = nowhere)
WEIGHTS = "weights-path"          # where it saves the final global weights (safetensors; "" = nowhere)
THREADS = "threads"               # torch CPU threads, in every process (same as the in-process --threads)
REPORT = "experimenter-report"    # ask FedLPA nodes for their discovery report at the end (measurement only)
NODE_TIMEOUT = "node-timeout"     # seconds the ServerApp waits for all SuperNodes to connect

# message types (ClientApp handlers)
WHOAMI = "query.partition"        # -> the node's partition-id / num-partitions (node config)
REPORT_MSG = "query.report"       # -> FedLPA's report(): the experimenter's oracle channel, see serverapp.py

# ServerApp log lines the launcher reads (lab.federated.flower.engine)
ROUND_TAG = "lab-round "          # + JSON history row, after every evaluation
DONE_TAG = "lab-record "          # + the result record as JSON, at the end

FEDERATED_ONLY = ("local", "central")


def config_to_run(cfg: FedGCDConfig) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True)


def config_from_run(run_config) -> FedGCDConfig:
    raw = str(run_config.get(CONFIG, "{}"))
    return FedGCDConfig.from_dict(json.loads(raw)).validate()


def check_engine_method(cfg: FedGCDConfig, engine: str) -> None:
    """The Flower engines run methods with a server; local/central have none (one process is all they need)."""
    if cfg.method in FEDERATED_ONLY:
        raise LabError(f"method {cfg.method!r} has no server to put on Flower; --engine {engine} runs simgcd, gcd "
                       f"or fedlpa (use --engine inprocess for {cfg.method})")
