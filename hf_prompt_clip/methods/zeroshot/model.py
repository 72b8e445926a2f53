"""Zero-shot CLIP: class text features from templates, computed once and cached.

Room: `methods/`.
"""

from __future__ import annotations

import torch

from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.prompts import TemplatePrompts, free_text_features
from .config import ZeroShotCLIPConfig


class ZeroShotCLIPModel(PromptCLIPPreTrainedModel):
    """CLIP classifying by cosine similarity to `template.format(class name)` text features.

    Nothing is trained; the adapter file is empty. It gives the baseline every prompt learner is
    compared to, and the same interface (Auto classes, pipelines, save/load) as the learners. The
    classifier is the shared `TemplatePrompts` component (`modeling/prompts.py`), held as `template_prompts`.

    Example:
        ```python
        from hf_prompt_clip import ZeroShotCLIPModel
        model = ZeroShotCLIPModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"],
                                            templates=["a photo of a {}.", "art of the {}."])
        logits = model(pixel_values).logits          # (B, 2)
        ```
    """

    config_class = ZeroShotCLIPConfig

    def __init__(self, config: ZeroShotCLIPConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        self.template_prompts = TemplatePrompts()

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.template_prompts.build(texts)  # tokenised when the features are computed, cached per class list

    def _compute_class_text_features(self) -> torch.Tensor:
        return self.template_prompts.compute(self, self.config.templates)

    def class_text_features(self) -> torch.Tensor:
        return self.template_prompts.text_features(self, self.config.templates)

    def zero_shot_logits(self, pixel_values, input_ids, attention_mask=None):
        """Plain CLIP on the given token ids (the pipeline's `hypothesis_template` is the template)."""
        return self.similarity_logits(
            self.encode_images(pixel_values), self.free_text_features(input_ids, attention_mask)
        )

    def free_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text features `(N, E)` of whole prompts given as token ids `(N, L)`, by the frozen CLIP."""
        return free_text_features(self.clip, input_ids, attention_mask)
