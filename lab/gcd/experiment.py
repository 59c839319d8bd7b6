"""Run one federated GCD experiment from a :class:`FedGCDConfig` and return the result record.

data -> GCD split -> partition -> clients -> rounds (fit on clients, FedAvg on the server) -> evaluation.

Evaluation is the experimenter's oracle, outside the server: it holds the whole data set (it made the
partition) and scores the global model on the union of the clients' unlabelled training samples
(transductive, as in GCD) and on the held-out test set, with ONE Hungarian matching ("v2").
"""
from __future__ import annotations

import time

import numpy as np
import torch

from lab.data.images import load_dataset
from lab.data.partition import make_partition
from lab.data.split import gcd_split
from lab.federated.core import FedAvg, run_federated
from lab.gcd.client import GCDClient, get_shared, predict, set_shared
from lab.gcd.config import FedGCDConfig
from lab.gcd.metrics import cluster_acc_v2
from lab.gcd.models import GCDModel, ModelConfig, load_backbone, to_input
from lab.gcd.sskmeans import ss_kmeans
from lab.utils import LabError, data_path, get_device, set_seed

BACKBONE_FILE = "backbone_simclr.safetensors"
LAST_N = 3  # reported accuracy = mean of the last 3 evaluations


def build_model(cfg: FedGCDConfig, data, n_heads: int, device) -> GCDModel:
    in_shape = data.image_shape
    use_pretrained = cfg.backbone == "pretrained" and min(in_shape) >= 16
    model = GCDModel(ModelConfig(in_shape=in_shape, n_heads=n_heads))
    if use_pretrained:
        load_backbone(model, data_path(BACKBONE_FILE))
        model.freeze_prefix(True)
    return model.to(device)


