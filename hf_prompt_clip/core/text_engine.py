"""The exact fast text engine: EOS truncation, shared-prefix key/value cache, batched chunks.

CLIP's text attention is causal and only the end-of-text (EOS) state is read, so:

1. positions after the last EOS of a batch never influence the result: run only up to it;
2. a prefix shared by many prompts (`[SOS] v_1 .. v_M` when the class name comes last) has the
   same hidden states in every prompt: encode it once, keep every layer's keys and values, and
   run only the class-specific suffixes attending to them (a KV cache, as in LM decoding);
3. many prompts (CoCoOp's B images x K classes) go through the encoder in a few large calls,
   sorted by length and chunked to a token budget so padding and peak memory stay small.

All three are exact: `encode_context_prompts(..., fast=False)` runs the straightforward path
(all 77 positions, transformers' modules, one image at a time) and the tests compare the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import CLIPModel

from .text import (
    PromptLayout,
    assemble_prompt_embeddings,
    embed_tokens,
    encode_text_embeddings,
    fill_template,
    tokenize_texts,
)

DEFAULT_CHUNK_TOKENS = 32768

KeyValues = list[tuple[torch.Tensor, torch.Tensor]]


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """`(N, S, D) -> (N, H, S, D / H)`."""
    rows, length, width = x.shape
    return x.view(rows, length, heads, width // heads).transpose(1, 2)


def _layer_forward(
    layer: torch.nn.Module,
    hidden: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One CLIP encoder layer on `hidden` `(N, S, D)`, attending causally to itself and fully to
    `past` keys/values `(N, H, P, d)`. Returns the new hidden states and this call's keys/values."""
    attention = layer.self_attn
    heads = attention.num_heads
    x = layer.layer_norm1(hidden)
    query = _split_heads(attention.q_proj(x), heads)
    key = _split_heads(attention.k_proj(x), heads)
    value = _split_heads(attention.v_proj(x), heads)
    own = (key, value)
    length = hidden.shape[1]
    if past is None:
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=attention.scale)
    else:
        past_length = past[0].shape[2]
        key = torch.cat([past[0], key], dim=2)
        value = torch.cat([past[1], value], dim=2)
        mask = torch.ones(length, past_length + length, dtype=torch.bool, device=hidden.device)
        mask[:, past_length:] = torch.ones(length, length, dtype=torch.bool, device=hidden.device).tril()
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=attention.scale)
    out = out.transpose(1, 2).reshape(hidden.shape)
    hidden = hidden + attention.out_proj(out)
    hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
    return hidden, own


def _add_positions(clip: CLIPModel, embeds: torch.Tensor, start: int) -> torch.Tensor:
    table = clip.text_model.embeddings.position_embedding.weight
    return embeds.to(table.dtype) + table[start : start + embeds.shape[-2]]


