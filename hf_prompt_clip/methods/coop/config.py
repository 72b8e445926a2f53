from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.configuration import PromptCLIPConfig, option
from ...core.text import CLASS_TOKEN_POSITIONS


@strict
class CoOpConfig(PromptCLIPConfig):
    r"""CoOp (Zhou et al., IJCV 2022): learned context vectors in front of the class name.

    Args:
        n_ctx (`int`, *optional*, defaults to 16):
            Number of learned context vectors M. Ignored when `ctx_init` is given: M is then the
            number of BPE tokens of `ctx_init`.
        ctx_init (`str`, *optional*):
            Words whose token embeddings initialise the context, e.g. `"a photo of a"`. Random
            N(0, `ctx_init_std`^2) initialisation when empty.
        class_specific_context (`bool`, *optional*, defaults to `False`):
            One context per class (`K x M x D`, CoOp's CSC) instead of one shared `M x D` context.
            Unlike the reference code, `ctx_init` also initialises class-specific contexts.
        class_token_position (`str`, *optional*, defaults to `"end"`):
            Where the class name goes: `"end"` (after the context), `"middle"` (after the first
            M // 2 vectors) or `"front"` (before the context).
        ctx_init_std (`float`, *optional*, defaults to 0.02):
            Standard deviation of the random context initialisation.
    """

    model_type = "prompt_clip_coop"

    n_ctx: int = option(16, minimum=1)
    ctx_init: str | None = None
    class_specific_context: bool = False
    class_token_position: str = option("end", choices=CLASS_TOKEN_POSITIONS)
    ctx_init_std: float = option(
        0.02, minimum=0, why="the standard deviation of the random context initialisation"
    )

    @property
    def capabilities(self) -> Capabilities:
        """A class-specific context is learned per training class: it classifies only those classes."""
        return Capabilities(classes_can_change=not self.class_specific_context)
