"""The exact fast text engine: EOS truncation, shared-prefix key/value cache, batched chunks.

Room: `modeling/`.

CLIP's text attention is causal and only the end-of-text (EOS) state is read, so:

1. positions after the last EOS of a batch never influence the result: run only up to it;
2. a prefix shared by many prompts (`[SOS] v_1 .. v_M` when the class name comes last) has the
   same hidden states in every prompt: encode it once, keep every layer's keys and values, and
   run only the class-specific suffixes attending to them (a KV cache, as in LM decoding);
3. many prompts (CoCoOp's B images x K classes) go through the encoder in a few large calls,
   sorted by length and chunked to a token budget so padding and peak memory stay small.

All three are exact: `encode_context_prompts(..., fast=False)` runs the straightforward path
(all 77 positions, transformers' modules, one image at a time) and the tests compare the two.

Deep text prompts (IVLP, MaPLe, PromptSRC; `encode_context_prompts(..., deep_context=...)`): with
prompt depth J, the hidden states at the context positions are replaced by layer j's own learned
prompt (no positional embedding) before each layer 1 <= j < J; layer 0 reads the spliced context
plus positions as usual. The replacement is the same splice as layer 0's
(`assemble_prompt_embeddings`, applied by `DeepSlots` inside the layer loop), so all three
speed-ups stay exact: under the causal mask a shared prefix still never sees a class name, and
its deep prompts are per prefix, not per class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import CLIPModel

from ..core.configuration import DEFAULT_CHUNK_TOKENS
from .activations import quick_gelu
from .text import (
    PromptLayout,
    assemble_prompt_embeddings,
    build_prompt_layout,
    embed_tokens,
    encode_text_embeddings,
    fill_template,
    phrase_token_ids,
    tokenize_texts,
)

TEMPLATE_TEXT_BATCH = 256  # prompts embedded at a time: 1000 classes x 80 templates at once would take GBs

KeyValues = list[tuple[torch.Tensor, torch.Tensor]]
Activation = Callable[[torch.Tensor], torch.Tensor]


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """`(N, S, D) -> (N, H, S, D / H)`."""
    rows, length, width = x.shape
    return x.view(rows, length, heads, width // heads).transpose(1, 2)


def attend_with_shared_prefix(
    query: torch.Tensor,
    own_key: torch.Tensor,
    own_value: torch.Tensor,
    prefix_key: torch.Tensor,
    prefix_value: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Attention of G x W sequences to their group's shared prefix (fully) and to themselves (causally),
    without copying the prefix's keys and values per sequence.

    Sequence `g * W + w` is suffix w of prefix g: its L queries see the P prefix positions of group g
    and its own positions up to their own. The result equals concatenating `prefix_key[g]` (and
    values) before each sequence's own keys and running masked attention, but the prefix scores come
    from one matmul per group (the W x L queries of a group against its P keys), and one softmax runs
    over the prefix and own scores together (`P + L` per query), so nothing of size `G x W x P` but
    the attention weights is allocated.

    Args:
        query: `(G * W, H, L, d)` queries of the suffix positions.
        own_key: `(G * W, H, L, d)` keys of the same positions.
        own_value: `(G * W, H, L, d)` their values.
        prefix_key: `(G, H, P, d)` keys of the G prefixes (`P = 0`: plain causal attention).
        prefix_value: `(G, H, P, d)` their values.
        scale: the score scale, usually `d ** -0.5`.

    Returns:
        `(G * W, H, L, d)` attention outputs, in `query`'s dtype (a transposed view of an `(N, L, H, d)`
        tensor, so `out.transpose(1, 2).reshape(N, L, H * d)` is free). Below float32, the softmax
        runs in float32.

    Raises:
        ValueError: when the number of sequences is not a multiple of the number of prefixes.

    Example:
        >>> q, k, v = (torch.randn(6, 8, 5, 64) for _ in range(3))      # 2 prefixes x 3 suffixes
        >>> pk, pv = torch.randn(2, 8, 17, 64), torch.randn(2, 8, 17, 64)
        >>> attend_with_shared_prefix(q, k, v, pk, pv, 64**-0.5).shape
        torch.Size([6, 8, 5, 64])
    """
    groups, heads, prefix_length, head_dim = prefix_key.shape
    rows, _, length, _ = query.shape
    if groups == 0 or rows % groups:
        raise ValueError(
            f"query has {rows} sequences, which is not a multiple of the {groups} prefixes "
            "(sequence g * W + w must be suffix w of prefix g)."
        )
    width = rows // groups

    def grouped(x: torch.Tensor) -> torch.Tensor:  # (G * W, H, L, d) -> (G, H, W, L, d)
        return x.unflatten(0, (groups, width)).transpose(1, 2)

    q = grouped(query).contiguous()
    prefix_scores = q.view(groups, heads, width * length, head_dim) @ prefix_key.transpose(-1, -2)
    own_scores = q @ grouped(own_key).transpose(-1, -2)  # (G, H, W, L, L)
    future = torch.ones(length, length, dtype=torch.bool, device=query.device).triu(1)
    scores = torch.cat(
        [
            prefix_scores.view(groups, heads, width, length, prefix_length),
            own_scores.masked_fill(future, -torch.inf),
        ],
        dim=-1,
    ).mul_(scale)
    if scores.dtype in (torch.float32, torch.float64):
        weights = scores.softmax(dim=-1)
    else:
        weights = scores.softmax(dim=-1, dtype=torch.float32).to(scores.dtype)
    prefix_weights, own_weights = weights.split([prefix_length, length], dim=-1)
    out = own_weights @ grouped(own_value).to(weights.dtype)
    prefix_out = prefix_weights.reshape(groups, heads, width * length, prefix_length) @ prefix_value.to(
        weights.dtype
    )
    out = out + prefix_out.view(groups, heads, width, length, head_dim)
    # (G, H, W, L, d) -> (G * W, L, H, d), returned as (G * W, H, L, d)
    return out.permute(0, 2, 3, 1, 4).reshape(rows, length, heads, head_dim).transpose(1, 2)


