"""The Flower ServerApp: the lab's FedAvg over Flower messages, and the experimenter's measurement beside it.

``main(grid, context)`` does what :meth:`lab.gcd.experiment.Experiment.run` does in one process, with the
same objects: ``exp.strategy()`` picks the clients (``configure_fit`` with ``rng = default_rng(seed)``, one
stream across rounds) and averages (``aggregate_fit`` = the lab's float64 ``weighted_average``), and
``exp.evaluate(rnd, weights, ask)`` scores the global model after every ``eval_every`` rounds.

What is Flower-specific is small: Flower addresses *node ids*, the lab addresses *partitions*. A first
``query.partition`` message to every node learns the map (and checks that the nodes serve exactly the run's
partitions 0..n-1 under the same config), so that client sampling picks the same partitions as in-process,
and replies — which arrive in any order — are put in partition order. For federated k-means that order is
part of the result (k-means++ draws from the concatenated candidates); for averaging it keeps the sum's
order fixed by construction (the lab sums in float64, so the float32 result is in practice order-free).

The experimenter (``exp.evaluate``/``exp.record``: the true labels, the test set) lives in this process
because the lab measures every run; it is not part of the federated protocol. Its one Flower message is
``query.report``, FedLPA's discovery report for the record (``experimenter-report = false`` turns it off):
per-sample heads leave the node there, for measurement, never for training.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from lab.federated.core import FitRes
from lab.federated.flower import records
from lab.federated.flower.common import (DONE_TAG, NODE_TIMEOUT, REPORT, REPORT_MSG, RESULT, ROUND_TAG, THREADS,
                                         WEIGHTS, WHOAMI, check_engine_method, config_from_run)
from lab.utils import write_json_atomic

app = ServerApp()


@dataclass(frozen=True)
class Node:
    """What the server knows of a client: its partition id (``cid``, as in-process) and its Flower node id."""
    cid: int
    node_id: int


class Nodes:
    """The run's SuperNodes, one per partition, in partition order; sends a message to several, collects."""

    def __init__(self, grid: Grid, n: int, config_key: str, timeout: float):
        self.grid = grid
        deadline = time.time() + timeout
        ids = list(grid.get_node_ids())
        while len(ids) < n and time.time() < deadline:
            time.sleep(1.0)
            ids = list(grid.get_node_ids())
        if len(ids) < n:
            raise RuntimeError(f"the run needs {n} SuperNodes (one per client), {len(ids)} connected within "
                               f"{timeout:.0f} s")
        replies = self._ask([(i, WHOAMI, RecordDict()) for i in ids], "handshake")
        by_pid = {}
        for node_id, rep in replies.items():
            info = rep["node"]
            if str(info["config-key"]) != config_key:
                raise RuntimeError(f"node {node_id} built a different config ({info['config-key']} != {config_key})")
            pid = int(info["partition-id"])
            if pid in by_pid:
                raise RuntimeError(f"two SuperNodes serve partition {pid}: give each a distinct partition-id")
            by_pid[pid] = Node(pid, node_id)
        if sorted(by_pid) != list(range(n)):
            raise RuntimeError(f"SuperNodes serve partitions {sorted(by_pid)}, the run needs 0..{n - 1}")
        self.nodes = [by_pid[k] for k in range(n)]

    def _ask(self, sends, group: str) -> dict:
        """sends: [(node id, message type, content)] -> {node id: reply content}; a node's error is raised."""
        msgs = [Message(content, node_id, mtype, group_id=group) for node_id, mtype, content in sends]
        out = {}
        for rep in self.grid.send_and_receive(msgs):
            src = rep.metadata.src_node_id
            if rep.has_error():
                raise RuntimeError(f"node {src} failed: {rep.error.reason}")
            out[src] = rep.content
        if len(out) != len(msgs):
            raise RuntimeError(f"{group}: {len(out)} of {len(msgs)} nodes replied")
        return out

    def fit(self, rnd: int, weights: dict, chosen: list) -> list:
        """chosen: [(Node, round config)] from the lab's configure_fit -> FitRes list sorted by partition."""
        sends = [(node.node_id, "train", records.pack(weights=weights, config=cfg))
                 for node, cfg in chosen]
        replies = self._ask(sends, str(rnd))
        pid = {node.node_id: node.cid for node, _ in chosen}
        res = []
        for node_id in sorted(replies, key=pid.__getitem__):      # partition order, as in-process
            rd = replies[node_id]
            res.append(FitRes(records.take(rd, "weights"), int(records.take(rd, "fit")["num-examples"]),
                              records.take(rd, "metrics")))
        return res

    def ask_all(self, mtype: str, group: str, **parts) -> list:
        """One message to every node -> replies in partition order."""
        content = records.pack(**parts)
        replies = self._ask([(n.node_id, mtype, content) for n in self.nodes], group)
        return [replies[n.node_id] for n in self.nodes]


def _say(tag: str, obj) -> None:
    """One log line the launcher parses (ServerApp stdout is the run's log, streamed by `flwr run --stream`)."""
    print(tag + json.dumps(obj), flush=True)


@app.main()
def main(grid: Grid, context: Context) -> None:
    from lab.gcd.experiment import ACC_KEYS, Experiment

    t0 = time.time()
    rc = context.run_config
    torch.set_num_threads(int(rc.get(THREADS, 1)))
    cfg = config_from_run(rc)
    check_engine_method(cfg, "flower")
    exp = Experiment(cfg)
    nodes = Nodes(grid, exp.n_clients, cfg.key(), float(rc.get(NODE_TIMEOUT, 120.0)))
    strategy, rng = exp.strategy(), np.random.default_rng(cfg.seed)
    weights, history, last = exp.initial_weights(), [], {}

    def ask(w):
        def ask_(config):
            replies = nodes.ask_all("evaluate", f"eval-{rnd}", weights=w, config=dict(config))
            return [records.take(r, "reply") for r in replies]
        return ask_

    for rnd in range(1, cfg.rounds + 1):
        results = nodes.fit(rnd, weights, strategy.configure_fit(rnd, nodes.nodes, rng))
        weights = strategy.aggregate_fit(rnd, results, weights)
        if rnd % cfg.eval_every == 0 or rnd == cfg.rounds:
            last = exp.evaluate(rnd, weights, ask(weights))
            row = {"round": rnd, **{k: last[k] for k in ACC_KEYS}}
            history.append(row)
            _say(ROUND_TAG, {**row, "rounds": cfg.rounds, "train": strategy.aggregate_metrics(results)})
    reports = None
    if hasattr(exp.method.client_cls, "report") and bool(rc.get(REPORT, True)):
        reports = [records.take(r, "report") for r in nodes.ask_all(REPORT_MSG, "report")]
    rec = exp.record(history, last, time.time() - t0, reports)
    if str(rc.get(WEIGHTS, "")):
        from lab.gcd.snapshots import save_weights

        save_weights(str(rc[WEIGHTS]), weights, cfg)
    if str(rc.get(RESULT, "")):
        write_json_atomic(str(rc[RESULT]), rec)
    _say(DONE_TAG, rec)      # the record also travels in the run's log: the launcher may be on another host
