"""The fast text engine gives the same logits and gradients as the straightforward path."""

import pytest
import torch

from hf_prompt_clip import (
    CoCoOpConfig,
    CoCoOpModel,
    CoOpConfig,
    CoOpModel,
    ZeroShotCLIPConfig,
    ZeroShotCLIPModel,
)
from hf_prompt_clip.modeling.text import build_prompt_layout
from hf_prompt_clip.modeling.text_engine import encode_context_prompts

# token lengths from 1 to 70 with the tiny one-token-per-character tokenizer; several names of
# (nearly) one length share a length bucket, so small chunk budgets split buckets
RAGGED_NAMES = [
    "x",
    "red star",
    "a very long class name with many words, brackets (like these) and more",
    "blue_circle",
    "yellow crescent moon",
    "ring",
    "an orange hexagon on stripes",
    "tan star",
    "big moon",
    "grey sun",
]


def build(model_class, config_class, clip_parts, **options):
    """A model of `model_class` on the test CLIP with the ragged class names."""
    clip, tokenizer, processor = clip_parts
    config = config_class(clip_config=clip.config.to_dict(), class_names=RAGGED_NAMES, **options)
    return model_class(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def pixels(batch, seed=0):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def logits_and_grads(model, pixel_values, labels, fast, chunk_tokens=32768):
    model.config.fast = fast
    model.config.text_chunk_tokens = chunk_tokens
    model.zero_grad()
    output = model(pixel_values, labels=labels)
    output.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return output.logits.detach(), grads


def assert_same(model, pixel_values, labels, chunk_tokens):
    reference_logits, reference_grads = logits_and_grads(model, pixel_values, labels, fast=False)
    logits, grads = logits_and_grads(model, pixel_values, labels, fast=True, chunk_tokens=chunk_tokens)
    torch.testing.assert_close(logits, reference_logits, atol=1e-4, rtol=0)
    assert grads.keys() == reference_grads.keys()
    for name in grads:
        # gradients reach ~100 (logit scale 100): compare relative to their norm
        error = (grads[name] - reference_grads[name]).norm() / reference_grads[name].norm()
        assert error < 1e-5, f"gradient of {name} differs by {error:.2e} (relative norm)"


@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("class_specific", [False, True])
@pytest.mark.parametrize("chunk_tokens", [32768, 45])
def test_coop_fast_equals_straightforward(clip_parts, position, class_specific, chunk_tokens):
    torch.manual_seed(0)
    options = dict(n_ctx=4, class_token_position=position, class_specific_context=class_specific)
    model = build(CoOpModel, CoOpConfig, clip_parts, **options)
    labels = torch.tensor([0, 2, 6, 3])
    assert_same(model, pixels(4), labels, chunk_tokens)


def encoder_calls(model, monkeypatch, chunk_tokens, pixel_values):
    from hf_prompt_clip.modeling import text_engine

    calls = []
    original = text_engine._encode_rows
    monkeypatch.setattr(text_engine, "_encode_rows", lambda *a, **k: calls.append(1) or original(*a, **k))
    model.config.text_chunk_tokens = chunk_tokens
    model.forget_text_features()  # the budget does not change the features, so they stay cached
    with torch.no_grad():
        model(pixel_values)
    return len(calls)


def test_the_chunk_budgets_tested_above_really_split_the_work(clip_parts, monkeypatch):
    coop = build(CoOpModel, CoOpConfig, clip_parts, n_ctx=4)
    counts = [encoder_calls(coop, monkeypatch, chunk, pixels(4)) for chunk in (32768, 45)]
    assert counts[0] < counts[1]
    cocoop = build(CoCoOpModel, CoCoOpConfig, clip_parts, n_ctx=4)
    for batch in (1, 3, 8):
        counts = [encoder_calls(cocoop, monkeypatch, chunk, pixels(batch)) for chunk in (32768, 100, 37)]
        assert counts[0] < counts[2] and (batch == 1 or counts[0] < counts[1]), (batch, counts)


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("position", ["end", "middle"])
@pytest.mark.parametrize("chunk_tokens", [32768, 100, 37])  # 37 and 100 split the batch unevenly
def test_cocoop_fast_equals_per_image_loop(clip_parts, batch, position, chunk_tokens):
    torch.manual_seed(1)
    model = build(
        CoCoOpModel, CoCoOpConfig, clip_parts, n_ctx=4, ctx_init=None, class_token_position=position
    )
    labels = torch.arange(batch) % len(RAGGED_NAMES)
    assert_same(model, pixels(batch, seed=batch), labels, chunk_tokens)


def test_shared_prefix_cache_is_used_for_class_name_at_end(clip_parts):
    _, tokenizer, _ = clip_parts
    end = build_prompt_layout(tokenizer, RAGGED_NAMES, n_ctx=16, position="end")
    middle = build_prompt_layout(tokenizer, RAGGED_NAMES, n_ctx=16, position="middle")
    front = build_prompt_layout(tokenizer, RAGGED_NAMES, n_ctx=16, position="front")
    assert end.shared_prefix_length == 17  # [SOS] + 16 context vectors
    assert middle.shared_prefix_length == 9
    assert front.shared_prefix_length == 1
    single = build_prompt_layout(tokenizer, ["red star"], n_ctx=4, position="end")
    assert single.shared_prefix_length == int(single.eos_positions[0])  # everything but the EOS


def test_per_prompt_set_contexts_match_one_call_per_context(clip_parts):
    """A `(B, M, D)` context (one per image or prompt set) equals B separate calls."""
    clip, tokenizer, _ = clip_parts
    layout = build_prompt_layout(tokenizer, RAGGED_NAMES, n_ctx=3, position="end")
    contexts = torch.randn(4, 3, clip.config.text_config.hidden_size)
    together = encode_context_prompts(clip, layout, contexts, chunk_tokens=50)
    for b in range(4):
        alone = encode_context_prompts(clip, layout, contexts[b], fast=False)
        torch.testing.assert_close(together[b], alone, atol=1e-5, rtol=0)


def test_zero_shot_fast_equals_straightforward(clip_parts):
    templates = ["a photo of a {}.", "{} texture.", "itap of a {}."]
    model = build(
        ZeroShotCLIPModel, ZeroShotCLIPConfig, clip_parts, templates=templates, text_chunk_tokens=64
    )
    with torch.no_grad():
        fast = model._compute_class_text_features()  # uncached: each path really runs
        model.config.fast = False
        reference = model._compute_class_text_features()
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- copy-free attention, QuickGELU, host syncs


def repeat_cat_attention(query, own_key, own_value, prefix_key, prefix_value, scale):
    """The engine's earlier path: every sequence gets its own copy of its prefix's keys/values, then
    masked SDPA over `[prefix, own]` (full over the prefix, causal over its own positions)."""
    width = query.shape[0] // prefix_key.shape[0]
    length, prefix_length = query.shape[2], prefix_key.shape[2]
    key = torch.cat([prefix_key.repeat_interleave(width, dim=0), own_key], dim=2)
    value = torch.cat([prefix_value.repeat_interleave(width, dim=0), own_value], dim=2)
    mask = torch.ones(length, prefix_length + length, dtype=torch.bool)
    mask[:, prefix_length:] = torch.ones(length, length, dtype=torch.bool).tril()
    return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale)


