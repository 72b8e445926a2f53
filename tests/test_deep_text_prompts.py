"""Deep text prompts (IVLP, MaPLe, PromptSRC) in the text engine: before text layer j, 1 <= j < J, the
hidden states at the context positions are replaced by layer j's own prompt.

Everything is checked against `reference_features` below, written plainly from the authors' code
(multimodal-prompt-learning, clip/model.py `ResidualAttentionBlock_MaPLe` / `_IVLP`): all 77 positions,
transformers' `CLIPEncoderLayer`s one by one under a causal mask, the replacement an index assignment.
"""

import pytest
import torch
from deep_reference import reference_features
from test_fast_engine import RAGGED_NAMES, count_host_reads

from hf_prompt_clip.modeling import text_engine
from hf_prompt_clip.modeling.text import build_prompt_layout
from hf_prompt_clip.modeling.text_engine import encode_context_prompts
from hf_prompt_clip.testing import tiny_clip

LAYERS = 4  # deep enough for prompt depths 1 .. 4 and for layers past the prompt depth
N_CTX = 4
NAMES = RAGGED_NAMES  # 2 to 70 tokens (name + ".") with the tiny one-token-per-character tokenizer


@pytest.fixture(scope="module")
def deep_clip():
    clip, tokenizer, _ = tiny_clip(seed=0, layers=LAYERS)
    return clip, tokenizer


@pytest.fixture(scope="module")
def layouts(deep_clip):
    _, tokenizer = deep_clip
    return {
        p: build_prompt_layout(tokenizer, NAMES, n_ctx=N_CTX, position=p) for p in ("end", "middle", "front")
    }


def random_prompts(*shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).requires_grad_()


def batched_reference(clip, layout, context, deep_context):
    if context.dim() == 2:
        return reference_features(clip, layout, context, deep_context)
    return torch.stack(
        [reference_features(clip, layout, one, deep_context[b]) for b, one in enumerate(context)]
    )


def features_and_grads(encode, context, deep_context):
    features = encode(context, deep_context)
    weights = torch.randn(features.shape, generator=torch.Generator().manual_seed(7))
    grads = torch.autograd.grad((features.float() * weights).sum(), (context, deep_context))
    return features.detach(), grads


