"""ELS/ULS mechanics on the char LM: vectorised gradients are right, clipping bounds each user's
contribution, the contribution bound keeps exactly k examples, and runs are reproducible."""
import numpy as np
import pytest
import torch

from lab.privacy.charlm import CharLM, LMConfig, decode, encode, window_loss
from lab.privacy.els import els_step
from lab.privacy.grads import clip_and_sum, grad_norms, per_example_grads
from lab.privacy.uls import uls_step
from lab.privacy.users import BoundedUsers, bound_contributions

TINY = LMConfig(block=8, n_layer=1, n_head=2, n_embd=16)


def _model(seed=0):
    torch.manual_seed(seed)
    m = CharLM(TINY)
    return m, {n: p.detach() for n, p in m.named_parameters()}


def _windows(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 96, (n, TINY.block + 1), generator=g)


def test_encode_roundtrip_and_unknowns():
    assert decode(encode("To be, or not\nto be")) == "To be, or not\nto be"
    assert decode(encode("\u2019tis caf\u00e9 \u2014 \u4e2d")) == "'tis cafe - ?"


def test_per_example_grads_match_autograd():
    m, params = _model()
    w = _windows(5)
    g = per_example_grads(m, params, w)
    for i in (0, 3):
        m.zero_grad()
        window_loss(m, w[i:i + 1]).sum().backward()
        for n, p in m.named_parameters():
            torch.testing.assert_close(g[n][i], p.grad, rtol=1e-4, atol=1e-6)


def test_clip_and_sum_bounds_each_row():
    m, params = _model()
    g = per_example_grads(m, params, _windows(6))
    norms = grad_norms(g)
    c = float(norms.min()) / 2
    s = clip_and_sum(g, c)
    total = torch.sqrt(sum((t ** 2).sum() for t in s.values()))
    assert total <= 6 * c * (1 + 1e-5)
    # one row alone is clipped to exactly C
    one = clip_and_sum({n: t[:1] for n, t in g.items()}, c)
    assert float(torch.sqrt(sum((t ** 2).sum() for t in one.values()))) == pytest.approx(c, rel=1e-4)


def _users(w, counts):
    """``w``'s rows grouped into users of ``counts`` rows each."""
    return BoundedUsers.build(w, torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)))


def test_uls_per_user_gradient_is_mean_and_clipping_bounds_user_contribution():
    m, params = _model()
    counts = [3, 1, 4, 2]
    w = _windows(sum(counts), seed=1)
    data = _users(w, counts)
    starts = data.starts
    gen = torch.Generator().manual_seed(0)
    # rate 1, no noise, huge clip: the step is sum over users of their mean gradients / N
    big, n_ex, _ = uls_step(m, params, data, sampling_rate=1.0, clip=1e9,
                            noise_multiplier=0.0, generator=gen)
    assert n_ex == sum(counts)
    ref = {n: torch.zeros_like(p) for n, p in params.items()}
    for u, c in enumerate(counts):
        m.zero_grad()
        rows = slice(int(starts[u]), int(starts[u]) + c)
        window_loss(m, w[rows]).mean().backward()
        for n, p in m.named_parameters():
            ref[n] += p.grad / len(counts)
    for n in ref:
        torch.testing.assert_close(big[n], ref[n], rtol=1e-4, atol=1e-6)
    # with a small clip, removing one user changes the (un-normalised) sum by at most C
    C = 0.01
    full, _, _ = uls_step(m, params, data, sampling_rate=1.0, clip=C,
                          noise_multiplier=0.0, generator=gen)
    keep = torch.arange(len(w)) >= counts[0]  # drop user 0 (rows 0..2)
    part, _, _ = uls_step(m, params, _users(w[keep], counts[1:]), sampling_rate=1.0, clip=C, noise_multiplier=0.0,
                          generator=gen)
    diff = torch.sqrt(sum(((full[n] * 4 - part[n] * 3) ** 2).sum() for n in full))
    assert float(diff) <= C * (1 + 1e-4)
    assert float(diff) == pytest.approx(C, rel=1e-3)  # user 0's mean gradient is far above C


def test_els_removing_a_user_changes_sum_by_at_most_k_C():
    m, params = _model()
    w = _windows(7, seed=2)
    C, k = 0.01, 3
    gen = torch.Generator().manual_seed(0)
    full, b, _ = els_step(m, params, _users(w, [1] * 7), sampling_rate=1.0, clip=C, noise_multiplier=0.0,
                          generator=gen)
    part, _, _ = els_step(m, params, _users(w[k:], [1] * 4), sampling_rate=1.0, clip=C, noise_multiplier=0.0,
                          generator=gen)
    diff = torch.sqrt(sum(((full[n] * 7 - part[n] * 4) ** 2).sum() for n in full))
    assert b == 7 and float(diff) <= k * C * (1 + 1e-4)


def test_contribution_bound_keeps_exactly_k():
    rng = np.random.default_rng(0)
    users = [rng.integers(0, 96, (n, 9)) for n in (1, 5, 12, 40, 3)]
    for k in (1, 4, 16):
        w, owner = bound_contributions(users, k, bound_seed=7)
        counts = np.bincount(owner, minlength=len(users))
        assert counts.tolist() == [min(len(u), k) for u in users]
        # kept rows really come from their owner, without repeats
        for u, rows in enumerate(users):
            kept = w[owner == u]
            assert len({r.tobytes() for r in kept}) == len(kept)
            assert all(any((r == x).all() for x in rows) for r in kept)
        w2, _ = bound_contributions(users, k, bound_seed=7)
        assert (w == w2).all()
    # a different data-independent seed picks a different subset
    assert not (bound_contributions(users, 4, 1)[0] == bound_contributions(users, 4, 2)[0]).all()


def test_els_and_uls_steps_are_seeded():
    m, params = _model()
    counts = [2, 2, 3]
    w = _windows(7, seed=3)
    data = _users(w, counts)
    outs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(42)
        e, _, _ = els_step(m, params, data, sampling_rate=0.5, clip=0.1, noise_multiplier=1.0, generator=gen)
        u, _, _ = uls_step(m, params, data, sampling_rate=0.5, clip=0.1,
                           noise_multiplier=1.0, generator=gen)
        outs.append((e, u))
    for n in params:
        assert torch.equal(outs[0][0][n], outs[1][0][n]) and torch.equal(outs[0][1][n], outs[1][1][n])
