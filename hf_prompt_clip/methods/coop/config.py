"""`CoOpConfig`: the options of CoOp, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...modeling.prompts import ContextPromptConfig


@strict
class CoOpConfig(ContextPromptConfig):
    r"""CoOp (Zhou et al., IJCV 2022): learned context vectors in front of the class name.

    The context options (`n_ctx`, `ctx_init`, `class_token_position`, `ctx_init_std`) are those of
    `ContextPromptConfig` (`modeling/prompts.py`), shared with CoCoOp and KgCoOp.

    Args:
        class_specific_context (`bool`, *optional*, defaults to `False`):
            One context per class (`K x M x D`, CoOp's CSC) instead of one shared `M x D` context.
            Unlike the reference code, `ctx_init` also initialises class-specific contexts.
    """

    model_type = "prompt_clip_coop"

    class_specific_context: bool = False

    @property
    def capabilities(self) -> Capabilities:
        """A class-specific context is learned per training class: it classifies only those classes."""
        return Capabilities(classes_can_change=not self.class_specific_context)
