"""A GCD client: owns its images and the labels it is allowed to see, trains the shared model locally.

A client is built from its images and its *visible* labels only (``-1`` where unlabelled): the true classes
of its unlabelled samples are held by the experimenter's evaluator, never by the client, so no training code
can read them (tested).

Only ``fit`` and ``evaluate`` are called from outside (through :class:`lab.federated.core.ClientProxy`, or
a Flower ClientApp). ``fit`` returns the shared weights, a sample count and scalar training metrics: no
images, labels, features, priors or prototypes leave the client. ``evaluate`` answers the tasks in
:attr:`GCDClient.EVALUATE`: a confidence check, the two messages of federated semi-supervised k-means
(per-cluster feature sums and counts, see :mod:`lab.gcd.sskmeans`) and the first message of the head-seeded
readout (per-head sums and counts).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from lab.federated.core import FitRes
from lab.gcd import sskmeans
from lab.gcd.augment import augment
from lab.gcd.losses import simgcd_loss, teacher_temperature
from lab.gcd.models import GCDModel, to_input


def get_shared(model: GCDModel) -> dict:
    """The weights that travel: everything not in a frozen backbone prefix (params + BN buffers)."""
    frozen = set()
    if getattr(model, "_prefix_frozen", False):
        for i, _ in enumerate(model.backbone.frozen_prefix()):
            frozen.add(f"backbone.blocks.{i}.")
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()
            if not any(k.startswith(f) for f in frozen)}


def set_shared(model: GCDModel, weights: dict) -> None:
    sd = model.state_dict()
    for k, v in weights.items():
        sd[k].copy_(torch.as_tensor(v))


def cosine_lr(base: float, rnd: int, rounds: int, floor: float = 0.1) -> float:
    """Cosine decay from base to floor*base over the rounds (SimGCD anneals over epochs)."""
    t = (rnd - 1) / max(1, rounds - 1)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


class GCDClient:
    """One client of FedAvg+SimGCD (``objective='simgcd'``) or FedAvg+GCD (``objective='contrastive'``)."""

    def __init__(self, cid: int, x, y_visible, model: GCDModel, cfg, *, old_classes,
                 objective: str = "simgcd", device=None):
        self.cid = cid
        self._x = x                                         # (n, H, W) uint8: never leaves
        self._y_visible = np.asarray(y_visible, np.int64)   # labels this client may use, -1 elsewhere
        self._labelled = self._y_visible >= 0
        self._model = model
        self._cfg = cfg
        self._objective = objective
        self._old = np.asarray(old_classes)
        self._device = device or torch.device("cpu")
        self._gen = torch.Generator().manual_seed(cfg.seed * 1000 + cid)
        self._rng = np.random.default_rng(cfg.seed * 1000 + cid)
        self._bank = None    # (A, n, C, h, w) fp16: augmented views through the frozen prefix
        self._clean = None   # (n, C, h, w) fp16: un-augmented images through the frozen prefix
        self._view = None    # (weights digest, (features, probs)) of the last local_view

    # --- state that must survive between rounds (Flower keeps it in Context.state) ------------------
    def get_state(self) -> dict:
        """The client's evolving state as plain arrays/ints: its two random streams (and a subclass's own)."""
        return {"rng": np.frombuffer(pickle_free_state(self._rng), dtype=np.uint8).copy(),
                "gen": self._gen.get_state().numpy().copy()}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned (a fresh process continues exactly where the last stopped)."""
        set_pickle_free_state(self._rng, bytes(np.asarray(state["rng"], np.uint8)))
        self._gen.set_state(torch.from_numpy(np.asarray(state["gen"], np.uint8).copy()))

    def export_cache(self) -> dict:
        """What this object keeps between calls beyond :meth:`get_state`, as numpy arrays: the frozen-prefix
        outputs (``clean``) and the view bank (``bank``, drawn ONCE from the torch stream, on first use), the
        last local view (``view_*``, keyed by a weights digest) and the model's current shared weights
        (``model/<name>``: a FedLPA client that never reached discovery runs it on these in ``report``).

        A process that handles one message and exits (a Flower node) imports this instead of rebuilding: a
        rebuilt bank would draw from a stream that has already moved on, and the numbers would drift."""
        out = {f"model/{k}": v for k, v in get_shared(self._model).items()}
        if self._clean is not None:
            out["clean"] = self._clean.cpu().numpy()
        if self._bank is not None:
            out["bank"] = self._bank.cpu().numpy()
        if self._view is not None:
            key, (feats, probs) = self._view
            out.update(view_key=np.frombuffer(key.encode(), np.uint8).copy(), view_feats=feats, view_probs=probs)
        return out

    def import_cache(self, cache: dict) -> None:
        """Restore what :meth:`export_cache` returned (on a client built for the same config and partition)."""
        model = {k[len("model/"):]: v for k, v in cache.items() if k.startswith("model/")}
        if model:
            set_shared(self._model, model)
        if "clean" in cache:
            self._clean = torch.as_tensor(np.asarray(cache["clean"])).to(self._device)
        if "bank" in cache:
            self._bank = torch.as_tensor(np.asarray(cache["bank"])).to(self._device)
        if "view_key" in cache:
            key = bytes(np.asarray(cache["view_key"], np.uint8)).decode()
            self._view = (key, (np.asarray(cache["view_feats"]), np.asarray(cache["view_probs"])))

    def _prepare_cache(self):
        """With a frozen prefix, push A augmented views of every image through it once. Each round then
        draws two distinct views per image from this bank and runs only the trainable part: ~2.5x faster
        rounds on a CPU, at the price of A (not unlimited) augmentations per image."""
        m, A = self._model, self._cfg.view_bank
        if not m.prefix_frozen or self._clean is not None:
            return
        x = to_input(self._x, self._device)
        self._clean = m.prefix_features(x)
        if A >= 2:
            self._bank = torch.stack([m.prefix_features(self._augment(x)) for _ in range(A)])

    def _augment(self, x):
        if min(x.shape[-2:]) < 16:    # 8x8 digits: crops and erasing would destroy the glyph
            return augment(x, self._gen, min_scale=0.8, jitter=0.2, erase_p=0.0)
        return augment(x, self._gen)

    @property
    def n(self) -> int:
        return len(self._x)

    # --- hooks a subclass (FedLPA) overrides -------------------------------------------------------
    def prior(self, rnd: int):
        """The target of the batch-mean alignment term; None = uniform (SimGCD)."""
        return None

    def before_training(self, rnd: int, config: dict) -> dict:
        return {}

    # --- the two calls the server may make --------------------------------------------------------
    def fit(self, weights: dict, config: dict) -> FitRes:
        cfg, model, dev = self._cfg, self._model, self._device
        set_shared(model, weights)
        self._prepare_cache()
        rnd = int(config["round"])
        extra = self.before_training(rnd, config)
        prior = self.prior(rnd)
        prior_t = None if prior is None else torch.as_tensor(prior, dtype=torch.float32, device=dev)
        lr = cosine_lr(cfg.learning_rate, rnd, cfg.rounds)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-5)
        t_temp = teacher_temperature(rnd - 1, cfg.teacher_warmup_rounds)
        model.train()
        logs, nb = {}, 0
        for _ in range(int(config.get("local_epochs", 1))):
            perm = self._rng.permutation(self.n)
            for s in range(0, self.n, cfg.batch_size):
                idx = perm[s:s + cfg.batch_size]
                if len(idx) < 2:
                    continue
                if self._bank is not None:
                    A = self._bank.shape[0]
                    a1 = self._rng.integers(0, A, len(idx))
                    a2 = (a1 + self._rng.integers(1, A, len(idx))) % A
                    h = torch.cat([self._bank[a1, idx], self._bank[a2, idx]]).float()  # (2B, C, h, w)
                    _, z, logits = model.from_prefix(h)
                else:
                    x = to_input(self._x[idx], dev)
                    views = torch.cat([self._augment(x), self._augment(x)])     # (2B, 1, H, W)
                    _, z, logits = model(views)
                yv = torch.as_tensor(self._y_visible[idx], device=dev)
                lab = yv >= 0
                loss, parts = simgcd_loss(
                    logits, z, yv.clamp_min(0), lab, teacher_temp=t_temp, lam=cfg.lam,
                    memax_weight=cfg.memax_weight, prior=prior_t, prior_weight=cfg.lpa_weight,
                    prior_form=cfg.lpa_form, cluster=self._objective == "simgcd")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for k, v in parts.items():
                    logs[k] = logs.get(k, 0.0) + v
                nb += 1
        metrics = {k: v / max(nb, 1) for k, v in logs.items()}
        metrics.update(extra)
        return FitRes(get_shared(model), self.n, metrics)

    def local_view(self):
        """Features and predictions of the current model on this client's clean images (stays local)."""
        self._prepare_cache()
        return predict(self._model, self._x, self._device, prefix=self._clean)

    def _view_of(self, weights: dict):
        """local_view() under ``weights``, cached by a digest of the weights (k-means asks many times)."""
        key = weights_digest(weights)
        if self._view is None or self._view[0] != key:
            set_shared(self._model, weights)
            self._view = (key, self.local_view())
        return self._view[1]

    # --- evaluate: tasks the server may ask for (one table, Flower's configure_evaluate sends the task) --
    def _confidence(self, feats, probs, config) -> dict:
        return {"mean_confidence": float(probs.max(1).mean()), "num_examples": self.n}

    def _kmeans_init(self, feats, probs, config) -> dict:
        return sskmeans.client_init_stats(feats, self._y_visible, int(config["k"]), seed=int(config.get("seed", 0)))

    def _kmeans_step(self, feats, probs, config) -> dict:
        ids = config.get("ids")
        return sskmeans.client_step_stats(feats, self._y_visible, np.asarray(config["centroids"]),
                                          None if ids is None else np.asarray(ids))

    def _heads_init(self, feats, probs, config) -> dict:
        return sskmeans.client_head_stats(feats, self._y_visible, probs)

    EVALUATE = {"confidence": _confidence, "kmeans-init": _kmeans_init, "kmeans-step": _kmeans_step,
                "heads-init": _heads_init}

    def evaluate(self, weights: dict, config: dict) -> dict:
        """Answer ``config["task"]`` (default ``"confidence"``) under ``weights``; see :attr:`EVALUATE`."""
        task = config.get("task", "confidence")
        if task not in self.EVALUATE:
            raise ValueError(f"unknown evaluate task {task!r}; one of {sorted(self.EVALUATE)}")
        feats, probs = self._view_of(weights)
        return self.EVALUATE[task](self, feats, probs, config)