def _layer_forward(
    layer: torch.nn.Module,
    hidden: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None,
    activation: Activation | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One CLIP encoder layer on `hidden` `(N, S, D)`, attending causally to itself and fully to
    `past` keys/values `(G, H, P, d)`, shared by consecutive groups of `N / G` rows. Returns the new
    hidden states and this call's keys/values. `activation` replaces the MLP's own (None: keep it)."""
    attention = layer.self_attn
    heads = attention.num_heads
    x = layer.layer_norm1(hidden)
    query = _split_heads(attention.q_proj(x), heads)
    key = _split_heads(attention.k_proj(x), heads)
    value = _split_heads(attention.v_proj(x), heads)
    if past is None:
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=attention.scale)
    else:
        out = attend_with_shared_prefix(query, key, value, past[0], past[1], attention.scale)
    out = out.transpose(1, 2).reshape(hidden.shape)
    hidden = hidden + attention.out_proj(out)
    mlp = layer.mlp
    act = activation or mlp.activation_fn
    hidden = hidden + mlp.fc2(act(mlp.fc1(layer.layer_norm2(hidden))))
    return hidden, (key, value)


def _mlp_activation(clip: CLIPModel) -> Activation | None:
    """`quick_gelu` (one autograd node) for CLIP's `hidden_act="quick_gelu"`, else None (each layer's own)."""
    return quick_gelu if clip.config.text_config.hidden_act == "quick_gelu" else None


def _add_positions(clip: CLIPModel, embeds: torch.Tensor, start: int) -> torch.Tensor:
    table = clip.text_model.embeddings.position_embedding.weight
    return embeds.to(table.dtype) + table[start : start + embeds.shape[-2]]


def _project_eos(clip: CLIPModel, hidden: torch.Tensor, eos: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    pooled = clip.text_model.final_layer_norm(hidden[rows, eos])
    return clip.text_projection(pooled)


@dataclass(frozen=True)
class DeepSlots:
    """Deep prompts of G groups of W rows: before layer j (1 <= j < J), the hidden states at the context
    positions are replaced by layer j's prompt (IVLP / MaPLe / PromptSRC deep text prompts).

    Rows `g * W .. (g + 1) * W - 1` of a layer's hidden states `(G * W, S, D)` take the prompts of group
    g (a prefix, an image, a prompt set); the W rows of every group share one slot layout.

    Attributes:
        prompts: `(G, J - 1, M, D)` the prompts of layers `1 .. J - 1` (`J - 1 = 0`: nothing replaced).
        context_index: `(W, S)` context slot of each position of a group's rows, `-1` where the hidden
            state is kept (as in `PromptLayout.context_index`).
    """

    prompts: torch.Tensor
    context_index: torch.Tensor

    def before_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        """The input of layer `index`: `hidden` `(G * W, S, D)` with that layer's prompt at the context
        positions, unchanged for layer 0 and layers from J on."""
        if not 1 <= index <= self.prompts.shape[1]:
            return hidden
        groups = hidden.unflatten(0, (self.prompts.shape[0], -1))  # (G, W, S, D)
        spliced = assemble_prompt_embeddings(groups, self.context_index, self.prompts[:, index - 1])
        return spliced.flatten(0, 1)


def encode_prefix(clip: CLIPModel, prefix_embeds: torch.Tensor, deep: DeepSlots | None = None) -> KeyValues:
    """Per-layer keys and values `(B, H, P, d)` of prefixes given as token embeddings `(B, P, D)`,
    with `deep` (`B` groups of one row) replacing their context positions' states layer by layer."""
    hidden = _add_positions(clip, prefix_embeds, 0)
    activation = _mlp_activation(clip)
    cache = []
    for index, layer in enumerate(clip.text_model.encoder.layers):
        if deep is not None:
            hidden = deep.before_layer(index, hidden)
        hidden, (key, value) = _layer_forward(layer, hidden, None, activation)
        # contiguous: every suffix chunk attends to these, and matmul would copy a transposed view each time
        cache.append((key.contiguous(), value.contiguous()))
    return cache


