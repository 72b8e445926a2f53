"""Deep visual prompts on the shared image-tower path (modeling/vision.py, docs/deep-prompts.md).

VPT-deep, IVLP, MaPLe and PromptSRC append T prompt tokens after the patch tokens (after the
positional embedding, before the pre-norm) and, before each layer j = 1..J-1, replace the last T
tokens by layer j's own prompts (multimodal-prompt-learning `clip/model.py`,
`ResidualAttentionBlock_IVLP.forward` / `ResidualAttentionBlock_MaPLe.forward`).
"""

import pytest
import torch
import torch.nn.functional as F
from deep_reference import reference_deep_tower

from hf_prompt_clip.modeling.vision import encode_image_tokens, replace_prompt_tokens, vit_vision_tower
from hf_prompt_clip.testing import tiny_clip, tiny_vit

LAYERS, WIDTH, TOKENS = 4, 32, 2


@pytest.fixture(scope="module")
def clip():
    """A tiny random CLIP with 4 vision layers (prompt depths 1..4), frozen."""
    model, _, _ = tiny_clip(seed=0, layers=LAYERS)
    return model.requires_grad_(False)


def pixels(batch=3):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(5))


def random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_no_deep_prompts_and_depth_one_are_todays_path_exactly(clip):
    prompts = random(2, TOKENS, WIDTH)
    with torch.no_grad():
        today = encode_image_tokens(clip, pixels(), prompts, return_patches=True)
        for deep in (None, torch.zeros(0, 2, TOKENS, WIDTH), torch.zeros(0, TOKENS, WIDTH)):
            ours = encode_image_tokens(clip, pixels(), prompts, deep_prompts=deep, return_patches=True)
            assert torch.equal(ours.pooled, today.pooled) and torch.equal(ours.patches, today.patches)
        plain = clip.get_image_features(pixel_values=pixels()).pooler_output
        assert torch.equal(encode_image_tokens(clip, pixels(), deep_prompts=None).pooled, plain)


@pytest.mark.parametrize("depth", [2, LAYERS])
def test_deep_prompts_equal_the_plain_reference_with_gradients(clip, depth):
    prompt = random(1, TOKENS, WIDTH, seed=1).requires_grad_()
    deep = random(depth - 1, TOKENS, WIDTH, seed=2).requires_grad_()
    ours = encode_image_tokens(clip, pixels(), prompt, deep_prompts=deep).pooled[:, 0]
    ours_prompt, ours_deep = torch.autograd.grad(ours.square().sum(), [prompt, deep])
    theirs = reference_deep_tower(clip, pixels(), prompt[0], deep)
    theirs_prompt, theirs_deep = torch.autograd.grad(theirs.square().sum(), [prompt, deep])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_prompt, theirs_prompt, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_deep, theirs_deep, atol=1e-5, rtol=1e-5)
    # every deep layer's prompts reach the CLS feature, the last one included
    assert all(grad.abs().sum() > 0 for grad in ours_deep)
    # and they are not the input prompts carried on: without them the feature differs
    with torch.no_grad():
        shallow = encode_image_tokens(clip, pixels(), prompt).pooled[:, 0]
    assert (shallow - ours).abs().max() > 1e-3


def test_several_sets_run_batched_and_equal_one_call_per_set(clip):
    prompts, deep = random(3, TOKENS, WIDTH, seed=3), random(LAYERS - 1, 3, TOKENS, WIDTH, seed=4)
    with torch.no_grad():
        batched = encode_image_tokens(clip, pixels(), prompts, deep_prompts=deep, return_patches=True)
        for s in range(3):
            alone = encode_image_tokens(
                clip, pixels(), prompts[s : s + 1], deep_prompts=deep[:, s], return_patches=True
            )
            torch.testing.assert_close(batched.pooled[:, s], alone.pooled[:, 0], atol=1e-5, rtol=0)
            torch.testing.assert_close(batched.patches[:, s], alone.patches[:, 0], atol=1e-5, rtol=0)
        # (J - 1, T, W) is one set, used by every set
        shared = encode_image_tokens(clip, pixels(), prompts, deep_prompts=deep[:, 0]).pooled
        expanded = deep[:, :1].expand(-1, 3, -1, -1)
        assert torch.equal(shared, encode_image_tokens(clip, pixels(), prompts, deep_prompts=expanded).pooled)
    assert batched.pooled.shape == (3, 3, 16) and batched.patches.shape == (3, 3, 16, 16)


def test_layers_keep_their_attention_backend_and_the_sequence_length(clip, monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    with torch.no_grad():
        encode_image_tokens(clip, pixels(), random(2, TOKENS, WIDTH), deep_prompts=random(3, TOKENS, WIDTH))
    assert len(calls) == LAYERS and all(shape[0] == 2 * 3 and shape[2] == 1 + 16 + TOKENS for shape in calls)


def test_rows_get_their_own_sets_prompts():
    hidden = torch.arange(6.0).view(6, 1, 1).expand(6, 7, 8)  # row r holds r everywhere
    replaced = replace_prompt_tokens(hidden, 10 + torch.arange(3.0).view(3, 1, 1).expand(3, 2, 8))
    for row in range(6):  # row s * B + b, B = 2
        assert (replaced[row, :5] == row).all() and (replaced[row, 5:] == 10 + row // 2).all()


@pytest.mark.parametrize(
    ("prompts", "deep", "message"),
    [
        (None, (1, TOKENS, WIDTH), r"pass the input layer's prompts"),
        (
            (2, TOKENS, WIDTH),
            (1, 3, TOKENS, WIDTH),
            r"\(J - 1, 2, 2, 32\) or \(J - 1, 2, 32\).*got \(1, 3, 2, 32\)",
        ),
        ((2, TOKENS, WIDTH), (1, 2, 3, WIDTH), r"got \(1, 2, 3, 32\)"),
        ((1, TOKENS, WIDTH), (1, TOKENS, 16), r"got \(1, 2, 16\)"),
        ((1, TOKENS, WIDTH), (LAYERS, TOKENS, WIDTH), r"J - 1 <= 3 .*4-layer tower.*got \(4, 2, 32\)"),
        ((1, TOKENS, WIDTH), (TOKENS, WIDTH), r"got \(2, 32\)"),
    ],
)
def test_bad_deep_prompts_are_refused_naming_expected_and_found(clip, prompts, deep, message):
    prompts = None if prompts is None else torch.zeros(prompts)
    with pytest.raises(ValueError, match=message):
        encode_image_tokens(clip, pixels(), prompts, deep_prompts=torch.zeros(deep))


def test_a_transformers_vit_takes_deep_prompts_through_the_same_path():
    vit, _ = tiny_vit(seed=0)  # 3 layers, no pre-norm
    tower = vit_vision_tower(vit)
    prompt, deep = random(1, TOKENS, WIDTH, seed=6), random(2, TOKENS, WIDTH, seed=7)
    with torch.no_grad():
        ours = encode_image_tokens(tower, pixels(), prompt, deep_prompts=deep).pooled[:, 0]
        x = torch.cat([vit.embeddings(pixels()), prompt.expand(3, -1, -1)], dim=1)
        for j, layer in enumerate(tower.layers):
            if j >= 1:
                x = torch.cat([x[:, :-TOKENS], deep[j - 1].expand(3, -1, -1)], dim=1)
            x = layer(x, None)
    torch.testing.assert_close(ours, vit.layernorm(x[:, 0]), atol=1e-5, rtol=0)
