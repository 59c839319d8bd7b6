"""Pretrain the tier-2 char LM on the public corpus (SOTU 1933+) -> data/charlm_pretrained.safetensors.

    python bench/pretrain_charlm.py [--steps 5000] [--batch 128] [--seed 0]

Deterministic for a given seed and thread count (1 torch thread). Writes the weights (~0.5 MB) and a
JSON record of settings, losses and time to data/charlm_pretrained.json. The held-out Shakespeare loss
of this model is the "pretrained" reference line of every privacy–utility curve.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from lab.privacy.charlm import PRETRAINED_FILE, CharLM, LMConfig, evaluate, save_weights, window_loss
from lab.privacy.users import load_user_data, public_windows
from lab.utils import data_path, set_seed, write_json_atomic


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=data_path(PRETRAINED_FILE))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    set_seed(a.seed)
    cfg = LMConfig()
    wins = public_windows(cfg.block)
    rng = np.random.default_rng(a.seed)
    perm = rng.permutation(len(wins))
    val = torch.from_numpy(wins[perm[:2000]])
    train = torch.from_numpy(wins[perm[2000:]])
    ev = torch.from_numpy(load_user_data(cfg.block).eval_windows)
    model = CharLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps, pct_start=0.05)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    log = []
    for step in tqdm(range(a.steps), file=sys.stderr, mininterval=10):
        idx = torch.randint(len(train), (a.batch,), generator=g)
        loss = window_loss(model, train[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % 1000 == 0 or step + 1 == a.steps:
            rec = {"step": step + 1, "public_val": evaluate(model, val), "shakespeare_heldout": evaluate(model, ev),
                   "seconds": time.time() - t0}
            log.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
    secs = time.time() - t0
    meta = {"corpus": "sotu_1933on", "steps": a.steps, "batch": a.batch, "lr": a.lr, "seed": a.seed}
    save_weights(model, a.out, meta)
    write_json_atomic(os.path.splitext(a.out)[0] + ".json", {
        **meta, "config": cfg.__dict__, "params": sum(p.numel() for p in model.parameters()),
        "train_windows": len(train), "seconds": secs, "torch_threads": 1, "log": log,
        "bytes": os.path.getsize(a.out)})
    print(f"wrote {a.out} ({os.path.getsize(a.out):,} bytes) in {secs:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
