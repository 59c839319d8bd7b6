"""CLI for user-level DP: ``python -m lab dp ...`` (one run) and ``python -m lab dp-sweep ...`` (curves).

    python -m lab dp --algo {els,uls,nonprivate} --epsilon E --delta D --bound K --steps T --seed S \\
        --out FILE.json [--task {lm,meanest}] [--clip C] [--lr LR] [--batch B] [--regime {diverse,identical}]
    python -m lab dp-sweep --kind {privacy-utility,bound,accounting,tier1,tune} --out FILE.json [...]

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
import sys

from lab.privacy.config import (
    ALGORITHMS,
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
    return DPRunConfig(task=a.task, algo=a.algo, epsilon=a.epsilon, delta=a.delta, bound=a.bound, steps=a.steps,
                       seed=a.seed, batch=a.batch, clip=a.clip, lr=a.lr, noise_multiplier=a.noise_multiplier,
                       regime=a.regime, max_train_users=a.max_train_users,
                       eval_windows=a.eval_windows).validate()


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

    cfg = run_config(a)
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
    res = json_safe(res)
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
    return {
        "tier1": lambda a: sweep.tier1_sweep(epsilons=a.epsilons or (1.0, 4.0, 16.0), seeds=a.seeds, delta=a.delta),
        "accounting": lambda a: sweep.accounting_sweep(bounds=a.bounds or sweep.BOUNDS,
                                                       noise_multiplier=a.noise_multiplier, **kw(a)),
        "privacy-utility": lambda a: sweep.privacy_utility_sweep(epsilons=a.epsilons or sweep.EPSILONS,
                                                                 seeds=a.seeds, bound=a.bound, **kw(a)),
        "bound": lambda a: sweep.bound_sweep(bounds=a.bounds or sweep.BOUNDS, seeds=a.seeds,
                                             epsilon=a.epsilon or 4.0, **kw(a)),
        "tune": lambda a: sweep.tune_sweep(epsilon=a.epsilon or 4.0, bound=a.bound, **kw(a)),
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
    p.add_argument("--bound", type=int, default=D.bound, help="contribution bound k: max examples per user (>= 1)")
    p.add_argument("--steps", type=int, default=D.steps, help="training steps (>= 1)")
    p.add_argument("--seed", type=int, default=D.seed)
    p.add_argument("--out", default=None, help="output JSON (stdout when absent)")
    p.add_argument("--task", choices=TASKS, default=D.task, help="lm: tier 2 (default); meanest: tier 1")
    p.add_argument("--regime", choices=tuple(REGIMES), default=D.regime, help="meanest only")
    p.add_argument("--clip", type=float, default=None, help="clip norm C (default: tuned value)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: tuned value)")
    p.add_argument("--batch", type=int, default=None, help="expected example-gradients per step")
    p.add_argument("--noise-multiplier", type=float, default=None,
                   help="train at this sigma instead of calibrating to --epsilon (the JSON reports the epsilon spent)")
    p.add_argument("--max-train-users", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--eval-windows", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--quiet", action="store_true")
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
    s.set_defaults(func=cmd_sweep)
