"""The image tower opened up: CLIP's vision transformer with extra tokens and token-level outputs.

`CLIPModel.get_image_features` takes pixel values and returns one projected CLS feature per image.
Methods that change what the image tower sees (PLOT++'s visual prompts; later VPT, MaPLe) or read
more than the CLS token (PLOT's patch features; MP-FGVC's token selection) share this one path,
built from transformers' own modules in the order `CLIPVisionModel.forward` uses them:

    embeddings (patches + CLS + positions) -> [extra tokens appended] -> pre_layrnorm
    -> encoder layers -> post_layernorm -> visual_projection

The encoder layers are called as modules, so the attention backend the CLIP was loaded with (SDPA
by default, flash attention where installed) is kept. With no extra tokens,
`encode_image_tokens(clip, pixel_values).pooled` equals `get_image_features(pixel_values)` exactly.

Several prompt sets run as one batched call: image `b` with set `s` is row `s * B + b` of the
encoder batch, so B images x S sets cost one forward of S x B sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import CLIPModel


@dataclass
class VisionFeatures:
    """Projected outputs of the image tower (each through `post_layernorm` and `visual_projection`).

    Attributes:
        pooled: the CLS feature, `(B, E)`; `(B, S, E)` with S prompt sets.
        patches: the patch tokens' features, `(B, P, E)` (`(B, S, P, E)` with prompt sets), when
            asked for; appended prompt tokens are never among them.
    """

    pooled: torch.Tensor
    patches: torch.Tensor | None = None


def vision_embeddings(
    clip: CLIPModel, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False
) -> torch.Tensor:
    """Token embeddings `(B, 1 + P, W)` of images `(B, 3, H, W)`: CLS and P patches with positions.

    `pixel_values` are moved to the tower's device and dtype.
    """
    embeddings = clip.vision_model.embeddings
    weight = embeddings.patch_embedding.weight
    pixel_values = pixel_values.to(device=weight.device, dtype=weight.dtype)
    return embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)


def append_prompt_tokens(embeddings: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """Append S sets of T prompt tokens to every image's tokens, one sequence per (set, image).

    Args:
        embeddings: `(B, L, W)` image tokens (after the positional embedding).
        prompts: `(S, T, W)` prompt tokens (no positional embedding of their own, as in VPT/PLOT++).

    Returns:
        `(S * B, L + T, W)`; row `s * B + b` holds image `b` followed by prompt set `s`.

    Example:
        >>> tokens = append_prompt_tokens(torch.zeros(2, 5, 8), torch.ones(3, 2, 8))
        >>> tokens.shape, tokens[4, 5:].sum().item()        # image 0 with set 2
        (torch.Size([6, 7, 8]), 16.0)
    """
    sets, length = prompts.shape[0], embeddings.shape[1]
    batch, width = embeddings.shape[0], embeddings.shape[2]
    if prompts.dim() != 3 or prompts.shape[-1] != width:
        raise ValueError(
            f"prompts must be (sets, tokens, {width}) to match the image tower's width, got "
            f"{tuple(prompts.shape)}."
        )
    images = embeddings.unsqueeze(0).expand(sets, -1, -1, -1)
    tokens = prompts.to(embeddings.dtype).unsqueeze(1).expand(-1, batch, -1, -1)
    return torch.cat([images, tokens], dim=2).reshape(sets * batch, length + prompts.shape[1], width)


def run_vision_layers(
    clip: CLIPModel, hidden: torch.Tensor, start: int = 0, stop: int | None = None
) -> torch.Tensor:
    """Run encoder layers `start:stop` of the image tower on hidden states `(N, L, W)`.

    The layers are transformers' own modules, called with no attention mask (every token sees
    every token, as in CLIP's image tower) and the model's attention backend.
    """
    for layer in clip.vision_model.encoder.layers[start:stop]:
        hidden = layer(hidden, None)
    return hidden


def project_vision_tokens(clip: CLIPModel, tokens: torch.Tensor) -> torch.Tensor:
    """`visual_projection(post_layernorm(tokens))`: final hidden states `(..., W)` -> features `(..., E)`."""
    return clip.visual_projection(clip.vision_model.post_layernorm(tokens))


def encode_image_tokens(
    clip: CLIPModel,
    pixel_values: torch.Tensor,
    prompts: torch.Tensor | None = None,
    *,
    return_patches: bool = False,
    interpolate_pos_encoding: bool = False,
) -> VisionFeatures:
    """Run CLIP's image tower with optional prompt tokens and return CLS (and patch) features.

    Args:
        clip: a `CLIPModel` (any attention backend).
        pixel_values: `(B, 3, H, W)` images prepared by the CLIP image processor.
        prompts: `(S, T, W)` S sets of T tokens of the tower's width W, appended after the patch
            tokens (after the positional embedding, before `pre_layrnorm`); the tower runs once per
            set, in one batched call. `None`: the plain tower.
        return_patches: also return the patch tokens' projected features.

    Returns:
        `VisionFeatures` with `pooled` `(B, E)` (or `(B, S, E)` with prompts) and, when asked,
        `patches` `(B, P, E)` (or `(B, S, P, E)`).

    Example:
        ```python
        features = encode_image_tokens(clip, pixel_values, return_patches=True)
        features.pooled      # == clip.get_image_features(pixel_values).pooler_output
        features.patches     # (B, 196, 512) for ViT-B/16 at 224 px
        prompted = encode_image_tokens(clip, pixel_values, prompts=torch.zeros(4, 2, 768))
        prompted.pooled      # (B, 4, 512): one CLS feature per prompt set
        ```
    """
    hidden = vision_embeddings(clip, pixel_values, interpolate_pos_encoding)
    batch, length = hidden.shape[:2]
    if prompts is not None:
        hidden = append_prompt_tokens(hidden, prompts)
    hidden = clip.vision_model.pre_layrnorm(hidden)
    hidden = run_vision_layers(clip, hidden)
    pooled = project_vision_tokens(clip, hidden[:, 0])
    patches = project_vision_tokens(clip, hidden[:, 1:length]) if return_patches else None
    if prompts is not None:  # rows are set-major: (S * B, ...) -> (B, S, ...)
        sets = prompts.shape[0]
        pooled = pooled.view(sets, batch, -1).transpose(0, 1)
        if patches is not None:
            patches = patches.view(sets, batch, *patches.shape[1:]).transpose(0, 1)
    return VisionFeatures(pooled=pooled, patches=patches)
