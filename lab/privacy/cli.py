"""CLI for user-level DP: ``python -m lab dp ...`` (one run) and ``python -m lab dp-sweep ...`` (curves).

    python -m lab dp --algo {els,uls,nonprivate} --epsilon E --delta D --bound K --steps T --seed S \\
        --out FILE.json [--task {lm,meanest}] [--clip C] [--lr LR] [--batch B] [--regime {diverse,identical}]
    python -m lab dp-sweep --kind {privacy-utility,bound,accounting,tier1,tune} --out FILE.json [...]

``epsilon`` is the **user-level** target (unit of privacy: one user = one (play, character) for the LM
task, one synthetic user for ``meanest``). Bad input (epsilon <= 0, delta outside (0, 1), bound < 1,
steps < 1, ...) is one line on stderr, exit status 2, and no output file. JSON keys: see
``lab.privacy.sweep`` (schema section).
"""
from __future__ import annotations

import json
import math
import sys

from lab.utils import LabError, check_range, write_json_atomic



def _validate_common(a):
    if a.algo != "nonprivate" or a.epsilon is not None:
        if not (a.algo == "nonprivate" and a.epsilon is not None and math.isinf(a.epsilon)):
            check_range("epsilon", a.epsilon, 0, None, low_open=True)
    check_range("delta", a.delta, 0, 1, low_open=True, high_open=True)
    check_range("bound", a.bound, 1, None, integer=True)
    check_range("steps", a.steps, 1, None, integer=True)
    check_range("seed", a.seed, 0, None, integer=True)


def cmd_dp(a) -> int:
    from lab.privacy.runner import json_safe

    if a.epsilon is None and a.algo != "nonprivate" and a.noise_multiplier is None:
        raise LabError("epsilon is required for --algo els/uls (user-level target, > 0)")
    if a.noise_multiplier is not None:
        check_range("noise_multiplier", a.noise_multiplier, 0, None, low_open=True)
        if a.task == "meanest":
            raise LabError("--noise-multiplier is only supported for --task lm")
    if a.epsilon is not None or a.noise_multiplier is None:
        _validate_common(a)
    else:
        check_range("delta", a.delta, 0, 1, low_open=True, high_open=True)
        check_range("bound", a.bound, 1, None, integer=True)
        check_range("steps", a.steps, 1, None, integer=True)
    if a.task == "meanest":
        import dataclasses

        from lab.privacy.meanest import REGIMES, MeanEstConfig, run_meanest

        cfg = MeanEstConfig(examples_per_user=a.bound, steps=a.steps,
                            batch=a.batch if a.batch is not None else 64, **REGIMES[a.regime])
        cfg = dataclasses.replace(cfg)
        res = run_meanest(a.algo, a.epsilon if a.epsilon is not None else math.inf, a.delta, seed=a.seed,
                          cfg=cfg, clip=a.clip, lr=a.lr)
        res["regime"] = a.regime
    else:
        import torch

        from lab.privacy.runner import DEFAULT_BATCH, run_lm

        if a.threads:
            torch.set_num_threads(a.threads)
        res = run_lm(a.algo, a.epsilon, a.delta, a.bound, a.steps, a.seed,
                     batch=a.batch if a.batch is not None else DEFAULT_BATCH, clip=a.clip, lr=a.lr,
                     noise_multiplier=a.noise_multiplier,
                     max_train_users=a.max_train_users, eval_windows=a.eval_windows, progress=not a.quiet)
    res = json_safe(res)
    if a.out:
        write_json_atomic(a.out, res)
        sys.stderr.write(f"wrote {a.out}: eval_loss={res['eval_loss']:.4f} epsilon={res['epsilon']} "
                         f"({res['seconds']:.1f}s)\n")
    else:
        print(json.dumps(res, indent=1))
    return 0


