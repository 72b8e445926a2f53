"""IVLP: deep prompts learned independently in both towers of a frozen CLIP.

Room: `methods/`.
"""

from __future__ import annotations

import torch

from ...modeling.deep_prompts import DeepPrompts
from ...modeling.model import PromptCLIPPreTrainedModel
from .config import IVLPConfig


class IVLPModel(PromptCLIPPreTrainedModel):
    """Independent vision-language prompting: `[SOS] v_1 .. v_M name . [EOS]` with learned `v_m` replaced at
    every text layer up to `text_depth`, and `n_ctx_vision` learned image tokens replaced at every image layer
    up to `vision_depth`; no coupling between the towers.

    Trainable: `prompts.context` `(M, D)`, `prompts.deep_context` `(J_t - 1, M, D)`, `prompts.visual_prompts`
    `(T, W)`, `prompts.deep_visual_prompts` `(J_v - 1, T, W)`: the shared `DeepPrompts` component
    (`modeling/deep_prompts.py`). The prompts hold no class, so the class list can change.

    Example:
        ```python
        from hf_prompt_clip import IVLPModel
        model = IVLPModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])   # 2 + 2 tokens, depth 12
        loss = model(pixel_values, labels=labels).loss
        ```
    """

    config_class = IVLPConfig

    def __init__(self, config: IVLPConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        self.prompts = DeepPrompts(config, self.clip, tokenizer, text=True, vision=config.vision_depth > 0)

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.prompts.build(self.clip, self.tokenizer, texts)

    def class_text_features(self) -> torch.Tensor:
        """Text features `(K, E)` of the current classes with the learned text prompts at every layer up to
        `text_depth`; cached in evaluation while no prompt tensor changes (`DeepPrompts.class_text_features`)."""
        return self.prompts.class_text_features(self)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image features `(B, E)` read with the learned visual prompts (the frozen tower's without them)."""
        if not self.prompts.vision_depth:
            return super().encode_images(pixel_values)
        return self.image_output(self.prompts.image_features(self.clip, pixel_values))
