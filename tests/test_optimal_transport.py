"""Sinkhorn (methods/plot/optimal_transport.py) against the authors' loop, a per-problem reference and POT."""

import math

import numpy as np
import ot
import pytest
import torch

from hf_prompt_clip.methods.plot.optimal_transport import sinkhorn, sinkhorn_reference


def similarities(*shape, seed=0, dtype=torch.float32):
    """Cosines in [-1, 1]."""
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1).to(dtype)


def authors_loop(similarity, eps=0.1, max_iter=100, threshold=1e-2):
    """CHENGY12/PLOT `CustomCLIP.Sinkhorn`, as written (in float64 here): batched, linear domain,
    stopping on the mean absolute change of `r` over the whole batch. Returns (plan, iterations)."""
    kernel = torch.exp(-(1.0 - similarity.double()) / eps)
    u = torch.full(kernel.shape[:2], 1.0 / kernel.shape[1], dtype=torch.float64)
    v = torch.full((kernel.shape[0], kernel.shape[2]), 1.0 / kernel.shape[2], dtype=torch.float64)
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


def one_problem(similarity, eps, iterations):
    """Sinkhorn's iterations written out for a single M x N problem in NumPy (float64)."""
    kernel = np.exp(-(1.0 - similarity) / eps)
    rows, columns = kernel.shape
    r, c = np.ones(rows), np.ones(columns)
    for _ in range(iterations):
        r = (1.0 / rows) / (kernel @ c)
        c = (1.0 / columns) / (kernel.T @ r)
    return r[:, None] * kernel * c[None, :]


