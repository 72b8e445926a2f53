"""MP-FGVC: subcategory prompts (DaTP), token selection in the image tower (SsVP) and a fusion module (VLFM).

Room: `methods/`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoImageProcessor, ViTConfig, ViTModel

from ...caching.feature_cache import FrozenFeaturesUnavailable
from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.stages import TrainingStage
from ...modeling.text import PromptLayout, build_prompt_layout, random_context
from ...modeling.text_engine import encode_context_prompts
from ...modeling.vision import VisionTower, clip_vision_tower, encode_image_tokens, vit_vision_tower
from ...serialization.loading import AdapterLoadError, hub_failure_advice
from .config import MPFGVCConfig

#: The stage whose logits come from the linear head on the image feature (stage 1).
VISUAL_STAGE = "visual"
FUSION_STAGE = "fusion"


class VisionLanguageFusion(nn.Module):
    """VLFM: the image feature attends over itself and the C subcategory text features.

    `Q_0, K_0, V_0` from the image feature `E_V` and `K_c, V_c` from each text feature `E_T^c`
    (1x1 convolutions, i.e. `nn.Linear`); `S_i = softmax_i(Q_0 K_i^T / sqrt(D))` over
    `i = 0..C`; `E'_V = sum_i S_i V_i`; then the translation layer `D -> e*D -> D` with GELU
    between (plus `E'_V` itself with `residual`).

    Args:
        dim: feature width D.
        expansion: hidden width of the translation layer, in multiples of D.
        residual: add `E'_V` to the translation layer's output.
        shared_projections: the text keys/values use the visual key/value projections.

    Shapes:
        `visual` `(B, D)`, `text` `(C, D)` -> `(B, D)`.
    """

    def __init__(
        self, dim: int, expansion: int = 4, residual: bool = False, shared_projections: bool = False
    ):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.visual_key = nn.Linear(dim, dim)
        self.visual_value = nn.Linear(dim, dim)
        self.text_key = None if shared_projections else nn.Linear(dim, dim)
        self.text_value = None if shared_projections else nn.Linear(dim, dim)
        self.translation = nn.Sequential(
            nn.Linear(dim, expansion * dim), nn.GELU(), nn.Linear(expansion * dim, dim)
        )
        self.residual = residual

    def forward(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        text_key = self.visual_key if self.text_key is None else self.text_key
        text_value = self.visual_value if self.text_value is None else self.text_value
        batch = visual.shape[0]
        keys = torch.cat([self.visual_key(visual).unsqueeze(1), text_key(text).expand(batch, -1, -1)], dim=1)
        values = torch.cat(
            [self.visual_value(visual).unsqueeze(1), text_value(text).expand(batch, -1, -1)], dim=1
        )
        scores = torch.einsum("bd,bid->bi", self.query(visual), keys) / math.sqrt(visual.shape[-1])
        fused = torch.einsum("bi,bid->bd", scores.softmax(dim=-1), values)  # (B, D)
        out = self.translation(fused)
        return out + fused if self.residual else out


class MPFGVCModel(PromptCLIPPreTrainedModel):
    """Multimodal prompting for fine-grained visual classification (Jiang et al., AAAI 2024).

    - SsVP: the last layer of the image tower sees only CLS and the k patches the penultimate
      layer's CLS attends to most (parameter-free; `modeling/vision.py`).
    - DaTP: subcategory c has the prompt `[X^c_1 .. X^c_J] <super-category>.`, its own J learned
      tokens and the shared super-category word, never its name (class-specific contexts through
      the fast text engine).
    - VLFM: the image feature attends over itself and the C DaTP text features, then a
      translation layer and a linear classifier over the C subcategories.

    Training has two stages: `visual` fine-tunes the image tower and the DaTP tokens with a linear
    head's cross-entropy plus an image-to-text contrastive loss (text tower frozen); `fusion`
    trains only VLFM and its classifier. The classes are fixed (per-class tokens and classifier):
    the zero-shot pipeline is refused, the image-classification pipeline works.

    Trainable and saved: the image tower (CLIP's own or a transformers ViT with a projection),
    `context` `(C, J, D)`, `visual_head`, `fusion`, `classifier`: **not a tiny adapter**.

    Example:
        ```python
        from hf_prompt_clip import MPFGVCModel
        model = MPFGVCModel.from_clip("openai/clip-vit-base-patch16", cub_class_names, super_category="bird")
        [stage.name for stage in model.training_stages()]      # ['visual', 'fusion']
        ```
    """

    config_class = MPFGVCConfig

    def __init__(self, config: MPFGVCConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        if not config.class_names:
            raise ValueError(
                "MP-FGVC learns prompt tokens and a classifier per subcategory, so class_names must be given."
            )
        classes, embed_dim = len(config.class_names), self.clip.config.projection_dim
        width = self.clip.config.text_config.hidden_size
        device = self.text_device
        context = random_context((classes, config.n_ctx, width), config.ctx_init_std)
        self.context = nn.Parameter(context.to(device))
        if config.image_tower is not None:
            if config.image_tower_config is None:
                raise ValueError(
                    f"image_tower={config.image_tower!r} needs its config (image_tower_config); build the "
                    "model with MPFGVCModel.from_clip(..., image_tower=...), which records it."
                )
            self.image_tower = ViTModel(ViTConfig(**config.image_tower_config), add_pooling_layer=False)
            self.image_projection = nn.Linear(self.image_tower.config.hidden_size, embed_dim, bias=False)
        self.visual_head = nn.Linear(embed_dim, classes)
        self.fusion = VisionLanguageFusion(
            embed_dim, config.fusion_expansion, config.fusion_residual, config.fusion_shared_projections
        )
        self.classifier = nn.Linear(embed_dim, classes)
        self.to(device)
        self._layout: PromptLayout | None = None

    @classmethod
    def from_clip(cls, clip_model, class_names=None, *, image_tower: str | None = None, **kwargs):
        """`PromptCLIPPreTrainedModel.from_clip`, plus `image_tower`: a transformers ViT by Hub id or
        folder (pretrained weights and image processor loaded from there), instead of CLIP's own."""
        if image_tower is None:
            return super().from_clip(clip_model, class_names, **kwargs)
        hub = {key: kwargs.get(key) for key in ("cache_dir", "token")}
        revision = kwargs.get("image_tower_revision")
        try:
            vit = ViTModel.from_pretrained(image_tower, revision=revision, add_pooling_layer=False, **hub)
            processor = AutoImageProcessor.from_pretrained(image_tower, revision=revision, **hub)
        except OSError as error:
            tower = os.fspath(image_tower)
            raise AdapterLoadError(
                f"MP-FGVC's image tower image_tower={tower!r} (--option image_tower={tower}) could not be "
                f"loaded: {hub_failure_advice(error)[:300].rstrip('.')}. Give a transformers ViT by Hub id or "
                "folder, or leave image_tower out to use CLIP's own image tower."
            ) from error
        kwargs.setdefault("image_processor", processor)
        model = super().from_clip(
            clip_model,
            class_names,
            image_tower=os.fspath(image_tower),
            image_tower_config=vit.config.to_dict(),
            **kwargs,
        )
        model.image_tower.load_state_dict(vit.state_dict())
        return model

    # ------------------------------------------------------------------ parts

    @property
    def adapter_clip_modules(self) -> tuple[str, ...]:
        """CLIP's image tower is fine-tuned (and saved) unless a separate ViT replaces it."""
        return () if self.config.image_tower else ("vision_model", "visual_projection")

    @property
    def vision_tower(self) -> VisionTower:
        if self.config.image_tower:
            return vit_vision_tower(self.image_tower, self.image_projection)
        return clip_vision_tower(self.clip)

    def _tower_prefixes(self) -> tuple[str, ...]:
        return (
            ("image_tower", "image_projection")
            if self.config.image_tower
            else ("clip.vision_model", "clip.visual_projection")
        )

    def _check_class_names(self, class_names: list[str]) -> None:
        if len(class_names) != self.context.shape[0]:
            raise ValueError(
                f"This MP-FGVC model learned prompt tokens and a classifier for {self.context.shape[0]} "
                f"subcategories; it cannot classify a list of {len(class_names)} classes. Train a model on "
                "the new classes instead."
            )

    def _build_class_prompts(self, texts: list[str]) -> None:
        # DaTP never shows a subcategory's name: every prompt reads "[X_1 .. X_J] <super-category>."
        layout = build_prompt_layout(
            self.tokenizer,
            [self.config.super_category] * len(texts),
            n_ctx=self.config.n_ctx,
            suffix=self.config.prompt_suffix,
            max_length=self.clip.config.text_config.max_position_embeddings,
        )
        self._layout = layout.to(self.text_device)

    @property
    def prompt_layout(self) -> PromptLayout:
        self._ensure_class_prompts()
        if self._layout.input_ids.device != self.text_device:
            self._layout = self._layout.to(self.text_device)
        return self._layout

    # ------------------------------------------------------------------ features

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image feature `E_V` `(B, E)`: CLS through SsVP, projected into the text space; with
        autograd while the tower trains (stage `visual`)."""
        tower = self.vision_tower
        keep = self.config.patches_kept(tower.num_patches)
        with torch.set_grad_enabled(torch.is_grad_enabled() and tower.patch_weight.requires_grad):
            return encode_image_tokens(tower, pixel_values, keep_patches=keep).pooled

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.image_features(pixel_values)

    def frozen_image_encoder(self) -> tuple[str, Any]:
        """Refused: the tower is fine-tuned in stage `visual` and its last layer sees selected tokens only."""
        raise FrozenFeaturesUnavailable(
            f"{type(self).__name__} fine-tunes its image tower (stage 'visual') and selects tokens in it (SsVP), "
            "so its image features are its own, not the frozen ones the cache holds."
        )

    def _compute_class_text_features(self) -> torch.Tensor:
        return encode_context_prompts(
            self.clip,
            self.prompt_layout,
            self.context,
            class_specific=True,
            fast=self.config.fast,
            chunk_tokens=self.config.text_chunk_tokens,
        )

    def class_text_features(self) -> torch.Tensor:
        """DaTP text features `E_T` `(C, E)`; cached while the tokens do not learn."""
        return self.context_text_features(
            "class_text_features", self.context, self._compute_class_text_features
        )

    def fused_logits(self, image_features: torch.Tensor) -> torch.Tensor:
        """The classifier's logits `(B, C)` on VLFM's fusion of image features `(B, E)` with `E_T`."""
        visual, text = image_features.float(), self.class_text_features().float()
        if self.config.fusion_normalize_inputs:
            visual, text = F.normalize(visual, dim=-1), F.normalize(text, dim=-1)
        return self.classifier(self.fusion(visual, text))

    # ------------------------------------------------------------------ logits and losses

    def logits_and_loss(self, pixel_values, labels=None):
        """Stage `visual`: the linear head's logits; loss = w_v CE(head) + w_c CE(contrastive, tau).
        Otherwise (stage `fusion`, a trained or loaded model): the fused classifier's logits and CE."""
        features = self.image_features(pixel_values)
        if self.active_stage != VISUAL_STAGE:
            logits = self.fused_logits(features)
            return logits, None if labels is None else self.classification_loss(logits, labels)
        logits = self.visual_head(features.float())
        if labels is None:
            return logits, None
        config = self.config
        text = F.normalize(self.class_text_features().float(), dim=-1)
        with torch.autocast(device_type=features.device.type, enabled=False):  # cos / 0.07 in float32
            contrastive = F.normalize(features.float(), dim=-1) @ text.T / config.contrastive_temperature
        loss = config.visual_loss_weight * self.classification_loss(logits, labels)
        loss = loss + config.contrastive_loss_weight * self.classification_loss(contrastive, labels)
        return logits, loss

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.logits_and_loss(pixel_values)[0]

    def logits_from_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        if self.active_stage == VISUAL_STAGE:
            return self.visual_head(image_features.float())
        return self.fused_logits(image_features)

    # ------------------------------------------------------------------ stages and saving

    def training_stages(self) -> list[TrainingStage]:
        """`visual`: image tower, DaTP tokens and the linear head; then `fusion`: VLFM and its classifier."""
        visual, fusion = self.stages_from_config(
            {
                VISUAL_STAGE: (*self._tower_prefixes(), "context", "visual_head"),
                FUSION_STAGE: ("fusion", "classifier"),
            }
        )
        # the pretrained tower learns at a fraction of the rate; a ViT's new projection starts from scratch
        pretrained = ("image_tower",) if self.config.image_tower else self._tower_prefixes()
        scales = tuple((prefix, self.config.image_tower_lr_scale) for prefix in pretrained)
        return [dataclasses.replace(visual, learning_rate_scales=scales), fusion]

    def saved_adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter, with the fine-tuned image tower in `config.save_dtype`."""
        state = self.adapter_state_dict()
        if self.config.save_dtype == "float32":
            return state
        dtype = getattr(torch, self.config.save_dtype)
        tower = self._tower_prefixes()
        return {
            key: value.to(dtype) if key.startswith(tower) and value.is_floating_point() else value
            for key, value in state.items()
        }