# ---------------------------------------------------------------- no deep prompts: today's path


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("lead", [(), (3,)])
def test_no_deep_context_is_todays_output_and_depth_one_equals_it(deep_clip, layouts, fast, lead):
    clip, _ = deep_clip
    context = random_prompts(*lead, N_CTX, 32, seed=1)
    today = encode_context_prompts(clip, layouts["middle"], context, fast=fast, chunk_tokens=60)
    none = encode_context_prompts(
        clip, layouts["middle"], context, fast=fast, chunk_tokens=60, deep_context=None
    )
    depth_one = torch.zeros(*lead, 0, N_CTX, 32)  # J = 1: no deep layer
    one = encode_context_prompts(
        clip, layouts["middle"], context, fast=fast, chunk_tokens=60, deep_context=depth_one
    )
    assert torch.equal(today, none)
    torch.testing.assert_close(one, today, atol=1e-6, rtol=0)
    with torch.no_grad():
        reference = batched_reference(clip, layouts["middle"], context, depth_one)
    torch.testing.assert_close(today, reference, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- fast and straightforward vs the reference


@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("lead", [(), (3,)])
@pytest.mark.parametrize("depth", [2, LAYERS])
def test_fast_and_straightforward_equal_the_plain_reference(deep_clip, layouts, position, lead, depth):
    clip, _ = deep_clip
    layout = layouts[position]
    context = random_prompts(*lead, N_CTX, 32, seed=2)
    deep_context = random_prompts(*lead, depth - 1, N_CTX, 32, seed=3)
    expected, expected_grads = features_and_grads(
        lambda c, d: batched_reference(clip, layout, c, d), context, deep_context
    )
    assert expected_grads[1].abs().amin(dim=-1).gt(0).all()  # every deep prompt of every layer matters
    runs = {"straightforward": dict(fast=False)}
    runs.update({f"fast, chunk {chunk}": dict(chunk_tokens=chunk) for chunk in (32768, 60, 25)})
    for name, options in runs.items():

        def encode(c, d, options=options):
            return encode_context_prompts(clip, layout, c, deep_context=d, **options)

        features, grads = features_and_grads(encode, context, deep_context)
        torch.testing.assert_close(
            features, expected, atol=1e-5, rtol=0, msg=lambda m, name=name: f"{name}: {m}"
        )
        for what, grad, expected_grad in zip(("context", "deep_context"), grads, expected_grads):
            torch.testing.assert_close(
                grad, expected_grad, atol=1e-5, rtol=1e-5, msg=lambda m, n=name, w=what: f"{n}, {w}: {m}"
            )


def test_the_chunk_budgets_above_split_the_work(deep_clip, layouts, monkeypatch):
    clip, _ = deep_clip
    calls = []
    original = text_engine._encode_rows
    monkeypatch.setattr(text_engine, "_encode_rows", lambda *a, **k: calls.append(1) or original(*a, **k))
    counts = []
    for chunk in (32768, 60, 25):
        calls.clear()
        with torch.no_grad():
            encode_context_prompts(
                clip, layouts["end"], torch.randn(3, N_CTX, 32), chunk_tokens=chunk,
                deep_context=torch.randn(3, 2, N_CTX, 32),
            )  # fmt: skip
        counts.append(len(calls))
    assert counts[0] < counts[1] < counts[2], counts


def test_a_shared_deep_context_serves_every_context_of_a_batch(deep_clip, layouts):
    clip, _ = deep_clip
    contexts = torch.randn(3, N_CTX, 32)
    deep_context = torch.randn(2, N_CTX, 32)
    with torch.no_grad():
        together = encode_context_prompts(clip, layouts["middle"], contexts, deep_context=deep_context)
        for b in range(3):
            alone = encode_context_prompts(clip, layouts["middle"], contexts[b], deep_context=deep_context)
            torch.testing.assert_close(together[b], alone, atol=1e-5, rtol=0)


def test_deep_prompts_change_the_features_and_only_their_own_layers(deep_clip, layouts):
    clip, _ = deep_clip
    context = torch.randn(N_CTX, 32)
    deep_context = torch.randn(LAYERS - 1, N_CTX, 32)
    with torch.no_grad():
        plain = encode_context_prompts(clip, layouts["end"], context)
        deep = encode_context_prompts(clip, layouts["end"], context, deep_context=deep_context)
        shallower = encode_context_prompts(clip, layouts["end"], context, deep_context=deep_context[:1])
    assert (deep - plain).abs().max() > 1e-3 and (deep - shallower).abs().max() > 1e-3


# ---------------------------------------------------------------- bfloat16, host syncs, errors


def test_bfloat16_is_close_to_float32(deep_clip, layouts):
    clip, _ = deep_clip
    low = tiny_clip(seed=0, layers=LAYERS)[0].to(torch.bfloat16)
    context = random_prompts(3, N_CTX, 32, seed=4)
    deep_context = random_prompts(3, LAYERS - 1, N_CTX, 32, seed=5)
    expected, expected_grads = features_and_grads(
        lambda c, d: encode_context_prompts(clip, layouts["middle"], c, deep_context=d), context, deep_context
    )
    for fast in (True, False):
        features, grads = features_and_grads(
            lambda c, d, fast=fast: encode_context_prompts(
                low, layouts["middle"], c, fast=fast, deep_context=d
            ),
            context,
            deep_context,
        )
        assert features.dtype == torch.bfloat16 and grads[1].dtype == torch.float32
        scale = expected.abs().max()
        torch.testing.assert_close(features.float(), expected, atol=3e-2 * scale, rtol=0)
        for grad, expected_grad in zip(grads, expected_grads):
            error = (grad - expected_grad).norm() / expected_grad.norm()
            assert error < 5e-2, f"fast={fast}: gradient differs by {error:.2e} (relative norm)"


def test_a_training_step_with_deep_prompts_reads_nothing_back_from_the_device(
    deep_clip, layouts, monkeypatch
):
    clip, _ = deep_clip
    context = torch.randn(3, N_CTX, 32, requires_grad=True)
    deep_context = torch.randn(3, LAYERS - 1, N_CTX, 32, requires_grad=True)
    calls = count_host_reads(monkeypatch)
    features = encode_context_prompts(
        clip, layouts["middle"], context, chunk_tokens=60, deep_context=deep_context
    )
    features.sum().backward()
    assert calls == []
    assert deep_context.grad is not None and deep_context.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "context_shape, deep_shape, message",
    [
        (
            (N_CTX, 32),
            (2, N_CTX + 1, 32),
            r"must be \(J - 1, M, D\) = \(J - 1, 4, 32\) .* found \(2, 5, 32\)",
        ),
        ((N_CTX, 32), (2, N_CTX, 16), r"found \(2, 4, 16\)"),
        ((N_CTX, 32), (3, 2, N_CTX, 32), r"for a context of shape \(4, 32\) .* found \(3, 2, 4, 32\)"),
        ((N_CTX, 32), (N_CTX, 32), r"found \(4, 32\)"),
        (
            (3, N_CTX, 32),
            (2, 2, N_CTX, 32),
            r"\(B, J - 1, M, D\) = \(3, J - 1, 4, 32\).*\(2 sets for 3 contexts",
        ),
        (
            (N_CTX, 32),
            (LAYERS, N_CTX, 32),
            r"prompts for 4 layers, found \(4, 4, 32\).* at most 3 deep prompts",
        ),
    ],
)
def test_bad_shapes_are_refused_naming_expected_and_found(
    deep_clip, layouts, context_shape, deep_shape, message
):
    clip, _ = deep_clip
    for fast in (True, False):
        with pytest.raises(ValueError, match=message):
            encode_context_prompts(
                clip,
                layouts["end"],
                torch.zeros(context_shape),
                fast=fast,
                deep_context=torch.zeros(deep_shape),
            )


def test_class_specific_context_with_deep_prompts_is_refused(deep_clip, layouts):
    clip, _ = deep_clip
    with pytest.raises(
        ValueError, match=r"not supported with class_specific=True .* \(10, 4, 32\) = \(K, M, D\)"
    ):
        encode_context_prompts(
            clip, layouts["end"], torch.zeros(len(NAMES), N_CTX, 32), class_specific=True,
            deep_context=torch.zeros(2, N_CTX, 32),
        )  # fmt: skip
