"""SimGCD's losses, as in its official code (Wen et al., ICCV 2023), plus the prior-alignment term.

With two views of a batch, cosine logits ``l`` (B2 = 2B rows: view 1 then view 2) and projections ``z``:

    L = (1 - lam) * (L_distill + w_me * L_me + L_infonce) + lam * (L_ce + L_supcon)

- L_distill: each view's sharpened prediction (teacher temperature t_T, detached) supervises the OTHER
  view's prediction at student temperature 0.1;
- L_me: the mean-entropy regulariser -H(p_bar) + log K, which is exactly KL(p_bar || uniform): it keeps the
  batch-mean prediction spread over all heads, preventing collapse;
- L_ce: cross-entropy on labelled samples (temperature 0.1); L_infonce: unsupervised InfoNCE between the
  views (tau = 1.0); L_supcon: supervised contrastive on labelled samples (tau = 0.07).

Local Prior Alignment (LPA) aligns p_bar to a client's empirical prior pi instead of (or besides) the uniform
target, with weight eps (``prior_weight``):

- ``add``:     w_me * KL(p_bar || U) + eps * KL(p_bar || pi). Its optimum is p_bar ∝ U^(w_me/(w_me+eps)) *
  pi^(eps/(w_me+eps)) — at w_me = 2, eps = 1 that is pi^(1/3): a flattened prior that still pulls mass onto
  heads the client does not have;
- ``replace``: eps * KL(p_bar || pi), optimum p_bar = pi (eps replaces w_me as the weight of the term).

KL(p_bar || U) equals L_me exactly (see :func:`prior_kl`; tested). A ramp from U to pi is the client's
choice of pi per round (``lab.gcd.fedlpa``), not a loss form.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def prior_kl(p_bar: torch.Tensor, prior: torch.Tensor | None = None, eps: float = 1e-8) -> torch.Tensor:
    """KL(p_bar || prior) = sum_k p_bar_k (log p_bar_k - log prior_k); prior=None means uniform."""
    logp = torch.log(p_bar.clamp_min(eps))
    logq = (-math.log(p_bar.numel()) if prior is None else torch.log(prior.clamp_min(eps)))
    return torch.sum(p_bar * (logp - logq))


def mean_entropy_term(p_bar: torch.Tensor) -> torch.Tensor:
    """SimGCD's me-max term, written as in its code: -sum log(p^-p) + log K."""
    return -torch.sum(torch.log(p_bar ** (-p_bar))) + math.log(float(len(p_bar)))


def distill_loss(student_logits, teacher_logits, n_views: int = 2, student_temp: float = 0.1,
                 teacher_temp: float = 0.05) -> torch.Tensor:
    """Cross-view self-distillation (SimGCD's DistillLoss): teacher view v supervises student view u != v."""
    s = (student_logits / student_temp).chunk(n_views)
    t = F.softmax(teacher_logits.detach() / teacher_temp, dim=-1).chunk(n_views)
    total, n = 0.0, 0
    for iq, q in enumerate(t):
        for v in range(n_views):
            if v == iq:
                continue
            total = total + torch.sum(-q * F.log_softmax(s[v], dim=-1), dim=-1).mean()
            n += 1
    return total / n


def info_nce(z: torch.Tensor, n_views: int = 2, temperature: float = 1.0) -> torch.Tensor:
    """SimCLR's InfoNCE over L2-normalised projections z (n_views*B, p), views stacked."""
    B = z.shape[0] // n_views
    labels = torch.arange(B, device=z.device).repeat(n_views)
    pos = (labels[:, None] == labels[None, :]).float()
    sim = z @ z.t()
    eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    pos = pos[~eye].view(z.shape[0], -1)
    sim = sim[~eye].view(z.shape[0], -1)
    logits = torch.cat([sim[pos.bool()].view(z.shape[0], -1), sim[~pos.bool()].view(z.shape[0], -1)], dim=1)
    target = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
    return F.cross_entropy(logits / temperature, target)


