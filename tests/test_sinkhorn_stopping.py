"""Sinkhorn's reference stopping rule counts the reference's iterations in every similarity regime.

The oracle is the authors' loop (CHENGY12/PLOT `CustomCLIP.Sinkhorn`) written out below: linear
domain, `r = u / (K c)`, `c = v / (K^T r)`, stop when `mean |r - r_previous| < 1e-2` over the batch.
Where every similarity is near -1, `r` reaches ~1e6-1e7 and float32 holds it to ~0.1-1, so the
authors' own float32 loop stops on rounding noise there; float64 resolves the rule in every regime
here, so it is the oracle, and the float32 loop is one too where float32 resolves the rule.
"""

import pytest
import torch

from hf_prompt_clip.methods.plot import optimal_transport
from hf_prompt_clip.methods.plot.optimal_transport import sinkhorn

#: similarity regimes: (low, high) of uniformly drawn cosines
REGIMES = {
    "near -1": (-1.0, -0.8),  # r ~ 1e6 (M=49) to 1e7 (M=7): float32 cannot resolve the rule
    "full range": (-1.0, 1.0),
    "narrow positive": (0.2, 0.4),
    "near constant": (0.5, 0.5001),
}
#: regimes where the authors' float32 loop resolves its own rule (the change is not rounding noise)
FLOAT32_RESOLVES = ("full range", "narrow positive", "near constant")


def authors_loop(similarity, dtype, eps=0.1, max_iter=100, threshold=1e-2):
    """The reference Sinkhorn as written, in `dtype`: returns (plan, iterations)."""
    kernel = torch.exp(-(1.0 - similarity.to(dtype)) / eps)
    u = torch.full(kernel.shape[:2], 1.0 / kernel.shape[1], dtype=dtype)
    v = torch.full((kernel.shape[0], kernel.shape[2]), 1.0 / kernel.shape[2], dtype=dtype)
    r, c = torch.ones_like(u), torch.ones_like(v)
    iterations = 0
    for _ in range(max_iter):
        r0 = r
        r = u / torch.matmul(kernel, c.unsqueeze(-1)).squeeze(-1)
        c = v / torch.matmul(kernel.permute(0, 2, 1).contiguous(), r.unsqueeze(-1)).squeeze(-1)
        iterations += 1
        if (r - r0).abs().mean().item() < threshold:
            break
    return torch.matmul(r.unsqueeze(-1), c.unsqueeze(-2)) * kernel, iterations


def draw(regime, shape, seed):
    low, high = REGIMES[regime]
    uniform = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
    return low + (high - low) * uniform


CASES = [
    (regime, shape, seed)
    for regime in REGIMES
    for shape, seed in (((16, 49, 4), 0), ((16, 49, 4), 2), ((100, 7, 4), 1))
]


@pytest.mark.parametrize("regime, shape, seed", CASES)
def test_the_stopping_rule_counts_the_reference_iterations(regime, shape, seed):
    similarity = draw(regime, shape, seed)
    expected, count = authors_loop(similarity, torch.float64)
    for check_every in (1, 5):
        ours = sinkhorn(similarity, check_every=check_every)
        assert ours.iterations == count, (regime, check_every)
        torch.testing.assert_close(ours.plan.double(), expected, atol=1e-7, rtol=1e-4)
    if regime in FLOAT32_RESOLVES:
        assert authors_loop(similarity, torch.float32)[1] == count


@pytest.mark.parametrize("regime", list(REGIMES))
def test_the_log_sum_exp_half_steps_count_the_same(regime, monkeypatch):
    """The half-steps for small eps (log-sum-exp over the full matrices) carry the same changes."""
    similarity = draw(regime, (16, 49, 4), 0)
    expected, count = authors_loop(similarity, torch.float64)
    monkeypatch.setattr(optimal_transport, "MAX_SHIFTED_SPAN", 0.0)
    ours = sinkhorn(similarity)
    assert ours.iterations == count
    torch.testing.assert_close(ours.plan.double(), expected, atol=1e-7, rtol=1e-4)


def test_a_smaller_eps_counts_the_reference_iterations_too():
    """Smaller eps: near -1, eps 0.05 gives r ~ 1e15, past even float64's resolution of the rule; on
    cosines in [0, 1] (r up to ~5e9 at eps 0.03) float64 resolves it (an 80-bit loop counts the same;
    float32 is 3 iterations off at 0.03), and ours counts as float64."""
    similarity = draw("full range", (8, 49, 4), 3).abs()
    for eps in (0.05, 0.03):
        expected, count = authors_loop(similarity, torch.float64, eps=eps, max_iter=300)
        ours = sinkhorn(similarity, eps=eps, max_iter=300)
        assert ours.iterations == count
        torch.testing.assert_close(ours.plan.double(), expected, atol=1e-7, rtol=1e-4)
