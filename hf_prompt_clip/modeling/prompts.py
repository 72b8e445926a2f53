"""Shared prompt machinery that methods hold: no method folder is another method's base class.

Room: `modeling/`.

Two kinds of class prompts recur across methods, each as a config base (its options, checked where they
are defined) and a component the model holds:

- **Context prompts** (`ContextPromptConfig`, `ContextPrompts`): `[SOS] v_1 .. v_M name . [EOS]` with M
  learned context vectors, started from the token embeddings of a phrase (`ctx_init`) or drawn at
  random, the class name at the end, middle or front, encoded through the exact fast text engine.
  CoOp, CoCoOp and KgCoOp hold one; the deep-prompt methods (MaPLe, IVLP, PromptSRC) will too
  (`ContextPrompts` says how).
- **Template prompts** (`TemplatePromptConfig`, `TemplatePrompts`): hand-written `template.format(name)`
  prompts encoded by the frozen CLIP, several templates averaged (CLIP's prompt ensemble). Zero-shot CLIP
  and CLIP-Adapter classify with them; KgCoOp anchors its learned prompts to them.

A method declares its own options on top of a config base and states its own `capabilities` and
`benchmark_defaults`; within one method folder, one method may still subclass another (PLOT++ of PLOT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn

from ..core.configuration import PromptCLIPConfig
from ..core.options import option
from ..utils.settings import SettingError
from .text import (
    CLASS_TOKEN_POSITIONS,
    PromptLayout,
    build_prompt_layout,
    fill_template,
    phrase_embeddings,
    phrase_token_ids,
    random_context,
)
from .text_engine import encode_context_prompts, encode_template_prompts, template_text_features

if TYPE_CHECKING:
    from transformers import CLIPModel, PreTrainedTokenizerBase

    from .model import PromptCLIPPreTrainedModel

#: The template of a class when none is given.
DEFAULT_TEMPLATE = "a photo of a {}."


def template_list(templates: Sequence[str] | None) -> list[str]:
    """`templates` as a list, `[DEFAULT_TEMPLATE]` when empty, each checked to hold one `{}`.

    Raises:
        ValueError: a template without exactly one `{}` (`fill_template`'s message).

    Example:
        >>> template_list(None), template_list(("a {}.",))
        (['a photo of a {}.'], ['a {}.'])
    """
    templates = list(templates) if templates else [DEFAULT_TEMPLATE]
    for template in templates:
        fill_template(template, "x")
    return templates


# ------------------------------------------------------------------ context prompts


@strict
class ContextPromptConfig(PromptCLIPConfig):
    r"""The options of learned context prompts (`ContextPrompts`), shared by the methods that hold them.

    Args:
        n_ctx (`int`, *optional*, defaults to 16):
            Number of learned context vectors M. Ignored when `ctx_init` is given: M is then the
            number of BPE tokens of `ctx_init`.
        ctx_init (`str`, *optional*):
            Words whose token embeddings initialise the context, e.g. `"a photo of a"`. Random
            N(0, `ctx_init_std`^2) initialisation when empty.
        class_token_position (`str`, *optional*, defaults to `"end"`):
            Where the class name goes: `"end"` (after the context), `"middle"` (after the first
            M // 2 vectors) or `"front"` (before the context).
        ctx_init_std (`float`, *optional*, defaults to 0.02):
            Standard deviation of the random context initialisation.
    """

    n_ctx: int = option(16, minimum=1)
    ctx_init: str | None = None
    class_token_position: str = option("end", choices=CLASS_TOKEN_POSITIONS)
    ctx_init_std: float = option(
        0.02, minimum=0, why="the standard deviation of the random context initialisation"
    )


class ContextPrompts(nn.Module):
    """Learned context prompts `[SOS] v_1 .. v_M name . [EOS]` of the current classes.

    Owns what every context-prompt method shares: the context's initialisation (`new_context`: the token
    embeddings of `config.ctx_init`, whose BPE token count becomes `config.n_ctx`, or N(0, `ctx_init_std`^2)
    drawn on the CPU), the class-token position, the prompt layout of a class list (`build`; its token ids,
    context slots and end-of-text positions are non-persistent buffers, so they follow the model's device
    and are never saved) and encoding a context through the fast text engine (`encode`).

    The learned context itself is the holder's own parameter, `context`: the key every saved adapter uses,
    so adapters saved by earlier releases keep loading. The component makes it (`new_context`) and reads
    whatever context it is given (`encode`): the holder's, one shifted per image (CoCoOp), or several.

    Args:
        config: the holder's config (a `ContextPromptConfig`); read when used, as the model reads it.
        tokenizer: the base model's tokenizer (for `ctx_init`); `None` leaves `n_ctx` as the config has it.
        class_specific: one context per class, `(K, M, D)` (CoOp's CSC), instead of one shared `(M, D)`.
        first_n_ctx_of_init: the deep-prompt methods' reading of `n_ctx` with `ctx_init` (IVLP, MaPLe,
            PromptSRC): the first `n_ctx` tokens of `ctx_init` are learned and its remaining tokens stay fixed
            before every class name (`n_ctx=2`, `"a photo of a"`: `[SOS] v_1 v_2 of a name . [EOS]`, the
            tokens of the authors' `"a photo of a name."`); by default (CoOp) all of `ctx_init` is learned
            and sets `n_ctx`.

    Raises:
        ValueError: with `first_n_ctx_of_init`, `n_ctx` beyond `ctx_init`'s tokens, or fixed words of
            `ctx_init` with the class name elsewhere than at the end (`SettingError`, naming the fields).

    Deep prompts (MaPLe, IVLP, PromptSRC) can hold it as it is: the first layer's learned tokens are this
    context, at the layout's context slots (`layout.context_index >= 0`), and their deeper layers' tokens
    replace the hidden states at the same slots, so they need the layout this component builds and an engine
    call taking those tokens (a `deep_context` `(J, M, D)` beside `context` in `encode`). Several prompt sets
    in one call (PromptSRC's learned and frozen prompts, an ensemble) are a context with a leading dimension
    `(S, M, D)`, which `encode` already returns as `(S, K, E)` (CoCoOp's per-image contexts use it).

    Example:
        ```python
        self.prompts = ContextPrompts(config, tokenizer)          # in a model's __init__
        self.context = self.prompts.new_context(self.clip)        # (M, D), saved as "context"
        self.prompts.build(self.clip, tokenizer, ["red star", "blue circle"])
        features = self.prompts.encode(self.clip, self.context)  # (K, E)
        ```
    """

    def __init__(
        self,
        config: ContextPromptConfig,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        class_specific: bool = False,
        first_n_ctx_of_init: bool = False,
    ):
        super().__init__()
        self.config = config
        self.class_specific = class_specific
        self.context_ids: list[int] | None = None  # the token ids of ctx_init, shown at the context slots
        self.fixed_ids: list[
            int
        ] = []  # tokens of ctx_init after the learned ones, fixed before each class name
        if config.ctx_init and tokenizer is not None:
            if first_n_ctx_of_init:
                ids = phrase_token_ids(tokenizer, config.ctx_init)
                if config.n_ctx > len(ids):
                    raise ValueError(
                        f"n_ctx={config.n_ctx} learned tokens are taken from ctx_init={config.ctx_init!r}, which "
                        f"has only {len(ids)}: give n_ctx <= {len(ids)}, a longer ctx_init, or no ctx_init (random "
                        "initialisation)."
                    )
                self.context_ids, self.fixed_ids = ids[: config.n_ctx], ids[config.n_ctx :]
                if self.fixed_ids and config.class_token_position != "end":
                    raise SettingError(
                        f"n_ctx={config.n_ctx} learns the first {config.n_ctx} of the {len(ids)} tokens of "
                        f"ctx_init={config.ctx_init!r} and keeps the other {len(self.fixed_ids)} as fixed words "
                        "before the class name, but class_token_position="
                        f"{config.class_token_position!r} does not put the name after them: use "
                        f"class_token_position='end', n_ctx={len(ids)} (learn all of ctx_init) or no ctx_init."
                    )
            else:
                self.context_ids = phrase_token_ids(tokenizer, config.ctx_init)
                config.n_ctx = len(self.context_ids)
        self._lengths = None

    def new_context(self, clip: CLIPModel) -> nn.Parameter:
        """The initial context on the text tower's device, in float32: `(M, D)`, or `(K, M, D)` for the
        config's K classes with `class_specific`.

        Raises:
            ValueError: `class_specific` without class names (the number of contexts is unknown).
        """
        width = clip.config.text_config.hidden_size
        shape: tuple[int, ...] = (self.config.n_ctx, width)
        if self.class_specific:
            if not self.config.class_names:
                raise ValueError(
                    "class_specific_context=True learns one context per class, so class_names must be given."
                )
            shape = (len(self.config.class_names), *shape)
        if self.context_ids is not None:
            context = phrase_embeddings(clip, self.context_ids).expand(shape).clone()
        else:
            context = random_context(shape, self.config.ctx_init_std)
        return nn.Parameter(context.to(clip.text_projection.weight.device))

    def check_class_names(self, class_names: Sequence[str], context: torch.Tensor, holder: str) -> None:
        """Refuse a class list that a class-specific `context` `(K, M, D)` cannot serve (another number of
        classes); `holder` names the model in the message."""
        if self.class_specific and len(class_names) != context.shape[0]:
            raise ValueError(
                f"This {holder} learned one context per class for {context.shape[0]} classes "
                f"(class_specific_context=True); it cannot classify a list of {len(class_names)} other "
                "classes. Use a unified context (class_specific_context=False) to transfer to new classes."
            )

    def build(self, clip: CLIPModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> None:
        """Lay out the prompts of `texts` (class names in prompt form) for `clip`'s text tower (its length
        and device), replacing the previous class list's.

        Raises:
            ValueError: a prompt longer than the text encoder takes (naming the text and `n_ctx`).
        """
        layout = build_prompt_layout(
            tokenizer,
            list(texts),
            n_ctx=self.config.n_ctx,
            position=self.config.class_token_position,
            max_length=clip.config.text_config.max_position_embeddings,
            context_ids=self.context_ids,
            fixed_ids=self.fixed_ids,
        )
        device = clip.text_projection.weight.device
        self.register_buffer("prompt_input_ids", layout.input_ids.to(device), persistent=False)
        self.register_buffer("prompt_context_index", layout.context_index.to(device), persistent=False)
        self.register_buffer("prompt_eos_positions", layout.eos_positions.to(device), persistent=False)
        self._lengths = layout.lengths  # host-side copies: no device reads per forward

    @property
    def layout(self) -> PromptLayout:
        """Token ids, context slots and end-of-text positions of the prompts last built."""
        if self._lengths is None:
            raise RuntimeError(
                "ContextPrompts.build(clip, tokenizer, texts) was never called: no class prompts yet."
            )
        return PromptLayout(
            self.prompt_input_ids, self.prompt_context_index, self.prompt_eos_positions, self._lengths
        )

    def encode(
        self, clip: CLIPModel, context: torch.Tensor, deep_context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text features of the prompts with `context` spliced in (`encode_context_prompts`, with the
        config's `fast` and `text_chunk_tokens`).

        Args:
            clip: the frozen `CLIPModel` (the holder's).
            context: `(M, D)` or, with `class_specific`, `(K, M, D)` -> `(K, E)`; `(B, M, D)` one context
                per image or prompt set -> `(B, K, E)`.
            deep_context: `(J - 1, M, D)` the tokens that replace the context's hidden states before text
                layers `1 .. J - 1` (deep prompts), or `None`.
        """
        return encode_context_prompts(
            clip,
            self.layout,
            context,
            class_specific=self.class_specific,
            fast=self.config.fast,
            chunk_tokens=self.config.text_chunk_tokens,
            deep_context=deep_context,
        )


# ------------------------------------------------------------------ template prompts


@strict
class TemplatePromptConfig(PromptCLIPConfig):
    r"""The options of a classifier from hand-written templates (`TemplatePrompts`).

    Args:
        templates (`list[str]`, *optional*, defaults to `["a photo of a {}."]`):
            Templates with one `{}` for the class name. With several, the text features of every
            template are L2-normalised, averaged and re-normalised (CLIP's prompt ensemble).
        ensemble (`bool`, *optional*, defaults to `False`):
            Built for a benchmark (the runner, `--option ensemble=True`): take its reference ensemble
            (`BenchmarkSpec.ensemble_templates`, CoOp's `ZeroshotCLIP2`: the 7 ImageNet-select
            templates plus the benchmark's own) instead of its single template. Recorded with the
            templates it chose.
    """

    templates: list[str] | None = None
    ensemble: bool = False

    def __post_init__(self, **kwargs):
        self.templates = template_list(self.templates)
        super().__post_init__(**kwargs)

    def benchmark_templates(self, benchmark: Any) -> list[str]:
        """The benchmark's own hand-written template(s), or its reference ensemble with `ensemble=True`
        (for a method's `benchmark_defaults`)."""
        return list(benchmark.ensemble_templates if self.ensemble else benchmark.templates)


class TemplatePrompts:
    """Hand-written prompts of the current classes, `template.format(name)`, encoded by the frozen CLIP into
    one L2-normalised feature per class (several templates averaged: `template_text_features`).

    Holds the class names in prompt form (`build`) and computes their features without autograd, cached by
    the holder (`PromptCLIPPreTrainedModel.cached_text`, under `cache_name`) until the class list, the
    templates, `fast` or the text tower's device or dtype change. It holds no tensor: nothing is saved.

    Args:
        cache_name: the holder's cache entry (`"class_text_features"` for a classifier, another name for
            features a method uses beside its own, as KgCoOp's hand-crafted anchors).
        normalize_each: with several templates, normalise each template's features before averaging (CLIP's
            ensemble); `False` averages the raw features, then normalises (PromptSRC's frozen anchors).

    Example:
        ```python
        self.template_prompts = TemplatePrompts()                    # in a model's __init__
        self.template_prompts.build(texts)                           # in _build_class_prompts
        features = self.template_prompts.text_features(self, self.config.templates)   # (K, E)
        ```
    """

    def __init__(self, cache_name: str = "class_text_features", *, normalize_each: bool = True):
        self.cache_name = cache_name
        self.normalize_each = normalize_each
        self.texts: list[str] | None = None

    def build(self, texts: Sequence[str]) -> None:
        """Use `texts` (class names in prompt form); tokenised when the features are computed."""
        self.texts = list(texts)

    def compute(self, holder: PromptCLIPPreTrainedModel, templates: Sequence[str]) -> torch.Tensor:
        """Normalised text features `(K, E)` of `templates` filled with the holder's current classes,
        computed now (no cache; without autograd)."""
        holder._ensure_class_prompts()
        return template_text_features(
            holder.clip,
            holder.tokenizer,
            self.texts,
            list(templates),
            fast=holder.config.fast,
            chunk_tokens=holder.config.text_chunk_tokens,
            normalize_each=self.normalize_each,
        )

    def text_features(self, holder: PromptCLIPPreTrainedModel, templates: Sequence[str]) -> torch.Tensor:
        """`compute(holder, templates)`, cached by the holder while the class list, the templates, `fast`
        and the text tower's device and dtype stay the same."""
        key = (holder.class_version, holder.config.fast, self.normalize_each, tuple(templates))
        with torch.no_grad():
            return holder.cached_text(self.cache_name, key, lambda: self.compute(holder, templates))

    def tuned_text_features(
        self,
        holder: PromptCLIPPreTrainedModel,
        templates: Sequence[str],
        tuned: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Normalised text features `(K, E)` of `templates` when the text tower's own weights learn (`tuned`:
        the learned tensors inside it, e.g. low-rank updates of its projections): with autograd while they
        train (`context_text_features`), else cached while they, the class list and `fast` stay the same.
        Each template is encoded by `encode_template_prompts` (exact shared prefix and EOS truncation);
        several are averaged as `normalize_each` says.

        Example:
            ```python
            tuned = [p for n, p in self.clip.text_model.named_parameters() if "lora_" in n]
            features = self.template_prompts.tuned_text_features(self, self.config.templates, tuned)
            ```
        """

        def compute() -> torch.Tensor:
            holder._ensure_class_prompts()
            features = torch.stack(
                [
                    encode_template_prompts(
                        holder.clip,
                        holder.tokenizer,
                        self.texts,
                        template,
                        fast=holder.config.fast,
                        chunk_tokens=holder.config.text_chunk_tokens,
                    ).float()
                    for template in templates
                ]
            )
            if self.normalize_each:
                features = F.normalize(features, dim=-1)
            return F.normalize(features.mean(dim=0), dim=-1)

        return holder.context_text_features(f"{self.cache_name}|{tuple(templates)}", tuned, compute)


def free_text_features(
    clip: CLIPModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Text features `(N, E)` of whole prompts given as token ids `(N, L)` by the frozen CLIP, without
    autograd (the zero-shot pipeline's candidate labels filled into its `hypothesis_template`).

    Example:
        >>> ids = tokenizer(["a photo of a cat."], padding=True, return_tensors="pt")
        >>> free_text_features(clip, ids.input_ids, ids.attention_mask).shape
        torch.Size([1, E])
    """
    device = clip.text_projection.weight.device
    with torch.no_grad():
        return clip.get_text_features(
            input_ids=input_ids.to(device),
            attention_mask=None if attention_mask is None else attention_mask.to(device),
        ).pooler_output
