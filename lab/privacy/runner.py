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
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
import torch

from lab.privacy import accounting as A
from lab.privacy.els import els_step
from lab.privacy.lm import bound_contributions, evaluate, load_pretrained, load_user_data, window_loss
from lab.privacy.uls import uls_step
from lab.utils import LabError, check_choice, check_range, get_device, set_seed

ALGOS = ("els", "uls", "nonprivate")

#: Tuned defaults: bench/run_dp_tables.py --part tune (user-level eps=4, seed 0, k=16, T=100, B=256);
#: grid and losses in bench/results/dp_tune.json. ELS C=1 and C=8 gave the same loss (every per-example
#: gradient, median norm 16.5, is clipped at both, and Adam is invariant to the common scale C).
DEFAULTS = {
    "els": {"clip": 1.0, "lr": 1e-3},
    "uls": {"clip": 0.5, "lr": 1e-3},
    "nonprivate": {"clip": None, "lr": 3e-3},
}
DEFAULT_BATCH = 256
DEFAULT_BOUND = 16
DEFAULT_STEPS = 100


def _cache_path():
    base = os.environ.get("LAB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "federated-privacy-lab")
    return os.path.join(base, "dp_calibration.json")


def calibrated_noise(algo, epsilon, delta, sampling_rate, steps, bound) -> float:
    """``accounting.calibrate_noise`` with an on-disk cache (``LAB_CACHE_DIR``); 0 for eps = inf."""
    if algo == "nonprivate" or math.isinf(epsilon):
        return 0.0
    key = json.dumps([algo, float(epsilon), float(delta), float(f"{sampling_rate:.10g}"), int(steps),
                      int(bound) if algo == "els" else 0])
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


_PRE_LOSS: dict = {}
_ACC_CACHE: dict = {}


def validate(algo, epsilon, delta, bound, steps, seed):
    """Raise LabError naming the parameter and its range (epsilon may be None/inf only for nonprivate)."""
    check_choice("algo", algo, ALGOS)
    if algo != "nonprivate" or epsilon is not None:
        if epsilon is None:
            raise LabError("epsilon is required for els/uls (user-level target, > 0; inf = clip, no noise)")
        if not (isinstance(epsilon, (int, float)) and math.isinf(epsilon) and epsilon > 0):
            check_range("epsilon", epsilon, 0, None, low_open=True)
    check_range("delta", delta, 0, 1, low_open=True, high_open=True)
    check_range("bound", bound, 1, None, integer=True)
    check_range("steps", steps, 1, None, integer=True)
    check_range("seed", seed, 0, None, integer=True)


def run_lm(algo="uls", epsilon=4.0, delta=1e-5, bound=DEFAULT_BOUND, steps=DEFAULT_STEPS, seed=0, *,
           batch=DEFAULT_BATCH, clip=None, lr=None, noise_multiplier=None, eval_every=0, max_train_users=None,
           eval_windows=None, device=None, progress=True, report_discretization=A.REPORT_DISCRETIZATION) -> dict:
    """Fine-tune the SOTU-pretrained char LM on private users; return the result dict (CLI JSON).

    Unit of privacy: the **user** (a (play, character)); ``epsilon`` is the user-level target. For ELS
    the JSON also carries the example-level epsilon and the group-privacy conversion. ``epsilon = inf``
    with a DP algo trains with clipping but no noise. ``max_train_users``/``eval_windows`` shrink the
    problem for tests. ``noise_multiplier`` skips calibration: train at that sigma and report the
    epsilon it spends (``epsilon_target`` is then null)."""
    if noise_multiplier is not None and epsilon is None and algo != "nonprivate":
        epsilon = math.inf  # validated below; the noise is given
    validate(algo, epsilon, delta, bound, steps, seed)
    check_range("batch", batch, 1, None, integer=True)
    t0 = time.time()
    device = device or get_device()
    set_seed(seed)
    clip = DEFAULTS[algo]["clip"] if clip is None else clip
    lr = DEFAULTS[algo]["lr"] if lr is None else lr
    if algo != "nonprivate":
        check_range("clip", clip, 0, None, low_open=True)
    check_range("lr", lr, 0, None, low_open=True)

    data = load_user_data()
    users_w = data.train_windows if max_train_users is None else data.train_windows[:max_train_users]
    win_np, owner_np = bound_contributions(users_w, bound, bound_seed=seed)
    windows = torch.from_numpy(win_np).to(device)
    owner = torch.from_numpy(owner_np).to(device)
    counts = torch.bincount(owner, minlength=len(users_w))
    starts = torch.cumsum(counts, 0) - counts
    ev = data.eval_windows if eval_windows is None else data.eval_windows[:eval_windows]
    ev = torch.from_numpy(ev).to(device)
    M, N = windows.shape[0], len(users_w)
    q = min(1.0, batch / M)
    check_range("batch", batch, 1, M, integer=True)

    eps_target = float("inf") if epsilon is None else float(epsilon)
    if noise_multiplier is not None and algo != "nonprivate":
        z = float(check_range("noise_multiplier", noise_multiplier, 0, None))  # given: account, don't calibrate
        eps_target = None
    else:
        z = calibrated_noise(algo, eps_target, delta, q, steps, bound)
    t_cal = time.time() - t0

    model = load_pretrained(device=device)
    params = {n: p for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 1000003 + 17)
    history = []
    pre_key = (str(device), int(ev.shape[0]))
    if pre_key not in _PRE_LOSS:
        _PRE_LOSS[pre_key] = evaluate(model, ev)
    pre_loss = _PRE_LOSS[pre_key]
    t_train = time.time()
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, file=sys.stderr, desc=f"{algo} eps={eps_target if eps_target is not None else f'(sigma={z:g})'} k={bound}", mininterval=5, leave=False)
    n_examples = 0
    for t in it:
        detached = {n: p.detach() for n, p in params.items()}
        if algo == "els":
            grads, b = els_step(model, detached, windows, sampling_rate=q, clip=clip, noise_multiplier=z,
                                generator=gen)
            n_examples += b
        elif algo == "uls":
            grads, _, b = uls_step(model, detached, windows, owner, starts, counts, sampling_rate=q, clip=clip,
                                   noise_multiplier=z, generator=gen)
            n_examples += b
        else:
            mask = torch.rand(M, generator=gen).to(device) < q
            idx = mask.nonzero().squeeze(1)
            n_examples += len(idx)
            opt.zero_grad(set_to_none=True)
            if len(idx):
                (window_loss(model, windows[idx]).sum() / (q * M)).backward()
            grads = None
        if grads is not None:
            for n, p in params.items():
                p.grad = grads[n]
        opt.step()
        if eval_every and (t + 1) % eval_every == 0 and t + 1 < steps:
            history.append({"step": t + 1, "eval_loss": evaluate(model, ev)})
    t_train = time.time() - t_train
    loss = evaluate(model, ev)
    history.append({"step": steps, "eval_loss": loss})

    out = {"task": "lm", "algo": algo, "epsilon_target": eps_target, "delta": delta, "bound": int(bound),
           "noise_multiplier": z, "sampling_rate": q, "sampling_unit": "user" if algo == "uls" else "example",
           "steps": int(steps), "seed": int(seed), "batch": batch, "clip": clip, "lr": lr,
           "eval_loss": loss, "eval_ppl": math.exp(loss), "pretrained_loss": pre_loss,
           "n_train_users": N, "n_train_examples": M, "n_eval_windows": int(ev.shape[0]),
           "example_gradients": int(n_examples), "device": str(device)}
    if algo == "nonprivate" or z == 0.0:
        out.update(epsilon=float("inf"), epsilon_example=float("inf") if algo == "els" else None,
                   accountant="none")
    else:
        key = (algo, z, q, steps, delta, bound, report_discretization)
        if key not in _ACC_CACHE:  # seeds share it
            _ACC_CACHE[key] = A.accounting_summary(algo, z, q, steps, delta, bound,
                                                   discretization=report_discretization)
        out.update(_ACC_CACHE[key])
    out.update(history=history, seconds=time.time() - t0, seconds_train=t_train, seconds_calibration=t_cal)
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


__all__ = ["run_lm", "DEFAULTS", "calibrated_noise", "json_safe", "ALGOS", "LabError"]
