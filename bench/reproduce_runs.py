"""Does this machine make the committed runs again bit for bit, and how does it round? 2-core CPU, about 25 minutes.

A GCD run is bit-identical only on a machine that rounds as the one that made it (``lab.machine``): two CPUs of one
name ("AMD EPYC") can dispatch different kernels, and FedLPA's discrete steps turn a last-bit difference into points
of All. The committed runs older than ``lab.machine`` record only the CPU's name, so which runs pair on one rounding
could only be inferred (``run_gcd_tables.warmup_splits``). This script measures it. Each run named (a record under
``bench/results/``, without ``.json``) is made again from its recorded config in a fresh process per kernel setting
(:data:`KERNELS`: ``native`` as this machine runs; then MKL's matrix products, torch's own kernels or oneDNN's
convolutions held to AVX2, and all three, as a CPU without AVX-512 runs them) and compared with its record:
bit-identical (every evaluation of its history equal) or the first round at which the two part, and both runs' All.
Beside each setting, its ``lab.machine.machine()``: a committed run that a setting makes again bit for bit was made
on a machine that rounds as that setting's ``rounding`` fingerprint (every run made since records its own).

    python bench/reproduce_runs.py [--runs FOLDER/RUN ...] [--kernels native avx2 ...] [--workers 2]

Results merge into ``bench/results/reproduce_runs.json``, one entry per machine and setting (a session on another
CPU adds its own and keeps the others'); ``bench/results/reproduce_runs.md`` is written from it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_gcd_tables as T  # noqa: E402

from lab.utils import check_range, write_json_atomic, write_text_atomic  # noqa: E402

JSON, MD = (os.path.join(T.RES, "reproduce_runs" + ext) for ext in (".json", ".md"))
#: kernel settings, as environment variables read when the libraries load: each of the three kernel libraries a run
#: calls held to AVX2 alone, then all three (as a CPU without AVX-512 runs them; there ``avx2`` is ``native``)
KERNELS = {"native": {}, "mkl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},      # matrix products
           "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},                       # torch's own vectorised kernels
           "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},                      # convolutions
           "avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
#: committed backbone, alpha 0.1: the tables' FedLPA and both federated baselines (the baselines were made in earlier
#: sessions than FedLPA's runs), item 7's references study's FedLPA, and item 7's 2-core study's FedLPA and run told the
#: heads (whose warm-ups say they were made on CPUs that round apart), at seed 0 and at seed 6 (its seeds 6-9 were made
#: in a later session than 0-5). Each one's "made on" is what its remakes found (``reproduce_runs.md``)
DEFAULT_RUNS = {
    "gcd/fedlpa_a0.1_s0_d5fec0ac196b503e": "The tables' FedLPA (made on an Intel Xeon)",
    "gcd/simgcd_a0.1_s0_932259465283216c":
        "The tables' FedAvg+SimGCD (made in an earlier session than their FedLPA, on an AMD EPYC with AVX-512)",
    "gcd/gcd_a0.1_s0_7c85254325a81ba5":
        "The tables' FedAvg+GCD (made in an earlier session than their FedLPA, on an AMD EPYC with AVX-512)",
    "gcd_backbones_refs/fedlpa_a0.1_s3_2e1158e8d619ff19":
        "Item 7's references study, FedLPA beside them (seed 3; made on an Intel Xeon)",
    "gcd_backbones_2core/fedlpa_a0.1_s0_ef0f85c93b29a71d":
        "Item 7's 2-core study, FedLPA (made on an AMD EPYC with AVX-512)",
    "gcd_backbones_2core/fedlpa_a0.1_s0_4703e0f5b0f26ff9":
        "Item 7's 2-core study, the run told the heads (made on an AMD EPYC that rounds as an AVX-512 AMD EPYC "
        "with every kernel library held to AVX2: its warm-up differs from the run above's)",
    "gcd_backbones_2core/fedlpa_a0.1_s6_34805e0a2e69b73c":
        "Item 7's 2-core study, FedLPA at seed 6 (made on an AMD EPYC that rounds as an AVX-512 AMD EPYC with every "
        "kernel library held to AVX2)",
    "gcd_backbones_2core/fedlpa_a0.1_s6_d0ee806bfe4e019f":
        "Item 7's 2-core study, the run told the heads at seed 6 (made on an AMD EPYC that rounds as an AVX-512 AMD "
        "EPYC with every kernel library held to AVX2)",
}


def record_path(run: str) -> str:
    return os.path.join(T.RES, run + ".json")


class _Through(Exception):
    """Raised by a remake's round callback once it has made the rounds asked for."""


