"""Room: modeling. The dtype the frozen image tower runs in (`image_dtype`, `--image-dtype`): its names
and their canonical form, validated here once.

Example:
    >>> resolve_image_dtype("bf16"), dtype_name("fp16")
    (torch.bfloat16, 'float16')
"""

from __future__ import annotations

import torch

from ..utils.settings import SettingError

__all__ = ["IMAGE_DTYPES", "dtype_name", "resolve_image_dtype"]

#: Names `image_dtype` takes (`--image-dtype`), and the dtype each stands for.
IMAGE_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}  # fmt: skip


def resolve_image_dtype(value: torch.dtype | str | None) -> torch.dtype:
    """The torch dtype of an `image_dtype` value (`None`: float32).

    Example:
        >>> resolve_image_dtype("bf16")
        torch.bfloat16
    """
    if value is None:
        return torch.float32
    if isinstance(value, torch.dtype) and value in IMAGE_DTYPES.values():
        return value
    if isinstance(value, str) and value.lower() in IMAGE_DTYPES:
        return IMAGE_DTYPES[value.lower()]
    raise SettingError(
        f"{{image_dtype}} must be one of {sorted(IMAGE_DTYPES)} (or the torch dtype), got {value!r}: e.g. "
        "{image_dtype='bf16'} runs the frozen image tower in bfloat16."
    )


def dtype_name(dtype: torch.dtype | str | None) -> str:
    """`"float32"`, `"bfloat16"` or `"float16"`: the canonical name of an `image_dtype` value."""
    return str(resolve_image_dtype(dtype)).removeprefix("torch.")
