"""`CoCoOpConfig`: the options of CoCoOp, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict

from ...core.options import option
from ...modeling.prompts import ContextPromptConfig


@strict
class CoCoOpConfig(ContextPromptConfig):
    r"""CoCoOp (Zhou et al., CVPR 2022): CoOp's context plus an image-conditioned bias.

    The context options (`n_ctx`, `ctx_init`, `class_token_position`, `ctx_init_std`) are those of
    `ContextPromptConfig` (`modeling/prompts.py`), shared with CoOp and KgCoOp. Defaults follow the paper:
    4 context vectors initialised from "a photo of a". One context is shared by the classes (the Meta-Net
    shifts it per image): there is no `class_specific_context`.

    Args:
        meta_net_reduction (`int`, *optional*, defaults to 16):
            The Meta-Net is `Linear(E, E // r) -> ReLU -> Linear(E // r, D)` with E the joint
            embedding size and D the text width (512 -> 32 -> 512 for ViT-B/16).
    """

    model_type = "prompt_clip_cocoop"
    # earlier releases took CoOp's config whole and saved class_specific_context=False (True was refused)
    retired_options: ClassVar[dict[str, tuple[Any, str]]] = {
        "class_specific_context": (
            False,
            "CoCoOp conditions one context shared by the classes on the image (its Meta-Net shifts it per "
            "image); use CoOp or KgCoOp (--method coop / kgcoop) for class-specific contexts",
        )
    }

    n_ctx: int = 4
    ctx_init: str | None = "a photo of a"
    meta_net_reduction: int = option(
        16, minimum=1, why="the Meta-Net's hidden width is E // meta_net_reduction"
    )
