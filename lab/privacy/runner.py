r"""Tier 2 runs: fine-tune the pretrained char LM on private Shakespeare users with ELS, ULS or no DP.

Fair comparison (issue 4 §6): both DP algorithms and the non-private baseline use the same pretrained
start, the same bounded data (contribution bound :math:`k`), the same number of steps :math:`T` and the
same expected number of example-gradients per step :math:`B`:

* ELS samples examples at :math:`q = B/M` (:math:`M` bounded examples);
* ULS samples users at :math:`q = B/M` too, so :math:`\mathbb E[\text{examples}] = qM = B`;
* nonprivate samples like ELS, without clipping or noise.

Each algorithm has its own clip norm and learning rate (``DEFAULTS``), tuned once on a small grid at
:math:`\varepsilon = 4`, seed 0 (``bench/run_dp_tables.py --tune``) and then fixed. The noise multiplier is
calibrated to the **user-level** target :math:`(\varepsilon, \delta)` (``accounting.calibrate_noise``) and
then re-accounted for the JSON. The optimizer is Adam on the privatised gradient (post-processing).

A run is one :class:`~lab.privacy.config.DPRunConfig`; the algorithm is chosen through ``STEP`` (one
signature for all three: ``step(model, params, data, *, sampling_rate, clip, noise_multiplier, generator)
-> StepResult``) and the model through ``LOAD_MODEL`` / ``LOAD_DATA`` / ``EVALUATE`` (``charlm``: the
char LM, every parameter trains; ``smollm2``: SmolLM2-135M with LoRA, only the adapters train — see
``lab.privacy.llm``). The trained parameters are the model's parameters that require grad.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import numpy as np
import torch

from lab.privacy import accounting as A
from lab.privacy import llm
from lab.privacy.charlm import evaluate, load_pretrained
from lab.privacy.config import ALGORITHMS, DPRunConfig
from lab.privacy.els import els_step, nonprivate_step
from lab.privacy.mechanism import SecureRNG, StepResult
from lab.privacy.uls import uls_step
from lab.privacy.users import BoundedUsers, bound_contributions, load_user_data
from lab.utils import LabError, check_choice, get_device, set_seed

ALGOS = tuple(ALGORITHMS)
#: One training step per algorithm, all with the same signature (see the module docstring).
STEP = {"els": els_step, "uls": uls_step, "nonprivate": nonprivate_step}
#: Pretrained model loaders for ``DPRunConfig.model``: ``loader(cfg, device=...) -> nn.Module``.
LOAD_MODEL = {"charlm": lambda cfg=None, device=None: load_pretrained(device=device), "smollm2": llm.load_model}


def char_data(cfg: DPRunConfig, device=None):
    """``(train BoundedUsers, held-out windows, n_train_users)`` of the char LM for a run config."""
    data = load_user_data()
    users_w = data.train_windows if cfg.max_train_users is None else data.train_windows[:cfg.max_train_users]
    train = BoundedUsers.build(*bound_contributions(users_w, cfg.bound, bound_seed=cfg.seed), n_users=len(users_w),
                               device=device)
    ev = data.eval_windows if cfg.eval_windows is None else data.eval_windows[:cfg.eval_windows]
    return train, torch.from_numpy(ev).to(device), len(users_w)


#: Per model: the bounded private users and the held-out set, ``data(cfg, device) -> (train, eval, n_users)``.
LOAD_DATA = {"charlm": char_data, "smollm2": llm.user_data}
#: Per model: held-out evaluation ``evaluate(model, eval) -> {"eval_loss": ..., more metrics}``
#: (charlm: nats/char; smollm2: nats/token, plus ``eval_loss_per_char``).
EVALUATE = {"charlm": lambda model, ev: {"eval_loss": evaluate(model, ev)}, "smollm2": llm.evaluate}

#: Tuned defaults: bench/run_dp_tables.py --part tune (user-level eps=4, seed 0, k=16, T=100, B=256);
#: grid and losses in bench/results/dp_tune.json. ELS C=1 and C=8 gave the same loss (every per-example
#: gradient, median norm 16.5, is clipped at both, and Adam is invariant to the common scale C).
DEFAULTS = {
    "els": {"clip": 1.0, "lr": 1e-3},
    "uls": {"clip": 0.5, "lr": 1e-3},
    "nonprivate": {"clip": None, "lr": 3e-3},
}
#: Tuned defaults per model (``DEFAULTS`` is the char LM's).
MODEL_DEFAULTS = {"charlm": DEFAULTS, "smollm2": llm.DEFAULTS}


def _cache_path():
    base = os.environ.get("LAB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "federated-privacy-lab")
    return os.path.join(base, "dp_calibration.json")


def calibrated_noise(algo, epsilon, delta, sampling_rate, steps, bound) -> float:
    """``accounting.calibrate_noise`` with an on-disk cache (``LAB_CACHE_DIR``); 0 for eps = inf."""
    if not ALGORITHMS[algo].private or math.isinf(epsilon):
        return 0.0
    key = json.dumps([algo, float(epsilon), float(delta), float(f"{sampling_rate:.10g}"), int(steps),
                      int(bound) if A.ACCOUNT[algo].uses_bound else 0])
    path = _cache_path()
    cache = {}
    try:
        with open(path) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        pass
    if key in cache:
        return float(cache[key])
    z = A.calibrate_noise(epsilon, delta, sampling_rate, steps, algo=algo, bound=bound)
    cache[key] = z
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(cache, f)
        os.replace(tmp, path)
    except OSError:
        pass
    return z


def optimizer_step(params: dict, opt, result: StepResult) -> None:
    """Hand one step's averaged gradient to the optimizer (post-processing of the private gradient);
    a step that sampled nothing (``grads`` None) leaves every ``.grad`` None, so the optimizer skips it."""
    for n, p in params.items():
        p.grad = None if result.grads is None else result.grads[n]
    opt.step()


_PRE_LOSS: dict = {}
_ACC_CACHE: dict = {}


def run_lm(cfg: DPRunConfig, on_step=None, *, device=None) -> dict:
    """Fine-tune the pretrained LM (``cfg.model``) on private users; return the result dict (CLI JSON).

    Unit of privacy: the **user** (a (play, character)); ``cfg.epsilon`` is the user-level target. For ELS
    the JSON also carries the example-level epsilon and the group-privacy conversion. ``epsilon = inf``
    with a DP algo trains with clipping but no noise. ``max_train_users``/``eval_windows`` shrink the
    problem for tests. ``noise_multiplier`` skips calibration: train at that sigma and report the
    epsilon it spends (``epsilon_target`` is then null). ``on_step(step, total, row)`` is called after
    every step (``row``: ``step``, ``example_gradients`` and, on evaluation steps, ``eval_loss``).
    ``"config"`` in the result is ``cfg`` with every default filled in."""
    check_choice("task", cfg.task, ("lm",))
    cfg.validate()
    algo, private = cfg.algo, cfg.private
    t0 = time.time()
    device = device or get_device()
    set_seed(cfg.seed)
    clip = MODEL_DEFAULTS[cfg.model][algo]["clip"] if cfg.clip is None else cfg.clip
    lr = MODEL_DEFAULTS[cfg.model][algo]["lr"] if cfg.lr is None else cfg.lr
    disc = A.REPORT_DISCRETIZATION if cfg.report_discretization is None else cfg.report_discretization
    cfg = dataclasses.replace(cfg, batch=cfg.batch_size, clip=clip, lr=lr, report_discretization=disc)

    train, ev, N = LOAD_DATA[cfg.model](cfg, device)
    M = train.n_examples
    cfg.validate(n_examples=M)
    batch, steps = cfg.batch, cfg.steps
    q = min(1.0, batch / M)

    if cfg.noise_multiplier is not None and private:  # given: account, don't calibrate
        z, eps_target = float(cfg.noise_multiplier), None
    else:
        eps_target = math.inf if cfg.epsilon is None else float(cfg.epsilon)
        z = calibrated_noise(algo, eps_target, cfg.delta, q, steps, cfg.bound)
    t_cal = time.time() - t0

    model = LOAD_MODEL[cfg.model](cfg, device=device)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.Adam(params.values(), lr=lr)
    evaluate_ = EVALUATE[cfg.model]
    gen = SecureRNG() if cfg.secure_rng else torch.Generator(device="cpu").manual_seed(int(cfg.seed) * 1000003 + 17)
    history = []
    pre_key = (cfg.model, str(device), int(ev.shape[0]))
    if pre_key not in _PRE_LOSS:
        _PRE_LOSS[pre_key] = evaluate_(model, ev)
    pre = {k.replace("eval_", "pretrained_"): v for k, v in _PRE_LOSS[pre_key].items()}
    pre_loss = pre["pretrained_loss"]
    t_train = time.time()
    step = STEP[algo]
    n_examples = 0
    for t in range(steps):
        detached = {n: p.detach() for n, p in params.items()}
        res = step(model, detached, train, sampling_rate=q, clip=clip, noise_multiplier=z, generator=gen)
        n_examples += res.examples
        optimizer_step(params, opt, res)
        row = {"step": t + 1, "example_gradients": res.examples}
        if cfg.eval_every and (t + 1) % cfg.eval_every == 0 and t + 1 < steps:
            row["eval_loss"] = evaluate_(model, ev)["eval_loss"]
            history.append({"step": t + 1, "eval_loss": row["eval_loss"]})
        if on_step:
            on_step(t + 1, steps, row)
    t_train = time.time() - t_train
    final = evaluate_(model, ev)
    loss = final["eval_loss"]
    history.append({"step": steps, "eval_loss": loss})

    out = {"task": "lm", "algo": algo, "epsilon_target": eps_target, "delta": cfg.delta, "bound": int(cfg.bound),
           "noise_multiplier": z, "sampling_rate": q, "sampling_unit": ALGORITHMS[algo].sampling_unit,
           "steps": int(steps), "seed": int(cfg.seed), "batch": batch, "clip": clip, "lr": lr,
           "eval_loss": loss, "eval_ppl": math.exp(loss), "pretrained_loss": pre_loss,
           "n_train_users": N, "n_train_examples": M, "n_eval_windows": int(ev.shape[0]),
           "example_gradients": int(n_examples), "device": str(device),
           "model": cfg.model, "trainable_params": int(sum(p.numel() for p in params.values()))}
    out.update({**final, **pre})  # smollm2 adds eval_loss_per_char / pretrained_loss_per_char
    key = (algo, z, q, steps, cfg.delta, cfg.bound, disc)
    if key not in _ACC_CACHE:  # seeds share it
        _ACC_CACHE[key] = A.run_accounting(algo, z, q, steps, cfg.delta, cfg.bound, discretization=disc)
    out.update(_ACC_CACHE[key])
    out["privacy_statement"] = A.privacy_statement("lm", algo, epsilon=out["epsilon"], delta=cfg.delta,
                                                   bound=cfg.bound, secure_rng=cfg.secure_rng)
    out.update(history=history, seconds=time.time() - t0, seconds_train=t_train, seconds_calibration=t_cal,
               config=cfg.to_dict())
    return out


def json_safe(obj):
    """Replace +-inf / nan floats by strings so the JSON is strict (``"inf"``)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


__all__ = ["run_lm", "STEP", "LOAD_MODEL", "DEFAULTS", "calibrated_noise", "json_safe", "ALGOS",
           "DPRunConfig", "LabError"]