def one(path: str, through: int | None = None, out_dir: str | None = None) -> dict:
    """In this process (its kernels as its environment set them): the record at ``path`` made again from its config
    in a scratch folder (or kept in ``out_dir``, under its own name), compared with it, and this process's machine.
    With ``through``, only its first ``through`` rounds are made (its config unchanged, so each evaluation is the
    full run's) and compared with the record's: enough to tell which rounding made it, at a fraction of the cost;
    ``acc_all`` is then None."""
    from lab.machine import machine

    ref = json.load(open(path))
    if through is None:
        with tempfile.TemporaryDirectory() as tmp:
            made = json.load(open(T.run_one(ref["config"], out_dir or tmp)[0]))
        seconds, acc = made["seconds"], made["acc_all"]
    else:
        import time

        import torch

        from lab.gcd.config import FedGCDConfig
        from lab.gcd.experiment import run_experiment

        torch.set_num_threads(1)            # as T.run_one trains
        rows, t0 = [], time.time()

        def on_round(rnd, rounds, row):
            rows.append(row)
            if rnd >= through:
                raise _Through

        try:
            run_experiment(FedGCDConfig.from_dict(ref["config"]), on_round=on_round)
        except _Through:
            pass
        made, ref = {"history": rows}, {**ref, "history": [h for h in ref["history"] if h["round"] <= through]}
        seconds, acc = time.time() - t0, None
    apart = T.first_round_apart(made, ref)
    return {"machine": machine(), "acc_all": acc, "committed_acc_all": ref["acc_all"],
            "bit_identical": apart is None, "first_round_apart": apart, "seconds": round(seconds, 1),
            **({"through": through} if through is not None else {})}


def remake(path: str, kernels: str, through: int | None = None, out_dir: str | None = None) -> dict:
    """:func:`one` in a fresh Python process under ``KERNELS[kernels]`` (the settings are read when torch loads)."""
    env = {**os.environ, **KERNELS[kernels]}
    extra = (["--through", str(through)] if through is not None else []) + (["--out", out_dir] if out_dir else [])
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", path, *extra], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"making {path} again under {kernels} kernels failed:\n{out.stderr[-2000:]}")
    return {"kernels": kernels, **json.loads(out.stdout.strip().splitlines()[-1])}


def merge(old: dict | None, made: list) -> dict:
    """Every machine's entries: this call's rows replace those of the same machine and setting, others stay."""
    key = lambda e: (e["machine"]["cpu"], e["made_on"], e["kernels"], e["run"])  # noqa: E731
    rows = {key(e): e for e in (old or {}).get("rows", [])}
    rows.update({key(e): e for e in made})
    return {"what": "committed runs made again from their configs: bit-identical, or the round they part at",
            "runs": {r: DEFAULT_RUNS.get(r, about) for r, about in
                     {**(old or {}).get("runs", {}), **{e["run"]: e["about"] for e in made}}.items()},
            "rows": sorted(rows.values(), key=lambda e: (e["run"], e["machine"]["cpu"], e["made_on"],
                                                         list(KERNELS).index(e["kernels"])))}


