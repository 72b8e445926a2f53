"""PLOT and PLOT++: N prompts per class matched to M_v local visual features by optimal transport.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...caching.feature_cache import FrozenFeaturesUnavailable
from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.stages import TrainingStage
from ...modeling.text import (
    PromptLayout,
    build_prompt_layout,
    phrase_embeddings,
    phrase_token_ids,
    random_context,
)
from ...modeling.text_engine import encode_context_prompts
from ...modeling.vision import encode_image_tokens
from .config import PLOTConfig, PLOTPPConfig
from .optimal_transport import SinkhornResult, sinkhorn, sinkhorn_reference

#: Parameters each training stage trains (`PLOTConfig.stage_names`).
STAGE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "prompt": ("context",),
    "visual": ("visual_prompts",),
    "joint": ("context", "visual_prompts"),
}
#: The stage whose logits always include the global term (PLOT++'s first stage).
GLOBAL_LOGITS_STAGE = "visual"


def transport_logits(
    local_features: torch.Tensor,
    prompt_features: torch.Tensor,
    plan_fn,
) -> torch.Tensor:
    """PLOT's class scores `sum(T * S)` `(B, K)`, before the logit scale.

    Args:
        local_features: `(B, M_v, E)` local image features (any scale: they are normalised).
        prompt_features: `(N, K, E)` features of N prompts for each of K classes.
        plan_fn: similarities `(B, K, M_v, N)` -> transport plans of the same shape (no gradient).

    The plan weights the cosine similarities `S` as a constant: gradients reach the features only
    through `S`. Everything here runs in float32, also under autocast (which would otherwise run
    the similarity product in bf16/fp16).
    """
    with torch.autocast(device_type=local_features.device.type, enabled=False):
        local = F.normalize(local_features.float(), dim=-1)
        prompts = F.normalize(prompt_features.float(), dim=-1)
        similarity = torch.einsum("bme,nke->bkmn", local, prompts)
        if torch.compiler.is_compiling():
            # einsum's result is a permuted view; compiled graphs split at Sinkhorn's host reads got its
            # aliases wrong (a failed view in PLOT, silently other values in PLOT++): give them a plain tensor
            similarity = similarity.contiguous()
        plan = plan_fn(similarity.detach())
        return (plan * similarity).sum(dim=(-2, -1))


class PLOTModel(PromptCLIPPreTrainedModel):
    """Prompt Learning with Optimal Transport (Chen et al., ICLR 2023), on a ViT CLIP.

    N contexts, shared by the classes, give N prompts `[SOS] v^n_1 .. v^n_M name . [EOS]` per class
    (text features `(N, K, E)`; the fast text engine encodes each context's prefix once). The image
    gives M_v local features: its patch tokens (`local_features="patch"`), or the CLS features of
    M_v runs of the image tower with learned visual prompts (`"visual_prompts"`, PLOT++). For every
    (image, class) pair, Sinkhorn finds the transport plan `T` between local and prompt features
    (without gradient); the logit is `logit_scale * sum(T * S)` over the cosines `S`.

    Trainable: `context` `(N, M, D)`; with visual prompts also `visual_prompts` `(M_v, T, W)`.

    Example:
        ```python
        from hf_prompt_clip import PLOTModel
        model = PLOTModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])  # N = 4, M = 16
        loss = model(pixel_values, labels=labels).loss
        ```
    """

    config_class = PLOTConfig

    def __init__(self, config: PLOTConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        width = self.clip.config.text_config.hidden_size
        init_ids = None
        if config.ctx_inits:
            if tokenizer is None and config.context_lengths is None:
                raise ValueError(
                    f"{type(self).__name__} starts its contexts from ctx_inits, which needs the base model's "
                    "tokenizer: pass tokenizer=..., or build the model with from_clip() / from_pretrained()."
                )
            if tokenizer is not None:
                init_ids = [phrase_token_ids(tokenizer, text) for text in config.ctx_inits]
                lengths = [len(ids) for ids in init_ids]
                # contexts past the phrases start random, with n_ctx tokens (as recorded, when reloading)
                random_length = config.context_lengths[-1] if config.context_lengths else config.n_ctx
                config.context_lengths = lengths + [random_length] * (config.n_prompts - len(lengths))
        if config.context_lengths:
            config.n_ctx = max(config.context_lengths)
        context = random_context((config.n_prompts, config.n_ctx, width), config.ctx_init_std)
        context = context.to(self.text_device)
        for index, ids in enumerate(init_ids or ()):
            context[index] = 0.0  # slots past a shorter phrase's end stay unused
            context[index, : len(ids)] = phrase_embeddings(self.clip, ids)
        self.context = nn.Parameter(context)
        if config.local_features == "visual_prompts":
            vision_width = self.clip.config.vision_config.hidden_size
            shape = (config.n_visual_prompt_sets, config.n_visual_prompt_tokens, vision_width)
            prompts = random_context(shape, config.visual_prompt_std)
            self.visual_prompts = nn.Parameter(prompts.to(self.clip.visual_projection.weight.device))
        self._layouts: dict[int, PromptLayout] = {}

    # ------------------------------------------------------------------ text side

    @property
    def context_lengths(self) -> list[int]:
        """Tokens of each of the N contexts."""
        return self.config.context_lengths or [self.config.n_ctx] * self.config.n_prompts

    def _length_groups(self) -> list[tuple[int, list[int]]]:
        """Contexts of equal length, which share one prompt layout: `[(length, [context indices])]`."""
        groups: dict[int, list[int]] = {}
        for index, length in enumerate(self.context_lengths):
            groups.setdefault(length, []).append(index)
        return list(groups.items())

    def _build_class_prompts(self, texts: list[str]) -> None:
        max_length = self.clip.config.text_config.max_position_embeddings
        self._layouts = {
            length: build_prompt_layout(
                self.tokenizer,
                texts,
                n_ctx=length,
                position=self.config.class_token_position,
                max_length=max_length,
            ).to(self.text_device)
            for length, _ in self._length_groups()
        }

    def prompt_layout(self, length: int) -> PromptLayout:
        """The layout of the class prompts for contexts of `length` tokens, on the text tower's device."""
        self._ensure_class_prompts()
        layout = self._layouts[length]
        if layout.input_ids.device != self.text_device:
            layout = self._layouts[length] = layout.to(self.text_device)
        return layout

    def encode_prompts(self, context: torch.Tensor) -> torch.Tensor:
        """Text features `(N, K, E)` of every class's N prompts with contexts `(N, M, D)` spliced in.

        Contexts of equal length go through the text engine together: one shared prefix each, the K
        class suffixes against it (`config.fast=False`: every prompt over all positions).
        """
        features, order = [], []
        for length, indices in self._length_groups():
            group = context[:, :length] if len(indices) == len(context) else context[indices, :length]
            features.append(
                encode_context_prompts(
                    self.clip,
                    self.prompt_layout(length),
                    group,
                    fast=self.config.fast,
                    chunk_tokens=self.config.text_chunk_tokens,
                )
            )
            order += indices
        features = torch.cat(features)
        if order != sorted(order):
            features = features[torch.tensor(order, device=features.device).argsort()]
        return features

    def prompt_text_features(self) -> torch.Tensor:
        """Text features `(N, K, E)` of the current classes; cached while the contexts do not learn."""
        return self.context_text_features(
            "prompt_text_features", self.context, lambda: self.encode_prompts(self.context)
        )

    # ------------------------------------------------------------------ image side and logits

    def local_image_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(global `(B, E)`, local `(B, M_v, E)`) image features.

        `"patch"`: CLS and the patch tokens, frozen (no autograd). `"visual_prompts"`: the CLS feature
        of each visual prompt set (one batched run of the tower) and their mean.
        """
        if self.config.local_features == "patch":
            with torch.no_grad():
                features = encode_image_tokens(self.clip, pixel_values, return_patches=True)
            return self.image_output(features.pooled), self.image_output(features.patches)
        learning = torch.is_grad_enabled() and self.visual_prompts.requires_grad
        with torch.set_grad_enabled(learning):
            local = encode_image_tokens(self.clip, pixel_values, self.visual_prompts).pooled
        return local.mean(dim=1), local

    def solve_transport(self, similarity: torch.Tensor) -> SinkhornResult:
        """Sinkhorn plans `(..., M_v, N)` for similarities `(..., M_v, N)` with the config's settings.

        `config.fast=False` runs the authors' linear-domain loop (`sinkhorn_reference`).
        """
        config = self.config
        threshold = config.sinkhorn_threshold if config.sinkhorn_stop == "reference" else None
        if config.fast:
            return sinkhorn(
                similarity,
                config.sinkhorn_eps,
                config.sinkhorn_max_iter,
                threshold,
                config.sinkhorn_check_every,
            )
        return sinkhorn_reference(similarity, config.sinkhorn_eps, config.sinkhorn_max_iter, threshold)

    @property
    def uses_global_logits(self) -> bool:
        """Whether the logits include the global term (PLOT++'s first stage always does)."""
        return self.config.add_global_logits or self.active_stage == GLOBAL_LOGITS_STAGE

    def logits_from_features(
        self, global_image: torch.Tensor, local_image: torch.Tensor, prompt_features: torch.Tensor
    ) -> torch.Tensor:
        """Class logits `(B, K)` from image features `(B, E)`, `(B, M_v, E)` and prompt features `(N, K, E)`.

        `logit_scale * sum(T * S)`, plus `logit_scale * cos(global image, mean prompt)` when
        `uses_global_logits` (the mean is over the N unnormalised prompt features, as the reference).
        """
        scale = self.clip.logit_scale.exp().float()
        logits = scale * transport_logits(
            local_image, prompt_features, lambda s: self.solve_transport(s).plan
        )
        if self.uses_global_logits:
            logits = logits + self.similarity_logits(global_image, prompt_features.float().mean(dim=0))
        return logits

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        global_image, local_image = self.local_image_features(pixel_values)
        return self.logits_from_features(global_image, local_image, self.prompt_text_features())

    def frozen_image_encoder(self) -> tuple[str, Any]:
        """Refused: PLOT classifies from the local (patch or visual-prompt) features, not the pooled one."""
        raise FrozenFeaturesUnavailable(
            f"{type(self).__name__} matches local image features ({self.config.local_features!r}) by optimal "
            "transport; the pooled image feature the cache holds does not contain them."
        )

    def logits_from_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "PLOT matches local image features, which the global features do not contain: use "
            "classify(pixel_values), or logits_from_features(global, local, prompt_text_features())."
        )

    # ------------------------------------------------------------------ training stages

    def training_stages(self) -> list[TrainingStage]:
        """PLOT: one stage training the contexts. PLOT++: `visual` (visual prompts, global + transport
        logits), then `joint` (contexts and visual prompts)."""
        return self.stages_from_config({name: STAGE_PARAMETERS[name] for name in self.config.stage_names})


class PLOTPPModel(PLOTModel):
    """PLOT++: PLOT with learned visual prompts on the ViT image tower and two training stages.

    M_v sets of T tokens (4 x 2, image-tower width) are appended to the image tokens; the tower runs
    once per set (one batched call) and the M_v CLS features are matched to the N prompts. The N
    text contexts start from hand-written phrases (the benchmark's own list when trained through
    the experiment runner). Stage `visual` trains the visual prompts with global + transport
    logits; stage `joint` trains contexts and visual prompts with transport logits.

    Example:
        ```python
        from hf_prompt_clip import PLOTPPModel
        model = PLOTPPModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])
        [stage.name for stage in model.training_stages()]      # ['visual', 'joint']
        ```
    """

    config_class = PLOTPPConfig
