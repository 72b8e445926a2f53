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
from hf_prompt_clip.core.text import build_prompt_layout
from hf_prompt_clip.core.text_engine import encode_context_prompts

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
    from hf_prompt_clip.core import text_engine

    calls = []
    original = text_engine._encode_rows
    monkeypatch.setattr(text_engine, "_encode_rows", lambda *a, **k: calls.append(1) or original(*a, **k))
    model.config.text_chunk_tokens = chunk_tokens
    model._text_cache.clear()  # the budget does not change the features, so they stay cached
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
