"""QuickGELU as one autograd node that keeps only its input for the backward pass.

Room: `modeling/`.

CLIP's MLP activation is `x * sigmoid(1.702 x)`. Written out in PyTorch (as transformers'
`QuickGELUActivation` is), autograd keeps `x` and `sigmoid(1.702 x)` for the backward pass, and
the next linear layer keeps the product: three `(N, L, 4D)` tensors per layer. `quick_gelu` keeps
`x` alone and recomputes the sigmoid in the backward pass, so a training step holds one of them
fewer per layer (the text engine's largest saved activations). The forward pass runs the same
operations as transformers' module, so its values are bit-identical.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

QUICK_GELU_SLOPE = 1.702


class QuickGELUFunction(torch.autograd.Function):
    """`x * sigmoid(1.702 x)`, saving only `x`; the backward pass recomputes the sigmoid.

    Derivative: `s + 1.702 x s (1 - s)` with `s = sigmoid(1.702 x)`. Once differentiable (no
    gradient of the gradient).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(QUICK_GELU_SLOPE * x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(QUICK_GELU_SLOPE * x)
        return grad * s * (1 + QUICK_GELU_SLOPE * x * (1 - s))


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """CLIP's QuickGELU `x * sigmoid(1.702 x)` as one autograd node that saves only `x`.

    Args:
        x: any shape and floating dtype, e.g. the `(N, L, 4D)` output of an MLP's first layer.

    Returns:
        A tensor of `x`'s shape and dtype, bit-identical to transformers' `QuickGELUActivation`.

    Example:
        >>> x = torch.randn(2, 5, 8, requires_grad=True)
        >>> quick_gelu(x).sum().backward()
        >>> x.grad.shape
        torch.Size([2, 5, 8])
    """
    return QuickGELUFunction.apply(x)
