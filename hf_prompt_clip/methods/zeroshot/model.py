"""Zero-shot CLIP: class text features from templates, computed once and cached."""

from __future__ import annotations

import torch

from ...core.modeling import PromptCLIPPreTrainedModel
from ...core.text_engine import template_text_features
from .config import ZeroShotCLIPConfig


class ZeroShotCLIPModel(PromptCLIPPreTrainedModel):
    """CLIP classifying by cosine similarity to `template.format(class name)` text features.

    Nothing is trained; the adapter file is empty. It gives the baseline every prompt learner is
    compared to, and the same interface (Auto classes, pipelines, save/load) as the learners.

    Example:
        ```python
        from hf_prompt_clip import ZeroShotCLIPModel
        model = ZeroShotCLIPModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"],
                                            templates=["a photo of a {}.", "art of the {}."])
        logits = model(pixel_values).logits          # (B, 2)
        ```
    """

    config_class = ZeroShotCLIPConfig

    def _build_class_prompts(self, texts: list[str]) -> None:
        # tokenisation happens in class_text_features, which is cached per class list
        self._prompt_texts = texts

    def _compute_class_text_features(self) -> torch.Tensor:
        self._ensure_class_prompts()
        return template_text_features(
            self.clip,
            self.tokenizer,
            self._prompt_texts,
            self.config.templates,
            fast=self.config.fast,
            chunk_tokens=self.config.text_chunk_tokens,
        )

    def class_text_features(self) -> torch.Tensor:
        with torch.no_grad():
            return self.cached_text(
                "class_text_features",
                (self._class_version, self.config.fast, tuple(self.config.templates)),
                self._compute_class_text_features,
            )

    def zero_shot_logits(self, pixel_values, input_ids, attention_mask=None):
        """Plain CLIP on the given token ids (the pipeline's `hypothesis_template` is the template)."""
        return self.similarity_logits(
            self.encode_images(pixel_values), self.free_text_features(input_ids, attention_mask)
        )

    def free_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text features `(N, E)` of whole prompts given as token ids `(N, L)`, by the frozen CLIP."""
        with torch.no_grad():
            return self.clip.get_text_features(
                input_ids=input_ids.to(self.text_device),
                attention_mask=None if attention_mask is None else attention_mask.to(self.text_device),
            ).pooler_output
