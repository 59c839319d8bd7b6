"""The machine a run is made on, and how it rounds.

A GCD run is bit-identical only where its float32 sums round alike: the same CPU kind, torch build and thread
count. Two CPUs that report one model name ("AMD EPYC") can still dispatch different kernels (AVX2 or AVX-512),
and then FedLPA's discrete steps (the kNN graph, InfoMap, the mapping) amplify a last-bit difference into points
of All. So a record says not only the CPU's name but how this machine rounds the model's own first step:
``rounding`` is a hash of one forward and backward pass of the lab's GCD model on fixed inputs, with one thread,
as the runs train. Two records with one ``rounding`` were made on machines that round that step alike; two with
different ones do not, and a paired difference between their runs carries the machines' difference too. The
fingerprint is the CPU's: a run trained on a GPU says so in its record's ``device``, and its rounding is the GPU's.
"""
from __future__ import annotations

import hashlib
import os
import platform

#: images in the fingerprint's batch: the GCD runs' ``batch_size``, so the kernels are chosen for the same shapes
FINGERPRINT_BATCH = 128


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` where there is no /proc)."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fh:
            for ln in fh:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    return platform.processor()


def rounding_fingerprint() -> str:
    """12 hex digits of the SHA-256 of one training step's float32 numbers: the frozen prefix's features, the
    logits and every gradient of a freshly initialised GCD model (fixed seed, fixed inputs, one thread, CPU).

    Neither the global RNG nor the thread count is left changed."""
    import torch
    import torch.nn.functional as F

    from lab.gcd.models import GCDModel, ModelConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = GCDModel(ModelConfig())
            g = torch.Generator().manual_seed(0)
            x = torch.rand(FINGERPRINT_BATCH, 1, 28, 28, generator=g)
            target = torch.randint(0, model.cfg.n_heads, (FINGERPRINT_BATCH,), generator=g)
            with torch.no_grad():
                h = model.backbone.prefix(x)
            _, z, logits = model.from_prefix(h)
            loss = F.cross_entropy(logits / 0.1, target) + (z @ z.t()).mean()
            loss.backward()
            parts = [h, logits] + [p.grad for p in model.parameters() if p.grad is not None]
            digest = hashlib.sha256()
            for t in parts:
                digest.update(t.detach().contiguous().float().numpy().tobytes())
            return digest.hexdigest()[:12]
    finally:
        torch.set_num_threads(threads)


def machine() -> dict:
    """Where a run is made: the CPU's name, its core count, torch's build, one thread per run (as the bench runs
    train), the widest SIMD kernels torch dispatches to here (``isa``) and :func:`rounding_fingerprint`."""
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "threads_per_run": 1,
            "isa": torch.backends.cpu.get_cpu_capability(), "rounding": rounding_fingerprint()}