def _project_eos(clip: CLIPModel, hidden: torch.Tensor, eos: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    pooled = clip.text_model.final_layer_norm(hidden[rows, eos])
    return clip.text_projection(pooled)


def encode_prefix(clip: CLIPModel, prefix_embeds: torch.Tensor) -> KeyValues:
    """Per-layer keys and values `(B, H, P, d)` of prefixes given as token embeddings `(B, P, D)`."""
    hidden = _add_positions(clip, prefix_embeds, 0)
    cache = []
    for layer in clip.text_model.encoder.layers:
        hidden, key_values = _layer_forward(layer, hidden, None)
        cache.append(key_values)
    return cache


def _encode_rows(
    clip: CLIPModel,
    embeds: torch.Tensor,
    eos: torch.Tensor,
    start: int,
    past: KeyValues | None,
) -> torch.Tensor:
    hidden = _add_positions(clip, embeds, start)
    for index, layer in enumerate(clip.text_model.encoder.layers):
        hidden, _ = _layer_forward(layer, hidden, None if past is None else past[index])
    return _project_eos(clip, hidden, eos)


def _length_buckets(eos: torch.Tensor, chunk_tokens: int, extra: int = 0, slack: float = 0.125):
    """Group items by length (EOS position + 1) so padding and call size stay small.

    Items are sorted by length; a group closes when adding the next item would pad more than
    `slack` of the group's real positions, or would make `items x (extra + longest)` exceed
    `chunk_tokens`. Yields `(item indices, longest EOS position)`.
    """
    lengths = (eos + 1).tolist()
    group: list[int] = []
    total = 0
    for item in torch.argsort(eos, stable=True).tolist():
        length = lengths[item]
        padded = (len(group) + 1) * length
        if group and (
            padded > (1 + slack) * (total + length) or (len(group) + 1) * (extra + length) > chunk_tokens
        ):
            yield group, lengths[group[-1]] - 1
            group, total = [], 0
        group.append(item)
        total += length
    if group:
        yield group, lengths[group[-1]] - 1


def encode_truncated(
    clip: CLIPModel,
    token_embeds: torch.Tensor,
    eos_positions: torch.Tensor,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """Text features `(N, E)` of full prompts `(N, L, D)`, each run only up to its chunk's last EOS.

    Prompts are sorted by EOS position and chunked so that no chunk exceeds `chunk_tokens`
    positions; the result is in the input order. `eos_positions` may lie on any device.
    """
    device = token_embeds.device
    buckets = _length_buckets(eos_positions.cpu(), chunk_tokens)
    eos_positions = eos_positions.to(device)
    features: list[torch.Tensor] = []
    indices: list[torch.Tensor] = []
    for chunk, last_eos in buckets:
        rows = torch.tensor(chunk, device=device)
        embeds = token_embeds[rows, : last_eos + 1]
        features.append(_encode_rows(clip, embeds, eos_positions[rows], 0, None))
        indices.append(rows)
    return _restore_order(torch.cat(features), torch.cat(indices))


def _restore_order(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return values[inverse]


def encode_with_shared_prefix(
    clip: CLIPModel,
    prefix_embeds: torch.Tensor,
    suffix_embeds: torch.Tensor,
    suffix_eos: torch.Tensor,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """Text features `(B, K, E)` of the prompts `prefix_b + suffix_k` for every b and k.

    Args:
        prefix_embeds: `(B, P, D)` token embeddings of B prefixes (positions `0..P-1`).
        suffix_embeds: `(K, S, D)` suffixes shared by all prefixes, or `(B, K, S, D)` one set
            per prefix (positions `P..P+S-1`).
        suffix_eos: `(K,)` EOS position of each suffix, counted from the suffix start.

    The prefixes are encoded once; the B x K suffixes attend to the cached prefix keys/values.
    Suffixes are sorted by length into buckets, and each bucket runs in chunks of prefixes, so
    that one encoder call holds at most about `chunk_tokens` positions.
    """
    batch, prefix_length = prefix_embeds.shape[:2]
    per_prefix = suffix_embeds.dim() == 4
    cache = encode_prefix(clip, prefix_embeds)
    bucket_budget = max(chunk_tokens // batch, 1)
    device = suffix_embeds.device
    buckets = _length_buckets(suffix_eos.cpu(), bucket_budget, prefix_length)
    suffix_eos = suffix_eos.to(device)
    features: list[torch.Tensor] = []
    order: list[torch.Tensor] = []
    for bucket, last_eos in buckets:
        suffixes = torch.tensor(bucket, device=device)
        length, width = last_eos + 1, len(bucket)
        prefixes_per_call = max(1, chunk_tokens // (width * (prefix_length + length)))
        pieces = []
        for start in range(0, batch, prefixes_per_call):
            rows = slice(start, min(start + prefixes_per_call, batch))
            count = rows.stop - rows.start
            if per_prefix:
                embeds = suffix_embeds[rows][:, suffixes, :length]
            else:
                embeds = suffix_embeds[suffixes, :length].expand(count, -1, -1, -1)
            # every (prefix, suffix) pair is one sequence attending to its prefix's cache
            past = [
                tuple(t[rows].repeat_interleave(width, dim=0) for t in key_values) for key_values in cache
            ]
            eos = suffix_eos[suffixes].repeat(count)
            encoded = _encode_rows(clip, embeds.reshape(count * width, length, -1), eos, prefix_length, past)
            pieces.append(encoded.view(count, width, -1))
        features.append(torch.cat(pieces))
        order.append(suffixes)
    return _restore_order(torch.cat(features, dim=1).transpose(0, 1), torch.cat(order)).transpose(0, 1)


def encode_context_prompts(
    clip: CLIPModel,
    layout: PromptLayout,
    context: torch.Tensor,
    class_specific: bool = False,
    fast: bool = True,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """Text features of the layout's K prompts with learned `context` spliced in.

    Args:
        layout: token ids, context slots and EOS positions of the K prompts.
        context: `(M, D)` shared context -> `(K, E)`; `(K, M, D)` with `class_specific=True`
            -> `(K, E)`; `(B, M, D)` one context per image (CoCoOp) or prompt set -> `(B, K, E)`.
        fast: use EOS truncation and the shared-prefix cache (exact); `False` runs every prompt
            over all positions with transformers' modules, one context at a time.

    The layout is moved to the text tower's device (a no-op when it is already there).
    """
    layout = layout.to(clip.text_model.embeddings.token_embedding.weight.device)
    batched = context.dim() == 3 and not class_specific
    if not fast:
        token_embeds = embed_tokens(clip, layout.input_ids).detach()
        contexts = context if batched else context[None]
        features = [
            encode_text_embeddings(
                clip,
                assemble_prompt_embeddings(token_embeds, layout.context_index, one, class_specific),
                layout.eos_positions,
            )
            for one in contexts
        ]
        return torch.stack(features) if batched else features[0]

    last = int(layout.eos_positions.max()) + 1
    token_embeds = embed_tokens(clip, layout.input_ids[:, :last]).detach()
    context_index = layout.context_index[:, :last]
    if class_specific:
        embeds = assemble_prompt_embeddings(token_embeds, context_index, context, class_specific=True)
        return encode_truncated(clip, embeds, layout.eos_positions, chunk_tokens)

    shared = layout.shared_prefix_length
    contexts = context if batched else context[None]
    prefix = assemble_prompt_embeddings(token_embeds[:1, :shared], context_index[:1, :shared], contexts)
    prefix = prefix[:, 0]  # (B, P, D)
    suffix_index = context_index[:, shared:]
    suffix = token_embeds[:, shared:]
    if bool((suffix_index >= 0).any()):
        suffix = assemble_prompt_embeddings(suffix, suffix_index, contexts)  # (B, K, S, D)
    features = encode_with_shared_prefix(clip, prefix, suffix, layout.eos_positions - shared, chunk_tokens)
    return features if batched else features[0]


#: Prompts embedded at a time by `encode_templates`: 1000 classes x 80 templates at once would take GBs.
TEMPLATE_BATCH = 256


@torch.no_grad()
def encode_templates(
    clip: CLIPModel,
    tokenizer,
    names: list[str],
    templates: list[str],
    *,
    fast: bool = True,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """Zero-shot class text features: `template.format(name)` for every template, each L2-normalised,
    averaged over the templates and re-normalised (CLIP's prompt ensemble), without autograd.

    Args:
        clip: the frozen `CLIPModel`.
        tokenizer: its tokenizer.
        names: the K class names in prompt form (`prompt_class_name`: underscores as spaces).
        templates: T templates with one `{}`.
        fast: EOS truncation (`encode_truncated`); `False` runs every prompt over all positions.
        chunk_tokens: most token positions per encoder call in the fast path.

    Returns:
        `(K, E)` float32 unit vectors.

    Example:
        >>> features = encode_templates(clip, tokenizer, ["cat", "dog"], ["a photo of a {}.", "art of the {}."])
        >>> features.shape, features.norm(dim=-1)          # (2, E), ones
    """
    device = clip.text_projection.weight.device
    max_length = clip.config.text_config.max_position_embeddings
    prompts = [fill_template(template, name) for name in names for template in templates]
    features = []
    for start in range(0, len(prompts), TEMPLATE_BATCH):
        input_ids, eos_positions = tokenize_texts(
            tokenizer, prompts[start : start + TEMPLATE_BATCH], max_length
        )
        # eos_positions may stay on the CPU: both encoders move them to the embeddings' device
        embeds = embed_tokens(clip, input_ids.to(device))
        if fast:
            features.append(encode_truncated(clip, embeds, eos_positions, chunk_tokens))
        else:
            features.append(encode_text_embeddings(clip, embeds, eos_positions))
    features = F.normalize(torch.cat(features).float(), dim=-1)
    features = features.view(len(names), len(templates), -1).mean(dim=1)
    return F.normalize(features, dim=-1)
