"""The image tower opened up: a ViT with extra tokens, token selection and token-level outputs.

Room: `modeling/`.

`CLIPModel.get_image_features` takes pixel values and returns one projected CLS feature per image.
Methods that change what the image tower sees (PLOT++'s visual prompts; later VPT, MaPLe), read
more than the CLS token (PLOT's patch features) or let the last layer see only some tokens
(MP-FGVC's SsVP) share this one path, built from transformers' own modules in the order
`CLIPVisionModel.forward` uses them:

    embeddings (patches + CLS + positions) -> [extra tokens appended] -> pre-norm
    -> encoder layers [before layer j = 1..J-1: the extra tokens replaced by layer j's own]
       [-> CLS + the k most attended patches before the last layer]
    -> post-norm -> projection

The replacement is deep visual prompting as VPT-deep, IVLP, MaPLe and PromptSRC run it (their
`clip/model.py`, `ResidualAttentionBlock_IVLP` / `_MaPLe`): layer 0 sees the input prompts
(through the pre-norm, no positional embedding); every later layer j < J first drops the last T
tokens (the previous layer's outputs at the prompt positions) and appends its own T prompts, which
pass through no pre-norm and get no positional embedding (docs/deep-prompts.md).

A `VisionTower` names those parts for CLIP's vision tower (`clip_vision_tower`) and for a
transformers `ViTModel` (`vit_vision_tower`, e.g. MP-FGVC's ImageNet-21k backbone). The encoder
layers are called as modules, so the attention backend the model was loaded with (SDPA by
default) is kept; the one attention map token selection needs is computed here from that
layer's own query/key projections. With no extra tokens and no selection,
`encode_image_tokens(clip, pixel_values).pooled` equals `get_image_features(pixel_values)` exactly.

Several prompt sets run as one batched call: image `b` with set `s` is row `s * B + b` of the
encoder batch, so B images x S sets cost one forward of S x B sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import CLIPModel


@dataclass(frozen=True)
class VisionTower:
    """The parts of a ViT image tower, run one by one.

    Attributes:
        embeddings: pixel values `(B, 3, H, W)` -> tokens `(B, 1 + P, W)` (CLS first, positions added).
        pre_norm: applied to the tokens before the first layer (`nn.Identity` where there is none).
        layers: the encoder layers, each called as `layer(hidden, None)`.
        post_norm: applied to the final hidden states that are read out.
        projection: final hidden states `(..., W)` -> features `(..., E)` (`nn.Identity`: none).
        num_patches: patches P per image at the tower's image size.
    """

    embeddings: nn.Module
    pre_norm: nn.Module
    layers: nn.ModuleList
    post_norm: nn.Module
    projection: nn.Module
    num_patches: int

    @property
    def patch_weight(self) -> torch.Tensor:
        """A weight of the patch embedding (its device and dtype are the tower's)."""
        return next(self.embeddings.parameters())


def clip_vision_tower(clip: CLIPModel) -> VisionTower:
    """CLIP's image tower: `vision_model` with `pre_layrnorm`, `post_layernorm` and `visual_projection`."""
    vision = clip.vision_model
    return VisionTower(
        vision.embeddings,
        vision.pre_layrnorm,
        vision.encoder.layers,
        vision.post_layernorm,
        clip.visual_projection,
        vision.embeddings.num_patches,
    )


def vit_vision_tower(vit: nn.Module, projection: nn.Module | None = None) -> VisionTower:
    """A transformers `ViTModel` (no pre-norm; its final `layernorm`), with an optional projection."""
    layers = vit.layers if hasattr(vit, "layers") else vit.encoder.layer  # transformers >= 5.24 / before
    patches = vit.embeddings.patch_embeddings.num_patches
    return VisionTower(
        vit.embeddings, nn.Identity(), layers, vit.layernorm, projection or nn.Identity(), patches
    )


def as_vision_tower(model: CLIPModel | VisionTower) -> VisionTower:
    return model if isinstance(model, VisionTower) else clip_vision_tower(model)


@dataclass
class VisionFeatures:
    """Projected outputs of the image tower (each through the post-norm and the projection).

    Attributes:
        pooled: the CLS feature, `(B, E)`; `(B, S, E)` with S prompt sets.
        patches: the patch tokens' features, `(B, P, E)` (`(B, S, P, E)` with prompt sets), when
            asked for; appended prompt tokens are never among them.
        kept_patches: with token selection, the indices `(B, k)` (0-based among the P patches, in
            ascending order) of the patches the last layer saw.
    """

    pooled: torch.Tensor
    patches: torch.Tensor | None = None
    kept_patches: torch.Tensor | None = None


def vision_embeddings(
    model: CLIPModel | VisionTower, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False
) -> torch.Tensor:
    """Token embeddings `(B, 1 + P, W)` of images `(B, 3, H, W)`: CLS and P patches with positions.

    `pixel_values` are moved to the tower's device and dtype.
    """
    tower = as_vision_tower(model)
    weight = tower.patch_weight
    pixel_values = pixel_values.to(device=weight.device, dtype=weight.dtype)
    return tower.embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)


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


