"""One federated GCD experiment from a :class:`FedGCDConfig`: the objects, the in-process loop, the record.

data -> GCD split -> partition -> clients -> rounds (fit on clients, FedAvg on the server) -> evaluation.

:class:`Experiment` builds the pieces every engine shares — a client for a partition id, the initial
weights, the strategy, the experimenter's evaluation and the result record — and :func:`run_experiment`
drives them in one process. A Flower ClientApp/ServerApp (``lab.federated.flower``) drives the same objects.

Evaluation is the experimenter's oracle, outside the server: it holds the true labels (the clients hold only
the labels they may see) and scores the global model on the union of the clients' unlabelled training
samples (transductive, as in GCD) and on the held-out test set, with ONE Hungarian matching ("v2"). For a
method that clusters by federated semi-supervised k-means (FedAvg+GCD), the centroids come from the clients
through their ``evaluate`` calls; a pooled k-means on the same features is kept beside it as a reference.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from lab.data.images import load_dataset
from lab.data.partition import Partition, federate
from lab.federated.core import ClientProxy, FedAvg, run_federated
from lab.gcd.client import get_shared, predict, set_shared
from lab.gcd.config import BACKBONES, FedGCDConfig
from lab.gcd.methods import METHODS, POOLED_REFERENCE
from lab.gcd.metrics import cluster_acc_v2
from lab.gcd.models import GCDModel, ModelConfig, load_backbone, to_input
from lab.gcd.prior import prior_vs_truth_kl
from lab.gcd.sskmeans import FederatedSSKMeans, head_seeded_kmeans, nearest, ss_kmeans
from lab.utils import data_path, get_device, set_seed

LAST_N = 3  # reported accuracy = mean of the last 3 evaluations


def build_model(cfg: FedGCDConfig, data, n_heads: int, device) -> GCDModel:
    in_shape = data.image_shape
    bb = BACKBONES[cfg.backbone] if min(in_shape) >= 16 else None       # 8x8 digits: an MLP, from scratch
    model = GCDModel(ModelConfig(in_shape=in_shape, n_heads=n_heads, **({"widths": bb.widths} if bb else {})))
    if bb:
        load_backbone(model, data_path(bb.stem + ".safetensors"))
        model.freeze_prefix(True)
    return model.to(device)


def prepare(cfg: FedGCDConfig, data=None):
    """Data, split and partition for a config (shared by the runner, notebooks and dashboard).

    ``data``: an :class:`lab.data.images.ImageData`-like object to use instead of ``cfg.dataset`` (e.g. an
    upload; an optional ``users`` array enables the ``natural`` partition)."""
    given = data is not None
    data = load_dataset(cfg.dataset) if data is None else data
    # a data object (an upload) brings its own name, which is no built-in data set: check every other field
    (replace(cfg, dataset="digits") if given else cfg).validate(n_samples=len(data.y_train))
    split, part = federate(data.y_train, cfg, getattr(data, "users", None))
    return data, split, part


def n_heads_for(cfg: FedGCDConfig, data) -> int:
    return METHODS[cfg.method].n_heads(cfg, data.n_classes)


class Evaluator:
    """The experimenter's measurement: holds the true labels, scores cluster assignments."""

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

    def _score(self, pu, pt) -> dict:
        y_u, y_t = self.data.y_train[self.unl], self.data.y_test
        acc = cluster_acc_v2(y_u, pu, self.split.is_old(y_u), groups=self.owner[self.unl])
        tacc = cluster_acc_v2(y_t, pt, self.split.is_old(y_t))
        return {"acc_all": acc["all"], "acc_old": acc["old"], "acc_new": acc["new"], "test_acc_all": tacc["all"],
                "per_client_acc": [acc["groups"].get(k, float("nan")) for k in range(self.part.n_clients)]}

    def by_heads(self, model) -> dict:
        """Clusters = argmax of the classifier heads."""
        _, p_u = self._predict(model, "unl", self.data.x_train[self.unl])
        _, p_t = self._predict(model, "test", self.data.x_test)
        return self._score(p_u.argmax(1), p_t.argmax(1))

    def by_centroids(self, model, centroids) -> dict:
        """Clusters = nearest of the (federated) k-means centroids, on the model's features."""
        f_u, _ = self._predict(model, "unl", self.data.x_train[self.unl])
        f_t, _ = self._predict(model, "test", self.data.x_test)
        return self._score(nearest(f_u, centroids), nearest(f_t, centroids))

    def pooled_kmeans(self, model) -> dict:
        """Reference, not a federated method: semi-supervised k-means on the POOLED features of all clients."""
        f_u, _ = self._predict(model, "unl", self.data.x_train[self.unl])
        f_l, _ = self._predict(model, "lab", self.data.x_train[self.lab])
        assign, cent = ss_kmeans(f_l, self.data.y_train[self.lab], f_u, k=self.data.n_classes, seed=self.cfg.seed)
        f_t, _ = self._predict(model, "test", self.data.x_test)
        return self._score(assign, nearest(f_t, cent))

    def head_seeded(self, model) -> dict:
        """Semi-supervised k-means on the model's features seeded by its heads, K_hat read off the heads
        (:func:`lab.gcd.sskmeans.head_seeded_kmeans`). Computed pooled here, a measurement;
        :class:`lab.gcd.sskmeans.FederatedHeadSeeded` gets the same clusters from the clients' ``evaluate`` tasks
        (tested). ``k_hat``: how many clusters it kept."""
        f_u, p_u = self._predict(model, "unl", self.data.x_train[self.unl])
        f_l, _ = self._predict(model, "lab", self.data.x_train[self.lab])
        assign, cent, keep = head_seeded_kmeans(f_l, self.data.y_train[self.lab], f_u, p_u)
        f_t, _ = self._predict(model, "test", self.data.x_test)
        return {**self._score(assign, keep[nearest(f_t, cent)]), "k_hat": int(len(keep))}

    def local_models(self, models) -> dict:
        """Each client's own model on its own unlabelled samples (its own matching); mean over clients."""
        rows, tests = [], []
        for k, m in enumerate(models):
            mine = self.owner[self.unl] == k
            _, p_u = self._predict(m, "unl", self.data.x_train[self.unl])
            _, p_t = self._predict(m, "test", self.data.x_test)
            y_u = self.data.y_train[self.unl][mine]
            rows.append(cluster_acc_v2(y_u, p_u.argmax(1)[mine], self.split.is_old(y_u)))
            tests.append(cluster_acc_v2(self.data.y_test, p_t.argmax(1), self.split.is_old(self.data.y_test))["all"])
        mean = lambda key: float(np.nanmean([r[key] for r in rows]))  # noqa: E731
        return {"acc_all": mean("all"), "acc_old": mean("old"), "acc_new": mean("new"),
                "test_acc_all": float(np.mean(tests)), "per_client_acc": [r["all"] for r in rows]}


