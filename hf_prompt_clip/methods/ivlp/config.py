"""`IVLPConfig`: the options of IVLP (independent vision-language prompting), each validated where it is
declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.options import option
from ...modeling.deep_prompts import DeepPromptConfig


@strict
class IVLPConfig(DeepPromptConfig):
    r"""IVLP (Khattak et al., CVPR 2023, MaPLe's baseline): deep prompts learned independently in the text and
    the image tower, the rest of CLIP frozen.

    The options are `DeepPromptConfig`'s (`modeling/deep_prompts.py`). The defaults are the authors' base-to-new
    configuration in the MaPLe repository (`IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml`: 2 + 2 tokens, depth 12 in
    both towers, "a photo of a"); PromptSRC's IVLP baseline is `n_ctx=4, n_ctx_vision=4, text_depth=9,
    vision_depth=9`, and deep language prompting (the language-only variant) `n_ctx=4, text_depth=12,
    n_ctx_vision=0, vision_depth=0`.
    """

    model_type = "prompt_clip_ivlp"

    n_ctx: int = option(2, minimum=1)
    text_depth: int = option(12, minimum=1)
    n_ctx_vision: int = option(2, minimum=0)
    vision_depth: int = option(12, minimum=0)

    @property
    def capabilities(self) -> Capabilities:
        """Visual prompts are read by the image tower, so its features change with training."""
        return Capabilities(trains_image_tower=self.vision_depth > 0)
