"""CoCoOp: the context of every prompt shifted by a bias that a small Meta-Net reads off the image.

Room: `methods/`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.prompts import ContextPrompts
from ...modeling.text import PromptLayout
from .config import CoCoOpConfig


class CoCoOpModel(PromptCLIPPreTrainedModel):
    """Conditional Context Optimization.

    For image x: `pi = meta_net(normalize(image_feature(x)))`, context `v_m(x) = v_m + pi`, and
    prompt `[SOS] v_1(x) .. v_M(x) name_k . [EOS]` for every class k, so a batch needs B x K
    text sequences with gradients. The fast engine encodes each image's `[SOS] + context` once
    and all class suffixes against it in a few batched calls (exact; `config.fast=False` runs
    the reference per-image loop over all 77 positions).

    Trainable: `context` `(M, D)` and `meta_net` (35,360 numbers with M = 4 on ViT-B/16). The prompts are
    the shared `ContextPrompts` component (`modeling/prompts.py`, as CoOp's), held as `prompts`.

    Example:
        ```python
        from hf_prompt_clip import CoCoOpModel
        model = CoCoOpModel.from_clip("openai/clip-vit-base-patch16", base_class_names)
        loss = model(pixel_values, labels=labels).loss     # any batch size
        ```
    """

    config_class = CoCoOpConfig

    def __init__(self, config: CoCoOpConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        self.prompts = ContextPrompts(config, tokenizer)
        self.context = self.prompts.new_context(self.clip)
        embed_dim = self.clip.config.projection_dim
        width = self.clip.config.text_config.hidden_size
        hidden = max(1, embed_dim // config.meta_net_reduction)
        self.meta_net = nn.Sequential(
            OrderedDict(
                linear1=nn.Linear(embed_dim, hidden),
                relu=nn.ReLU(inplace=True),
                linear2=nn.Linear(hidden, width),
            )
        ).to(device=self.text_device)

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.prompts.build(self.clip, self.tokenizer, texts)

    @property
    def prompt_layout(self) -> PromptLayout:
        """Token ids, context slots and EOS positions of the current class prompts."""
        self._ensure_class_prompts()
        return self.prompts.layout

    def encode_prompts(self, context: torch.Tensor) -> torch.Tensor:
        """Text features of the class prompts with `context` spliced in: one context per image `(B, M, D)`
        -> `(B, K, E)`; the learned context `(M, D)` alone -> `(K, E)`."""
        self._ensure_class_prompts()
        return self.prompts.encode(self.clip, context)

    def image_conditioned_contexts(self, image_features: torch.Tensor) -> torch.Tensor:
        """Per-image contexts `(B, M, D)` from normalised image features `(B, E)`."""
        return self.context.unsqueeze(0) + self.meta_net(image_features).unsqueeze(1)

    def logits_from_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        image_features = F.normalize(image_features.float(), dim=-1)
        text_features = self.encode_prompts(self.image_conditioned_contexts(image_features))  # (B, K, E)
        text_features = F.normalize(text_features.float(), dim=-1)
        scale = self.clip.logit_scale.exp().float()
        return scale * torch.einsum("be,bke->bk", image_features, text_features)
