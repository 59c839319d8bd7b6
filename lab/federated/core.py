"""The federated loop as explicit hooks (Flower's shape): clients ``fit``/``evaluate``; a strategy
``configure_fit``/``aggregate_fit``; an in-process runner that drives rounds.

The runner only ever holds :class:`ClientProxy` objects, which expose a client's id and its two calls; a
client's arrays live in the client object behind the proxy. What the server receives is exactly what ``fit``
returns: weights, a sample count and scalar metrics. In one process this is a convention (see ClientProxy);
across Flower processes it is a fact.

Weights travel as ``dict[str, numpy.ndarray]`` (name -> array), which maps one-to-one onto Flower's NDArrays
(``list(weights.values())`` with a fixed key order), so a Flower ClientApp/ServerApp can wrap these same
objects unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

Weights = dict  # str -> np.ndarray


@dataclass
class FitRes:
    weights: Weights
    num_examples: int
    metrics: dict = field(default_factory=dict)


class Client(Protocol):
    cid: int

    def fit(self, weights: Weights, config: dict) -> FitRes: ...

    def evaluate(self, weights: Weights, config: dict) -> dict: ...


class ClientProxy:
    """What the in-process server holds: a client id and two calls.

    Attribute access from the proxy does not lead to the client: no ``__dict__``, read-only slots, and
    ``proxy.fit.__self__`` is the proxy itself. That is all one Python process can promise — the garbage
    collector (``gc.get_referents``) and closures still reach the client (``tests/test_client_isolation.py``
    shows both). The guarantee that a server cannot touch client data is the process boundary of the Flower
    engine (``lab.federated.flower``), not this class.
    """

    __slots__ = ("cid", "_call")

    def __init__(self, client):
        calls = {"fit": client.fit, "evaluate": client.evaluate}
        object.__setattr__(self, "cid", client.cid)
        object.__setattr__(self, "_call", lambda name, weights, config: calls[name](weights, config))

    def fit(self, weights: Weights, config: dict) -> FitRes:
        return self._call("fit", weights, config)

    def evaluate(self, weights: Weights, config: dict) -> dict:
        return self._call("evaluate", weights, config)

    def __setattr__(self, *_):
        raise AttributeError("ClientProxy is read-only")


def weighted_average(results: list) -> Weights:
    """FedAvg: sum_k n_k w_k / sum_k n_k, key by key (float math in float64, cast back)."""
    total = float(sum(r.num_examples for r in results))
    if total <= 0:
        raise ValueError("no examples in this round's results")
    keys = results[0].weights.keys()
    out = {}
    for k in keys:
        ref = results[0].weights[k]
        if not np.issubdtype(ref.dtype, np.floating):  # e.g. BatchNorm's num_batches_tracked: keep the max
            out[k] = np.max([r.weights[k] for r in results], axis=0).astype(ref.dtype)
            continue
        acc = np.zeros(ref.shape, dtype=np.float64)
        for r in results:
            acc += (r.num_examples / total) * r.weights[k]
        out[k] = acc.astype(ref.dtype)
    return out


class FedAvg:
    """Sample a fraction of clients each round, send them the global weights and a round config, average
    what comes back weighted by sample counts (McMahan et al. 2017)."""

    def __init__(self, fraction_fit: float = 1.0, local_epochs: int = 1, extra_config: dict | None = None):
        self.fraction_fit = fraction_fit
        self.local_epochs = local_epochs
        self.extra_config = dict(extra_config or {})

    def configure_fit(self, rnd: int, clients: list, rng: np.random.Generator):
        m = max(1, int(round(self.fraction_fit * len(clients))))
        chosen = sorted(rng.choice(len(clients), m, replace=False))
        cfg = {"round": rnd, "local_epochs": self.local_epochs, **self.extra_config}
        return [(clients[i], dict(cfg)) for i in chosen]

    def aggregate_fit(self, rnd: int, results: list, current: Weights) -> Weights:
        return weighted_average(results)

    def aggregate_metrics(self, results: list) -> dict:
        """Sample-weighted mean of each scalar metric the clients reported."""
        total = sum(r.num_examples for r in results)
        keys = set().union(*(r.metrics.keys() for r in results))
        return {k: float(sum(r.metrics.get(k, 0.0) * r.num_examples for r in results) / total) for k in sorted(keys)
                if all(isinstance(r.metrics.get(k, 0.0), (int, float)) for r in results)}


def run_federated(clients: list, strategy, initial: Weights, rounds: int, *, seed: int = 0,
                  evaluate_fn: Callable | None = None, eval_every: int = 1,
                  on_round: Callable | None = None):
    """Drive ``rounds`` rounds. Returns (final weights, history).

    ``evaluate_fn(rnd, weights) -> dict`` is the experimenter's measurement of the global model (the lab's
    oracle, outside the server). ``on_round(rnd, rounds, record)`` is called after every round (tqdm in the
    CLI, st.progress in the dashboard).
    """
    proxies = [c if isinstance(c, ClientProxy) else ClientProxy(c) for c in clients]
    rng = np.random.default_rng(seed)
    weights, history = initial, []
    for rnd in range(1, rounds + 1):
        results = [proxy.fit(weights, cfg) for proxy, cfg in strategy.configure_fit(rnd, proxies, rng)]
        weights = strategy.aggregate_fit(rnd, results, weights)
        record = {"round": rnd, "train": strategy.aggregate_metrics(results)}
        if evaluate_fn is not None and (rnd % eval_every == 0 or rnd == rounds):
            record.update(evaluate_fn(rnd, weights))
        history.append(record)
        if on_round is not None:
            on_round(rnd, rounds, record)
    return weights, history
