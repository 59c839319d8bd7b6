"""The lab's federated GCD experiments on Flower (flwr 1.42): simulation engine and real deployments.

Same client code, same strategy, same numbers as the in-process loop (:mod:`lab.gcd.experiment`):

- :mod:`~lab.federated.flower.clientapp` — the ClientApp: builds ``Experiment(cfg).client(partition-id)`` for
  each message, keeps the client's state in ``Context.state``;
- :mod:`~lab.federated.flower.serverapp` — the ServerApp: the lab's FedAvg (partition-ordered replies, float64
  ``weighted_average``) and the experimenter's evaluation, writes the CLI's result record;
- :mod:`~lab.federated.flower.records` — arrays and scalars <-> Flower records (bit-exact);
- :mod:`~lab.federated.flower.common` — run-config keys and message names both apps share;
- :mod:`~lab.federated.flower.engine` — starts/stops a SuperLink (simulation or deployment) and SuperNodes
  on this machine, submits a run with ``flwr run`` and follows it;
- :mod:`~lab.federated.flower.cli` — ``python -m lab fedgcd --engine ...`` and ``python -m lab flower-local``.

The Flower App's metadata is ``lab/federated/flower/app/pyproject.toml``.
"""
