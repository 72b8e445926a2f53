"""The prompt text path reproduces transformers' CLIP exactly."""

import pytest
import torch

from hf_prompt_clip.modeling.text import (
    assemble_prompt_embeddings,
    build_prompt_layout,
    embed_tokens,
    encode_text_embeddings,
    eos_positions_from_ids,
    fill_template,
    tokenize_texts,
)

TEXTS = ["a photo of a cat.", "x", "a much longer sentence about a small red star on stripes."]


@pytest.mark.parametrize("padding", ["longest", "max_length"])
def test_text_path_on_plain_ids_equals_get_text_features(clip_parts, padding):
    clip, tokenizer, _ = clip_parts
    batch = tokenizer(TEXTS, padding=padding, max_length=77, return_tensors="pt")
    expected = clip.get_text_features(**batch).pooler_output
    eos = eos_positions_from_ids(batch.input_ids, tokenizer.eos_token_id)
    ours = encode_text_embeddings(clip, embed_tokens(clip, batch.input_ids), eos)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_text_path_is_causal(clip_parts):
    """Changing a token after the end-of-text position must not change the feature."""
    clip, tokenizer, _ = clip_parts
    input_ids, eos = tokenize_texts(tokenizer, ["a red star"])
    changed = input_ids.clone()
    changed[0, eos[0] + 1 :] = 5
    embeds = embed_tokens(clip, torch.cat([input_ids, changed]))
    features = encode_text_embeddings(clip, embeds, torch.cat([eos, eos]))
    torch.testing.assert_close(features[0], features[1], atol=1e-6, rtol=0)


def test_tokenize_texts_matches_the_tokenizer(clip_parts):
    _, tokenizer, _ = clip_parts
    input_ids, eos = tokenize_texts(tokenizer, TEXTS)
    reference = tokenizer(TEXTS, padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert torch.equal(input_ids, reference)
    assert torch.equal(eos, eos_positions_from_ids(reference, tokenizer.eos_token_id))


def test_layout_places_context_slots_by_class_token_position(clip_parts):
    _, tokenizer, _ = clip_parts
    name_len = len(tokenizer("ab", add_special_tokens=False).input_ids)
    end = build_prompt_layout(tokenizer, ["ab"], n_ctx=4, position="end")
    middle = build_prompt_layout(tokenizer, ["ab"], n_ctx=4, position="middle")
    front = build_prompt_layout(tokenizer, ["ab"], n_ctx=4, position="front")
    assert end.context_index[0, :7].tolist() == [-1, 0, 1, 2, 3, -1, -1]
    assert middle.context_index[0, :7].tolist() == [-1, 0, 1] + [-1] * name_len + [2, 3]
    assert front.context_index[0, : 1 + name_len + 4].tolist() == [-1] * (1 + name_len) + [0, 1, 2, 3]
    # same tokens, same end-of-text position: only the order differs
    for layout in (middle, front):
        assert layout.eos_positions.tolist() == end.eos_positions.tolist()
        frozen = layout.input_ids[layout.context_index < 0]
        assert sorted(frozen.tolist()) == sorted(end.input_ids[end.context_index < 0].tolist())


def test_assemble_splices_shared_class_specific_and_per_image_context():
    token_embeds = torch.zeros(2, 5, 3)
    index = torch.tensor([[-1, 0, 1, -1, -1], [-1, -1, 0, 1, -1]])
    shared = torch.tensor([[1.0, 1, 1], [2, 2, 2]])
    out = assemble_prompt_embeddings(token_embeds, index, shared)
    assert out[0, 1].tolist() == [1, 1, 1] and out[1, 3].tolist() == [2, 2, 2]
    assert out[0, 0].abs().sum() == 0
    specific = torch.stack([shared, shared * 10])
    out = assemble_prompt_embeddings(token_embeds, index, specific, class_specific=True)
    assert out[1, 2].tolist() == [10, 10, 10]
    per_image = torch.stack([shared, -shared, shared * 3])
    out = assemble_prompt_embeddings(token_embeds, index, per_image)
    assert out.shape == (3, 2, 5, 3)
    assert out[1, 0, 2].tolist() == [-2, -2, -2]


def test_fill_template_replaces_underscores_and_checks_placeholder():
    assert fill_template("a photo of a {}.", "great_white_shark") == "a photo of a great white shark."
    with pytest.raises(ValueError, match="exactly one"):
        fill_template("a photo", "cat")


def test_prompt_longer_than_the_text_encoder_is_refused(clip_parts):
    _, tokenizer, _ = clip_parts
    with pytest.raises(ValueError, match=r"needs 89 token positions .* only 77"):
        build_prompt_layout(tokenizer, ["y" * 70], n_ctx=16)
