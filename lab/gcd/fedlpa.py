"""The FedLPA client: SimGCD locally, plus discovery of the client's own categories and alignment to them.

Per client, after ``warmup_rounds`` SimGCD rounds and then every ``refresh_every`` rounds, with the global
model just received:
  features, predictions -> CLSD graph (lab.gcd.clsd) -> InfoMap communities, K_hat, prototypes
  (lab.gcd.communities) -> community->head mapping and empirical prior pi (lab.gcd.prior).
Local objective: SimGCD + eps * KL(p_bar || pi) (``lpa_form='add'``) or SimGCD with its uniform term
replaced by KL(p_bar || pi) (``'replace'``). Graph, communities, prototypes and pi never leave the client;
the server sees the same weights + count + scalar metrics as for FedAvg+SimGCD.
"""
from __future__ import annotations

import numpy as np

from lab.gcd.client import GCDClient
from lab.gcd.clsd import build_graph
from lab.gcd.communities import find_communities
from lab.gcd.prior import (empirical_prior, map_communities_to_heads, oracle_heads, prior_vs_truth_kl,
                           sample_heads)


class FedLPAClient(GCDClient):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._prior = None
        self._state = {"k_est": None, "prior_kl": None}

    def discover(self) -> dict:
        """Run CLSD + InfoMap with the current model; returns the local discovery state (stays here)."""
        cfg = self._cfg
        feats, probs = self.local_view()
        graph = build_graph(feats, probs, self._labelled, self._y_visible, self._old, k=cfg.knn_k,
                            quantile=cfg.confidence_quantile, sim_floor=cfg.sim_floor, refine=cfg.use_confidence)
        comm = find_communities(graph, feats, markov_time=cfg.markov_time,
                                min_size=max(2, int(np.ceil(cfg.min_community * self.n))), seed=cfg.seed + 1,
                                y_visible=self._y_visible)
        H = probs.shape[1]
        if cfg.oracle_prior:
            heads = oracle_heads(self._y_true, probs, self._old, H)
        else:
            head_of = map_communities_to_heads(comm.labels, probs, self._y_visible, H)
            heads = sample_heads(comm.labels, probs, head_of)
        prior = empirical_prior(heads, H, cfg.prior_smoothing)
        n_cls = int(max(self._y_true.max() + 1, len(self._old) + 1))
        return {"graph": graph, "communities": comm, "heads": heads, "prior": prior, "k_est": comm.k_est,
                "prior_kl": prior_vs_truth_kl(self._y_true, heads, prior, n_cls)}

    def before_training(self, rnd: int, config: dict) -> dict:
        cfg = self._cfg
        if rnd <= cfg.warmup_rounds or (rnd - cfg.warmup_rounds - 1) % cfg.refresh_every != 0:
            return {}
        st = self.discover()
        self._state = {"k_est": st["k_est"], "prior_kl": st["prior_kl"]}
        self._prior = st["prior"] if cfg.use_lpa else None
        return {}                      # K_hat is local knowledge too: the server is not told

    def prior(self, rnd: int):
        return self._prior if rnd > self._cfg.warmup_rounds else None

    def report(self) -> dict:
        """Scalars for the experimenter's record (K_hat, and the oracle KL of the prior to the truth)."""
        if self._state["k_est"] is None:      # short runs that never left warm-up: discover once now
            st = self.discover()
            self._state = {"k_est": st["k_est"], "prior_kl": st["prior_kl"]}
        return dict(self._state)