def _encode_rows(
    clip: CLIPModel,
    embeds: torch.Tensor,
    eos: torch.Tensor,
    start: int,
    past: KeyValues | None,
    deep: DeepSlots | None = None,
) -> torch.Tensor:
    """Features `(N, E)` of rows `(N, S, D)` at positions `start..`, read at `eos` `(N,)`; with `past`
    (per-layer `(G, H, P, d)`), rows `g * N / G ..` attend to prefix g; with `deep`, their context
    positions take each layer's deep prompt."""
    hidden = _add_positions(clip, embeds, start)
    activation = _mlp_activation(clip)
    for index, layer in enumerate(clip.text_model.encoder.layers):
        if deep is not None:
            hidden = deep.before_layer(index, hidden)
        hidden, _ = _layer_forward(layer, hidden, None if past is None else past[index], activation)
    return _project_eos(clip, hidden, eos)


def _length_buckets(
    eos: Sequence[int], chunk_tokens: int, extra: int = 0, slack: float = 0.125
) -> Iterator[tuple[slice, int]]:
    """Group items by length (EOS position + 1) so padding and call size stay small.

    Items are taken in order of length (a stable sort of `eos`, the order `torch.argsort(eos,
    stable=True)` gives); a group closes when adding the next item would pad more than `slack` of
    the group's real positions, or would make `items x (extra + longest)` exceed `chunk_tokens`.

    Args:
        eos: the EOS position of each item, as Python ints (no device read).

    Yields:
        `(slice of the sorted order, longest EOS position in the group)`.

    Example:
        >>> list(_length_buckets([3, 1, 3, 9], chunk_tokens=100))
        [(slice(0, 1, None), 1), (slice(1, 3, None), 3), (slice(3, 4, None), 9)]
    """
    lengths = sorted(position + 1 for position in eos)
    first, total = 0, 0
    for index, length in enumerate(lengths):
        size = index - first
        padded = (size + 1) * length
        if size and (padded > (1 + slack) * (total + length) or (size + 1) * (extra + length) > chunk_tokens):
            yield slice(first, index), lengths[index - 1] - 1
            first, total = index, 0
        total += length
    if lengths:
        yield slice(first, len(lengths)), lengths[-1] - 1


