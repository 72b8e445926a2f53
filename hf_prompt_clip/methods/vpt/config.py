"""`VPTConfig`: the options of VPT-deep (visual prompt tuning with CLIP's hand-written text side), each
validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.options import option
from ...modeling.deep_prompts import VisualPromptConfig
from ...modeling.prompts import TemplatePromptConfig


@strict
class VPTConfig(TemplatePromptConfig, VisualPromptConfig):
    r"""VPT-deep (Jia et al., ECCV 2022) on CLIP, as the MaPLe authors run it (`trainers/vpt.py`): learned
    tokens at every layer of the image tower up to `vision_depth`, classified by the frozen CLIP's text
    features of hand-written templates.

    The visual options are `VisualPromptConfig`'s and the text options `TemplatePromptConfig`'s
    (`modeling/deep_prompts.py`, `modeling/prompts.py`). The defaults are the authors' base-to-new
    configuration (`VPT/vit_b16_c2_ep5_batch4_4.yaml`: 8 tokens, depth 12, the template
    `"a photo of a {}."` for every dataset); depth 1 is shallow VPT.

    Args:
        n_ctx_vision (`int`, *optional*, defaults to 8):
            Learned image tokens T per layer (at least 1: VPT learns nothing else).
        vision_depth (`int`, *optional*, defaults to 12):
            Layers of the image tower with their own T tokens (at least 1); beyond the tower's layers every
            layer gets them and the layer count is recorded.
        templates (`list[str]`, *optional*, defaults to `["a photo of a {}."]`):
            The frozen text side. Through the experiment runner the authors' template stays (their
            `vpt.py` writes "a photo of a {}." for every dataset) unless `ensemble=True`, which takes the
            benchmark's reference ensemble.
    """

    model_type = "prompt_clip_vpt"

    n_ctx_vision: int = option(8, minimum=1, why="VPT learns visual prompts only; 8 in the authors' config")
    vision_depth: int = option(
        12, minimum=1, why="the layers with their own visual prompts; 1 is shallow VPT, 12 the authors'"
    )

    @property
    def capabilities(self) -> Capabilities:
        """The visual prompts are read by the image tower, so its features change with training."""
        return Capabilities(trains_image_tower=True)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The authors' fixed template (no change) or, with `ensemble=True`, the benchmark's reference ensemble."""
        return {"templates": self.benchmark_templates(benchmark)} if self.ensemble else {}
