"""The shared image-tower path (modeling/vision.py): plain, patch outputs, prompt sets, token selection, ViT towers."""

import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPModel

from hf_prompt_clip.modeling.vision import append_prompt_tokens, encode_image_tokens, vit_vision_tower
from hf_prompt_clip.testing import tiny_vit


def pixels(batch=3):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(5))


def reference_prompted_tower(clip, pixel_values, prompt):
    """The authors' prompted ViT forward (PLOT++ `clip/model.py`) for one prompt set, written out
    with transformers' modules: embeddings + positions, prompt appended, ln_pre, transformer, ln_post
    of CLS, projection."""
    vision = clip.vision_model
    x = vision.embeddings(pixel_values)
    x = torch.cat([x, prompt.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
    x = vision.pre_layrnorm(x)
    x = vision.encoder(inputs_embeds=x).last_hidden_state
    return clip.visual_projection(vision.post_layernorm(x[:, 0]))


def test_without_prompts_the_path_is_get_image_features_exactly(clip_parts):
    clip, _, _ = clip_parts
    with torch.no_grad():
        ours = encode_image_tokens(clip, pixels(), return_patches=True)
        theirs = clip.get_image_features(pixel_values=pixels()).pooler_output
        hidden = clip.vision_model(pixel_values=pixels()).last_hidden_state
    assert torch.equal(ours.pooled, theirs)
    patches = clip.visual_projection(clip.vision_model.post_layernorm(hidden[:, 1:]))
    assert ours.patches.shape == (3, 16, 16)  # 32 px / 8 px patches = 16 patches, E = 16
    torch.testing.assert_close(ours.patches, patches, atol=1e-6, rtol=0)


def test_prompt_sets_run_in_one_call_and_equal_one_run_per_set(clip_parts):
    clip, _, _ = clip_parts
    prompts = torch.randn(4, 2, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = encode_image_tokens(clip, pixels(), prompts, return_patches=True)
        per_set = torch.stack([reference_prompted_tower(clip, pixels(), p) for p in prompts], dim=1)
    assert ours.pooled.shape == (3, 4, 16) and ours.patches.shape == (3, 4, 16, 16)
    torch.testing.assert_close(ours.pooled, per_set, atol=1e-5, rtol=0)
    # the prompts change what the tower sees: every set gives another feature
    assert (ours.pooled[:, 0] - ours.pooled[:, 1]).abs().max() > 1e-3


def test_rows_pair_each_image_with_each_set_set_major():
    images = torch.arange(2.0).view(2, 1, 1).expand(2, 5, 8)
    prompts = 10 + torch.arange(3.0).view(3, 1, 1).expand(3, 2, 8)
    tokens = append_prompt_tokens(images, prompts)
    assert tokens.shape == (6, 7, 8)
    for row in range(6):
        assert tokens[row, 0, 0] == row % 2 and tokens[row, -1, 0] == 10 + row // 2


def test_prompts_of_the_wrong_width_are_refused(clip_parts):
    clip, _, _ = clip_parts
    with pytest.raises(ValueError, match=r"\(sets, tokens, 32\)"):
        encode_image_tokens(clip, pixels(), torch.zeros(2, 2, 16))


def test_the_attention_backend_is_kept(clip_parts, monkeypatch):
    """The layers run through transformers' SDPA integration (one call per layer and pass)."""
    clip, _, _ = clip_parts
    assert clip.config.vision_config._attn_implementation == "sdpa"
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    with torch.no_grad():
        encode_image_tokens(clip, pixels(), torch.zeros(4, 2, 32))
    layers = clip.config.vision_config.num_hidden_layers
    assert len(calls) == layers
    assert all(shape[0] == 4 * 3 and shape[2] == 1 + 16 + 2 for shape in calls)  # (S*B, heads, L, d)


def test_gradients_reach_the_prompts_through_the_frozen_tower(clip_parts):
    clip, _, _ = clip_parts
    clip.requires_grad_(False)
    prompts = torch.zeros(2, 2, 32, requires_grad=True)
    encode_image_tokens(clip, pixels(), prompts).pooled.sum().backward()
    assert prompts.grad is not None and prompts.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.parameters())


def test_a_transformers_vit_runs_through_the_same_path():
    vit, _ = tiny_vit(seed=0)
    tower = vit_vision_tower(vit)
    assert tower.num_patches == 16
    with torch.no_grad():
        ours = encode_image_tokens(tower, pixels(), return_patches=True)
        theirs = vit(pixel_values=pixels()).last_hidden_state
        torch.testing.assert_close(ours.pooled, theirs[:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(ours.patches, theirs[:, 1:], atol=1e-6, rtol=0)
        # token selection on the ViT: the penultimate layer's eager attention picks the same patches
        vit.config._attn_implementation = "eager"
        attentions = vit(pixel_values=pixels(), output_attentions=True).attentions
        vit.config._attn_implementation = "sdpa"
        expected = attentions[-2][:, :, 0, 1:].sum(1).topk(6).indices.sort().values
        assert torch.equal(encode_image_tokens(tower, pixels(), keep_patches=6).kept_patches, expected)


def test_token_selection_matches_clips_eager_attention_and_keeping_all_is_the_plain_tower(clip_parts):
    clip, _, _ = clip_parts
    eager = CLIPModel(copy.deepcopy(clip.config))  # a config of its own: `clip` stays on SDPA
    eager.load_state_dict(clip.state_dict())
    eager.config.vision_config._attn_implementation = "eager"
    assert clip.config.vision_config._attn_implementation == "sdpa"
    with torch.no_grad():
        attentions = eager.vision_model(pixel_values=pixels(), output_attentions=True).attentions
        selected = encode_image_tokens(clip, pixels(), keep_patches=4)
        assert torch.equal(
            selected.kept_patches, attentions[-2][:, :, 0, 1:].sum(1).topk(4).indices.sort().values
        )
        plain = clip.get_image_features(pixel_values=pixels()).pooler_output
        assert torch.equal(encode_image_tokens(clip, pixels(), keep_patches=16).pooled, plain)
        assert not torch.allclose(selected.pooled, plain)
