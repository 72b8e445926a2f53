"""MaPLe: deep text prompts in a frozen CLIP, coupled to the image tower's prompts by one linear map per layer.

Room: `methods/`.
"""

from __future__ import annotations

import torch

from ...modeling.deep_prompts import DeepPrompts
from ...modeling.model import PromptCLIPPreTrainedModel
from .config import MaPLeConfig


class MaPLeModel(PromptCLIPPreTrainedModel):
    """Multi-modal prompt learning: `[SOS] v_1 .. v_M <rest of ctx_init> name. [EOS]` with learned `v_m`
    replaced at every text layer j < J by layer j's own, and at every image layer j < J the `M` image tokens
    after the patches are `couplings[j](layer j's text prompts)`.

    Trainable: `prompts.context` `(M, D)`, `prompts.deep_context` `(J - 1, M, D)` and `prompts.couplings`
    (J `Linear(D, W)`: D the text width, W the image tower's): the shared `DeepPrompts` component with
    `coupled=True` (`modeling/deep_prompts.py`). The prompts hold no class, so the class list can change.

    Example:
        ```python
        from hf_prompt_clip import MaPLeModel
        model = MaPLeModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])   # 2 tokens, depth 9
        loss = model(pixel_values, labels=labels).loss
        ```
    """

    config_class = MaPLeConfig

    def __init__(self, config: MaPLeConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        self.prompts = DeepPrompts(config, self.clip, tokenizer, text=True, vision=True, coupled=True)

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.prompts.build(self.clip, self.tokenizer, texts)

    def class_text_features(self) -> torch.Tensor:
        """Text features `(K, E)` of the class prompts with the learned prompts of every layer (with autograd while
        they learn, else cached per class list and prompt values)."""
        return self.prompts.class_text_features(self)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image features `(B, E)` read with the visual prompts projected from the text prompts of each layer."""
        return self.image_output(self.prompts.image_features(self.clip, pixel_values))
