"""`python -m lab <command>`: thin argparse front door. Each area registers its own subcommands.

Bad input exits with status 2 and one line on stderr naming the parameter; no output file is written.
"""
from __future__ import annotations

import argparse
import sys

from lab.utils import LabError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m lab", description="Federated Privacy Lab")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    from lab.gcd import cli as gcd_cli

    gcd_cli.register(sub)
    try:
        from lab.privacy import cli as dp_cli
    except ImportError:  # privacy extras not installed
        dp_cli = None
    if dp_cli is not None:
        dp_cli.register(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LabError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
