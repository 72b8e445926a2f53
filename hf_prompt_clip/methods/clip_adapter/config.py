"""`CLIPAdapterConfig`: the options of CLIP-Adapter, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.options import option
from ...modeling.prompts import TemplatePromptConfig


@strict
class CLIPAdapterConfig(TemplatePromptConfig):
    r"""CLIP-Adapter (Gao et al., IJCV 2023): a bottleneck MLP on the image feature, blended with it.

    The text side is zero-shot CLIP's: the template options (`templates`, `ensemble`) are those of
    `TemplatePromptConfig` (`modeling/prompts.py`). Trained through the experiment runner it takes the
    benchmark's hand-written template, as the authors' code does (its `CUSTOM_TEMPLATES`).

    Args:
        adapter_reduction (`int`, *optional*, defaults to 4):
            The adapter is `Linear(E, E // r, bias=False) -> ReLU -> Linear(E // r, E, bias=False) -> ReLU`
            with E the joint embedding size (512 -> 128 -> 512 for ViT-B/16).
        residual_ratio (`float`, *optional*, defaults to 0.2):
            alpha in `alpha * A(f) + (1 - alpha) * f`, the blend of the adapted and the original image
            feature `f`, in [0, 1]. 0 is zero-shot CLIP; the authors' code fixes 0.2.
    """

    model_type = "prompt_clip_clip_adapter"

    adapter_reduction: int = option(
        4, minimum=1, why="the hidden width is E // adapter_reduction, 4 in the paper"
    )
    residual_ratio: float = option(
        0.2,
        minimum=0,
        maximum=1,
        why="it blends residual_ratio * adapter(f) + (1 - residual_ratio) * f; 0.2 in the paper, 0 is zero-shot CLIP",
    )

    @property
    def capabilities(self) -> Capabilities:
        """The adapter trains (zero-shot CLIP, whose text side this is, trains nothing)."""
        return Capabilities()

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The benchmark's own hand-written template(s), or its reference ensemble with `ensemble=True`."""
        return {"templates": self.benchmark_templates(benchmark)}
