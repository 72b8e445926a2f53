"""PromptSRC: IVLP's deep prompts, self-regularised towards the frozen CLIP, aggregated over the epochs.

Room: `methods/`.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ...data.templates import IMAGENET_TEMPLATES_60
from ...modeling.deep_prompts import DeepPrompts
from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.prompts import TemplatePrompts
from ...modeling.stages import EpochAverage, TrainingStage
from .config import PromptSRCConfig


def self_regularisation_losses(
    text_features: torch.Tensor,
    frozen_text_features: torch.Tensor,
    image_features: torch.Tensor,
    frozen_image_features: torch.Tensor,
    logits: torch.Tensor,
    frozen_logits: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """PromptSRC's three regularisers, unweighted (`trainers/promptsrc.py:297-311`).

    Args:
        text_features / frozen_text_features: `(K, E)` prompted and frozen class text features.
        image_features / frozen_image_features: `(B, E)` prompted and frozen image features.
        logits / frozen_logits: `(B, K)` prompted and frozen logits.

    Returns:
        `{"text": L1 mean of the normalised text features' difference, "image": the same for the image
        features, "logits": KL(softmax(frozen_logits) || softmax(logits)) summed over the batch and classes and
        divided by B x K}`, each a scalar.

    Example:
        >>> f = torch.eye(2)
        >>> {k: v.item() for k, v in self_regularisation_losses(f, f, f, f, f, f).items()}
        {'text': 0.0, 'image': 0.0, 'logits': 0.0}
    """
    text = F.normalize(text_features.float(), dim=-1)
    frozen_text = F.normalize(frozen_text_features.float(), dim=-1).to(text.device)
    image = F.normalize(image_features.float(), dim=-1)
    frozen_image = F.normalize(frozen_image_features.float(), dim=-1).to(image.device)
    kl = F.kl_div(
        F.log_softmax(logits.float(), dim=-1),
        F.log_softmax(frozen_logits.float().to(logits.device), dim=-1),
        reduction="sum",
        log_target=True,
    )
    return {
        "text": F.l1_loss(text, frozen_text, reduction="mean"),
        "image": F.l1_loss(image, frozen_image, reduction="mean"),
        "logits": kl / logits.numel(),
    }


class PromptSRCModel(PromptCLIPPreTrainedModel):
    """PromptSRC: IVLP's prompts (`[SOS] v_1 .. v_M name . [EOS]` with learned `v_m` replaced at every text layer
    up to `text_depth`, `n_ctx_vision` learned image tokens replaced at every image layer up to `vision_depth`),
    trained with

    `loss = CE(logits) + text_loss_weight * L1(t, t_frozen) + image_loss_weight * L1(f, f_frozen)
    + logits_loss_weight * KL(p_frozen || p)`,

    where `t` / `f` are the normalised prompted class text / image features, `t_frozen` the frozen CLIP's text
    features of the 60 ImageNet templates (raw features averaged, then normalised; cached per class list, never
    saved), `f_frozen` the frozen tower's features of the same images without prompts, and
    `p_frozen = softmax(logit_scale * f_frozen @ t_frozen^T)` (`self_regularisation_losses`). Its training
    stage averages the prompts over the epochs with Gaussian weights (GPA, `TrainingStage.epoch_average`).
    Inference is the prompted logits only.

    Trainable: the shared `DeepPrompts` component's `prompts.context` `(M, D)`, `prompts.deep_context`
    `(J_t - 1, M, D)`, `prompts.visual_prompts` `(T, W)`, `prompts.deep_visual_prompts` `(J_v - 1, T, W)`; the
    frozen anchors are the shared `TemplatePrompts`. The prompts hold no class, so the class list can change.

    Example:
        ```python
        from hf_prompt_clip import PromptSRCModel
        model = PromptSRCModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])  # 4 + 4 tokens, depth 9
        loss = model(pixel_values, labels=labels).loss      # CE + the three regularisers
        ```
    """

    config_class = PromptSRCConfig
    #: The templates whose frozen text features anchor the prompted ones (the authors' `IMAGENET_TEMPLATES`).
    anchor_templates = IMAGENET_TEMPLATES_60

    def __init__(self, config: PromptSRCConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        self.prompts = DeepPrompts(config, self.clip, tokenizer, text=True, vision=True)
        self.frozen_prompts = TemplatePrompts("frozen_text_features", normalize_each=False)

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.prompts.build(self.clip, self.tokenizer, texts)
        self.frozen_prompts.build(texts)

    def class_text_features(self) -> torch.Tensor:
        return self.prompts.class_text_features(self)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image features `(B, E)` read with the learned visual prompts."""
        return self.image_output(self.prompts.image_features(self.clip, pixel_values))

    def frozen_text_features(self) -> torch.Tensor:
        """The frozen CLIP's normalised class text features `(K, E)`: the raw features of `anchor_templates`
        filled with each class name, averaged, then normalised (no autograd; cached per class list)."""
        return self.frozen_prompts.text_features(self, self.anchor_templates)

    def frozen_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The frozen tower's image features `(B, E)`, without prompts and without autograd."""
        return PromptCLIPPreTrainedModel.encode_images(self, pixel_values)

    def regularisation_losses(
        self, pixel_values: torch.Tensor, text_features: torch.Tensor, image_features: torch.Tensor,
        logits: torch.Tensor,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """The three unweighted regularisers (`self_regularisation_losses`) of a batch `(B, 3, H, W)`, given its
        prompted text `(K, E)` and image `(B, E)` features and logits `(B, K)`."""
        frozen_text = self.frozen_text_features()
        frozen_image = self.frozen_image_features(pixel_values)
        frozen_logits = self.similarity_logits(frozen_image, frozen_text)
        return self_regularisation_losses(
            text_features, frozen_text, image_features, frozen_image, logits, frozen_logits
        )

    def logits_and_loss(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prompted logits `(B, K)`; with labels, the cross-entropy plus the weighted regularisers (the
        frozen passes run only when a weight is not 0: all three 0 is IVLP's loss)."""
        text_features = self.class_text_features()
        image_features = self.encode_images(pixel_values)
        logits = self.similarity_logits(image_features, text_features)
        if labels is None:
            return logits, None
        loss = self.classification_loss(logits, labels)
        config = self.config
        weights = {
            "text": config.text_loss_weight,
            "image": config.image_loss_weight,
            "logits": config.logits_loss_weight,
        }
        if any(weights.values()):
            losses = self.regularisation_losses(pixel_values, text_features, image_features, logits)
            for name, weight in weights.items():
                if weight:
                    loss = loss + weight * losses[name]
        return logits, loss

    def training_stages(self) -> list[TrainingStage]:
        """One stage training every prompt; with `gpa`, its result is the Gaussian-weighted average of the
        prompts over its epochs (`EpochAverage(mean=gpa_mean, std=gpa_std)`: the trainer computes the weights
        from the epochs the run trains)."""
        stages = super().training_stages()
        if not self.config.gpa:
            return stages
        average = EpochAverage("gaussian", self.config.gpa_mean, self.config.gpa_std)
        return [dataclasses.replace(stage, epoch_average=average) for stage in stages]
