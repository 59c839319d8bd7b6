"""Trained models as files, and what a teaching figure needs from them.

A *snapshot* is the shared weights of a finished run plus the :class:`FedGCDConfig` that made them, saved as
safetensors (no pickle). From a snapshot (or the pretrained backbone alone) this module rebuilds one client's
view of its data (:func:`client_view`), reads each head as a class with the evaluation's matching
(:func:`head_classes`) and reruns a FedLPA client's discovery on it (:func:`snapshot_client`). The dashboard
caches these calls; notebooks call them directly.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import torch

from lab.gcd.client import predict, set_shared
from lab.gcd.config import DISCOVERY_FIELDS, FedGCDConfig
from lab.gcd.discovery import PRIORS
from lab.gcd.experiment import build_model, n_heads_for, prepare, run_experiment
from lab.gcd.models import to_input
from lab.utils import LabError, data_path, get_device, set_seed

SNAPSHOT_DIR = "snapshots"
#: config fields older snapshots carry that runs no longer have (the discovery rule replaced them: issue 9)
RETIRED_KEYS = ("sim_floor", "use_confidence")
#: unlabelled samples used to read heads as classes (seeded subsample, keeps the dashboard interactive)
MATCH_SAMPLES = 1500


def save_weights(path: str, weights: dict, cfg: FedGCDConfig) -> None:
    """Shared weights + the config that made them, as safetensors (no pickle), written atomically."""
    from safetensors.torch import save_file

    tmp = path + ".tmp"
    save_file({k: torch.as_tensor(v).contiguous() for k, v in weights.items()}, tmp,
              metadata={"config": json.dumps(cfg.to_dict())})
    os.replace(tmp, path)


def load_weights(path: str):
    """(weights dict of numpy arrays, FedGCDConfig) from :func:`save_weights`."""
    from safetensors import safe_open

    with safe_open(path, framework="np") as f:
        stored = json.loads(f.metadata()["config"])
        cfg = FedGCDConfig.from_dict({k: v for k, v in stored.items() if k not in RETIRED_KEYS})
        return {k: f.get_tensor(k) for k in f.keys()}, cfg


def snapshot_paths(folder: str | None = None) -> dict:
    """Trained models: stem -> path (``folder``, default the committed ``data/snapshots/``)."""
    import glob

    folder = folder or data_path(SNAPSHOT_DIR)
    return {os.path.splitext(os.path.basename(p))[0]: p
            for p in sorted(glob.glob(os.path.join(str(folder), "*.safetensors")))}


def load_snapshot(name: str = "simgcd_alpha0.1_seed0", fallback_rounds: int = 3, on_round=None):
    """(weights, config) of a committed trained model under ``data/snapshots/``. In a checkout without it,
    train a short FedAvg+SimGCD run (alpha 0.1) instead, so teaching material still runs."""
    import tempfile

    path = data_path(SNAPSHOT_DIR, f"{name}.safetensors")
    if not os.path.exists(path):
        path = os.path.join(tempfile.mkdtemp(), "fallback.safetensors")
        run_experiment(FedGCDConfig(method="simgcd", alpha=0.1, rounds=fallback_rounds, view_bank=2),
                       on_round=on_round, weights_out=path)
    return load_weights(path)


def _model_for(cfg: FedGCDConfig, data, weights: dict | None, device):
    heads = n_heads_for(cfg, data) if weights is None else int(weights["head.weight"].shape[0])
    model = build_model(cfg, data, heads, device)
    if weights is not None:
        set_shared(model, weights)
    return model


def client_view(cfg: FedGCDConfig, client_id: int, weights: dict | None = None, device=None) -> dict:
    """One client's data seen through a model (pretrained backbone + initial heads if ``weights`` is None).

    For teaching figures (notebooks, dashboard): returns images, true labels, the labelled mask and visible
    labels, L2-normalised features and predictions at temperature 0.1, plus old classes and heads."""
    device = device or get_device()
    data, split, part = prepare(cfg)
    if not 0 <= client_id < part.n_clients:
        raise LabError(f"client must be in [0, {part.n_clients - 1}], got {client_id}")
    set_seed(cfg.seed)
    model = _model_for(cfg, data, weights, device)
    idx = part.client_indices[client_id]
    feats, probs = predict(model, data.x_train[idx], device)
    prefix = None
    if model.prefix_frozen:                 # what FedLPA's discovery builds its graph on (lab.gcd.discovery)
        prefix = model.prefix_features(to_input(data.x_train[idx], device)).float().cpu().numpy()
    lab = split.labelled[idx]
    y = data.y_train[idx]
    return {"index": idx, "images": data.x_train[idx], "y_true": y, "labelled": lab,
            "y_visible": np.where(lab, y, -1), "features": feats, "probs": probs, "prefix_features": prefix,
            "old_classes": split.old_classes, "class_names": data.class_names, "counts": part.counts,
            "k_true": part.k_true(0.02)}


def head_classes(weights: dict, cfg: FedGCDConfig, n_samples: int = MATCH_SAMPLES) -> np.ndarray:
    """Each head read as a class: ONE Hungarian matching of predicted heads to true classes on unlabelled
    training samples (the evaluation's "v2" matching, on a seeded subsample of ``n_samples``); -1 for heads
    left unmatched. An oracle view for figures: it reads the true labels."""
    from lab.gcd.metrics import hungarian_map

    cpu = torch.device("cpu")
    data, split, _ = prepare(cfg)
    model = _model_for(cfg, data, weights, cpu)
    unl = np.flatnonzero(split.unlabelled)
    unl = np.sort(np.random.default_rng(0).choice(unl, min(len(unl), n_samples), replace=False))
    _, probs = predict(model, data.x_train[unl], cpu)
    return hungarian_map(data.y_train[unl], probs.argmax(1), n_pred=model.cfg.n_heads, n_true=data.n_classes)


def to_class_space(p_heads, head_class, n_classes: int) -> np.ndarray:
    """Sum a distribution over heads into classes (+ a last bin for unmatched heads)."""
    out = np.zeros(n_classes + 1)
    for h, v in enumerate(np.asarray(p_heads, dtype=float)):
        out[head_class[h] if head_class[h] >= 0 else n_classes] += v
    return out


def snapshot_client(weights: dict, cfg: FedGCDConfig, client: int) -> dict:
    """A client seen through a snapshot: its mean prediction and, as the FedLPA client computes it, the
    InfoMap prior (CLSD graph -> communities -> heads -> smoothed histogram) with the snapshot's settings
    (a FedLPA snapshot's own discovery settings; today's defaults for any other method's snapshot); ``priors``:
    each rule of :data:`lab.gcd.discovery.PRIORS` on that same discovery (``prior_rule``: the one in use)."""
    from lab.gcd.fedlpa import FedLPAClient

    cpu = torch.device("cpu")
    data, split, part = prepare(cfg)
    if not 0 <= client < part.n_clients:
        raise LabError(f"client must be in [0, {part.n_clients - 1}], got {client}")
    model = _model_for(cfg, data, weights, cpu)
    idx = part.client_indices[client]
    dcfg = dataclasses.replace(cfg, view_bank=0)       # discovery only: no augmented view bank
    if cfg.method != "fedlpa":    # its discovery fields were never read, so they are its day's defaults: use today's
        dcfg = dataclasses.replace(dcfg, **{f: getattr(FedGCDConfig(), f) for f in DISCOVERY_FIELDS})
    fl = FedLPAClient(client, data.x_train[idx], np.where(split.labelled[idx], data.y_train[idx], -1), model,
                      dataclasses.replace(dcfg, oracle_prior=False), old_classes=split.old_classes, device=cpu)
    _, probs = fl.local_view()
    st = fl.discover()
    # every prior rule on the same discovery (communities, claims, mapping): what the rule alone changes
    params, y_visible = dcfg.discovery_params(), np.where(split.labelled[idx], data.y_train[idx], -1)
    priors = {rule: fn(st["discovery"], probs, y_visible, split.old_classes, probs.shape[1], params.smoothing)[0]
              for rule, fn in PRIORS.items()}
    return {"y_true": data.y_train[idx], "n_classes": data.n_classes, "class_names": data.class_names,
            "mean_pred": probs.mean(0), "prior": st["prior"], "k_est": st["k_est"], "heads": model.cfg.n_heads,
            "k_true": part.k_true(0.02)[client], "cfg": cfg, "priors": priors, "prior_rule": params.prior}
