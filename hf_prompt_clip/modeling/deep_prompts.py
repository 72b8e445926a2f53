"""Deep prompts in both towers: learned tokens at every layer up to a depth (VPT, IVLP, MaPLe, PromptSRC).

Room: `modeling/`.

Two config bases and one component that the deep-prompt methods hold (no method folder is another's base):

- `VisualPromptConfig`: `n_ctx_vision` tokens appended after the image patches, with their own tokens at
  each of the first `vision_depth` layers of the image tower (VPT-deep; IVLP's and PromptSRC's image side).
- `DeepPromptConfig`: `VisualPromptConfig` plus learned text prompts after `[SOS]` with their own tokens at
  each of the first `text_depth` layers of the text tower (IVLP, PromptSRC; MaPLe, whose visual prompts are
  projected, declares the text fields only).
- `DeepPrompts`: the learned tensors and the two encodings. Its text side holds a `ContextPrompts` (the prompt
  layout, the initialisation from `ctx_init`) and runs the shared text engine with per-layer prompts; its image
  side runs the shared image-tower path with per-layer visual prompts. The visual prompts are either learned
  on their own (`coupled=False`: VPT, IVLP, PromptSRC) or projected from the text prompts of the same layer by
  one linear map per layer (`coupled=True`: MaPLe).

The tensors (saved with the adapter):

    context             (M, D)            text tokens at the input (layer 0)
    deep_context        (J_t - 1, M, D)   text tokens replacing the prompt positions before layers 1 .. J_t - 1
    visual_prompts      (T, W)            image tokens appended after the patches (layer 0)
    deep_visual_prompts (J_v - 1, T, W)   image tokens replacing the prompt positions before layers 1 .. J_v - 1
    couplings.j         Linear(D, W)      MaPLe: the visual prompts of layer j from its text prompts (j < J)

A coupled config (MaPLe's) needs only the text fields (`n_ctx`, `ctx_init`, `ctx_init_std`, `text_depth`: a
`ContextPromptConfig` with a `text_depth`), whose depth J is then both towers'.

Example:
    ```python
    self.prompts = DeepPrompts(config, self.clip, tokenizer, text=True, vision=True)   # IVLP
    self.prompts.build(self.clip, tokenizer, ["red star", "blue circle"])
    text = self.prompts.text_features(self.clip)                     # (K, E)
    image = self.prompts.image_features(self.clip, pixel_values)    # (B, E)
    ```
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..core.configuration import PromptCLIPConfig
from ..core.options import option
from ..utils.settings import SettingError
from .prompts import ContextPromptConfig, ContextPrompts
from .text import random_context
from .vision import encode_image_tokens

if TYPE_CHECKING:
    from transformers import CLIPModel, PreTrainedTokenizerBase

    from .model import PromptCLIPPreTrainedModel

logger = logging.getLogger(__name__)

__all__ = ["DeepPromptConfig", "DeepPrompts", "VisualPromptConfig", "prompt_depth_problem"]


def prompt_depth_problem(tower: str, tokens: int, depth: int) -> str | None:
    """Why `tokens` prompt tokens at `depth` layers of a tower cannot be built, or `None`.

    Args:
        tower: `"text"` or `"vision"`, for the message (the fields are `n_ctx[_vision]`, `[text|vision]_depth`).
        tokens: prompt tokens per layer.
        depth: layers with their own prompt tokens (0: no prompts in this tower).

    Example:
        >>> prompt_depth_problem("vision", 0, 9)
        'n_ctx_vision=0 with vision_depth=9: prompts need both at least 1 (the tokens and the layers that get them), or both 0 for no vision prompts'
    """
    field = "n_ctx" if tower == "text" else "n_ctx_vision"
    if (tokens == 0) != (depth == 0):
        return (
            f"{field}={tokens} with {tower}_depth={depth}: prompts need both at least 1 (the tokens and the layers "
            f"that get them), or both 0 for no {tower} prompts"
        )
    return None


@strict
class VisualPromptConfig(PromptCLIPConfig):
    r"""The options of deep visual prompts (VPT-deep; the image side of IVLP and PromptSRC).

    Args:
        n_ctx_vision (`int`, *optional*, defaults to 2):
            Learned tokens T appended after the image patches (after the positional embedding, before the
            pre-norm); 0 with `vision_depth=0`: no visual prompts.
        vision_depth (`int`, *optional*, defaults to 9):
            Layers J_v of the image tower with their own T tokens: layer 0 reads the appended tokens, and
            before each layer 1 .. J_v - 1 the hidden states at the prompt positions are replaced by that
            layer's own. 1: input prompts only (shallow VPT).
        visual_init_std (`float`, *optional*, defaults to 0.02):
            Standard deviation of the N(0, std^2) initialisation of the visual prompts (the authors': 0.02).
    """

    n_ctx_vision: int = option(2, minimum=0)
    vision_depth: int = option(9, minimum=0)
    visual_init_std: float = option(0.02, minimum=0, why="the standard deviation of the visual prompts' init")

    def __post_init__(self, **kwargs):
        problem = prompt_depth_problem("vision", self.n_ctx_vision, self.vision_depth)
        if problem:
            raise SettingError(f"{type(self).__name__}: {problem}.")
        super().__post_init__(**kwargs)


@strict
class DeepPromptConfig(ContextPromptConfig, VisualPromptConfig):
    r"""The options of deep prompts in both towers (IVLP, PromptSRC): `ContextPromptConfig`'s text
    prompts, `VisualPromptConfig`'s visual prompts, and the text prompts' depth.

    With `ctx_init`, the first `n_ctx` of its tokens are learned and its remaining words stay fixed text before
    every class name, as in the authors' code (`n_ctx=2`, `"a photo of a"`: `[SOS] v_1 v_2 of a name. [EOS]`).

    Args:
        n_ctx (`int`, *optional*, defaults to 2):
            Learned text tokens M after `[SOS]`.
        ctx_init (`str`, *optional*, defaults to `"a photo of a"`):
            Words whose first `n_ctx` token embeddings initialise the input text prompts.
        text_depth (`int`, *optional*, defaults to 9):
            Layers J_t of the text tower with their own M tokens (deep prompts, N(0, `ctx_init_std`^2)
            initialised) before layers 1 .. J_t - 1. 1: input prompts only (CoOp-like).
    """

    n_ctx: int = option(2, minimum=1)
    ctx_init: str | None = "a photo of a"
    text_depth: int = option(9, minimum=1)


class DeepPrompts(nn.Module):
    """Learned prompts at every layer up to a depth, in the text tower, the image tower or both.

    Args:
        config: the holder's config: a `DeepPromptConfig` (text prompts), a `VisualPromptConfig` (`text=False`)
            or, `coupled`, a `ContextPromptConfig` with a `text_depth` (its vision fields are never read).
        clip: the frozen `CLIPModel` (its widths, layer counts and device).
        tokenizer: the base model's tokenizer (for `ctx_init`), or `None`.
        text: learn text prompts (`context`, `deep_context`).
        vision: learn or project visual prompts.
        coupled: MaPLe: the visual prompts of each layer are a linear map of that layer's text prompts (needs
            `text`; `n_ctx_vision` and `vision_depth` are then `n_ctx` and `text_depth`). As the authors'
            (`maple.py:103-117`), layer 0's map is its own draw of PyTorch's `nn.Linear` init and the J - 1
            deeper maps are copies of one other draw: they start identical.

    Raises:
        SettingError: coupling without text prompts.
    """

    def __init__(
        self,
        config: PromptCLIPConfig,
        clip: CLIPModel,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        text: bool = True,
        vision: bool = True,
        coupled: bool = False,
    ):
        super().__init__()
        if coupled and not text:
            raise SettingError("DeepPrompts(coupled=True) projects the text prompts: it needs text=True.")
        self.config = config
        self.coupled = coupled
        self.text = ContextPrompts(config, tokenizer, first_n_ctx_of_init=True) if text else None
        device = clip.text_projection.weight.device
        self.text_depth = config.text_depth if text else 0
        self.vision_depth = (config.text_depth if coupled else config.vision_depth) if vision else 0
        self.vision_tokens = (config.n_ctx if coupled else config.n_ctx_vision) if vision else 0
        self._clamp_depths(clip)
        if text:
            self.context = self.text.new_context(clip)
            width = self.context.shape[-1]
            shape = (self.text_depth - 1, config.n_ctx, width)
            self.deep_context = nn.Parameter(random_context(shape, config.ctx_init_std).to(device))
        vision_width = clip.config.vision_config.hidden_size
        if vision and coupled:
            text_width = clip.config.text_config.hidden_size
            first, deeper = nn.Linear(text_width, vision_width), nn.Linear(text_width, vision_width)
            clones = (copy.deepcopy(deeper) for _ in range(self.vision_depth - 1))
            self.couplings = nn.ModuleList([first, *clones]).to(device)
        elif vision:
            self.visual_prompts = nn.Parameter(
                random_context((self.vision_tokens, vision_width), config.visual_init_std).to(device)
            )
            shape = (self.vision_depth - 1, self.vision_tokens, vision_width)
            self.deep_visual_prompts = nn.Parameter(random_context(shape, config.visual_init_std).to(device))

    def _clamp_depths(self, clip: CLIPModel) -> None:
        """A depth beyond a tower's layers means every layer (the authors' depth 12 on ViT-B/16's 12): the config
        then records the layer count, so what it says is what runs (a tiny base model has fewer layers). Coupled,
        the one depth (`text_depth`) is both towers': at most the shallower tower's layers."""
        config = self.config
        text_layers = clip.config.text_config.num_hidden_layers
        vision_layers = clip.config.vision_config.num_hidden_layers
        if self.coupled:
            towers = [("shallower", "text_depth", min(text_layers, vision_layers))]
        else:
            towers = [("vision", "vision_depth", vision_layers)]
            if self.text is not None:
                towers.append(("text", "text_depth", text_layers))
        for tower, field, layers in towers:
            depth = getattr(self, field)
            if depth > layers:
                logger.warning(
                    "%s=%d exceeds the %d layers of the %s tower: every layer gets prompts (%s=%d recorded).",
                    field, depth, layers, tower, field, layers,
                )  # fmt: skip
                setattr(self, field, layers)
                setattr(config, field, layers)
        if self.coupled and self.vision_depth:
            self.vision_depth = self.text_depth

    # ------------------------------------------------------------------ text side

    def build(self, clip: CLIPModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> None:
        """Lay out the text prompts of `texts` (class names in prompt form); see `ContextPrompts.build`."""
        self.text.build(clip, tokenizer, texts)

    def text_features(self, clip: CLIPModel) -> torch.Tensor:
        """Text features `(K, E)` of the class prompts with the learned prompts at every layer up to the depth."""
        return self.text.encode(clip, self.context, self.deep_context)

    def class_text_features(self, holder: PromptCLIPPreTrainedModel) -> torch.Tensor:
        """`text_features` of the holder's current classes (their prompts rebuilt after a class-list change),
        with autograd while a text prompt learns, else cached by the holder while no prompt tensor changes
        (`context_text_features`, under `"class_text_features"`)."""
        holder._ensure_class_prompts()
        return holder.context_text_features(
            "class_text_features", (self.context, self.deep_context), lambda: self.text_features(holder.clip)
        )

    # ------------------------------------------------------------------ image side

    def visual_tokens(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """`(prompts (T, W), deep prompts (J_v - 1, T, W))` the image tower reads, or `None` (no visual
        prompts). Coupled: each layer's text prompts through that layer's linear map."""
        if not self.vision_depth:
            return None
        if self.coupled:
            text = [self.context, *self.deep_context]
            visual = [coupling(tokens) for coupling, tokens in zip(self.couplings, text)]
            deep = torch.stack(visual[1:]) if len(visual) > 1 else visual[0].new_zeros((0, *visual[0].shape))
            return visual[0], deep
        return self.visual_prompts, self.deep_visual_prompts

    def image_features(self, clip: CLIPModel, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected CLS features `(B, E)` of images `(B, 3, H, W)` read with the visual prompts (the plain
        tower without them)."""
        tokens = self.visual_tokens()
        if tokens is None:
            return encode_image_tokens(clip, pixel_values).pooled
        prompts, deep = tokens
        return encode_image_tokens(clip, pixel_values, prompts[None], deep_prompts=deep).pooled[:, 0]
