from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ...core.configuration import option
from ..coop.config import CoOpConfig


@strict
class CoCoOpConfig(CoOpConfig):
    r"""CoCoOp (Zhou et al., CVPR 2022): CoOp's context plus an image-conditioned bias.

    All CoOp options apply (`n_ctx`, `ctx_init`, `class_token_position`, `ctx_init_std`) except
    `class_specific_context`. Defaults follow the paper: 4 context vectors initialised from
    "a photo of a".

    Args:
        meta_net_reduction (`int`, *optional*, defaults to 16):
            The Meta-Net is `Linear(E, E // r) -> ReLU -> Linear(E // r, D)` with E the joint
            embedding size and D the text width (512 -> 32 -> 512 for ViT-B/16).
    """

    model_type = "prompt_clip_cocoop"

    n_ctx: int = 4
    ctx_init: str | None = "a photo of a"
    meta_net_reduction: int = option(
        16, minimum=1, why="the Meta-Net's hidden width is E // meta_net_reduction"
    )

    def __post_init__(self, **kwargs):
        if self.class_specific_context:
            raise ValueError(
                "CoCoOp conditions one shared context on the image; class_specific_context=True is "
                "not supported. Use CoOp for class-specific contexts."
            )
        super().__post_init__(**kwargs)