def _host_eos(eos_positions: torch.Tensor, host_eos: Sequence[int] | None) -> Sequence[int]:
    """The EOS positions as Python ints: `host_eos` when given, else read from the tensor (a sync on GPU)."""
    return eos_positions.tolist() if host_eos is None else host_eos


def encode_truncated(
    clip: CLIPModel,
    token_embeds: torch.Tensor,
    eos_positions: torch.Tensor,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    host_eos: Sequence[int] | None = None,
) -> torch.Tensor:
    """Text features `(N, E)` of full prompts `(N, L, D)`, each run only up to its chunk's last EOS.

    Prompts are sorted by EOS position and chunked so that no chunk exceeds `chunk_tokens`
    positions; the result is in the input order. `eos_positions` may lie on any device;
    `host_eos`, the same positions as Python ints, saves reading them back from the device.
    """
    device = token_embeds.device
    buckets = _length_buckets(_host_eos(eos_positions, host_eos), chunk_tokens)
    eos_positions = eos_positions.to(device)
    order = torch.argsort(eos_positions, stable=True)  # the order of the buckets
    features: list[torch.Tensor] = []
    for chunk, last_eos in buckets:
        rows = order[chunk]
        embeds = token_embeds[rows, : last_eos + 1]
        features.append(_encode_rows(clip, embeds, eos_positions[rows], 0, None))
    return _restore_order(torch.cat(features), order)


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
    host_eos: Sequence[int] | None = None,
    deep_context: torch.Tensor | None = None,
    prefix_index: torch.Tensor | None = None,
    suffix_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Text features `(B, K, E)` of the prompts `prefix_b + suffix_k` for every b and k.

    Args:
        prefix_embeds: `(B, P, D)` token embeddings of B prefixes (positions `0..P-1`).
        suffix_embeds: `(K, S, D)` suffixes shared by all prefixes, or `(B, K, S, D)` one set
            per prefix (positions `P..P+S-1`).
        suffix_eos: `(K,)` EOS position of each suffix, counted from the suffix start.
        host_eos: the same positions as Python ints, if known (saves reading them off the device).
        deep_context: `(B, J - 1, M, D)` deep prompts of each prefix (see `DeepSlots`), or None.
        prefix_index: `(P,)` context slot of each prefix position (`-1`: none); needed with `deep_context`.
        suffix_index: `(K, S)` context slots of the suffixes, or None when they hold none.

    The prefixes are encoded once; the B x K suffixes attend to the cached prefix keys/values
    (`attend_with_shared_prefix`, no per-suffix copy). Suffixes are sorted by length into buckets,
    and each bucket runs in chunks of prefixes, so that one encoder call holds at most about
    `chunk_tokens` positions.
    """
    batch, prefix_length = prefix_embeds.shape[:2]
    per_prefix = suffix_embeds.dim() == 4
    if deep_context is not None and prefix_index is None:
        raise ValueError("deep_context needs prefix_index, the context slot of each prefix position.")
    prefix_deep = None if deep_context is None else DeepSlots(deep_context, prefix_index[None])
    cache = encode_prefix(clip, prefix_embeds, prefix_deep)
    bucket_budget = max(chunk_tokens // batch, 1)
    device = suffix_embeds.device
    buckets = _length_buckets(_host_eos(suffix_eos, host_eos), bucket_budget, prefix_length)
    suffix_eos = suffix_eos.to(device)
    order = torch.argsort(suffix_eos, stable=True)  # the order of the buckets
    features: list[torch.Tensor] = []
    for bucket, last_eos in buckets:
        suffixes = order[bucket]
        length, width = last_eos + 1, bucket.stop - bucket.start
        prefixes_per_call = max(1, chunk_tokens // (width * (prefix_length + length)))
        pieces = []
        for start in range(0, batch, prefixes_per_call):
            rows = slice(start, min(start + prefixes_per_call, batch))
            count = rows.stop - rows.start
            if per_prefix:
                embeds = suffix_embeds[rows][:, suffixes, :length]
            else:
                embeds = suffix_embeds[suffixes, :length].expand(count, -1, -1, -1)
            # every (prefix, suffix) pair is one sequence; the `width` suffixes of a prefix share its cache
            past = [(key[rows], value[rows]) for key, value in cache]
            eos = suffix_eos[suffixes].repeat(count)
            deep = None
            if deep_context is not None and suffix_index is not None:
                deep = DeepSlots(deep_context[rows], suffix_index[suffixes, :length])
            encoded = _encode_rows(
                clip, embeds.reshape(count * width, length, -1), eos, prefix_length, past, deep
            )
            pieces.append(encoded.view(count, width, -1))
        features.append(torch.cat(pieces))
    return _restore_order(torch.cat(features, dim=1).transpose(0, 1), order).transpose(0, 1)


def _check_deep_context(
    clip: CLIPModel, context: torch.Tensor, deep_context: torch.Tensor, class_specific: bool
) -> torch.Tensor:
    """`deep_context` as `(B, J - 1, M, D)`, one set per context of `context`'s `(B, M, D)` form (a
    shared `(J - 1, M, D)` is expanded, not copied), after checking its shape against the context's."""
    if class_specific:
        raise ValueError(
            "deep_context is not supported with class_specific=True (a class-specific context "
            f"{tuple(context.shape)} = (K, M, D)); give a shared (M, D) or batched (B, M, D) context."
        )
    layers = clip.config.text_config.num_hidden_layers
    slots = tuple(context.shape[-2:])  # (M, D)
    batched = context.dim() == 3
    expected = f"(J - 1, M, D) = (J - 1, {slots[0]}, {slots[1]})"
    if batched:
        expected += f" or (B, J - 1, M, D) = ({context.shape[0]}, J - 1, {slots[0]}, {slots[1]})"
    found = tuple(deep_context.shape)
    if deep_context.dim() not in ((3, 4) if batched else (3,)) or tuple(deep_context.shape[-2:]) != slots:
        raise ValueError(
            f"deep_context must be {expected} for a context of shape {tuple(context.shape)} "
            f"(one (M, D) prompt per layer 1 .. J - 1), found {found}."
        )
    if deep_context.dim() == 4 and deep_context.shape[0] != context.shape[0]:
        raise ValueError(
            f"deep_context must be {expected}: one set of deep prompts per context, found {found} "
            f"({deep_context.shape[0]} sets for {context.shape[0]} contexts)."
        )
    if deep_context.shape[-3] > layers - 1:
        raise ValueError(
            f"deep_context holds prompts for {deep_context.shape[-3]} layers, found {found}, but the "
            f"text encoder has {layers} layers: at most {layers - 1} deep prompts (layers 1 .. "
            f"{layers - 1}; layer 0 takes the context itself)."
        )
    if deep_context.dim() == 3:
        deep_context = deep_context.expand(context.shape[0] if batched else 1, *deep_context.shape)
    return deep_context


