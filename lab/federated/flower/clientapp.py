"""The Flower ClientApp: one node = one data holder = the lab's client of its ``partition-id``.

Every message is handled by a client object built afresh (in a deployment every message even runs in a
fresh process): ``Experiment(cfg).client(pid)`` — the same constructor as the in-process engine, so the same
data, the same model and the same seeded random streams — then the node's ``Context.state`` is loaded into
it (``import_cache`` + ``set_state``: view bank, model, random streams, FedLPA's prior), the lab's ``fit`` or
``evaluate`` runs, and what the object now holds is stored back. ``Context.state`` is local to the node and
lives as long as the run: nothing of it is sent to the server.
"""
from __future__ import annotations

import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from lab.federated.flower import records
from lab.federated.flower.common import THREADS, config_from_run

STATE, CACHE = "lab.state", "lab.cache"     # Context.state keys

app = ClientApp()

# One Experiment (data, split, partition, initial model: read-only) per process and config. Simulation
# workers serve many nodes in turn; the client object itself is never cached, so no state leaks between them.
_EXPERIMENTS: dict = {}


def _experiment(context: Context):
    from lab.gcd.experiment import Experiment

    torch.set_num_threads(int(context.run_config.get(THREADS, 1)))
    cfg = config_from_run(context.run_config)
    key = cfg.key()
    if key not in _EXPERIMENTS:
        _EXPERIMENTS.clear()
        _EXPERIMENTS[key] = Experiment(cfg)
    return _EXPERIMENTS[key]


def _partition(context: Context, n_clients: int) -> int:
    try:
        pid, n = int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    except KeyError as e:
        raise ValueError(f"this SuperNode has no {e.args[0]!r} in its node config; start it with "
                         "--node-config \"partition-id=I num-partitions=N\"") from None
    if n != n_clients or not 0 <= pid < n:
        raise ValueError(f"node config partition-id={pid} num-partitions={n} does not fit a run with "
                         f"{n_clients} clients")
    return pid


def _client(context: Context):
    exp = _experiment(context)
    client = exp.client(_partition(context, exp.n_clients))
    if CACHE in context.state:
        client.import_cache(records.numpy(context.state[CACHE]))
    if STATE in context.state:
        client.set_state(records.numpy(context.state[STATE]))
    return client


def _keep(client, context: Context) -> None:
    context.state[STATE] = records.arrays(client.get_state())
    context.state[CACHE] = records.arrays(client.export_cache())


@app.query("partition")
def whoami(msg: Message, context: Context) -> Message:
    exp = _experiment(context)
    pid = _partition(context, exp.n_clients)
    return Message(RecordDict({"node": ConfigRecord({"partition-id": pid, "config-key": exp.cfg.key()})}),
                   reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    client = _client(context)
    res = client.fit(records.take(msg.content, "weights"), records.take(msg.content, "config"))
    _keep(client, context)
    return Message(records.pack(weights=res.weights, metrics=res.metrics,
                                fit={"num-examples": int(res.num_examples)}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    client = _client(context)
    out = client.evaluate(records.take(msg.content, "weights"), records.take(msg.content, "config"))
    _keep(client, context)
    return Message(records.pack(reply=out), reply_to=msg)


@app.query("report")
def report(msg: Message, context: Context) -> Message:
    client = _client(context)
    out = client.report()
    _keep(client, context)
    return Message(records.pack(report=out), reply_to=msg)
