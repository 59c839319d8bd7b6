"""User-level differential privacy: users -> contribution bound -> sampling -> clipping -> noise ->
accountant -> privacy-utility curve.

accounting  ELS user-level (mixture-of-Gaussians PLD), example level, group privacy, ULS (PLD + Opacus
            RDP/PRV), calibration of sigma, fast cached path for live UI
meanest     tier 1: synthetic mean estimation showing both regimes
lm          tier 2: nanoGPT-style char LM, Shakespeare users, windows, contribution bound
common      vectorised per-example gradients (torch.func) and clipping
els, uls    one training step of each algorithm
runner      a full tier-2 run (pretrained start, calibration, training, evaluation, accounting)
sweep       sweeps -> JSON (schemas in its docstring); cli: `python -m lab dp|dp-sweep`
"""
