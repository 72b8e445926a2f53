"""The maths of the linear probe: logistic regression and the search of its L2 strength.

Room: `methods/`.

Pure functions of tensors (or of a score function), testable alone. Two solvers fit the regression:
`fit_logistic_regression` (torch L-BFGS in float64, any device, with an optional centre for ZS-LP;
checked against scikit-learn's `LogisticRegression(solver="lbfgs")`) and `sklearn_logistic_regression`
(scikit-learn itself, the call of CoOp's `lpclip`, an optional dependency). The search
(`search_inverse_l2`) is CoOp's, to the bit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...utils.logs import progress_bar

#: CoOp's `lpclip/linear_probe.py` sweep of C (scikit-learn's inverse L2 strength), largest first.
REFERENCE_C_GRID: tuple[float, ...] = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)

#: The linear probe's solvers (`LinearProbeConfig.solver`).
SOLVERS: tuple[str, ...] = ("torch", "sklearn")

#: What to run when scikit-learn is missing.
SKLEARN_INSTALL = 'pip install "hf-prompt-clip[sklearn]"'


def fit_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    C: float,
    *,
    center: torch.Tensor | None = None,
    max_iter: int = 1000,
    tolerance: float = 1e-4,
    history_size: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression with an L2 penalty, fitted by L-BFGS in float64.

    Minimises scikit-learn's objective for `LogisticRegression(C=C, solver="lbfgs")` (multinomial,
    intercept fitted and not penalised), written per example:

        mean_i CE(W x_i + b, y_i) + ||W - W_0||^2 / (2 C N)

    with `W_0 = center` (zero by default: scikit-learn's). It starts at `(W_0, 0)`, as scikit-learn
    starts at zero, and stops when the largest gradient entry is at most `tolerance` (scikit-learn's
    `tol`, its `gtol`) or after `max_iter` iterations, with a strong-Wolfe line search and
    `history_size` correction pairs (SciPy's L-BFGS-B keeps 10).

    Args:
        features: `(N, E)` inputs (e.g. L2-normalised image features).
        labels: `(N,)` class indices in `[0, num_classes)`.
        num_classes: K.
        C: inverse L2 strength (> 0); large C means little regularisation.
        center: `(K, E)` weights the penalty pulls towards (a zero-shot head), or `None` (zero).
        max_iter, tolerance, history_size: L-BFGS settings.

    Returns:
        `weight` `(K, E)` and `bias` `(K,)`, float64, on the features' device; logits are `x W^T + b`.

    Example:
        >>> x = torch.randn(40, 8, dtype=torch.float64); y = torch.arange(40) % 4
        >>> weight, bias = fit_logistic_regression(x, y, 4, C=1.0)
        >>> weight.shape, bias.shape
        (torch.Size([4, 8]), torch.Size([4]))
    """
    if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
        raise ValueError(f"C (inverse L2 strength) must be a positive finite number, got {C!r}.")
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"features must be (N, E) with labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}."
        )
    x = features.detach().to(torch.float64)
    y = labels.detach().to(x.device, torch.long)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values from {int(y.min())} to {int(y.max())}."
        )
    anchor = (
        torch.zeros(num_classes, x.shape[1], dtype=torch.float64, device=x.device)
        if center is None
        else center.detach().to(x.device, torch.float64)
    )
    if anchor.shape != (num_classes, x.shape[1]):
        raise ValueError(f"center must be ({num_classes}, {x.shape[1]}), got {tuple(anchor.shape)}.")
    weight = anchor.clone().requires_grad_(True)
    bias = torch.zeros(num_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    strength = 1.0 / (C * x.shape[0])
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tolerance,
        tolerance_change=64 * torch.finfo(torch.float64).eps,
        history_size=history_size,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * strength * (weight - anchor).square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return weight.detach(), bias.detach()


def search_inverse_l2(
    score: Callable[[float], float], grid: Sequence[float] = REFERENCE_C_GRID, steps: int = 8
) -> tuple[float, list[tuple[float, float]]]:
    """CoOp's search of C on validation (`lpclip/linear_probe.py`): a log-spaced sweep, then `steps`
    rounds of a binary search in log10(C).

    The sweep scores every C of `grid` and takes the first best one, `c`. The search starts at
    `[c / 10, c * 10]`; each round scores both ends, keeps the better (the left, smaller C on a tie) as
    the answer and halves the interval in log10(C) towards it: `[mid, right]` if the right end scored
    higher, else `[left, mid]`. The answer is the better end of the last round (`c` with `steps=0`).
    The floating-point arithmetic is lpclip's (`1e-1 * c`, and both ends through `np.log10` and
    `np.power(10, .)` every round, which moves a kept end by an ulp now and then), so the Cs tried are
    lpclip's bit for bit. Each distinct C is scored once (a repeated end is remembered). A progress bar
    counts the `len(grid) + 2 * steps` scores asked for (`utils.logs.progress_bar`, silenced by `--quiet`).

    Args:
        score: C -> validation score (higher is better), e.g. the accuracy of the probe fitted with C.
        grid: the sweep, in the order ties are broken (the first best wins).
        steps: binary-search rounds.

    Returns:
        The chosen C and the `(C, score)` pairs scored, in order.

    Example:
        >>> best, history = search_inverse_l2(lambda c: -abs(math.log10(c) - 1.3))
        >>> round(math.log10(best), 1)
        1.3
    """
    if not grid:
        raise ValueError("grid must hold at least one C to try, e.g. (1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6).")
    if steps < 0:
        raise ValueError(f"steps cannot be negative, got {steps} (0: the sweep alone).")
    scored: dict[float, float] = {}
    history: list[tuple[float, float]] = []
    bar = progress_bar(desc="searching the linear probe's C", total=len(grid) + 2 * steps, unit="C")

    def measured(c: float) -> float:
        if c not in scored:
            bar.set_postfix_str(f"C={c:.3g}", refresh=False)
            scored[c] = float(score(c))
            history.append((c, scored[c]))
        bar.update()
        return scored[c]

    with bar:
        best = _search(measured, grid, steps)
    return best, history


def _search(measured: Callable[[float], float], grid: Sequence[float], steps: int) -> float:
    """`search_inverse_l2`'s sweep and binary search, `measured(C)` giving C's score."""
    values = [measured(float(c)) for c in grid]
    best = float(grid[values.index(max(values))])
    # lpclip's arithmetic, to the bit: the ends go through log10 and back each round, in NumPy
    left, right = 1e-1 * best, 1e1 * best
    for _ in range(steps):
        left_score, right_score = measured(left), measured(right)
        log_left, log_right = np.log10(left), np.log10(right)
        middle = 0.5 * (log_right + log_left)
        if left_score < right_score:
            best, log_left = right, middle
        else:
            best, log_right = left, middle
        left, right = float(np.power(10, log_left)), float(np.power(10, log_right))
    return best


def _logistic_regression_class() -> Any:
    """scikit-learn's `LogisticRegression`, or an `ImportError` saying how to install it."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:
        raise ImportError(
            "The linear probe's solver='sklearn' runs scikit-learn's LogisticRegression, but scikit-learn "
            f"is not installed. Install it with `{SKLEARN_INSTALL}`, or use solver='torch' (the built-in "
            "L-BFGS)."
        ) from error
    return LogisticRegression


def sklearn_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    C: float,
    *,
    max_iter: int = 1000,
    tolerance: float = 1e-4,
) -> Any:
    """scikit-learn's `LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, tol=tolerance)` fitted
    on the features, as CoOp's `lpclip/linear_probe.py` fits it (its other settings are the defaults:
    L2 penalty, intercept, multinomial for more than two classes; `random_state` plays no part in
    L-BFGS). The features go to scikit-learn in float64, as lpclip's do (its feature extractor saves
    `feature.tolist()`; recent scikit-learn fits float32 inputs in float32, to other weights). Its
    warning that L-BFGS stopped at `max_iter` is silenced: the cap is the protocol's (lpclip's 1,000).

    Args:
        features: `(N, E)` inputs.
        labels: `(N,)` class indices; every class of `[0, num_classes)` must occur.
        num_classes: K.
        C: inverse L2 strength (> 0).
        max_iter, tolerance: scikit-learn's `max_iter` and `tol`.

    Returns:
        The fitted `LogisticRegression` (`predict` gives class indices; `sklearn_head` gives its weights).

    Raises:
        ImportError: scikit-learn is not installed (`pip install "hf-prompt-clip[sklearn]"`).

    Example:
        >>> x = torch.randn(40, 8, dtype=torch.float64); y = torch.arange(40) % 4
        >>> estimator = sklearn_logistic_regression(x, y, 4, C=1.0)
        >>> estimator.coef_.shape
        (4, 8)
    """
    logistic_regression = _logistic_regression_class()
    if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
        raise ValueError(f"C (inverse L2 strength) must be a positive finite number, got {C!r}.")
    x = features.detach().to("cpu", torch.float64).numpy()
    y = labels.detach().to("cpu", torch.long).numpy()
    present = np.unique(y)
    if len(present) != num_classes or not np.array_equal(present, np.arange(num_classes)):
        raise ValueError(
            f"solver='sklearn' needs training examples of every class 0..{num_classes - 1}, got classes "
            f"{present.tolist()}: give examples of every class, or use solver='torch'."
        )
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return logistic_regression(C=C, solver="lbfgs", max_iter=max_iter, tol=tolerance).fit(x, y)


def sklearn_head(estimator: Any, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fitted scikit-learn `LogisticRegression` as probe weights: `weight` `(K, E)` and `bias` `(K,)`,
    float64, with `argmax(x W^T + b)` its `predict` and `softmax` its `predict_proba`.

    With more than two classes these are its `coef_` and `intercept_`. With two it fits one vector
    `w, b` (class 1 against class 0); the head is `[-w/2, w/2]`, `[-b/2, b/2]`, whose softmax is
    `sigmoid(w x + b)` for class 1 and whose argmax is class 1 exactly when `w x + b > 0`.

    Example:
        >>> x = torch.randn(20, 3, dtype=torch.float64); y = torch.arange(20) % 2
        >>> weight, bias = sklearn_head(sklearn_logistic_regression(x, y, 2, C=1.0), 2)
        >>> weight.shape, bias.shape
        (torch.Size([2, 3]), torch.Size([2]))
    """
    weight = torch.from_numpy(np.asarray(estimator.coef_, dtype=np.float64))
    bias = torch.from_numpy(np.asarray(estimator.intercept_, dtype=np.float64))
    if num_classes == 2 and weight.shape[0] == 1:
        weight, bias = torch.cat([-weight, weight]) / 2, torch.cat([-bias, bias]) / 2
    if weight.shape[0] != num_classes:
        raise ValueError(f"The estimator has {weight.shape[0]} weight vectors for {num_classes} classes.")
    return weight, bias