def spread(res: dict, run: str) -> dict:
    """Per machine (its CPU's name and its native ``rounding``) that made ``run`` under more than one setting: the
    lowest and highest All it gave (percent)."""
    by = {}
    for e in res["rows"]:
        if e["run"] == run:
            by.setdefault(f"{e['machine']['cpu']} (native rounding `{e['made_on']}`)", []).append(100 * e["acc_all"])
    return {cpu: (min(a), max(a)) for cpu, a in by.items() if len(a) > 1}


def lines(res: dict) -> list:
    out = ["# Which machine makes the committed runs again bit for bit", "",
           "Made by `bench/reproduce_runs.py` (its docstring says how). Each committed run was made again from its "
           "recorded config, in a fresh process per kernel setting, on the machine named. `rounding` is "
           "`lab.machine.rounding_fingerprint()` under that setting: a run made again bit for bit was made on a "
           "machine that rounds as it does. `isa` is the widest kernels torch dispatches to there.", ""]
    for run, about in res["runs"].items():
        out += [f"## `{run}`", "", about + ".", "",
                "| machine | cores | torch | kernels | isa | rounding | committed All | made again | bit-identical "
                "| first round apart | s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for e in (e for e in res["rows"] if e["run"] == run):
            m = e["machine"]
            out.append(f"| {m['cpu']} | {m['cores']} | {m['torch']} | {e['kernels']} | {m['isa']} | "
                       f"`{m['rounding']}` | {100 * e['committed_acc_all']:.2f} | {100 * e['acc_all']:.2f} | "
                       f"{'yes' if e['bit_identical'] else 'no'} | {e['first_round_apart'] or '—'} | {e['seconds']} |")
        out.append("")
        for cpu, (lo, hi) in spread(res, run).items():
            out += [f"On {cpu}, the kernel settings alone move this run's All from {lo:.2f} to {hi:.2f} "
                    f"({hi - lo:.2f} points).", ""]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS),
                    help="committed records to make again, as FOLDER/RUN under bench/results (default: DEFAULT_RUNS, "
                         "the tables' FedLPA and federated baselines and item 7's FedLPA runs)")
    ap.add_argument("--kernels", nargs="+", choices=list(KERNELS), default=list(KERNELS),
                    help="kernel settings to make each run under (default: all of KERNELS)")
    ap.add_argument("--workers", type=int, default=2, help="runs made at once, 1-64")
    ap.add_argument("--one", help=argparse.SUPPRESS)    # a fresh process's single remake (remake())
    ap.add_argument("--through", type=int, default=None, help=argparse.SUPPRESS)   # ... of its first rounds only
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)                 # ... kept in this folder
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.one, a.through, a.out)))
        return
    try:
        check_range("--workers", a.workers, 1, 64, integer=True)
    except ValueError as e:
        ap.error(str(e))
    missing = [r for r in a.runs if not os.path.exists(record_path(r))]
    if missing:
        ap.error(f"--runs: no committed record {', '.join(missing)} (give FOLDER/RUN of a file "
                 f"bench/results/FOLDER/RUN.json, e.g. {next(iter(DEFAULT_RUNS))})")
    from lab.machine import machine

    here = machine()["rounding"]        # the machine itself (a setting's own rounding is in its row)
    jobs = [(r, k) for r in a.runs for k in a.kernels]
    with ThreadPoolExecutor(a.workers) as ex, tqdm(total=len(jobs), desc="runs made again", unit="run") as bar:
        futs = [ex.submit(remake, record_path(r), k) for r, k in jobs]
        made = []
        for (r, k), f in zip(jobs, futs):
            made.append({"run": r, "about": DEFAULT_RUNS.get(r, "A committed run"), "made_on": here, **f.result()})
            bar.update()
    res = merge(json.load(open(JSON)) if os.path.exists(JSON) else None, made)
    write_json_atomic(JSON, res)
    write_text_atomic(MD, "\n".join(lines(res)))
    for e in made:
        print(f"{e['run']} [{e['kernels']}, rounding {e['machine']['rounding']}]: "
              f"{'bit-identical' if e['bit_identical'] else 'apart from round ' + str(e['first_round_apart'])}")


if __name__ == "__main__":
    main()