ACC_KEYS = ("acc_all", "acc_old", "acc_new", "test_acc_all")


class Experiment:
    """The objects of one run, shared by every engine (in-process loop, Flower simulation, Flower deployment).

    ``client(pid)`` builds the client of partition ``pid`` from its images and visible labels only;
    ``initial_weights()`` and ``strategy()`` are the server's start; ``evaluate(rnd, weights, ask)`` is the
    experimenter's measurement (``ask(config)`` queries every client's ``evaluate`` — needed by methods that
    cluster with federated k-means); ``record(...)`` assembles the result JSON.
    """

    def __init__(self, cfg: FedGCDConfig, device=None, data=None):
        self.cfg = cfg
        self.method = METHODS[cfg.method]
        self.device = device or get_device()
        self.data, self.split, self.part = prepare(cfg, data)
        set_seed(cfg.seed)
        self.heads = self.method.n_heads(cfg, self.data.n_classes)
        self.template = build_model(cfg, self.data, self.heads, self.device)
        self._init = {k: v.clone() for k, v in self.template.state_dict().items()}
        if self.method.topology == "central":      # one client holding everything: the ceiling
            self.train_part = Partition([np.arange(len(self.data.y_train))], self.part.counts.sum(0, keepdims=True))
        else:
            self.train_part = self.part
        self.evaluator = Evaluator(cfg, self.data, self.split, self.part, self.device)
        self._eval_model = None
        self._reference = []

    # --- clients -------------------------------------------------------------------------------------
    def model(self) -> GCDModel:
        m = build_model(self.cfg, self.data, self.heads, self.device)
        m.load_state_dict(self._init)              # every client starts from the same initial model
        return m

    @property
    def n_clients(self) -> int:
        return self.train_part.n_clients

    def visible_labels(self, pid: int) -> np.ndarray:
        """The labels client ``pid`` may see: its labelled samples' classes, -1 for every other sample."""
        idx = self.train_part.client_indices[pid]
        return np.where(self.split.labelled[idx], self.data.y_train[idx], -1)

    def client(self, pid: int):
        """The client of partition ``pid``: its images and the labels it may see (-1 elsewhere), nothing else."""
        idx = self.train_part.client_indices[pid]
        y_visible = self.visible_labels(pid)
        kw = {}
        if self.cfg.method == "fedlpa" and self.cfg.oracle_prior:
            kw["oracle_labels"] = self.data.y_train[idx]       # the ablation's deliberate leak, named
        return self.method.client_cls(pid, self.data.x_train[idx], y_visible, self.model(), self.cfg,
                                      old_classes=self.split.old_classes, objective=self.method.objective,
                                      device=self.device, **kw)

    def clients(self) -> list:
        return [self.client(k) for k in range(self.n_clients)]

    # --- server ----------------------------------------------------------------------------------------
    def initial_weights(self) -> dict:
        return get_shared(self.template)

    def strategy(self) -> FedAvg:
        return FedAvg(self.cfg.client_fraction, self.cfg.local_epochs)

    def kmeans(self) -> FederatedSSKMeans:
        return FederatedSSKMeans(self.data.n_classes, self.split.old_classes, seed=self.cfg.seed)

    # --- the experimenter ------------------------------------------------------------------------------
    def evaluate(self, rnd: int, weights: dict, ask=None) -> dict:
        """Score the global model after round ``rnd``: All/Old/New (+ test, per client)."""
        if self._eval_model is None:
            self._eval_model = self.model()
        set_shared(self._eval_model, weights)
        ev = self.evaluator
        if self.method.clusters == "ss-kmeans":
            if ask is None:
                raise ValueError(f"{self.cfg.method} clusters with federated k-means: evaluate needs `ask`")
            out = ev.by_centroids(self._eval_model, self.kmeans().run(ask))
            self._reference.append(ev.pooled_kmeans(self._eval_model))
            return out
        return ev.by_heads(self._eval_model)

    def discovery_report(self, reports: list) -> dict:
        """K_hat and the prior's KL to the truth per client, from each FedLPA client's report."""
        k_est, kl = [], []
        n_cls = self.data.n_classes
        for pid, rep in enumerate(reports):
            y = self.data.y_train[self.train_part.client_indices[pid]]
            k_est.append(rep["k_est"])
            kl.append(prior_vs_truth_kl(y, rep["heads"], rep["prior"], n_cls))
        return {"k_est": k_est, "prior_kl": kl}

    # --- the in-process engine ---------------------------------------------------------------------------
    def run(self, on_round=None, weights_out: str | None = None, return_weights: bool = False):
        """Drive all rounds in this process; see :func:`run_experiment`."""
        t0 = time.time()
        cfg = self.cfg
        history, last = [], {}

        def log(rnd, metrics):
            nonlocal last
            last = metrics
            row = {"round": rnd, **{k: metrics[k] for k in ACC_KEYS}}
            history.append(row)
            if on_round is not None:
                on_round(rnd, cfg.rounds, row)
            return row

        clients = self.clients()
        if self.method.topology == "local":          # no server: every client trains its own model
            weights = [self.initial_weights() for _ in clients]
            models = [self.model() for _ in clients]
            for rnd in range(1, cfg.rounds + 1):
                for k, c in enumerate(clients):
                    weights[k] = c.fit(weights[k], {"round": rnd, "local_epochs": cfg.local_epochs}).weights
                if rnd % cfg.eval_every == 0 or rnd == cfg.rounds:
                    for m, w in zip(models, weights):
                        set_shared(m, w)
                    log(rnd, self.evaluator.local_models(models))
            final = weights
        else:
            proxies = [ClientProxy(c) for c in clients]

            def evaluate_fn(rnd, w):
                return log(rnd, self.evaluate(rnd, w, lambda config: [p.evaluate(w, dict(config)) for p in proxies]))

            final, _ = run_federated(proxies, self.strategy(), self.initial_weights(), cfg.rounds, seed=cfg.seed,
                                     evaluate_fn=evaluate_fn, eval_every=cfg.eval_every)
            if weights_out:
                from lab.gcd.snapshots import save_weights

                save_weights(weights_out, final, cfg)
        reports = [c.report() for c in clients] if hasattr(clients[0], "report") else None
        rec = self.record(history, last, time.time() - t0, reports)
        return (rec, final) if return_weights else rec

    def record(self, history: list, last: dict, seconds: float, reports: list | None = None) -> dict:
        """The result JSON (the CLI's record; identical keys on every engine)."""
        tail = history[-LAST_N:]
        mean = lambda rows, key: float(np.mean([h[key] for h in rows]))  # noqa: E731
        found = self.discovery_report(reports) if reports else {"k_est": None, "prior_kl": None}
        cfg, data = self.cfg, self.data
        rec = {
            "method": cfg.method, "display_name": self.method.display_name, "federated": self.method.federated,
            "dataset": cfg.dataset, "clients": cfg.clients, "alpha": cfg.alpha, "rounds": cfg.rounds,
            "seed": cfg.seed, "backbone": cfg.backbone if min(data.image_shape) >= 16 else "scratch",
            **{k: mean(tail, k) for k in ACC_KEYS}, "k_true": self.part.k_true(0.02), **found,
            "per_client_acc": last.get("per_client_acc"), "client_sizes": self.part.sizes().tolist(),
            "seconds": round(seconds, 2), "history": history, "config": cfg.to_dict(), "device": str(self.device),
        }
        if self._reference:
            ref = self._reference[-LAST_N:]
            rec["pooled_reference"] = {"name": POOLED_REFERENCE, **{k: mean(ref, k) for k in ACC_KEYS}}
        return rec


def run_experiment(cfg: FedGCDConfig, on_round=None, device=None, weights_out: str | None = None,
                   data=None, return_weights: bool = False):
    """Run the configured method in this process; return the result record (the CLI's JSON).

    ``on_round(rnd, rounds, row)`` after every evaluation (tqdm in the CLI, st.progress in the dashboard);
    ``weights_out``: also save the final global model's shared weights (safetensors) for figures that need a
    trained model (see :func:`lab.gcd.snapshots.client_view`); ``return_weights``: return ``(record, final
    weights)`` (a list of per-client weights for local training); ``data``: see :func:`prepare`."""
    return Experiment(cfg, device, data).run(on_round, weights_out, return_weights)