def supcon(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al.) on views stacked as (n_views*B, p); labels (B,)."""
    n_views = z.shape[0] // labels.shape[0]
    lab = labels.repeat(n_views)
    mask = (lab[:, None] == lab[None, :]).float()
    logits = z @ z.t() / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    self_mask = 1 - torch.eye(z.shape[0], device=z.device)
    mask = mask * self_mask
    exp = torch.exp(logits) * self_mask
    log_prob = logits - torch.log(exp.sum(1, keepdim=True) + 1e-12)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1).clamp_min(1)
    return -mean_log_prob_pos.mean()


#: LPA form -> (weight of KL(p_bar || U), weight of KL(p_bar || pi)) from (w_me, eps); "none": no prior given
PRIOR_FORMS = {
    "none": lambda w_me, eps: (w_me, 0.0),
    "add": lambda w_me, eps: (w_me, eps),
    "replace": lambda w_me, eps: (0.0, eps),
}


def teacher_temperature(round_idx: int, warmup_rounds: int, start: float = 0.07, end: float = 0.04) -> float:
    """Linear warm-up of the teacher temperature over the first rounds (SimGCD: over the first epochs)."""
    if warmup_rounds <= 0 or round_idx >= warmup_rounds:
        return end
    return start + (end - start) * round_idx / warmup_rounds


def simgcd_loss(logits, z, labels, labelled_mask, *, teacher_temp: float, lam: float = 0.35,
                memax_weight: float = 2.0, prior=None, prior_weight: float = 0.0, prior_form: str = "add",
                contrastive: bool = True, cluster: bool = True):
    """The SimGCD objective on one batch of two stacked views (+ optional prior alignment).

    logits: (2B, K) cosine logits; z: (2B, p) normalised projections; labels: (B,) (any value where
    unlabelled); labelled_mask: (B,) bool. ``prior`` (K,) enables LPA: ``add`` keeps the uniform term and adds
    prior_weight * KL(p_bar || prior); ``replace`` swaps the uniform term for prior_weight * KL(p_bar || prior)
    (see :data:`PRIOR_FORMS`).
    ``cluster=False`` drops the classifier losses (FedAvg+GCD trains the representation only).
    Returns (loss, dict of the parts as floats).
    """
    parts = {}
    lm2 = labelled_mask.repeat(2)
    total_unsup, total_sup = 0.0, 0.0
    if cluster:
        dist = distill_loss(logits, logits, teacher_temp=teacher_temp)
        p_bar = F.softmax(logits / 0.1, dim=-1).mean(0)
        total_unsup = dist
        parts["distill"] = dist.item()
        uniform_weight, lpa_weight = PRIOR_FORMS[prior_form if prior is not None else "none"](memax_weight,
                                                                                           prior_weight)
        if uniform_weight > 0:
            me = mean_entropy_term(p_bar)
            total_unsup = total_unsup + uniform_weight * me
            parts["me_max"] = me.item()
        if lpa_weight > 0:
            lpa = prior_kl(p_bar, prior)
            total_unsup = total_unsup + lpa_weight * lpa
            parts["lpa"] = lpa.item()
        if labelled_mask.any():
            ce = F.cross_entropy(logits[lm2] / 0.1, labels.repeat(2)[lm2])
            total_sup = total_sup + ce
            parts["ce"] = ce.item()
    if contrastive:
        nce = info_nce(z, temperature=1.0)
        total_unsup = total_unsup + nce
        parts["infonce"] = nce.item()
        if labelled_mask.sum() > 1:
            B = labels.shape[0]
            zl = torch.cat([z[:B][labelled_mask], z[B:][labelled_mask]])
            sc = supcon(zl, labels[labelled_mask], temperature=0.07)
            total_sup = total_sup + sc
            parts["supcon"] = sc.item()
    loss = (1 - lam) * total_unsup + lam * total_sup
    parts["loss"] = loss.item()
    return loss, parts