def prepare(cfg: FedGCDConfig):
    """Data, split and partition for a config (shared by the runner, notebooks and dashboard)."""
    data = load_dataset(cfg.dataset)
    cfg.validate(n_samples=len(data.y_train))
    split = gcd_split(data.y_train, cfg.old_classes, cfg.labelled_fraction, seed=cfg.seed)
    part = make_partition(cfg.partition, data.y_train, cfg.clients, alpha=cfg.alpha,
                          min_size=min(cfg.min_client_size, len(data.y_train) // cfg.clients),
                          strata=split.labelled, seed=cfg.seed)
    return data, split, part


def n_heads_for(cfg: FedGCDConfig, data) -> int:
    if cfg.n_heads is not None:
        return cfg.n_heads
    if cfg.method == "fedlpa":
        return len(cfg.old_classes) + cfg.k_max_new
    return data.n_classes


class Evaluator:
    """Scores a model (or per-client models) on unlabelled train samples and the test set."""

    def __init__(self, cfg, data, split, part, device):
        self.cfg, self.data, self.split, self.device = cfg, data, split, device
        self.unl = np.flatnonzero(split.unlabelled)
        self.lab = np.flatnonzero(split.labelled)
        owner = np.empty(len(data.y_train), dtype=np.int64)
        for k, idx in enumerate(part.client_indices):
            owner[idx] = k
        self.owner = owner
        self.part = part
        self._cache = {}

    def _predict(self, model, name, x):
        """Predictions, reusing the frozen prefix's outputs across rounds (the prefix never changes)."""
        if not model.prefix_frozen:
            return predict(model, x, self.device)
        if name not in self._cache:
            self._cache[name] = model.prefix_features(to_input(x, self.device))
        return predict(model, None, self.device, prefix=self._cache[name])

    def _preds(self, model):
        """Cluster assignments for unlabelled train and test samples."""
        f_u, p_u = self._predict(model, "unl", self.data.x_train[self.unl])
        f_t, p_t = self._predict(model, "test", self.data.x_test)
        if self.cfg.method != "gcd":
            return p_u.argmax(1), p_t.argmax(1)
        f_l, _ = self._predict(model, "lab", self.data.x_train[self.lab])
        assign, cent = ss_kmeans(f_l, self.data.y_train[self.lab], f_u, k=self.data.n_classes, seed=self.cfg.seed)
        test = ((f_t[:, None, :] - cent[None]) ** 2).sum(-1).argmin(1)
        return assign, test

    def global_model(self, model) -> dict:
        pu, pt = self._preds(model)
        y_u, y_t = self.data.y_train[self.unl], self.data.y_test
        acc = cluster_acc_v2(y_u, pu, self.split.is_old(y_u), groups=self.owner[self.unl])
        tacc = cluster_acc_v2(y_t, pt, self.split.is_old(y_t))
        return {"acc_all": acc["all"], "acc_old": acc["old"], "acc_new": acc["new"],
                "test_acc_all": tacc["all"], "per_client_acc": [acc["groups"].get(k, float("nan"))
                                                                for k in range(self.part.n_clients)]}

    def local_models(self, models) -> dict:
        """Each client's own model on its own unlabelled samples (its own matching); mean over clients."""
        rows, tests = [], []
        for k, m in enumerate(models):
            mine = self.owner[self.unl] == k
            pu, pt = self._preds(m)
            y_u = self.data.y_train[self.unl][mine]
            rows.append(cluster_acc_v2(y_u, pu[mine], self.split.is_old(y_u)))
            tests.append(cluster_acc_v2(self.data.y_test, pt, self.split.is_old(self.data.y_test))["all"])
        mean = lambda key: float(np.nanmean([r[key] for r in rows]))  # noqa: E731
        return {"acc_all": mean("all"), "acc_old": mean("old"), "acc_new": mean("new"),
                "test_acc_all": float(np.mean(tests)), "per_client_acc": [r["all"] for r in rows]}


def make_clients(cfg, data, split, part, model_factory, device):
    cls = GCDClient
    if cfg.method == "fedlpa":
        from lab.gcd.fedlpa import FedLPAClient as cls
    objective = "contrastive" if cfg.method == "gcd" else "simgcd"
    clients = []
    for k, idx in enumerate(part.client_indices):
        clients.append(cls(k, data.x_train[idx], data.y_train[idx], split.labelled[idx], model_factory(),
                           cfg, old_classes=split.old_classes, objective=objective, device=device))
    return clients


def run_experiment(cfg: FedGCDConfig, on_round=None, device=None, weights_out: str | None = None) -> dict:
    """Run the configured method; return the result record (the CLI's JSON).

    ``weights_out``: also save the final global model's shared weights (safetensors) for figures that need a
    trained model (see :func:`lab.gcd.snapshots.client_view`)."""
    t0 = time.time()
    device = device or get_device()
    data, split, part = prepare(cfg)
    set_seed(cfg.seed)
    heads = n_heads_for(cfg, data)
    template = build_model(cfg, data, heads, device)
    init = {k: v.clone() for k, v in template.state_dict().items()}

    def factory():
        m = build_model(cfg, data, heads, device)
        m.load_state_dict(init)       # every client starts from the same initial model
        return m

    ev = Evaluator(cfg, data, split, part, device)
    history = []

    def record(rnd, metrics):
        row = {"round": rnd, **{k: metrics[k] for k in ("acc_all", "acc_old", "acc_new", "test_acc_all")}}
        history.append(row)
        if on_round is not None:
            on_round(rnd, cfg.rounds, row)

    k_est, prior_kl = None, None
    if cfg.method == "local":
        clients = make_clients(cfg, data, split, part, factory, device)
        weights = [get_shared(template) for _ in clients]
        models = [factory() for _ in clients]
        for rnd in range(1, cfg.rounds + 1):
            for k, c in enumerate(clients):
                weights[k] = c.fit(weights[k], {"round": rnd, "local_epochs": cfg.local_epochs}).weights
            if rnd % cfg.eval_every == 0 or rnd == cfg.rounds:
                for m, w in zip(models, weights):
                    set_shared(m, w)
                record(rnd, last := ev.local_models(models))
    else:
        if cfg.method == "central":
            # one client holding everything: the ceiling. Same code path, no partition skew.
            from lab.data.partition import Partition

            part_c = Partition([np.arange(len(data.y_train))], part.counts.sum(0, keepdims=True))
            clients = make_clients(cfg, data, split, part_c, factory, device)
        else:
            clients = make_clients(cfg, data, split, part, factory, device)
        strategy = FedAvg(cfg.client_fraction, cfg.local_epochs)
        evalm = build_model(cfg, data, heads, device)
        evalm.load_state_dict(init)
        last = {}

        def evaluate_fn(rnd, w):
            nonlocal last
            set_shared(evalm, w)
            last = ev.global_model(evalm)
            record(rnd, last)
            return {k: last[k] for k in ("acc_all", "acc_old", "acc_new", "test_acc_all")}

        final, fed_hist = run_federated(clients, strategy, get_shared(template), cfg.rounds, seed=cfg.seed,
                                    evaluate_fn=evaluate_fn, eval_every=cfg.eval_every)
        if weights_out:
            from lab.gcd.snapshots import save_weights

            save_weights(weights_out, final, cfg)
        if cfg.method == "fedlpa":
            k_est = [c.report()["k_est"] for c in clients]
            prior_kl = [c.report()["prior_kl"] for c in clients]
    tail = history[-LAST_N:]
    mean = lambda key: float(np.mean([h[key] for h in tail]))  # noqa: E731
    return {
        "method": cfg.method, "dataset": cfg.dataset, "clients": cfg.clients, "alpha": cfg.alpha,
        "rounds": cfg.rounds, "seed": cfg.seed, "backbone": cfg.backbone if min(data.image_shape) >= 16 else "scratch",
        "acc_all": mean("acc_all"), "acc_old": mean("acc_old"), "acc_new": mean("acc_new"),
        "test_acc_all": mean("test_acc_all"), "k_true": part.k_true(0.02), "k_est": k_est, "prior_kl": prior_kl,
        "per_client_acc": last.get("per_client_acc"), "client_sizes": part.sizes().tolist(),
        "seconds": round(time.time() - t0, 2), "history": history, "config": cfg.to_dict(),
        "device": str(device),
    }
