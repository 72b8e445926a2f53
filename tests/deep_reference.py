"""Plain references of deep prompts, written from the authors' code (multimodal-prompt-learning and PromptSRC,
clip/model.py `ResidualAttentionBlock_IVLP` / `_MaPLe`, docs/deep-prompts.md): every position, every layer one
by one, the per-layer replacement an index assignment. The engines' tests and the deep-prompt methods' tests
compare against them.
"""

from types import SimpleNamespace

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


def authors_text_layout(tokenizer, prompts, n_ctx):
    """The authors' text layout of whole prompts (`"a photo of a red star."`, their `prompt_prefix + " " + name
    + "."`): the tokenizer's ids, the learned slots at positions 1 .. n_ctx right after `[SOS]` (their
    `token_prefix` / `ctx` / `token_suffix` split), the end-of-text position (their `argmax`: the first end
    token). Built from the tokenizer alone, so it checks the layout the models build, not only reuses it."""
    ids = tokenizer(list(prompts), padding=True, return_tensors="pt").input_ids
    index = torch.full_like(ids, -1)
    index[:, 1 : 1 + n_ctx] = torch.arange(n_ctx)
    eos = (ids == tokenizer.eos_token_id).int().argmax(dim=1)
    return SimpleNamespace(input_ids=ids, context_index=index, eos_positions=eos)


def reference_logits(clip, image_features, text_features):
    """`logit_scale.exp() * cos(image, text)`: `(B, E) x (K, E) -> (B, K)`, as every trainer writes it."""
    image = image_features / image_features.norm(dim=-1, keepdim=True)
    text = text_features / text_features.norm(dim=-1, keepdim=True)
    return clip.logit_scale.exp() * image @ text.T


def perturb_learned(model, seed=1, std=0.5):
    """Every learned tensor of `model` drawn N(0, std^2), far from its initialisation, so that a mix-up of
    tensors, layers or positions shows in the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


def assert_model_equals_reference(model, reference, pixel_values, labels, atol=1e-4):
    """`model`'s logits on `pixel_values` and the gradients of its training loss for every learned tensor equal
    those of `reference()` (the same tensors' logits written plainly, cross-entropy against `labels`), within
    `atol`; every learned tensor, and every layer of a per-layer one, gets a gradient. Returns the learned names.
    """
    learned = {name: p for name, p in model.named_parameters() if p.requires_grad}
    model.train()
    output = model(pixel_values, labels=labels)
    grads = torch.autograd.grad(output.loss, list(learned.values()), allow_unused=True)
    expected = reference()
    expected_loss = torch.nn.functional.cross_entropy(expected, labels)
    expected_grads = torch.autograd.grad(expected_loss, list(learned.values()), allow_unused=True)
    torch.testing.assert_close(output.logits, expected, atol=atol, rtol=0)
    torch.testing.assert_close(output.loss, expected_loss, atol=atol, rtol=0)
    for (name, parameter), grad, expected_grad in zip(learned.items(), grads, expected_grads):
        grad = torch.zeros_like(parameter) if grad is None else grad
        expected_grad = torch.zeros_like(parameter) if expected_grad is None else expected_grad
        torch.testing.assert_close(grad, expected_grad, atol=atol, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
        if parameter.dim() == 3:  # (J - 1, T, W): one slice per deep layer
            assert all(layer.abs().sum() > 0 for layer in grad), f"{name}: a deep layer gets no gradient"
        else:
            assert grad.abs().sum() > 0, f"{name} gets no gradient"
    return set(learned)