@pytest.mark.parametrize("shape", [(6, 196, 4), (2, 3, 5, 7), (4, 1, 1)])
def test_converged_plans_have_the_uniform_marginals(shape):
    plan = sinkhorn(similarities(*shape), threshold=None, max_iter=500).plan
    rows, columns = shape[-2:]
    torch.testing.assert_close(plan.sum(-1), torch.full(plan.shape[:-1], 1 / rows), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(
        plan.sum(-2), torch.full((*plan.shape[:-2], columns), 1 / columns), atol=1e-6, rtol=1e-4
    )


def test_each_plan_equals_the_per_problem_iterations():
    similarity = similarities(5, 9, 4, seed=1)
    for iterations in (1, 7, 40):
        ours = sinkhorn(similarity, eps=0.1, max_iter=iterations, threshold=None)
        assert ours.iterations == iterations
        for k in range(5):
            expected = one_problem(similarity[k].double().numpy(), 0.1, iterations)
            np.testing.assert_allclose(ours.plan[k].numpy(), expected, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("check_every", [1, 3, 5, 100])
@pytest.mark.parametrize("seed", range(4))
def test_the_reference_rule_stops_where_the_authors_loop_stops(seed, check_every):
    """On CLIP-like cosines. (Similarities near -1, where float32 cannot hold r to the threshold:
    tests/test_sinkhorn_stopping.py.)"""
    similarity = similarities(16, 49, 4, seed=seed) * (0.3 + 0.2 * seed)
    expected, stop = authors_loop(similarity)
    ours = sinkhorn(similarity, check_every=check_every)
    assert ours.iterations == stop
    torch.testing.assert_close(ours.plan.double(), expected, atol=1e-7, rtol=1e-4)
    straightforward = sinkhorn_reference(similarity)
    assert straightforward.iterations == stop
    torch.testing.assert_close(straightforward.plan.double(), expected, atol=1e-7, rtol=1e-4)


def test_shifted_kernel_and_log_sum_exp_updates_agree(monkeypatch):
    """The two exact forms of the log-domain half-step give the same plans and stopping iteration."""
    from hf_prompt_clip.methods.plot import optimal_transport

    similarity = similarities(6, 49, 4, seed=5)
    shifted = sinkhorn(similarity, eps=0.03)
    monkeypatch.setattr(optimal_transport, "MAX_SHIFTED_SPAN", 0.0)
    summed = sinkhorn(similarity, eps=0.03)
    assert shifted.iterations == summed.iterations
    torch.testing.assert_close(shifted.plan, summed.plan, atol=1e-7, rtol=1e-4)


def test_the_stopping_rule_reads_the_whole_batch():
    """One problem that converges slowly keeps every problem of the batch iterating (reference)."""
    easy = torch.zeros(3, 4, 4)
    hard = similarities(1, 4, 4, seed=3) * 0.6
    alone = sinkhorn(easy).iterations
    together = sinkhorn(torch.cat([easy, hard]))
    assert together.iterations > alone
    assert together.iterations == authors_loop(torch.cat([easy, hard]))[1]


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.5])
def test_plans_equal_pot(eps):
    similarity = similarities(3, 12, 5, seed=2, dtype=torch.float64)
    ours = sinkhorn(similarity, eps=eps, max_iter=3000, threshold=None).plan
    for k in range(3):
        cost = (1 - similarity[k]).numpy()
        expected = ot.sinkhorn(
            np.full(12, 1 / 12), np.full(5, 1 / 5), cost, eps, numItermax=20000, stopThr=1e-13
        )
        np.testing.assert_allclose(ours[k].numpy(), expected, atol=1e-6)  # float32 against float64


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("eps", [0.01, 0.03, 0.1])
def test_plans_stay_finite_for_low_precision_inputs_and_small_eps(dtype, eps):
    """The reference's fp16 kernel is exp(-(1 - S) / eps): NaN for negative S at eps 0.1 and below."""
    similarity = similarities(8, 49, 4, seed=4, dtype=dtype)
    similarity[0, 0] = -1.0
    similarity[0, 1] = 1.0
    result = sinkhorn(similarity, eps=eps, max_iter=300, threshold=None)
    assert result.plan.dtype == torch.float32 and bool(torch.isfinite(result.plan).all())
    torch.testing.assert_close(result.plan.sum(-2), torch.full((8, 4), 0.25), atol=1e-5, rtol=0)
    with pytest.raises(FloatingPointError, match="not finite"):  # the linear domain underflows
        sinkhorn_reference(torch.full((1, 3, 2), -1.0), eps=0.01)
    if eps >= 0.1 and dtype == torch.float16:  # what the reference computes in fp16
        kernel = torch.exp(-(1 - similarity) / torch.tensor(eps, dtype=dtype))
        r = (1 / 49) / (kernel @ torch.ones(8, 4, 1, dtype=dtype)).squeeze(-1)
        assert not bool(torch.isfinite(r).all())


def test_a_non_finite_plan_is_an_error_naming_the_inputs():
    similarity = similarities(2, 5, 3)
    similarity[1, 2, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"shape \(2, 5, 3\).*1 non-finite"):
        sinkhorn(similarity)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="eps must be positive"):
        sinkhorn(similarities(1, 2, 2), eps=0)
    with pytest.raises(ValueError, match=r"\(\.\.\., M, N\)"):
        sinkhorn(torch.zeros(4))


def test_a_fixed_iteration_count_never_waits_for_the_host(monkeypatch):
    """No tensor is read on the host (bool/item/int/float) with threshold=None; NaN passes through."""

    def refuse(*args, **kwargs):
        raise AssertionError("sinkhorn read a tensor on the host")

    similarity = similarities(4, 49, 4)
    similarity[0, 0, 0] = float("nan")
    for name in ("__bool__", "item", "__int__", "__float__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    result = sinkhorn(similarity, threshold=None, max_iter=20)
    plan = result.plan
    monkeypatch.undo()
    assert result.iterations == 20
    assert torch.isnan(plan[0]).all() and torch.isfinite(plan[1:]).all()


def test_the_plan_carries_no_gradient():
    similarity = similarities(2, 4, 3).requires_grad_()
    plan = sinkhorn(similarity).plan
    assert not plan.requires_grad
    assert math.isclose(plan.sum().item(), 2.0, rel_tol=1e-5)
