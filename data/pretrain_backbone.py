"""SimCLR pretraining of the CNN backbone, without labels, on Fashion-MNIST training images that are NOT in
the committed subset (54,000 images read from the Debian package dataset-fashion-mnist).

Labels of the pretraining images are never read. The only labels used are the committed subset's, to
*evaluate* the frozen features (cosine kNN-10: fit on the 6,000 subset training images, score the 1,000
subset test images) against raw pixels under the same protocol.

    python data/pretrain_backbone.py --steps 3000              # CPU or CUDA, whichever is present
Writes data/backbone_simclr.safetensors (keys ``backbone.*``) and data/backbone_simclr.json (settings,
time, device, kNN history, and at the end kNN-10 of the prefix maps FedLPA's graph is built on). ``--steps``
fixes the budget, so the same seed on the same device gives the same weights. ``--steps auto --seconds S``
sizes that budget to the machine: it times steps for ``--probe-seconds``, fixes N (the steps S seconds allow,
rounded down to a hundred), records N, and then trains N steps from the seed, so ``--steps N`` rebuilds the
same weights. ``--steps 0 --seconds S`` (the budget the committed backbone was made with) stops on the clock
instead, and the record says how many steps that was. ``--widths`` and ``--out`` make another backbone of
``lab.gcd.config.BACKBONES`` (``bench/device_backbone.sh`` makes ``pretrained-wide`` on a GPU).
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lab.data.images import DEBIAN_FMNIST_DIR, load_fashion_mnist, read_idx
from lab.gcd.augment import augment
from lab.gcd.metrics import backbone_knn, knn_accuracy
from lab.gcd.models import CNNBackbone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nt_xent(z1, z2, tau):
    z = F.normalize(torch.cat([z1, z2]), dim=1)           # (2B, p)
    sim = z @ z.t() / tau
    sim.fill_diagonal_(float("-inf"))
    B = z1.shape[0]
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(z.device)
    return F.cross_entropy(sim, target)


def steps_for(rate: float, seconds: float) -> int:
    """The step budget ``seconds`` allow at ``rate`` steps per second: rounded down to a hundred (so a slightly
    faster or slower probe names the same budget), at least 1."""
    n = int(rate * seconds)
    return max(1, n // 100 * 100 if n >= 100 else n)


def step_count(text: str):
    """``--steps``: a count >= 0, or "auto"."""
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 or 'auto', got {text!r}")
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", default="16,32,64")
    ap.add_argument("--steps", type=step_count, default=0,
                    help="optimizer steps (the budget); auto: as many as --seconds allow, measured first; "
                         "0: stop after --seconds")
    ap.add_argument("--seconds", type=float, default=600, help="time budget for --steps auto or 0")
    ap.add_argument("--probe-seconds", type=float, default=20, help="how long --steps auto times steps")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--tau", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fmnist-dir", default=DEBIAN_FMNIST_DIR)
    ap.add_argument("--out", default=os.path.join(ROOT, "data", "backbone_simclr"))
    ap.add_argument("--eval-every", type=float, default=60, help="seconds between kNN evaluations")
    a = ap.parse_args()
    if a.steps in (0, "auto") and a.seconds <= 0:
        ap.error(f"--seconds must be > 0 with --steps {a.steps}, got {a.seconds:g}")
    if a.steps == "auto" and not 0 < a.probe_seconds < a.seconds:
        ap.error(f"--probe-seconds must be in (0, --seconds={a.seconds:g}), got {a.probe_seconds:g}")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False   # same seed, same weights

    x_all = read_idx(os.path.join(a.fmnist_dir, "train-images-idx3-ubyte.gz"))
    sub = load_fashion_mnist()
    with np.load(os.path.join(ROOT, "data", "fashion_mnist_subset.npz")) as z:
        keep = np.setdiff1d(np.arange(len(x_all)), z["train_index"])
    pool = torch.as_tensor(x_all[keep]).to(dev).float().div(255).unsqueeze(1)   # (54000, 1, 28, 28)
    raw_knn = knn_accuracy(sub.x_train.reshape(len(sub.x_train), -1), sub.y_train,
                           sub.x_test.reshape(len(sub.x_test), -1), sub.y_test)

    widths = tuple(int(w) for w in a.widths.split(","))
    sub_knn = lambda bb, spaces=("output",): backbone_knn(bb, sub.x_train, sub.y_train, sub.x_test,  # noqa: E731
                                                          sub.y_test, dev, spaces=spaces)

    def start():
        """Model, projection head, optimizer and sampling generator, from the seed alone."""
        torch.manual_seed(a.seed)
        bb = CNNBackbone(widths).to(dev)
        d = bb.out_dim
        proj = torch.nn.Sequential(torch.nn.Linear(d, 2 * d), torch.nn.BatchNorm1d(2 * d), torch.nn.ReLU(),
                                   torch.nn.Linear(2 * d, 128)).to(dev)
        opt = torch.optim.AdamW(list(bb.parameters()) + list(proj.parameters()), lr=a.lr, weight_decay=1e-4)
        return bb, proj, opt, torch.Generator().manual_seed(a.seed)

    def step_once(bb, proj, opt, gen, frac):
        for g in opt.param_groups:                        # cosine decay over the budget
            g["lr"] = a.lr * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0)))
        xb = pool[torch.randint(0, len(pool), (a.batch,), generator=gen).to(dev)]
        loss = nt_xent(proj(bb(augment(xb, gen))), proj(bb(augment(xb, gen))), a.tau)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    probe = None
    if a.steps == "auto":     # time steps of a throw-away start, then fix the budget before the real one
        m, n_probe, t0 = start(), 0, time.time()
        while time.time() - t0 < a.probe_seconds:
            step_once(*m, 0.0)
            n_probe += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rate = n_probe / (time.time() - t0)
        a.steps = steps_for(rate, a.seconds)
        probe = {"steps_per_second": round(rate, 2), "probe_seconds": a.probe_seconds, "target_seconds": a.seconds}
        print(f"{rate:.2f} steps/s over {a.probe_seconds:g} s: budget {a.steps} steps", flush=True)
        del m
    bb, proj, opt, gen = start()
    hist = [{"step": 0, "seconds": 0.0, "knn10": sub_knn(bb)["output"]}]
    print(f"raw pixels kNN-10 {raw_knn:.4f}; random init {hist[0]['knn10']:.4f}", flush=True)
    t0, last_eval, step = time.time(), time.time(), 0
    bar = tqdm(total=a.steps or None, unit="step", desc=f"SimCLR {a.widths}")
    while (step < a.steps) if a.steps else (time.time() - t0 < a.seconds):
        loss = step_once(bb, proj, opt, gen, step / a.steps if a.steps else (time.time() - t0) / a.seconds)
        step += 1
        bar.update(1)
        if time.time() - last_eval > a.eval_every:
            last_eval = time.time()
            hist.append({"step": step, "seconds": round(time.time() - t0, 1), "loss": loss.item(),
                         "knn10": sub_knn(bb)["output"]})
            bar.write(str(hist[-1]))
    bar.close()
    secs = time.time() - t0
    final = sub_knn(bb, ("output", "prefix"))
    hist.append({"step": step, "seconds": round(secs, 1), "loss": loss.item(), "knn10": final["output"]})
    from safetensors.torch import save_file

    save_file({f"backbone.{k}": v.detach().cpu().contiguous() for k, v in bb.state_dict().items()},
              a.out + ".safetensors")
    rec = {"method": "SimCLR (NT-Xent), labels never used", "widths": widths,
           "params": sum(p.numel() for p in bb.parameters()),
           "batch": a.batch, "lr": a.lr, "tau": a.tau, "seed": a.seed,
           "optimizer": "AdamW wd 1e-4, cosine decay over the budget",
           "augment": "lab.gcd.augment.augment defaults", "pretrain_images": int(len(keep)),
           "pretrain_pool": "Fashion-MNIST train images not in data/fashion_mnist_subset.npz",
           "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "torch": torch.__version__,
           "seconds": round(secs, 1), "steps": step,
           "budget": f"{a.steps} steps" if a.steps else f"{a.seconds:g} seconds", "budget_probe": probe,
           "knn10_final": final["output"], "knn10_prefix_final": final["prefix"], "knn10_raw_pixels": raw_knn,
           "knn_protocol": "cosine kNN-10 fit on subset train (6000), scored on subset test (1000)", "history": hist}
    with open(a.out + ".json", "w") as f:
        json.dump(rec, f, indent=1)
    print(json.dumps({k: v for k, v in rec.items() if k != "history"}), flush=True)


if __name__ == "__main__":
    main()
