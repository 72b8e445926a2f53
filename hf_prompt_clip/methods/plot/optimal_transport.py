"""Entropic optimal transport between uniform marginals (Sinkhorn), batched over many small problems.

Room: `methods/`.

PLOT matches M local visual features of an image with N prompt features of a class: for every
(image, class) pair, the similarity matrix `S` (`M x N`, cosines in [-1, 1]) gives the cost
`C = 1 - S`, and the transport plan `T` of the entropic problem with marginals `u = 1/M`,
`v = 1/N` is found by Sinkhorn's iterations on the kernel `K = exp(-C / eps)`:

    r <- u / (K c),   c <- v / (K^T r),   T = diag(r) K diag(c)

starting from `r = c = 1`. `sinkhorn` runs them in float32 in the log domain for all problems at
once, so nothing underflows (the reference runs in fp16, where `exp(-C / eps)` of negative
similarities gives NaN), and it never waits for the host inside the loop unless asked to stop early.
`sinkhorn_reference` is the authors' algorithm as written (linear domain, a host check every
iteration), kept to compare against.

The authors stop when the mean absolute change of `r` falls below a threshold (1e-2). `r` reaches
~1e7 where similarities are all near -1, and float32 holds it to ~1 there: the change of two stored
scalings is then rounding noise (the authors' own float32 loop stops at 11 to 24 iterations where
exact arithmetic stops at 8 to 11, and a log-domain loop never stops). So `sinkhorn` does not
subtract scalings: it carries each half-step's relative change `x_previous / x - 1` from the
previous one by the exact identity `r_previous / r - 1 = -K(c * rho_c) / K(c (1 + rho_c))`
(`rho_c = c_previous / c - 1`, the same pass over the kernel as the half-step), which keeps every
digit of a small change, and stops on `mean(r * |rho_r|)`: the reference rule in exact arithmetic,
whatever the magnitude of `r` (tested against the authors' loop in float64, and in float32 where
float32 resolves the rule).

The plan is computed without gradient: callers use it as a constant weighting of `S`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Stopping rules: `"reference"` stops when the mean absolute change of the row scaling `r` over the
#: whole batch falls below a threshold (the authors' rule); `"fixed"` runs every iteration.
SINKHORN_STOPPING_RULES: tuple[str, ...] = ("reference", "fixed")


@dataclass
class SinkhornResult:
    """A batch of transport plans and the number of iterations that produced them.

    Attributes:
        plan: `(..., M, N)` plans; every plan's rows sum to `1/M` and its columns to `1/N`.
        iterations: Sinkhorn iterations run (the same for the whole batch).
    """

    plan: torch.Tensor
    iterations: int


def _check_arguments(similarity: torch.Tensor, eps: float, max_iter: int) -> None:
    if similarity.dim() < 2 or 0 in similarity.shape[-2:]:
        raise ValueError(
            f"similarity must be (..., M, N) with M, N >= 1, got shape {tuple(similarity.shape)}."
        )
    if not eps > 0:
        raise ValueError(f"The entropic regularisation eps must be positive, got {eps}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}.")


def check_finite_plan(plan: torch.Tensor, similarity: torch.Tensor, eps: float) -> None:
    """Raise `FloatingPointError` naming the inputs when a plan holds NaN or infinity."""
    if bool(torch.isfinite(plan).all()):
        return
    finite = torch.isfinite(similarity)
    values = similarity[finite]
    value_range = (
        f"[{values.min().item():.4g}, {values.max().item():.4g}]" if values.numel() else "(no finite value)"
    )
    raise FloatingPointError(
        f"The Sinkhorn plan is not finite: similarities of shape {tuple(similarity.shape)} and dtype "
        f"{similarity.dtype} with {int((~finite).sum())} non-finite entries and finite values in "
        f"{value_range}, eps={eps}. Check the features for NaN/inf (a diverged learning rate), keep "
        "similarities in [-1, 1] (normalised features), or raise eps."
    )


#: Iterations between host reads of the stopping flag on accelerators (`sinkhorn(check_every=None)`).
ACCELERATOR_CHECK_EVERY = 5

#: Largest spread of `log K` (at most `2 / eps` for cosines) for which the row-shifted kernel stays
#: above float32's smallest normal number (e^-87): eps >= 0.025; smaller eps use log-sum-exp.
MAX_SHIFTED_SPAN = 80.0


def _log_kernel_products(
    kernel: torch.Tensor,
    row_shift: torch.Tensor,
    log_x: torch.Tensor,
    transpose: bool,
    relative: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`log(K @ exp(log_x))` (or `log(K^T @ exp(log_x))`) for `(P, M, N)` kernels given as
    `kernel = exp(log K - row_shift)`, `row_shift` `(P, M)` the row maxima of `log K`.

    Each product is taken against `exp(log_x - max log_x) <= 1` whose largest entry is 1, so every
    term is in float32 range while the kernel's entries are (`MAX_SHIFTED_SPAN`).

    With `relative` (`x_previous / x - 1`, same shape as `log_x`), also returns the relative change
    of the scaling this product makes (`marginal / product`) from the same pass over the kernel:
    `_relative_change(K (x * relative), K x)`; else `None`.
    """
    if transpose:  # K^T x = sum_m exp(log K_mn) x_m = kernel^T (x * exp(row_shift))
        log_x = log_x + row_shift
    top = log_x.amax(dim=-1, keepdim=True)
    scaled = (log_x - top).exp()  # (P, len)
    vectors = [scaled]
    if relative is not None:  # a second vector, x * relative, through the same kernel
        bounded = relative.clamp(-1.0, MAX_CARRIED_CHANGE)  # where it is used it lies within; no overflow
        vectors.append(scaled * bounded)
    if transpose:
        products = torch.bmm(torch.stack(vectors, dim=-2), kernel).unbind(-2)  # (P, N) each
    else:
        products = torch.bmm(kernel, torch.stack(vectors, dim=-1)).unbind(-1)  # (P, M) each
        top = top + row_shift
    change = None if relative is None else _relative_change(products[1], products[0])
    return products[0].log() + top, change


