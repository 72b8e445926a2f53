"""CoOp: a learned context shared by (or specific to) the classes, the rest of CLIP frozen."""

from __future__ import annotations

import torch
from torch import nn

from ...core.modeling import PromptCLIPPreTrainedModel
from ...core.text import (
    PromptLayout,
    build_prompt_layout,
    phrase_embeddings,
    phrase_token_ids,
    random_context,
)
from ...core.text_engine import encode_context_prompts
from .config import CoOpConfig


class CoOpModel(PromptCLIPPreTrainedModel):
    """Context Optimization: prompts `[SOS] v_1 .. v_M name . [EOS]` with learned `v_m`.

    Trainable: `context` only, `(M, D)` or `(K, M, D)` with class-specific context. Changing
    the class list (base -> new classes, another dataset) rebuilds only the frozen token parts.

    Example:
        ```python
        from hf_prompt_clip import CoOpModel
        model = CoOpModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"], n_ctx=16)
        loss = model(pixel_values, labels=labels).loss
        model.set_class_names(["fox", "owl"])        # same context, new classes
        ```
    """

    config_class = CoOpConfig

    def __init__(self, config: CoOpConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        width = self.clip.config.text_config.hidden_size
        init_ids = None
        if config.ctx_init and tokenizer is not None:
            init_ids = phrase_token_ids(tokenizer, config.ctx_init)
            config.n_ctx = len(init_ids)
        self._context_ids = init_ids
        if config.class_specific_context and not config.class_names:
            raise ValueError(
                "class_specific_context=True learns one context per class, so class_names must be given."
            )
        num_contexts = len(config.class_names) if config.class_specific_context else None
        shape = (config.n_ctx, width) if num_contexts is None else (num_contexts, config.n_ctx, width)
        if init_ids is not None:
            context = phrase_embeddings(self.clip, init_ids).expand(shape).clone()
        else:
            context = random_context(shape, config.ctx_init_std)
        self.context = nn.Parameter(context.to(self.text_device))

    def _check_class_names(self, class_names: list[str]) -> None:
        if self.config.class_specific_context and len(class_names) != self.context.shape[0]:
            raise ValueError(
                f"This CoOp model learned one context per class for {self.context.shape[0]} classes "
                f"(class_specific_context=True); it cannot classify a list of {len(class_names)} other "
                "classes. Use a unified context (class_specific_context=False) to transfer to new classes."
            )

    def _build_class_prompts(self, texts: list[str]) -> None:
        layout = build_prompt_layout(
            self.tokenizer,
            texts,
            n_ctx=self.config.n_ctx,
            position=self.config.class_token_position,
            max_length=self.clip.config.text_config.max_position_embeddings,
            context_ids=self._context_ids,
        )
        device = self.text_device
        self.register_buffer("prompt_input_ids", layout.input_ids.to(device), persistent=False)
        self.register_buffer("prompt_context_index", layout.context_index.to(device), persistent=False)
        self.register_buffer("prompt_eos_positions", layout.eos_positions.to(device), persistent=False)
        self._prompt_lengths = layout.lengths  # host-side copies: no device reads per forward

    @property
    def prompt_layout(self) -> PromptLayout:
        """Token ids, context slots and EOS positions of the current class prompts."""
        self._ensure_class_prompts()
        return PromptLayout(
            self.prompt_input_ids, self.prompt_context_index, self.prompt_eos_positions, self._prompt_lengths
        )

    def encode_prompts(self, context: torch.Tensor) -> torch.Tensor:
        """Text features of the class prompts with `context` spliced in.

        `(M, D)` or class-specific `(K, M, D)` -> `(K, E)`; one context per image `(B, M, D)`
        -> `(B, K, E)`.
        """
        return encode_context_prompts(
            self.clip,
            self.prompt_layout,
            context,
            class_specific=self.config.class_specific_context,
            fast=self.config.fast,
            chunk_tokens=self.config.text_chunk_tokens,
        )

    def _compute_class_text_features(self) -> torch.Tensor:
        return self.encode_prompts(self.context)

    def class_text_features(self) -> torch.Tensor:
        return self.context_text_features(
            "class_text_features", self.context, self._compute_class_text_features
        )