def attention_inputs(groups, width, prefix_length, length, heads=2, dim=4, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    own = [
        torch.randn(groups * width, heads, length, dim, generator=generator, dtype=dtype) for _ in range(3)
    ]
    prefix = [
        torch.randn(groups, heads, prefix_length, dim, generator=generator, dtype=dtype) for _ in range(2)
    ]
    return [t.requires_grad_() for t in own + prefix]


@pytest.mark.parametrize(
    "groups, width, prefix_length, length",
    [(3, 4, 5, 6), (1, 1, 1, 1), (2, 3, 0, 4), (2, 1, 7, 1), (4, 5, 17, 3)],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_attend_with_shared_prefix_equals_repeat_cat_masked_sdpa(groups, width, prefix_length, length, dtype):
    from hf_prompt_clip.modeling.text_engine import attend_with_shared_prefix

    inputs = attention_inputs(groups, width, prefix_length, length, dtype=dtype)
    weights = torch.randn(groups * width, 2, length, 4, dtype=dtype)
    results = []
    for attend in (attend_with_shared_prefix, repeat_cat_attention):
        out = attend(*inputs, 0.5)
        results.append((out, torch.autograd.grad((out * weights).sum(), inputs)))
    (out, grads), (expected, expected_grads) = results
    assert out.shape == expected.shape == (groups * width, 2, length, 4)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, expected, atol=tolerance, rtol=tolerance)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=tolerance, rtol=tolerance)
    # the layout the engine relies on: (N, H, L, d) -> (N, L, H * d) without a copy
    assert out.transpose(1, 2).is_contiguous()


def test_attend_with_shared_prefix_in_bfloat16_is_close_to_float32():
    from hf_prompt_clip.modeling.text_engine import attend_with_shared_prefix

    inputs = [t.detach() for t in attention_inputs(3, 4, 17, 5, heads=4, dim=16, dtype=torch.float32)]
    out = attend_with_shared_prefix(*[t.bfloat16() for t in inputs], 0.25)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), repeat_cat_attention(*inputs, 0.25), atol=3e-2, rtol=3e-2)