def replace_prompt_tokens(hidden: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """Replace the last T tokens of every sequence by its set's T prompt tokens (one deep layer's).

    Args:
        hidden: `(S * B, L + T, W)` hidden states before a layer, row `s * B + b` holding image `b`
            with prompt set `s` (as `append_prompt_tokens` lays them out).
        prompts: `(S, T, W)` the layer's own prompt tokens, one set per prompt set.

    Returns:
        `(S * B, L + T, W)`: the first L tokens of each row unchanged, the last T those of its set.

    Example:
        >>> hidden = append_prompt_tokens(torch.zeros(2, 5, 8), torch.ones(3, 2, 8))
        >>> replaced = replace_prompt_tokens(hidden, 7 * torch.ones(3, 2, 8))
        >>> replaced.shape, replaced[4, 5:].sum().item(), replaced[:, :5].sum().item()
        (torch.Size([6, 7, 8]), 112.0, 0.0)
    """
    sets, tokens, width = prompts.shape
    batch = hidden.shape[0] // sets
    rows = prompts.to(hidden.dtype).unsqueeze(1).expand(-1, batch, -1, -1).reshape(-1, tokens, width)
    return torch.cat([hidden[:, : hidden.shape[1] - tokens], rows], dim=1)


def deep_prompt_layers(deep_prompts: torch.Tensor, prompts: torch.Tensor | None, layers: int) -> torch.Tensor:
    """Check deep visual prompts against the input prompts and the tower; return them `(J - 1, S, T, W)`.

    Args:
        deep_prompts: `(J - 1, S, T, W)`, or `(J - 1, T, W)` for one set (then used by every set):
            the prompts that replace the prompt tokens before layers 1..J-1 (J, the prompt depth,
            at most the tower's layer count; `J - 1 = 0`: input prompts only).
        prompts: the input layer's prompts `(S, T, W)`; deep prompts without them are refused.
        layers: the tower's encoder layers.

    Raises:
        ValueError: with no input prompts, or a shape other than the expected one (both named).
    """
    if prompts is None:
        raise ValueError(
            "deep_prompts replace the prompt tokens appended at the input before layers 1..J-1; pass "
            "the input layer's prompts (sets, tokens, width) as `prompts` as well."
        )
    sets, tokens, width = prompts.shape
    deep = deep_prompts.unsqueeze(1).expand(-1, sets, -1, -1) if deep_prompts.dim() == 3 else deep_prompts
    if deep.dim() != 4 or deep.shape[1:] != (sets, tokens, width) or deep.shape[0] > layers - 1:
        raise ValueError(
            f"deep_prompts must be (J - 1, {sets}, {tokens}, {width}) or (J - 1, {tokens}, {width}) "
            f"with J - 1 <= {layers - 1} (one set of prompt tokens per layer 1..J-1 of this "
            f"{layers}-layer tower, matching prompts {tuple(prompts.shape)}), got "
            f"{tuple(deep_prompts.shape)}."
        )
    return deep


def run_vision_layers(
    model: CLIPModel | VisionTower,
    hidden: torch.Tensor,
    start: int = 0,
    stop: int | None = None,
    deep_prompts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run encoder layers `start:stop` of the image tower on hidden states `(N, L, W)`.

    The layers are transformers' own modules, called with no attention mask (every token sees
    every token, as in a ViT) and the model's attention backend. With `deep_prompts`
    `(J - 1, S, T, W)` (checked by `deep_prompt_layers`), the last T tokens of the `N = S * B`
    rows are replaced by `deep_prompts[j - 1]` right before layer j runs, for j = 1..J-1 (layer
    indices count from the tower's first layer, whatever `start` is).
    """
    layers = as_vision_tower(model).layers
    depth = 0 if deep_prompts is None else deep_prompts.shape[0]
    for index in range(len(layers))[start:stop]:
        if 1 <= index <= depth:
            hidden = replace_prompt_tokens(hidden, deep_prompts[index - 1])
        hidden = layers[index](hidden, None)
    return hidden


def project_vision_tokens(model: CLIPModel | VisionTower, tokens: torch.Tensor) -> torch.Tensor:
    """`projection(post_norm(tokens))`: final hidden states `(..., W)` -> features `(..., E)`."""
    tower = as_vision_tower(model)
    return tower.projection(tower.post_norm(tokens))


def _attention_parts(layer: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module, int, float]:
    """(pre-attention norm, query projection, key projection, heads, scale) of a CLIP or ViT layer."""
    if hasattr(layer, "self_attn"):  # CLIPEncoderLayer
        attention = layer.self_attn
        return layer.layer_norm1, attention.q_proj, attention.k_proj, attention.num_heads, attention.scale
    attention = layer.attention  # ViTLayer
    if hasattr(attention, "q_proj"):  # transformers >= 5.24
        heads, scale = attention.num_attention_heads, attention.scaling
        return layer.layernorm_before, attention.q_proj, attention.k_proj, heads, scale
    inner = attention.attention
    heads = inner.num_attention_heads
    return layer.layernorm_before, inner.query, inner.key, heads, inner.attention_head_size**-0.5


def cls_attention(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The attention `(B, H, L)` of the CLS query over all L tokens in `layer` (a CLIP or ViT encoder
    layer), given the layer's input `(B, L, W)`: `softmax(q_cls k^T * scale)` per head, computed from
    the layer's own norm and query/key projections (so the layer itself can run on SDPA), in
    float32 and without autograd."""
    norm, query, key, heads, scale = _attention_parts(layer)
    # a selection, not a differentiable quantity; in float32 also under autocast
    with torch.no_grad(), torch.autocast(device_type=hidden.device.type, enabled=False):
        weight = query.weight
        normed = norm(hidden.to(weight.dtype))
        batch, length, _ = normed.shape
        q = query(normed[:, :1]).view(batch, 1, heads, -1).transpose(1, 2)  # (B, H, 1, d)
        k = key(normed).view(batch, length, heads, -1).transpose(1, 2)  # (B, H, L, d)
        scores = (q.float() @ k.float().transpose(-1, -2)) * scale
        return scores.softmax(dim=-1).squeeze(2)


def top_patches(attention: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices `(B, keep)` of the patches with the largest CLS attention summed over heads, ascending.

    Args:
        attention: `(B, H, 1 + P)` CLS attention over CLS and P patches (`cls_attention`).
        keep: patches to keep (at most P).
    """
    summed = attention[..., 1:].sum(dim=1)  # (B, P): CLS-to-patch attention, heads summed
    return summed.topk(keep, dim=-1).indices.sort(dim=-1).values


def keep_tokens(hidden: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """CLS and the given patches of each sequence: `(B, 1 + P, W)`, indices `(B, k)` -> `(B, 1 + k, W)`."""
    index = (patches + 1).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    return torch.cat([hidden[:, :1], hidden.gather(1, index)], dim=1)


def encode_image_tokens(
    model: CLIPModel | VisionTower,
    pixel_values: torch.Tensor,
    prompts: torch.Tensor | None = None,
    *,
    deep_prompts: torch.Tensor | None = None,
    return_patches: bool = False,
    keep_patches: int | None = None,
    interpolate_pos_encoding: bool = False,
) -> VisionFeatures:
    """Run a ViT image tower with optional prompt tokens or token selection; return CLS (and patch) features.

    Args:
        model: a `CLIPModel` (its image tower) or a `VisionTower`.
        pixel_values: `(B, 3, H, W)` images prepared by the tower's image processor.
        prompts: `(S, T, W)` S sets of T tokens of the tower's width W, appended after the patch
            tokens (after the positional embedding, before the pre-norm); the tower runs once per
            set, in one batched call. `None`: the plain tower.
        deep_prompts: deep visual prompts (VPT-deep, IVLP, MaPLe, PromptSRC) of prompt depth J:
            `(J - 1, S, T, W)`, or `(J - 1, T, W)` for one set (used by every set), needing
            `prompts`; before layer j = 1..J-1 the T prompt tokens are replaced by
            `deep_prompts[j - 1]` (no positional embedding, no pre-norm). `None`, or `J - 1 = 0`:
            the prompts enter at the input only.
        return_patches: also return the patch tokens' projected features.
        keep_patches: token selection (MP-FGVC's SsVP): the last layer sees only CLS and the
            `keep_patches` patches with the largest CLS attention, summed over heads, in the
            penultimate layer. `None` (or all P patches): every token.

    Returns:
        `VisionFeatures` with `pooled` `(B, E)` (or `(B, S, E)` with prompts), `patches` when asked
        (`(B, P, E)`, `(B, S, P, E)`, or `(B, k, E)` for the kept patches), and `kept_patches`.

    Example:
        ```python
        features = encode_image_tokens(clip, pixel_values, return_patches=True)
        features.pooled      # == clip.get_image_features(pixel_values).pooler_output
        features.patches     # (B, 196, 512) for ViT-B/16 at 224 px
        prompted = encode_image_tokens(clip, pixel_values, prompts=torch.zeros(4, 2, 768))
        prompted.pooled      # (B, 4, 512): one CLS feature per prompt set
        deep = encode_image_tokens(clip, pixel_values, torch.zeros(1, 2, 768),
                                   deep_prompts=torch.zeros(8, 2, 768))  # prompt depth J = 9
        deep.pooled          # (B, 1, 512)
        selected = encode_image_tokens(clip, pixel_values, keep_patches=12)
        selected.kept_patches  # (B, 12): the patches the last layer saw
        ```
    """
    tower = as_vision_tower(model)
    hidden = vision_embeddings(tower, pixel_values, interpolate_pos_encoding)
    batch, length = hidden.shape[:2]
    if prompts is not None:
        if keep_patches is not None:
            raise ValueError("Token selection (keep_patches) and prompt tokens cannot be combined yet.")
        hidden = append_prompt_tokens(hidden, prompts)
    if deep_prompts is not None:
        deep_prompts = deep_prompt_layers(deep_prompts, prompts, len(tower.layers))
    hidden = tower.pre_norm(hidden)
    kept = None
    if keep_patches is not None and keep_patches < length - 1:
        if keep_patches < 1 or len(tower.layers) < 2:
            raise ValueError(
                f"keep_patches must be at least 1 and the tower needs 2 or more layers, got "
                f"keep_patches={keep_patches} with {len(tower.layers)} layers."
            )
        hidden = run_vision_layers(tower, hidden, stop=-2)
        penultimate = tower.layers[-2]
        kept = top_patches(cls_attention(penultimate, hidden), keep_patches)
        hidden = keep_tokens(penultimate(hidden, None), kept)
        hidden = tower.layers[-1](hidden, None)
    else:
        hidden = run_vision_layers(tower, hidden, deep_prompts=deep_prompts)
    pooled = project_vision_tokens(tower, hidden[:, 0])
    patches = project_vision_tokens(tower, hidden[:, 1:length]) if return_patches else None
    if prompts is not None:  # rows are set-major: (S * B, ...) -> (B, S, ...)
        sets = prompts.shape[0]
        pooled = pooled.view(sets, batch, -1).transpose(0, 1)
        if patches is not None:
            patches = patches.view(sets, batch, *patches.shape[1:]).transpose(0, 1)
    return VisionFeatures(pooled=pooled, patches=patches, kept_patches=kept)