def cmd_sweep(a) -> int:
    from lab.privacy import sweep

    check_range("delta", a.delta, 0, 1, low_open=True, high_open=True)
    check_range("steps", a.steps, 1, None, integer=True)
    for e in a.epsilons or []:
        if not math.isinf(e):
            check_range("epsilon", e, 0, None, low_open=True)
    for k in a.bounds or []:
        check_range("bound", k, 1, None, integer=True)
    kw = {"delta": a.delta, "steps": a.steps}
    if a.kind == "tier1":
        res = sweep.tier1_sweep(epsilons=a.epsilons or (1.0, 4.0, 16.0), seeds=a.seeds, delta=a.delta)
    elif a.kind == "accounting":
        res = sweep.accounting_sweep(bounds=a.bounds or sweep.BOUNDS, noise_multiplier=a.noise_multiplier,
                                     **kw)
    elif a.kind == "privacy-utility":
        res = sweep.privacy_utility_sweep(epsilons=a.epsilons or sweep.EPSILONS, seeds=a.seeds, bound=a.bound,
                                          **kw)
    elif a.kind == "bound":
        res = sweep.bound_sweep(bounds=a.bounds or sweep.BOUNDS, seeds=a.seeds, epsilon=a.epsilon or 4.0,
                                **kw)
    else:
        res = sweep.tune_sweep(epsilon=a.epsilon or 4.0, bound=a.bound, **kw)
    write_json_atomic(a.out, sweep.json_safe(res))
    sys.stderr.write(f"wrote {a.out}\n")
    return 0


def register(sub) -> None:
    """Add the ``dp`` and ``dp-sweep`` subcommands to an argparse subparsers object."""
    p = sub.add_parser("dp", help="one user-level DP fine-tuning run (ELS, ULS or non-private) -> JSON")
    p.add_argument("--algo", choices=("els", "uls", "nonprivate"), required=True)
    p.add_argument("--epsilon", type=float, default=None, help="user-level target epsilon (> 0)")
    p.add_argument("--delta", type=float, default=1e-5, help="delta in (0, 1)")
    p.add_argument("--bound", type=int, default=16, help="contribution bound k: max examples per user (>= 1)")
    p.add_argument("--steps", type=int, default=100, help="training steps (>= 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output JSON (stdout when absent)")
    p.add_argument("--task", choices=("lm", "meanest"), default="lm", help="lm: tier 2 (default); meanest: tier 1")
    p.add_argument("--regime", choices=("diverse", "identical"), default="diverse", help="meanest only")
    p.add_argument("--clip", type=float, default=None, help="clip norm C (default: tuned value)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: tuned value)")
    p.add_argument("--batch", type=int, default=None, help="expected example-gradients per step")
    p.add_argument("--noise-multiplier", type=float, default=None,
                   help="train at this sigma instead of calibrating to --epsilon (the JSON reports the epsilon spent)")
    p.add_argument("--max-train-users", type=int, default=None, help=argparse_suppress())
    p.add_argument("--eval-windows", type=int, default=None, help=argparse_suppress())
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_dp)

    s = sub.add_parser("dp-sweep", help="user-level DP sweeps (curves) -> JSON")
    s.add_argument("--kind", choices=("privacy-utility", "bound", "accounting", "tier1", "tune"), required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--epsilons", type=float, nargs="+", default=None)
    s.add_argument("--bounds", type=int, nargs="+", default=None)
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--epsilon", type=float, default=None)
    s.add_argument("--bound", type=int, default=16)
    s.add_argument("--delta", type=float, default=1e-5)
    s.add_argument("--steps", type=int, default=100)
    s.add_argument("--noise-multiplier", type=float, default=1.0, help="accounting sweep only")
    s.set_defaults(func=cmd_sweep)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def main(argv=None) -> int:
    """Run only this area's subcommands (same behaviour as ``python -m lab``)."""
    from lab.cli import _Parser

    p = _Parser(prog="python -m lab.privacy.cli")
    register(p.add_subparsers(dest="command", required=True, parser_class=_Parser))
    a = p.parse_args(argv)
    try:
        return int(a.func(a) or 0)
    except LabError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
