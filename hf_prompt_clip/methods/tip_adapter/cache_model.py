"""The maths of Tip-Adapter (Zhang et al., ECCV 2022): cache logits and the search of alpha and beta.

Room: `methods/`.

Pure functions of tensors, testable alone. With L2-normalised image features `f` `(B, E)`, cache keys
`K` `(N, E)` (the few-shot training features) and values `V` `(N, C)` (their one-hot labels):

    logits = zero_shot + alpha * exp(-beta * (1 - f K^T)) V
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...utils.logs import progress_bar


def cache_logits(
    features: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, beta: float
) -> torch.Tensor:
    """`exp(-beta (1 - f K^T)) V`: the cache's vote for each class.

    Args:
        features: `(B, E)` L2-normalised image features.
        keys: `(N, E)` cache keys (normalised training features; Tip-Adapter-F's are fine-tuned).
        values: `(N, C)` one-hot labels of the keys.
        beta: sharpness of the affinity (larger: only the nearest keys vote).

    Returns:
        `(B, C)`.

    Example:
        >>> keys = torch.eye(2); values = torch.eye(2)
        >>> cache_logits(torch.tensor([[1.0, 0.0]]), keys, values, beta=1.0)   # exp(0), exp(-1)
        tensor([[1.0000, 0.3679]])
    """
    affinity = features @ keys.to(features.dtype).T  # (B, N)
    return torch.exp(-beta * (1 - affinity)) @ values.to(features.dtype)


def tip_adapter_logits(
    zero_shot: torch.Tensor,
    features: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """Tip-Adapter's logits: `zero_shot + alpha * cache_logits(features, keys, values, beta)`.

    Args:
        zero_shot: `(B, C)` zero-shot CLIP logits (`logit_scale * f T^T`).
        features, keys, values, beta: as `cache_logits`.
        alpha: weight of the cache (0: zero-shot CLIP exactly).

    Returns:
        `(B, C)`.
    """
    if alpha == 0:
        return zero_shot
    return zero_shot + alpha * cache_logits(features, keys, values, beta)


def search_grid(scale: float, steps: int) -> list[float]:
    """The authors' grid of one hyperparameter: `steps` values from 0.1 up to (not including) `scale`,
    `[0.1 + i * (scale - 0.1) / steps for i in range(steps)]` (`search_hp` in their `utils.py`).

    Example:
        >>> search_grid(2.1, 4)
        [0.1, 0.6, 1.1, 1.6]
    """
    if steps < 1:
        raise ValueError(f"A search grid needs at least one step, got {steps}.")
    return [i * (scale - 0.1) / steps + 0.1 for i in range(steps)]


def search_alpha_beta(
    zero_shot: torch.Tensor,
    affinity: torch.Tensor,
    values: torch.Tensor,
    labels: torch.Tensor,
    betas: Sequence[float],
    alphas: Sequence[float],
) -> tuple[float, float, float]:
    """The (beta, alpha) of the grid with the best validation accuracy, as the authors search them.

    Every beta of `betas` (outer loop) with every alpha of `alphas` (inner loop); the first pair with
    the highest accuracy wins (a later pair must be strictly better). Vectorised over the alphas; a
    progress bar counts the betas (`utils.logs.progress_bar`, silenced by `--quiet`).

    Args:
        zero_shot: `(M, C)` zero-shot logits of the M validation images.
        affinity: `(M, N)` their affinities `f K^T` with the cache keys.
        values: `(N, C)` the keys' one-hot labels.
        labels: `(M,)` the validation labels.
        betas, alphas: the grids (`search_grid`).

    Returns:
        `(beta, alpha, accuracy in percent)`.

    Example:
        >>> beta, alpha, accuracy = search_alpha_beta(zs, f @ keys.T, values, labels,
        ...                                           search_grid(7, 200), search_grid(3, 20))
    """
    if not betas or not alphas:
        raise ValueError("The search needs at least one beta and one alpha.")
    alpha_values = torch.tensor(list(alphas), dtype=zero_shot.dtype, device=zero_shot.device)
    labels = labels.to(zero_shot.device)
    values = values.to(zero_shot.dtype)
    best = (float(betas[0]), float(alphas[0]), -1.0)
    for beta in progress_bar(betas, desc=f"searching Tip-Adapter's beta x {len(alphas)} alphas", unit="beta"):
        cache = torch.exp(-beta * (1 - affinity)) @ values  # (M, C)
        logits = zero_shot.unsqueeze(0) + alpha_values[:, None, None] * cache.unsqueeze(0)  # (A, M, C)
        hits = (logits.argmax(-1) == labels).sum(-1)  # (A,)
        index = int(hits.argmax())  # the first alpha with the most hits
        accuracy = 100.0 * int(hits[index]) / max(len(labels), 1)
        if accuracy > best[2]:
            best = (float(beta), float(alphas[index]), accuracy)
    return best
