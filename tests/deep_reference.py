"""Plain references of deep prompts, written from the authors' code (multimodal-prompt-learning and PromptSRC,
clip/model.py `ResidualAttentionBlock_IVLP` / `_MaPLe`, docs/deep-prompts.md): every position, every layer one
by one, the per-layer replacement an index assignment. The engines' tests and the deep-prompt methods' tests
compare against them.
"""

import torch


def reference_features(clip, layout, context, deep_context):
    """Features `(K, E)` of one `(M, D)` context with `(J - 1, M, D)` deep prompts, written plainly."""
    text = clip.text_model
    dtype = text.embeddings.token_embedding.weight.dtype
    index = layout.context_index
    is_context = index >= 0
    length = index.shape[1]
    hidden = text.embeddings.token_embedding(layout.input_ids).detach().clone()
    hidden[is_context] = context[index[is_context]].to(dtype)
    hidden = hidden + text.embeddings.position_embedding.weight[:length]
    mask = torch.full((length, length), torch.finfo(dtype).min, dtype=dtype).triu(1)[None, None]
    for j, layer in enumerate(text.encoder.layers):
        if 1 <= j <= len(deep_context):  # layer j takes deep_context[j - 1]: 1 <= j < J
            hidden = hidden.clone()
            hidden[is_context] = deep_context[j - 1][index[is_context]].to(dtype)
        hidden = layer(hidden, mask)
    rows = torch.arange(len(hidden))
    return clip.text_projection(text.final_layer_norm(hidden[rows, layout.eos_positions]))


def plain_layer(layer, x):
    """A CLIP encoder layer written out: pre-norm attention (softmax(q k^T / sqrt(d)) v per head)
    and pre-norm MLP, each with its residual, as the authors' `ResidualAttentionBlock`."""
    attention = layer.self_attn
    heads = attention.num_heads
    batch, length, width = x.shape
    h = layer.layer_norm1(x)

    def split(t):
        return t.view(batch, length, heads, width // heads).transpose(1, 2)

    q, k, v = split(attention.q_proj(h)), split(attention.k_proj(h)), split(attention.v_proj(h))
    weights = (q @ k.transpose(-1, -2) * (width // heads) ** -0.5).softmax(dim=-1)
    x = x + attention.out_proj((weights @ v).transpose(1, 2).reshape(batch, length, width))
    return x + layer.mlp(layer.layer_norm2(x))


def reference_deep_tower(clip, pixel_values, prompt, deep):
    """One prompt set `prompt` (T, W) with deep prompts `deep` (J - 1, T, W), written plainly:
    embeddings (positions added) + prompts appended, pre-norm, then per layer j: for 1 <= j < J
    drop the last T tokens and append layer j's prompts (no positions, no pre-norm), run layer j;
    post-norm of CLS, projection."""
    vision = clip.vision_model
    x = vision.embeddings(pixel_values)
    batch, tokens = x.shape[0], prompt.shape[0]
    x = vision.pre_layrnorm(torch.cat([x, prompt.expand(batch, -1, -1)], dim=1))
    for j, layer in enumerate(vision.encoder.layers):
        if 1 <= j <= deep.shape[0]:
            x = torch.cat([x[:, :-tokens], deep[j - 1].expand(batch, -1, -1)], dim=1)
        x = plain_layer(layer, x)
    return clip.visual_projection(vision.post_layernorm(x[:, 0]))
