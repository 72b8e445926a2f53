"""VPT-deep: learned visual prompts at every layer of CLIP's image tower up to a depth, classified by the
frozen CLIP's hand-written prompts.

Room: `methods/`.
"""

from __future__ import annotations

import torch

from ...modeling.deep_prompts import DeepPrompts
from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.prompts import TemplatePrompts, free_text_features
from .config import VPTConfig


class VPTModel(PromptCLIPPreTrainedModel):
    """VPT-deep: `n_ctx_vision` learned tokens appended after the image patches, replaced by each layer's own
    before every image layer up to `vision_depth`; the class text features are zero-shot CLIP's
    (`template.format(name)` through the frozen text tower, cached: nothing on the text side trains).

    Trainable: `prompts.visual_prompts` `(T, W)` and `prompts.deep_visual_prompts` `(J - 1, T, W)`, the
    image side of the shared `DeepPrompts` component (`modeling/deep_prompts.py`); the text side is the
    shared `TemplatePrompts` (`modeling/prompts.py`), held as `template_prompts`. The prompts hold no class,
    so the class list can change. The zero-shot pipeline treats its texts as zero-shot CLIP does
    (`hypothesis_template` filled with each candidate label, against the prompted image features).

    Example:
        ```python
        from hf_prompt_clip import VPTModel
        model = VPTModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])   # 8 tokens, depth 12
        loss = model(pixel_values, labels=labels).loss
        ```
    """

    config_class = VPTConfig

    def __init__(self, config: VPTConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        self.prompts = DeepPrompts(config, self.clip, tokenizer, text=False, vision=True)
        self.template_prompts = TemplatePrompts()

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.template_prompts.build(texts)  # tokenised when the features are computed, cached per class list

    def class_text_features(self) -> torch.Tensor:
        """Zero-shot CLIP's text features `(K, E)` of `templates` (frozen, cached per class list)."""
        return self.template_prompts.text_features(self, self.config.templates)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image features `(B, E)` read with the learned visual prompts at every layer up to the depth."""
        return self.image_output(self.prompts.image_features(self.clip, pixel_values))

    def zero_shot_logits(self, pixel_values, input_ids, attention_mask=None):
        """The prompted image features against free texts taken as whole prompts, as zero-shot CLIP takes
        them: the zero-shot pipeline's `hypothesis_template` is the template (give the model's own,
        `config.templates[0]`, to score as the image-classification pipeline does)."""
        return self.similarity_logits(
            self.encode_images(pixel_values), free_text_features(self.clip, input_ids, attention_mask)
        )