def encode_context_prompts(
    clip: CLIPModel,
    layout: PromptLayout,
    context: torch.Tensor,
    class_specific: bool = False,
    fast: bool = True,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    deep_context: torch.Tensor | None = None,
) -> torch.Tensor:
    """Text features of the layout's K prompts with learned `context` spliced in.

    Args:
        layout: token ids, context slots and EOS positions of the K prompts.
        context: `(M, D)` shared context -> `(K, E)`; `(K, M, D)` with `class_specific=True`
            -> `(K, E)`; `(B, M, D)` one context per image (CoCoOp) or prompt set -> `(B, K, E)`.
        fast: use EOS truncation and the shared-prefix cache (exact); `False` runs every prompt
            over all positions with transformers' modules, one context at a time.
        deep_context: deep text prompts of depth J (IVLP, MaPLe, PromptSRC): `(J - 1, M, D)`, or
            `(B, J - 1, M, D)` one set per context of a batched `(B, M, D)` context (a `(J - 1, M, D)`
            one then serves every context). Before text encoder layer j, `1 <= j < J`, the hidden
            states at every context position are replaced by `deep_context[j - 1]` at its slot (no
            positional embedding); layer 0 reads `context` as without deep prompts. None (default):
            no deep prompts; `J - 1 = 0` gives the same features. Not with `class_specific`.

    Raises:
        ValueError: for a `deep_context` whose shape does not fit `context` or the encoder's depth, or
            with `class_specific=True`.

    The layout is moved to the text tower's device (a no-op when it is already there).
    """
    lengths = layout.lengths  # host-side values, read before `to` so the caller's layout keeps them
    layout = layout.to(clip.text_model.embeddings.token_embedding.weight.device)
    batched = context.dim() == 3 and not class_specific
    contexts = context if batched else context[None]  # (B, M, D), unless class-specific
    deeps = None if deep_context is None else _check_deep_context(clip, context, deep_context, class_specific)
    if not fast:
        token_embeds = embed_tokens(clip, layout.input_ids).detach()
        features = [
            encode_text_embeddings(
                clip,
                assemble_prompt_embeddings(token_embeds, layout.context_index, one, class_specific),
                layout.eos_positions,
                deep_context=None if deeps is None else deeps[b],
                context_index=layout.context_index,
            )
            for b, one in enumerate(contexts)
        ]
        return torch.stack(features) if batched else features[0]

    last = max(lengths.eos_positions) + 1
    token_embeds = embed_tokens(clip, layout.input_ids[:, :last]).detach()
    context_index = layout.context_index[:, :last]
    if class_specific:
        embeds = assemble_prompt_embeddings(token_embeds, context_index, context, class_specific=True)
        return encode_truncated(clip, embeds, layout.eos_positions, chunk_tokens, lengths.eos_positions)

    shared = lengths.shared_prefix_length
    prefix = assemble_prompt_embeddings(token_embeds[:1, :shared], context_index[:1, :shared], contexts)
    prefix = prefix[:, 0]  # (B, P, D)
    suffix_index = context_index[:, shared:]
    suffix = token_embeds[:, shared:]
    if lengths.context_after_prefix:
        suffix = assemble_prompt_embeddings(suffix, suffix_index, contexts)  # (B, K, S, D)
    suffix_eos = [position - shared for position in lengths.eos_positions]
    features = encode_with_shared_prefix(
        clip,
        prefix,
        suffix,
        layout.eos_positions - shared,
        chunk_tokens,
        host_eos=suffix_eos,
        deep_context=deeps,
        prefix_index=context_index[0, :shared],
        suffix_index=suffix_index if lengths.context_after_prefix else None,
    )
    return features if batched else features[0]


