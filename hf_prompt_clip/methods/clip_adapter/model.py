"""CLIP-Adapter: a residual bottleneck MLP on the frozen image feature, zero-shot CLIP's text classifier.

Room: `methods/`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.prompts import TemplatePrompts, free_text_features
from ...modeling.stages import TrainingStage
from .config import CLIPAdapterConfig


def feature_adapter(embed_dim: int, reduction: int = 4) -> nn.Sequential:
    """CLIP-Adapter's bottleneck MLP `(..., E) -> (..., E)`: two bias-free linear layers, each followed by a
    ReLU (as in the authors' `clip_adapter.py`), hidden width `max(1, E // reduction)`; PyTorch's default
    initialisation.

    Example:
        >>> feature_adapter(512)  # 512 -> 128 -> 512, 131,072 weights
    """
    hidden = max(1, embed_dim // reduction)
    return nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(embed_dim, hidden, bias=False),
            relu1=nn.ReLU(),
            fc2=nn.Linear(hidden, embed_dim, bias=False),
            relu2=nn.ReLU(),
        )
    )


def blend_residual(adapted: torch.Tensor, original: torch.Tensor, ratio: float) -> torch.Tensor:
    """CLIP-Adapter's residual blend `ratio * adapted + (1 - ratio) * original`.

    Args:
        adapted: `(B, E)` the adapter's output `A(f)`.
        original: `(B, E)` the frozen image feature `f` (not normalised).
        ratio: alpha in [0, 1]; 0 returns `original`, 1 the adapter's output alone.

    Returns:
        `(B, E)`, normalised afterwards by the logits.

    Example:
        >>> blend_residual(torch.ones(1, 2), torch.zeros(1, 2), 0.2)
        tensor([[0.2000, 0.2000]])
    """
    return ratio * adapted + (1.0 - ratio) * original


class CLIPAdapterModel(PromptCLIPPreTrainedModel):
    """CLIP-Adapter (visual adapter): `logits = logit_scale * cos(alpha * A(f) + (1 - alpha) * f, t_k)`.

    `f` is the frozen image feature (`get_image_features`), `A` the bottleneck MLP (`feature_adapter`) and
    `t_k` zero-shot CLIP's text feature of class k from the hand-written templates (cached: nothing on the
    text side trains). The adapter sits on the image side, so the class list can change (base -> new
    classes, other datasets) and both image pipelines apply; the zero-shot pipeline, as for zero-shot
    CLIP, encodes `hypothesis_template` filled with each candidate label (the adapted image side applies
    to any text). The text side is the shared `TemplatePrompts` component (`modeling/prompts.py`, zero-shot
    CLIP's classifier), held as `template_prompts`.

    Trainable: `adapter` (`2 * E * E // 4` weights: 131,072 for ViT-B/16).

    Example:
        ```python
        from hf_prompt_clip import CLIPAdapterModel
        model = CLIPAdapterModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"],
                                           templates=["a photo of a {}."], residual_ratio=0.2)
        loss = model(pixel_values, labels=labels).loss     # only model.adapter trains
        ```
    """

    config_class = CLIPAdapterConfig

    def __init__(self, config: CLIPAdapterConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        embed_dim = self.clip.config.projection_dim
        device = self.clip.visual_projection.weight.device
        self.adapter = feature_adapter(embed_dim, config.adapter_reduction).to(device)
        self.template_prompts = TemplatePrompts()

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.template_prompts.build(texts)  # tokenised when the features are computed, cached per class list

    def class_text_features(self) -> torch.Tensor:
        """Zero-shot CLIP's text features `(K, E)` of `templates` (frozen, cached per class list)."""
        return self.template_prompts.text_features(self, self.config.templates)

    def training_stages(self) -> list[TrainingStage]:
        return self.stages_from_config({"adapter": ("adapter.",)})

    def adapt_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """The blended image features `(B, E)` (float32) from projected image features `(B, E)`."""
        image_features = image_features.float()
        return blend_residual(self.adapter(image_features), image_features, self.config.residual_ratio)

    def logits_from_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.similarity_logits(self.adapt_image_features(image_features), self.class_text_features())

    def zero_shot_logits(self, pixel_values, input_ids, attention_mask=None):
        """The adapted image features against free texts taken as whole prompts, as zero-shot CLIP takes
        them: the zero-shot pipeline's `hypothesis_template` is the template (give the model's own,
        `config.templates[0]`, to score as the image-classification pipeline does)."""
        image_features = self.adapt_image_features(self.encode_images(pixel_values))
        return self.similarity_logits(
            image_features, free_text_features(self.clip, input_ids, attention_mask)
        )