def weights_digest(weights: dict) -> str:
    """A short digest of a weights dict (names, shapes and bytes), to cache what a model computed."""
    import hashlib

    h = hashlib.sha1()
    for k in sorted(weights):
        a = np.ascontiguousarray(weights[k])
        h.update(k.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def pickle_free_state(rng: np.random.Generator) -> bytes:
    """A numpy Generator's state as JSON bytes (PCG64 state is ints only: no pickle needed)."""
    import json

    return json.dumps(rng.bit_generator.state).encode()


def set_pickle_free_state(rng: np.random.Generator, raw: bytes) -> None:
    import json

    rng.bit_generator.state = json.loads(raw.decode())


@torch.no_grad()
def predict(model: GCDModel, x_uint8, device, batch: int = 1024, prefix=None):
    """(features (N, d) L2-normalised, probabilities (N, K) at temperature 0.1) as numpy.

    ``prefix``: precomputed frozen-prefix outputs of the same images (skips the frozen blocks)."""
    model.eval()
    feats, probs = [], []
    n = len(prefix) if prefix is not None else len(x_uint8)
    for s in range(0, n, batch):
        if prefix is not None:
            f, _, logits = model.from_prefix(prefix[s:s + batch].float())
        else:
            f, _, logits = model(to_input(x_uint8[s:s + batch], device))
        feats.append(torch.nn.functional.normalize(f, dim=1).cpu())
        probs.append(torch.softmax(logits / 0.1, dim=1).cpu())
    model.train()
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()