def encode_template_prompts(
    clip: CLIPModel,
    tokenizer,
    texts: Sequence[str],
    template: str,
    fast: bool = True,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """Raw text features `(K, E)` of `template.format(text)` for K texts, with autograd through the text tower's
    own weights (low-rank updates in its layers learn through this; frozen weights record nothing).

    The fast path is exact: the template's words before `{}` are a prefix shared by every prompt
    (`[SOS] a photo of a`), encoded once and attended to by the class-specific suffixes
    (`encode_context_prompts` with those words' frozen embeddings as the context), and each chunk runs only
    up to its last EOS. Where the template's words tokenise otherwise inside the whole prompt than alone
    (no space before `{}`), or nothing precedes `{}`, the prompts run whole with EOS truncation
    (`encode_truncated`). `fast=False` runs all positions through transformers' modules
    (`encode_text_embeddings`), which the tests compare with.

    Args:
        clip: the `CLIPModel` (its text tower's layers may carry learned updates).
        tokenizer: its tokenizer.
        texts: K class names in prompt form (`prompt_class_name`).
        template: one template with one `{}`.
        fast: shared prefix and EOS truncation (exact); `False`: all 77 positions.
        chunk_tokens: most token positions per text-encoder call on the fast path.

    Returns:
        `(K, E)` unnormalised features in the text tower's dtype, on its device.

    Example:
        >>> encode_template_prompts(clip, tokenizer, ["red star", "blue circle"], "a photo of a {}.").shape
        torch.Size([2, E])
    """
    device = clip.text_projection.weight.device
    max_length = clip.config.text_config.max_position_embeddings
    texts = list(texts)
    input_ids, eos_positions = tokenize_texts(
        tokenizer, [fill_template(template, t) for t in texts], max_length
    )
    if not fast:
        return encode_text_embeddings(clip, embed_tokens(clip, input_ids.to(device)), eos_positions)
    head, tail = template.split("{}")
    layout = None
    if head.strip():
        head_ids = phrase_token_ids(tokenizer, head)
        layout = build_prompt_layout(
            tokenizer, texts, n_ctx=len(head_ids), suffix=tail, max_length=max_length, context_ids=head_ids
        )
        if not torch.equal(layout.input_ids, input_ids):  # the words tokenise otherwise beside the name
            layout = None
    if layout is None:
        embeds = embed_tokens(clip, input_ids.to(device))
        return encode_truncated(clip, embeds, eos_positions, chunk_tokens, eos_positions.tolist())
    context = embed_tokens(clip, torch.tensor(head_ids, device=device))
    return encode_context_prompts(clip, layout, context, chunk_tokens=chunk_tokens)


@torch.no_grad()
def template_text_features(
    clip: CLIPModel,
    tokenizer,
    texts: list[str],
    templates: list[str] | tuple[str, ...],
    fast: bool = True,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    normalize_each: bool = True,
) -> torch.Tensor:
    """Hand-written prompt features: `template.format(text)` encoded by the frozen CLIP, without autograd.

    With several templates, each template's features are L2-normalised, averaged over the templates and
    re-normalised (CLIP's prompt ensemble); with `normalize_each=False` the raw features are averaged, then
    normalised (PromptSRC's frozen text anchors, `trainers/promptsrc.py:121-128`). Zero-shot CLIP's classifier,
    CLIP-Adapter's text side, KgCoOp's hand-crafted anchors and PromptSRC's are all this function.

    Args:
        clip: the frozen `CLIPModel`.
        tokenizer: its tokenizer.
        texts: K class names in prompt form (`prompt_class_name`: underscores already spaces).
        templates: T templates with one `{}` each.
        fast: EOS truncation (`encode_truncated`, exact); `False` runs all 77 positions.
        chunk_tokens: most token positions per text-encoder call on the fast path.
        normalize_each: normalise each template's features before averaging (CLIP's ensemble), or average
            the raw features (`False`).

    Returns:
        `(K, E)` float32, L2-normalised, on the text tower's device.

    Example:
        >>> features = template_text_features(clip, tokenizer, ["red star", "blue circle"], ["a photo of a {}."])
        >>> features.shape, features.norm(dim=-1)
        (torch.Size([2, E]), tensor([1., 1.]))
    """
    device = clip.text_projection.weight.device
    max_length = clip.config.text_config.max_position_embeddings
    prompts = [fill_template(template, text) for text in texts for template in templates]
    features = []
    for start in range(0, len(prompts), TEMPLATE_TEXT_BATCH):
        chunk = prompts[start : start + TEMPLATE_TEXT_BATCH]
        input_ids, eos_positions = tokenize_texts(tokenizer, chunk, max_length)
        # eos_positions may stay on the CPU: both encoders move them to the embeddings' device
        embeds = embed_tokens(clip, input_ids.to(device))
        if fast:
            features.append(encode_truncated(clip, embeds, eos_positions, chunk_tokens))
        else:
            features.append(encode_text_embeddings(clip, embeds, eos_positions))
    features = torch.cat(features).float()
    if normalize_each:
        features = F.normalize(features, dim=-1)
    features = features.view(len(texts), len(templates), -1).mean(dim=1)
    return F.normalize(features, dim=-1)
