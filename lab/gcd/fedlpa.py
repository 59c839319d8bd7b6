"""The FedLPA client: SimGCD locally, plus discovery of the client's own categories and alignment to them.

Per client, after ``warmup_rounds`` SimGCD rounds and then every ``refresh_every`` rounds, with the global
model just received, :func:`lab.gcd.discovery.discover` runs (by default once: ``refresh_every = 0``; a
prior rediscovered on a model already trained towards it feeds back on itself and collapsed classes in the
lab's runs): features (by default the frozen backbone
prefix), predictions and visible labels -> refined kNN graph (lab.gcd.clsd) -> InfoMap communities
(lab.gcd.communities) -> K_hat and the community -> head mapping -> the local prior pi (lab.gcd.prior).
Local objective: SimGCD with the alignment term of ``lpa_form`` (``lab.gcd.losses.PRIOR_FORMS``) towards
pi_r = (1 - r) U + r pi, where r ramps from 0 to 1 over ``lpa_ramp_rounds`` rounds after warm-up (r = 1
at once when 0). Graph, communities, prototypes, pi and K_hat never leave the client; the server sees the
same weights + count + scalar metrics as for FedAvg+SimGCD.

The client never holds the true classes of its samples. The ``oracle_prior`` ablations are the one exception,
and it is explicit: the experimenter hands the true labels in as ``oracle_labels``
(:func:`lab.gcd.prior.oracle_prior` says what each variant is told).
"""
from __future__ import annotations

import numpy as np

from lab.gcd.client import GCDClient
from lab.gcd.discovery import discover
from lab.gcd.prior import empirical_prior, oracle_heads, oracle_prior


class FedLPAClient(GCDClient):
    def __init__(self, *a, oracle_labels=None, **kw):
        super().__init__(*a, **kw)
        if self._cfg.oracle_prior and oracle_labels is None:
            raise ValueError("the oracle_prior ablation needs oracle_labels from the experimenter")
        self._oracle = None if oracle_labels is None else np.asarray(oracle_labels)
        self._pi = None                                   # the discovered prior over heads (stays here)
        self._found = {"k_est": None, "heads": None}      # the last discovery, for the experimenter's report

    def discover(self) -> dict:
        """Run discovery with the current model; returns the local discovery state (stays here)."""
        cfg = self._cfg
        feats, probs = self.local_view()
        prefix = None if self._clean is None else self._clean.float().cpu().numpy()
        d = discover(feats, probs, self._labelled, self._y_visible, self._old, probs.shape[1],
                     prefix_features=prefix, params=cfg.discovery_params(), seed=cfg.seed)
        heads, prior = d.heads, d.prior
        if cfg.oracle_prior:
            heads = oracle_heads(self._oracle, probs, self._old, probs.shape[1], cfg.oracle_assign)
            prior = oracle_prior(cfg.oracle_prior, heads, prior, probs.shape[1], cfg.prior_smoothing)
        return {"discovery": d, "graph": d.graph, "communities": d.communities, "heads": heads, "prior": prior,
                "k_est": d.k_est}

    def before_training(self, rnd: int, config: dict) -> dict:
        cfg = self._cfg
        after = rnd - cfg.warmup_rounds - 1          # rounds since the first discovery
        if after < 0 or (after > 0 and (cfg.refresh_every == 0 or after % cfg.refresh_every != 0)):
            return {}
        st = self.discover()
        self._found = {"k_est": st["k_est"], "heads": st["heads"]}
        self._pi = st["prior"] if cfg.use_lpa else None
        return {}                      # K_hat is local knowledge too: the server is not told

    def prior(self, rnd: int):
        cfg = self._cfg
        if self._pi is None or rnd <= cfg.warmup_rounds:
            return None
        r = 1.0 if cfg.lpa_ramp_rounds <= 0 else min(1.0, (rnd - cfg.warmup_rounds) / cfg.lpa_ramp_rounds)
        return (1 - r) / len(self._pi) + r * self._pi

    def report(self) -> dict:
        """For the experimenter's record (an in-process oracle channel, not a message to the server): the
        last K_hat, each sample's head and the prior. The evaluator compares them with the truth."""
        if self._found["k_est"] is None:      # short runs that never left warm-up: discover once now
            st = self.discover()
            self._found = {"k_est": st["k_est"], "heads": st["heads"]}
            pi = st["prior"]
        else:
            pi = self._pi if self._pi is not None else empirical_prior(self._found["heads"], self._model.cfg.n_heads,
                                                                       self._cfg.prior_smoothing)
        return {"k_est": int(self._found["k_est"]), "heads": self._found["heads"], "prior": pi}

    def get_state(self) -> dict:
        state = super().get_state()
        if self._pi is not None:
            state["prior"] = np.asarray(self._pi)
        if self._found["k_est"] is not None:
            state["k_est"] = np.asarray([self._found["k_est"]])
            state["heads"] = np.asarray(self._found["heads"])
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._pi = np.asarray(state["prior"]) if "prior" in state else None
        if "k_est" in state:
            self._found = {"k_est": int(np.asarray(state["k_est"])[0]), "heads": np.asarray(state["heads"])}