def _relative_change(difference: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
    """The relative change `y_previous / y - 1` of a scaling `y = marginal / product` whose product
    changed from `product + difference` to `product`: `product / (product + difference) - 1`, written
    `-difference / (product + difference)` so that a small change keeps all its digits."""
    return -difference / (product + difference)


#: A half-step's new log-scaling and, when asked, its relative change (see `_log_kernel_products`).
HalfStep = tuple[torch.Tensor, "torch.Tensor | None"]

#: Largest relative change `|x_previous / x - 1|` of a scaling that the stopping rule carries from
#: one half-step to the next by the exact product formula; larger changes (the first iterations,
#: where the difference of the potentials is exact enough) are read off the potentials.
MAX_CARRIED_CHANGE = 0.5


def _carried_change(
    carried: torch.Tensor, new_log: torch.Tensor, old_log: torch.Tensor, previous: torch.Tensor
) -> torch.Tensor:
    """The relative change `x_previous / x - 1` of a scaling `x` `(P, L)` in one half-step.

    `carried` is the product formula's value, used where the other scaling's relative change
    `previous` was at most `MAX_CARRIED_CHANGE` throughout the problem; elsewhere the change is read
    off the log-potentials (`exp(old_log - new_log) - 1`).

    Exact changes keep the plan's mass at 1, which for uniform marginals is `mean(relative) = 0`
    over each problem's rows (columns); restoring it removes the one error that the product formula
    carries along undamped (log r shifted by a constant and log c by its opposite: the same plan).
    """
    mean = carried.mean(dim=-1, keepdim=True)
    carried = (carried - mean) / (1.0 + mean)
    small = previous.abs().amax(dim=-1, keepdim=True) <= MAX_CARRIED_CHANGE
    return torch.where(small, carried, (old_log - new_log).exp() - 1.0)


def _log_sum_exp_change(
    summed: torch.Tensor, log_product: torch.Tensor, relative: torch.Tensor, dim: int
) -> torch.Tensor:
    """The log-sum-exp half-step's relative change of the new scaling (see `_log_kernel_products`).

    `summed` `(P, N, M)` is `log K^T` plus the log-scaling along `dim`, `log_product` its log-sum-exp
    over `dim`, `relative` that scaling's relative change (`(P, N)` for `dim=-2`, `(P, M)` for `dim=-1`).
    """
    weights = (summed - log_product.unsqueeze(dim)).exp()  # the product's terms over the product
    other = -1 if dim == -2 else -2
    bounded = relative.clamp(-1.0, MAX_CARRIED_CHANGE).unsqueeze(other)
    return _relative_change((weights * bounded).sum(dim), torch.ones_like(log_product))


@torch.no_grad()
def sinkhorn(
    similarity: torch.Tensor,
    eps: float = 0.1,
    max_iter: int = 100,
    threshold: float | None = 1e-2,
    check_every: int | None = None,
) -> SinkhornResult:
    """Transport plans of `cost = 1 - similarity` between uniform marginals, for a batch of problems.

    Runs in float32 in the log domain for every problem at once: the scalings are kept as
    log-potentials, and each half-step `log(K exp(log c))` multiplies a kernel shifted by its row
    maxima before exponentiation with `exp(log c - max log c)`, so nothing under- or overflows
    while `2 / eps` (the widest spread of `S / eps` for cosines, which are clamped to [-1, 1]) is
    below `MAX_SHIFTED_SPAN`, i.e. eps >= 0.025; smaller eps run each half-step as a log-sum-exp
    over the full matrices. Both are exact.

    With `threshold`, iterations stop as in the reference: after the first iteration at which the
    mean absolute change of the row scaling `r` over the whole batch is below `threshold`, that change
    computed from exactly carried relative changes (see the module's docstring), so the iteration
    count is the reference rule's in exact arithmetic even where float32 cannot hold `r` to the
    threshold (similarities near -1). The
    host reads that flag every `check_every` iterations (by default every iteration on the CPU,
    where it costs nothing, and every `ACCELERATOR_CHECK_EVERY` on an accelerator, where each read
    waits for the device); iterations past the stopping point leave the state unchanged, so the
    plan and the iteration count are the reference's for any `check_every`. With
    `threshold=None`, exactly `max_iter` iterations run and nothing waits for the host (so the plan
    is not checked either: non-finite similarities give a NaN plan, not an error).

    Args:
        similarity: `(..., M, N)` similarities (cosines, in [-1, 1]); any float dtype, any device.
        eps: entropic regularisation (the kernel is `exp(-(1 - S) / eps)`).
        max_iter: most iterations.
        threshold: the reference stopping threshold, or `None` for a fixed number of iterations.
        check_every: iterations between host checks of the stopping rule (`None`: device default).

    Returns:
        `SinkhornResult` with `plan` `(..., M, N)` in float32 (no gradient) and `iterations`.

    Raises:
        FloatingPointError: with `threshold`, when the plan is not finite (non-finite similarities),
            naming the inputs.

    Example:
        >>> similarity = torch.tensor([[[0.9, 0.1], [0.2, 0.8]]])          # one 2 x 2 problem
        >>> result = sinkhorn(similarity, eps=0.1)
        >>> result.plan.sum(-2)                                             # column marginals 1/2
        tensor([[0.5000, 0.5000]])
    """
    _check_arguments(similarity, eps, max_iter)
    if check_every is not None and check_every < 1:
        raise ValueError(f"check_every must be at least 1, got {check_every}.")
    shape = similarity.shape
    rows, columns = shape[-2:]
    # log K = -(1 - S) / eps, with S clamped to the cosines' range [-1, 1] (NaN stays NaN)
    log_kernel = (similarity.float().reshape(-1, rows, columns).clamp(-1.0, 1.0) - 1.0) / eps
    log_u, log_v = -math.log(rows), -math.log(columns)
    if 2.0 / eps <= MAX_SHIFTED_SPAN:  # the spread of log K is at most 2 / eps: decided without the data
        row_shift = log_kernel.amax(dim=-1)  # (P, M)
        kernel = (log_kernel - row_shift.unsqueeze(-1)).exp()  # each row's largest entry is 1

        def half_step_r(log_c: torch.Tensor, relative_c: torch.Tensor | None = None) -> HalfStep:
            log_product, change = _log_kernel_products(kernel, row_shift, log_c, False, relative_c)
            return log_u - log_product, change  # r = u / (K c)

        def half_step_c(log_r: torch.Tensor, relative_r: torch.Tensor | None = None) -> HalfStep:
            log_product, change = _log_kernel_products(kernel, row_shift, log_r, True, relative_r)
            return log_v - log_product, change  # c = v / (K^T r)

    else:
        transposed = log_kernel.transpose(1, 2).contiguous()  # (P, N, M): both reductions contiguous

        def half_step_r(log_c: torch.Tensor, relative_c: torch.Tensor | None = None) -> HalfStep:
            summed = transposed + log_c.unsqueeze(-1)
            log_product = torch.logsumexp(summed, dim=-2)
            change = None if relative_c is None else _log_sum_exp_change(summed, log_product, relative_c, -2)
            return log_u - log_product, change

        def half_step_c(log_r: torch.Tensor, relative_r: torch.Tensor | None = None) -> HalfStep:
            summed = transposed + log_r.unsqueeze(-2)
            log_product = torch.logsumexp(summed, dim=-1)
            change = None if relative_r is None else _log_sum_exp_change(summed, log_product, relative_r, -1)
            return log_v - log_product, change

    log_r = log_kernel.new_zeros(log_kernel.shape[:-1])  # r = 1
    log_c = log_kernel.new_zeros((log_kernel.shape[0], columns))  # c = 1
    if threshold is None:
        for _ in range(max_iter):
            log_r = half_step_r(log_c)[0]
            log_c = half_step_c(log_r)[0]
        iterations = max_iter
    else:
        if check_every is None:  # reading the flag costs nothing on the CPU; on an accelerator it waits
            check_every = 1 if log_kernel.device.type == "cpu" else ACCELERATOR_CHECK_EVERY
        # the relative change of c in the previous iteration. The start r = c = 1 is no half-step's
        # result, so the first iteration's changes are read off the potentials (exact there)
        unknown = torch.full_like(log_c, math.inf)
        relative_c = unknown
        done = torch.zeros((), dtype=torch.bool, device=log_kernel.device)
        count = torch.zeros((), dtype=torch.long, device=log_kernel.device)
        for iteration in range(1, max_iter + 1):
            new_log_r, carried = half_step_r(log_c, relative_c)
            relative_r = _carried_change(carried, new_log_r, log_r, relative_c)
            new_log_c, carried = half_step_c(new_log_r, relative_r)
            new_relative_c = _carried_change(
                carried, new_log_c, log_c, relative_r if iteration > 1 else unknown
            )
            # the reference's mean |r - r_previous| = mean(r * |r_previous / r - 1|)
            change = (new_log_r.exp() * relative_r.abs()).mean()
            # once stopped, the state stays as it was at the stopping iteration
            log_r = torch.where(done, log_r, new_log_r)
            log_c = torch.where(done, log_c, new_log_c)
            relative_c = torch.where(done, relative_c, new_relative_c)
            count += (~done).long()
            done = done | (change < threshold)
            if iteration % check_every == 0 and iteration < max_iter and bool(done):
                break
        iterations = int(count)
    plan = torch.exp(log_r.unsqueeze(-1) + log_kernel + log_c.unsqueeze(-2)).reshape(shape)
    if threshold is not None:  # the stopping rule reads the host anyway; a fixed count never does
        check_finite_plan(plan, similarity, eps)
    return SinkhornResult(plan, iterations)


@torch.no_grad()
def sinkhorn_reference(
    similarity: torch.Tensor, eps: float = 0.1, max_iter: int = 100, threshold: float | None = 1e-2
) -> SinkhornResult:
    """The authors' Sinkhorn loop (CHENGY12/PLOT), in float32: linear domain, batched, host check each step.

    `similarity` is flattened to `(P, M, N)` problems; `K = exp(-(1 - S) / eps)`, `r = c = 1`, then
    `r = u / (K c)`, `c = v / (K^T r)` until `mean |r - r_previous| < threshold` (over the whole
    batch) or `max_iter` iterations. `threshold=None` runs `max_iter` iterations. The straightforward
    path of PLOT (`fast=False`) uses it; for small `eps` the linear-domain kernel underflows and the
    plan is refused as non-finite, where `sinkhorn` still works.
    """
    _check_arguments(similarity, eps, max_iter)
    shape = similarity.shape
    kernel = torch.exp(-(1.0 - similarity.float().reshape(-1, *shape[-2:])) / eps)
    u = torch.full(kernel.shape[:2], 1.0 / shape[-2], device=kernel.device)
    v = torch.full((kernel.shape[0], shape[-1]), 1.0 / shape[-1], device=kernel.device)
    r, c = torch.ones_like(u), torch.ones_like(v)
    iterations = 0
    for _ in range(max_iter):
        previous = r
        r = u / torch.matmul(kernel, c.unsqueeze(-1)).squeeze(-1)
        c = v / torch.matmul(kernel.transpose(1, 2), r.unsqueeze(-1)).squeeze(-1)
        iterations += 1
        if threshold is not None and (r - previous).abs().mean().item() < threshold:
            break
    plan = (r.unsqueeze(-1) * kernel * c.unsqueeze(-2)).reshape(shape)
    check_finite_plan(plan, similarity, eps)
    return SinkhornResult(plan, iterations)
