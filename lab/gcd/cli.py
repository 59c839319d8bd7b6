"""`python -m lab fedgcd ...`: one federated GCD run -> a JSON record. Progress (tqdm) goes to stderr."""
from __future__ import annotations

import os
import sys
import zipfile

from lab.federated.flower import cli as flower_cli
from lab.gcd.config import BACKBONES, FedGCDConfig
from lab.gcd.methods import METHODS
from lab.utils import LabError, check_range, data_path, write_json_atomic


def register(sub) -> None:
    p = sub.add_parser("fedgcd", help="federated generalized category discovery (one run)",
                       description="Run one federated GCD method and write its result JSON.")
    d = FedGCDConfig()
    p.add_argument("--method", required=True, help=f"one of {', '.join(METHODS)}")
    p.add_argument("--dataset", default=d.dataset, help="fashion_mnist or digits")
    p.add_argument("--clients", type=int, default=d.clients)
    p.add_argument("--alpha", type=float, default=d.alpha, help="Dirichlet label-skew parameter (> 0)")
    p.add_argument("--rounds", type=int, default=None, help="default: 20 (fedlpa: 20)")
    p.add_argument("--local-epochs", type=int, default=d.local_epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--backbone", default=d.backbone, help=f"one of {', '.join(BACKBONES)}")
    p.add_argument("--lr", type=float, default=None, help="default: the method's tuned rate")
    p.add_argument("--client-fraction", type=float, default=d.client_fraction)
    p.add_argument("--threads", type=int, default=int(os.environ.get("LAB_THREADS", "1")),
                   help="torch CPU threads (1 is fastest on a loaded 2-core machine)")
    p.add_argument("--out", default=None, help="result JSON path (default: print to stdout)")
    g = p.add_argument_group("FedLPA")
    g.add_argument("--k", dest="knn_k", type=int, default=d.knn_k, help="kNN graph degree")
    g.add_argument("--mutual-knn", action="store_true",
                   help="keep a kNN link only where each end lists the other among its k nearest (studied, off by "
                        "default: bench/results/discovery_knobs_mutual.md)")
    g.add_argument("--P", dest="confidence_quantile", type=float, default=d.confidence_quantile,
                   help="confidence quantile per predicted seen class, in [0, 1]")
    g.add_argument("--eps", dest="lpa_weight", type=float, default=d.lpa_weight, help="LPA weight epsilon")
    g.add_argument("--R", dest="refresh_every", type=int, default=d.refresh_every,
                   help="rerun discovery every R rounds (0: once, after warm-up)")
    g.add_argument("--warmup", dest="warmup_rounds", type=int, default=d.warmup_rounds)
    g.add_argument("--markov-time", type=float, default=d.markov_time, help="InfoMap markov time (> 0)")
    g.add_argument("--refine", dest="graph_refine", default=d.graph_refine,
                   help="graph refinement: labels, confidence (CLSD's confident anchors) or none")
    g.add_argument("--graph-features", default=d.graph_features, help="prefix (frozen backbone) or output")
    g.add_argument("--prior", dest="prior_rule", default=d.prior_rule, help="prior rule (lab.gcd.discovery.PRIORS)")
    g.add_argument("--merge-new-cosine", type=_or_off(float, "a cosine in [-1, 1]"), default=d.merge_new_cosine,
                   help=f"merge new-class communities whose mean predictions have cosine >= this, in [-1, 1], or "
                        f"'off' (default {d.merge_new_cosine}: bench/results/kest_anatomy.md)")
    g.add_argument("--coarse-k", type=_or_off(int, "a count >= 1"), default=d.coarse_k,
                   help="a client whose discovery counts at most this many categories is discovered again at "
                        f"markov time {d.coarse_markov_time:g}, merging >= {d.coarse_merge_cosine:g}, or 'off' "
                        f"(default {d.coarse_k}: bench/results/coarse_route.md)")
    g.add_argument("--lpa-form", default=d.lpa_form, help="add or replace")
    g.add_argument("--k-max-new", type=int, default=d.k_max_new, help="upper bound on new classes (heads)")
    g.add_argument("--no-lpa", action="store_true", help="ablation: uniform prior (SimGCD's term only)")
    g.add_argument("--no-confidence", action="store_true", help="no confident anchors (= --refine labels)")
    g.add_argument("--oracle-prior", nargs="?", const=True, default=False, choices=["support", "uniform"],
                   help="ablation reading true labels: alone, the true local class histogram; 'support': FedLPA's "
                        "prior on the heads of the classes the client holds; 'uniform': equal mass on those heads")
    flower_cli.add_engine_args(p)      # --engine {inprocess,flower-sim,flower}, --superlink (lab.federated.flower)
    p.set_defaults(func=run)
    flower_cli.register(sub)           # python -m lab flower-local --nodes N
    from lab.gcd import discovery_cli

    discovery_cli.register(sub)        # python -m lab discover --data FILE.csv


def _or_off(kind, what: str):
    """An option's type: a ``kind`` number (range-checked with the config, ``what`` names its range), or "off"
    (None: the step is skipped)."""
    import argparse

    def parse(text: str):
        if text.strip().lower() == "off":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} or 'off', not {text!r}") from None

    return parse