def test_attend_with_shared_prefix_rejects_rows_that_do_not_split_into_groups():
    from hf_prompt_clip.modeling.text_engine import attend_with_shared_prefix

    query, key, value, _, _ = attention_inputs(1, 5, 2, 3)
    _, _, _, prefix_key, prefix_value = attention_inputs(2, 1, 2, 3)
    with pytest.raises(ValueError, match="not a multiple of the 2 prefixes"):
        attend_with_shared_prefix(query, key, value, prefix_key, prefix_value, 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_quick_gelu_forward_is_bit_identical_and_gradient_equal(dtype):
    from transformers.activations import QuickGELUActivation

    from hf_prompt_clip.modeling.activations import quick_gelu

    x = (4 * torch.randn(3, 7, 33, generator=torch.Generator().manual_seed(0))).to(dtype).requires_grad_()
    grad = torch.randn(x.shape, dtype=dtype)
    ours, theirs = quick_gelu(x), QuickGELUActivation()(x)
    assert torch.equal(ours, theirs)
    ours_grad, theirs_grad = (torch.autograd.grad(y, x, grad)[0] for y in (ours, theirs))
    tolerance = {torch.float32: 1e-6, torch.float64: 1e-12, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(ours_grad, theirs_grad, atol=tolerance, rtol=tolerance)


def test_quick_gelu_passes_gradcheck_and_saves_only_its_input():
    from hf_prompt_clip.modeling.activations import quick_gelu

    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(quick_gelu, (x,))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        quick_gelu(x)
    assert len(saved) == 1 and saved[0] is x


def earlier_engine(monkeypatch):
    """Run the engine as before: repeat + cat + masked SDPA, and each layer's own activation module."""
    from hf_prompt_clip.modeling import text_engine

    monkeypatch.setattr(text_engine, "attend_with_shared_prefix", repeat_cat_attention)
    monkeypatch.setattr(text_engine, "_mlp_activation", lambda clip: None)


CONTEXT_KINDS = {  # layout position, context shape (K = 10 classes, M = 4, D = 32), class_specific
    "coop shared": ("end", (4,), False),
    "coop middle": ("middle", (4,), False),
    "cocoop per image": ("end", (3, 4), False),
    "class-specific": ("end", (10, 4), True),
    "plot prompt sets": ("middle", (2, 4), False),
}


@pytest.mark.parametrize("kind", list(CONTEXT_KINDS))
@pytest.mark.parametrize("chunk_tokens", [32768, 60])
def test_engine_equals_its_earlier_path_and_the_straightforward_one(
    clip_parts, monkeypatch, kind, chunk_tokens
):
    clip, tokenizer, _ = clip_parts
    position, lead, class_specific = CONTEXT_KINDS[kind]
    assert clip.config.text_config.hidden_act == "quick_gelu"
    layout = build_prompt_layout(tokenizer, RAGGED_NAMES, n_ctx=4, position=position)
    context = torch.randn(
        *lead, clip.config.text_config.hidden_size, generator=torch.Generator().manual_seed(2)
    )
    context.requires_grad_()

    def features_and_grad(fast):
        features = encode_context_prompts(clip, layout, context, class_specific, fast, chunk_tokens)
        weights = torch.randn(features.shape, generator=torch.Generator().manual_seed(3))
        return features.detach(), torch.autograd.grad((features * weights).sum(), context)[0]

    new = features_and_grad(True)
    reference = features_and_grad(False)
    earlier_engine(monkeypatch)
    earlier = features_and_grad(True)
    for expected in (earlier, reference):
        torch.testing.assert_close(new[0], expected[0], atol=1e-5, rtol=0)
        error = (new[1] - expected[1]).norm() / expected[1].norm()
        assert error < 1e-5, f"gradient differs by {error:.2e} (relative norm)"


def count_host_reads(monkeypatch):
    """Count calls from the package (`hf_prompt_clip/`; the engine lives in `modeling/`) of tensor methods
    that read a device's values on the host (each one a host synchronisation on a GPU)."""
    import sys

    calls = []
    for name in (
        "item",
        "tolist",
        "cpu",
        "numpy",
        "nonzero",
        "__int__",
        "__bool__",
        "__float__",
        "__index__",
    ):
        original = getattr(torch.Tensor, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            if "hf_prompt_clip/" in sys._getframe(1).f_code.co_filename.replace("\\", "/"):
                calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("kind", list(CONTEXT_KINDS))
def test_a_training_step_through_the_engine_reads_nothing_back_from_the_device(clip_parts, monkeypatch, kind):
    clip, tokenizer, _ = clip_parts
    position, lead, class_specific = CONTEXT_KINDS[kind]
    layout = build_prompt_layout(tokenizer, RAGGED_NAMES, n_ctx=4, position=position)
    context = torch.randn(*lead, clip.config.text_config.hidden_size, requires_grad=True)
    calls = count_host_reads(monkeypatch)
    encode_context_prompts(clip, layout, context, class_specific, chunk_tokens=60).sum().backward()
    assert calls == []


def test_a_layout_made_without_host_lengths_computes_them_once(clip_parts, monkeypatch):
    from hf_prompt_clip.modeling.text import PromptLayout

    clip, tokenizer, _ = clip_parts
    built = build_prompt_layout(tokenizer, RAGGED_NAMES, n_ctx=4)
    bare = PromptLayout(built.input_ids, built.context_index, built.eos_positions)
    context = torch.randn(4, clip.config.text_config.hidden_size)
    with torch.no_grad():
        first = encode_context_prompts(clip, bare, context)
        calls = count_host_reads(monkeypatch)
        second = encode_context_prompts(clip, bare, context)
    assert bare.lengths == built.lengths and calls == []
    torch.testing.assert_close(first, second, atol=0, rtol=0)
