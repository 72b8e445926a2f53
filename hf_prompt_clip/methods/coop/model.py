"""CoOp: a learned context shared by (or specific to) the classes, the rest of CLIP frozen.

Room: `methods/`.
"""

from __future__ import annotations

import torch

from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.prompts import ContextPrompts
from ...modeling.text import PromptLayout
from .config import CoOpConfig


class CoOpModel(PromptCLIPPreTrainedModel):
    """Context Optimization: prompts `[SOS] v_1 .. v_M name . [EOS]` with learned `v_m`.

    Trainable: `context` only, `(M, D)` or `(K, M, D)` with class-specific context. Changing
    the class list (base -> new classes, another dataset) rebuilds only the frozen token parts.
    The prompts are the shared `ContextPrompts` component (`modeling/prompts.py`), held as `prompts`.

    Example:
        ```python
        from hf_prompt_clip import CoOpModel
        model = CoOpModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"], n_ctx=16)
        loss = model(pixel_values, labels=labels).loss
        model.set_class_names(["fox", "owl"])        # same context, new classes
        ```
    """

    config_class = CoOpConfig

    def __init__(self, config: CoOpConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        self.prompts = ContextPrompts(config, tokenizer, class_specific=config.class_specific_context)
        self.context = self.prompts.new_context(self.clip)

    def _check_class_names(self, class_names: list[str]) -> None:
        self.prompts.check_class_names(class_names, self.context, "CoOp model")

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.prompts.build(self.clip, self.tokenizer, texts)

    @property
    def prompt_layout(self) -> PromptLayout:
        """Token ids, context slots and EOS positions of the current class prompts."""
        self._ensure_class_prompts()
        return self.prompts.layout

    def encode_prompts(self, context: torch.Tensor) -> torch.Tensor:
        """Text features of the class prompts with `context` spliced in.

        `(M, D)` or class-specific `(K, M, D)` -> `(K, E)`; one context per image `(B, M, D)`
        -> `(B, K, E)`.
        """
        self._ensure_class_prompts()
        return self.prompts.encode(self.clip, context)

    def _compute_class_text_features(self) -> torch.Tensor:
        return self.encode_prompts(self.context)

    def class_text_features(self) -> torch.Tensor:
        return self.context_text_features(
            "class_text_features", self.context, self._compute_class_text_features
        )
