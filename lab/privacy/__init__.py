"""User-level differential privacy: users -> contribution bound -> sampling -> clipping -> noise ->
accountant -> privacy-utility curve.

config      DPRunConfig: one run's settings (task, algo, user-level epsilon, delta, bound, steps, seed, ...),
            the one place they are validated; the ALGORITHMS table (private?, sampling unit)
users       tier 2 data: Shakespeare users (unit of privacy), held-out users, contribution bound,
            BoundedUsers tensors, the public corpus
charlm      tier 2 model: vocabulary, nanoGPT-style char LM, per-window loss, evaluation, weights I/O
llm         a real LLM for tier 2 (--model smollm2): SmolLM2-135M from the installed GGUF, LoRA on the top
            layers, frozen-layer states cached per window, token-window users, nats/token and nats/char
grads       vectorised per-example gradients (torch.func) and clipping
mechanism   the one Gaussian-sum mechanism (Poisson sampling, clipped sum + noise over a fixed
            denominator), torch and numpy twins, shared by ELS and ULS
els, uls    one training step of each algorithm: what is sampled and which rows are clipped
            (els also holds the non-private step)
accounting  ELS user-level (mixture-of-Gaussians PLD), example level, group privacy, ULS (PLD + Opacus
            RDP/PRV), the ACCOUNT table, calibration of sigma, fast cached path for live UI
runner      run_lm(cfg): a full tier-2 run (pretrained start, calibration, training via the STEP table,
            evaluation, accounting)
meanest     tier 1: synthetic mean estimation showing both regimes; run_meanest(cfg)
sweep       sweeps -> JSON (schemas in its docstring), stored results; cli: `python -m lab dp|dp-sweep`
audit       empirical one-run audit with canary users: a 95 % lower bound on epsilon (`python -m lab dp-audit`)
"""