def config_from_args(a) -> FedGCDConfig:
    rounds = a.rounds if a.rounds is not None else FedGCDConfig().rounds
    return FedGCDConfig(
        method=a.method, dataset=a.dataset, clients=a.clients, alpha=a.alpha, rounds=rounds,
        local_epochs=a.local_epochs, seed=a.seed, backbone=a.backbone, lr=a.lr, client_fraction=a.client_fraction,
        knn_k=a.knn_k, knn_mutual=a.mutual_knn, confidence_quantile=a.confidence_quantile, lpa_weight=a.lpa_weight,
        refresh_every=a.refresh_every, warmup_rounds=a.warmup_rounds, markov_time=a.markov_time,
        graph_refine="labels" if a.no_confidence else a.graph_refine, graph_features=a.graph_features,
        prior_rule=a.prior_rule, merge_new_cosine=a.merge_new_cosine, coarse_k=a.coarse_k, lpa_form=a.lpa_form,
        k_max_new=a.k_max_new, use_lpa=not a.no_lpa, oracle_prior=a.oracle_prior)


def run(a) -> int:
    import torch
    from tqdm import tqdm

    from lab.gcd.experiment import run_experiment

    check_range("threads", a.threads, 1, 256, integer=True)
    cfg = config_from_args(a)
    from lab.data.images import load_dataset
    from lab.privacy.cli import check_out, check_safetensors   # one-line checks shared with the dp commands

    check_out(a.out)                                           # before any work or output
    try:
        n_samples = len(load_dataset(cfg.dataset).y_train)
    except LabError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise LabError(f"dataset {cfg.dataset}: its file under {data_path()} could not be read "
                       f"({str(e).splitlines()[0][:100]}); rebuild it (data/README.md)") from None
    cfg.validate(n_samples=n_samples)
    bb = BACKBONES[cfg.backbone]
    if bb and cfg.dataset != "digits":              # digits (8x8) trains an MLP from scratch
        check_safetensors(data_path(bb.stem + ".safetensors"), f"backbone {cfg.backbone!r}", bb.make)
    flower_cli.check_engine_args(a, cfg)
    torch.set_num_threads(a.threads)
    bar = tqdm(total=cfg.rounds, desc=f"{cfg.method} a={cfg.alpha}", file=sys.stderr, unit="round")

    def on_round(rnd, total, row):
        bar.update(1)
        bar.set_postfix(all=f"{row['acc_all']:.3f}", old=f"{row['acc_old']:.3f}", new=f"{row['acc_new']:.3f}")

    if a.engine == "inprocess":
        res = run_experiment(cfg, on_round=on_round)
    else:                                  # Flower: same record; the bar is closed before an error line
        res = flower_cli.run_engine(cfg, a, on_round, bar)
    bar.close()
    if a.out:
        write_json_atomic(a.out, res)
    else:
        import json

        print(json.dumps(res, indent=1))
    print(f"{cfg.method}: acc_all={res['acc_all']:.4f} old={res['acc_old']:.4f} new={res['acc_new']:.4f} "
          f"({res['seconds']:.0f}s)", file=sys.stderr)
    return 0
