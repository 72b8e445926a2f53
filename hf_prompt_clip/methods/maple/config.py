"""`MaPLeConfig`: the options of MaPLe (multi-modal prompt learning), each validated where it is declared, and
its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.options import option
from ...modeling.prompts import ContextPromptConfig


@strict
class MaPLeConfig(ContextPromptConfig):
    r"""MaPLe (Khattak et al., CVPR 2023): deep text prompts up to a depth J, and at each of those layers the
    image tower's prompts are a linear projection of that layer's text prompts (one `Linear(D, W)` per layer),
    the rest of CLIP frozen.

    The text options are `ContextPromptConfig`'s (`modeling/prompts.py`) read as the deep-prompt methods read
    them: with `ctx_init`, its first `n_ctx` tokens are learned and its remaining words stay fixed before every
    class name (`n_ctx=2`, `"a photo of a"`: `[SOS] v_1 v_2 of a name. [EOS]`). There are no vision options:
    the visual prompts are the projected text prompts, `n_ctx` tokens at each of the first J layers of both
    towers. The defaults are the authors' base-to-new configuration (`MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml`:
    2 tokens, depth 9, "a photo of a"); their cross-dataset and domain-generalisation configuration is
    `text_depth=3`.

    Args:
        n_ctx (`int`, *optional*, defaults to 2):
            Learned text tokens M after `[SOS]` (and projected image tokens after the patches) per layer.
        ctx_init (`str`, *optional*, defaults to `"a photo of a"`):
            Words whose first `n_ctx` token embeddings initialise the input text prompts; empty: N(0,
            `ctx_init_std`^2) and no fixed words.
        text_depth (`int`, *optional*, defaults to 9):
            The prompt depth J of both towers: layer 0 reads the input prompts, and before each layer
            1 .. J - 1 the prompt positions are replaced by that layer's own (deep text prompts N(0,
            `ctx_init_std`^2) initialised; the image tower's their projections). 1: input prompts only
            (shallow MaPLe). Beyond the shallower tower's layers every layer gets prompts and the layer
            count is recorded.
    """

    model_type = "prompt_clip_maple"

    n_ctx: int = option(2, minimum=1)
    ctx_init: str | None = "a photo of a"
    text_depth: int = option(
        9,
        minimum=1,
        why="the layers of both towers with their own prompts; 1 is shallow MaPLe, 9 the authors'",
    )

    @property
    def capabilities(self) -> Capabilities:
        """The projected visual prompts are read by the image tower, so its features change with training."""
        return Capabilities(trains_image_tower=True)
