"""CoOp: prompt assembly, equivalence with zero-shot templates, what trains."""

import pytest
import torch

from hf_prompt_clip import CoOpConfig, CoOpModel, ZeroShotCLIPConfig, ZeroShotCLIPModel
from hf_prompt_clip.modeling.text import embed_tokens, encode_text_embeddings, fill_template

NAMES = ["red star", "blue_circle", "a very long class name with many words (and brackets)"]


def make_coop(clip_parts, names=NAMES, **kwargs):
    clip, tokenizer, processor = clip_parts
    config = CoOpConfig(clip_config=clip.config.to_dict(), class_names=names, **kwargs)
    return CoOpModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def make_zero_shot(clip_parts, templates, names=NAMES):
    clip, tokenizer, processor = clip_parts
    config = ZeroShotCLIPConfig(clip_config=clip.config.to_dict(), class_names=names, templates=templates)
    return ZeroShotCLIPModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def pixels(batch=4, seed=0):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("position", "ctx_init", "template"),
    [
        ("end", "a photo of a", "a photo of a {}."),
        # the tiny tokenizer has one token per character: "ab cd" is 4 tokens, split 2 + 2
        ("middle", "ab cd", "ab {} cd."),
        ("front", "a photo of a", "{} a photo of a."),
    ],
)
def test_coop_with_word_init_equals_zero_shot_template(clip_parts, position, ctx_init, template):
    """Context initialised from words reproduces the hand-written prompt with the name at that position."""
    coop = make_coop(clip_parts, ctx_init=ctx_init, class_token_position=position)
    zero_shot = make_zero_shot(clip_parts, [template])
    with torch.no_grad():
        torch.testing.assert_close(coop(pixels()).logits, zero_shot(pixels()).logits, atol=1e-4, rtol=0)


def test_ctx_init_counts_bpe_tokens_not_words(clip_parts):
    _, tokenizer, _ = clip_parts
    coop = make_coop(clip_parts, ctx_init="a photo of a")
    expected = len(tokenizer("a photo of a", add_special_tokens=False).input_ids)
    assert expected > 4  # the tiny tokenizer splits words into characters
    assert coop.config.n_ctx == expected
    assert coop.context.shape == (expected, coop.clip.config.text_config.hidden_size)


def test_class_specific_context_equals_per_class_unified_models(clip_parts):
    """Class k of a CSC model is CoOp with class k's context; each class uses only its own context."""
    torch.manual_seed(0)
    csc = make_coop(clip_parts, n_ctx=3, class_specific_context=True, class_token_position="middle")
    assert csc.context.shape[:2] == (len(NAMES), 3)
    features = csc.class_text_features()
    for k in range(len(NAMES)):
        unified = make_coop(clip_parts, n_ctx=3, class_token_position="middle")
        unified.context.data.copy_(csc.context.data[k])
        torch.testing.assert_close(features[k], unified.class_text_features()[k], atol=1e-5, rtol=0)


def test_hand_assembled_middle_prompt_matches(clip_parts):
    """Middle position with random context equals the sequence assembled by hand from embeddings."""
    clip, tokenizer, _ = clip_parts
    coop = make_coop(clip_parts, names=["red star"], n_ctx=4, class_token_position="middle")
    ids = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    table = clip.text_model.embeddings.token_embedding.weight
    pieces = [
        table[[tokenizer.bos_token_id]],
        coop.context[:2],
        table[ids("red star")],
        coop.context[2:],
        table[ids(".")],
        table[[tokenizer.eos_token_id]],
    ]
    sequence = torch.cat(pieces)
    expected = encode_text_embeddings(clip, sequence[None], torch.tensor([len(sequence) - 1]))
    torch.testing.assert_close(coop.class_text_features(), expected, atol=1e-5, rtol=0)


def test_only_the_context_changes_after_an_optimizer_step(clip_parts):
    coop = make_coop(clip_parts, n_ctx=4)
    before = {k: v.clone() for k, v in coop.state_dict().items()}
    trainable = [name for name, p in coop.named_parameters() if p.requires_grad]
    assert trainable == ["context"]
    optimizer = torch.optim.SGD([p for p in coop.parameters() if p.requires_grad], lr=1.0)
    loss = coop(pixels(), labels=torch.tensor([0, 1, 2, 0])).loss
    loss.backward()
    optimizer.step()
    after = coop.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["context"]


def test_eval_text_features_are_cached_and_refreshed_when_context_changes(clip_parts):
    coop = make_coop(clip_parts, n_ctx=4)
    with torch.no_grad():
        first = coop.class_text_features()
        assert coop.class_text_features() is first  # cached
        coop.context.add_(0.5)
        refreshed = coop.class_text_features()
    assert not torch.allclose(first, refreshed)
    torch.testing.assert_close(refreshed, coop._compute_class_text_features().detach())


def test_eval_mode_uses_the_cached_class_features_even_without_no_grad(clip_parts):
    """Evaluation that forgets `torch.no_grad()` ran the text tower with autograd on every batch (0.42x
    plain CLIP's speed, issue 16); in eval mode the cache serves, in training mode the gradient flows."""
    coop = make_coop(clip_parts, n_ctx=4).eval()
    calls = []
    compute = coop._compute_class_text_features
    coop._compute_class_text_features = lambda: calls.append(1) or compute()
    first = coop(pixel_values=pixels()).logits
    second = coop(pixel_values=pixels()).logits
    assert len(calls) == 1 and not first.requires_grad  # computed once, no autograd graph
    torch.testing.assert_close(first, second)
    coop.train()
    coop(pixel_values=pixels(), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    assert len(calls) == 2 and coop.context.grad is not None and coop.context.grad.abs().sum() > 0


def test_set_class_names_keeps_the_context_and_rebuilds_prompts(clip_parts):
    coop = make_coop(clip_parts, n_ctx=4)
    context = coop.context.detach().clone()
    coop.set_class_names(["green hexagon", "pink heart"])
    assert torch.equal(coop.context, context)
    assert coop.config.id2label == {0: "green hexagon", 1: "pink heart"}
    assert coop.config.label2id == {"green hexagon": 0, "pink heart": 1}
    with torch.no_grad():
        logits = coop(pixels()).logits
    fresh = make_coop(clip_parts, names=["green hexagon", "pink heart"], n_ctx=4)
    fresh.context.data.copy_(context)
    with torch.no_grad():
        torch.testing.assert_close(logits, fresh(pixels()).logits)


def test_class_specific_context_refuses_a_different_number_of_classes(clip_parts):
    coop = make_coop(clip_parts, n_ctx=2, class_specific_context=True)
    with pytest.raises(ValueError, match="one context per class for 3 classes"):
        coop.set_class_names(["a", "b"])


def test_zero_shot_ensemble_averages_normalised_template_features(clip_parts):
    clip, tokenizer, _ = clip_parts
    templates = ["a photo of a {}.", "art of the {}.", "a {} in a video game."]
    model = make_zero_shot(clip_parts, templates)
    with torch.no_grad():
        expected = []
        for name in NAMES:
            batch = tokenizer([fill_template(t, name) for t in templates], padding=True, return_tensors="pt")
            feats = torch.nn.functional.normalize(clip.get_text_features(**batch).pooler_output, dim=-1)
            expected.append(torch.nn.functional.normalize(feats.mean(0), dim=-1))
        torch.testing.assert_close(model.class_text_features(), torch.stack(expected), atol=1e-5, rtol=0)


def test_loss_is_cross_entropy_of_the_logits(clip_parts):
    coop = make_coop(clip_parts, n_ctx=4)
    labels = torch.tensor([2, 0, 1, 1])
    out = coop(pixels(), labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    assert out.logits_per_image is out.logits
    assert out.logits_per_text.shape == (len(NAMES), 4)


def test_training_stage_names_the_context(clip_parts):
    coop = make_coop(clip_parts, n_ctx=4)
    (stage,) = coop.training_stages()
    assert coop.set_training_stage(stage) == ["context"]
    assert not any(p.requires_grad for p in coop.clip.parameters())


def test_token_embedding_helper_matches_the_table(clip_parts):
    clip, _, _ = clip_parts
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(embed_tokens(clip, ids), clip.text_model.embeddings.token_embedding.weight[ids])


def test_prompt_names_let_distinct_labels_share_a_prompt(clip_parts):
    """OpenAI's ImageNet names call two classes "missile": labels differ, prompts are the same."""
    labels = ["missile", "missile (n04008634)", "red star"]
    prompts = ["missile", "missile", "red star"]
    coop = make_coop(clip_parts, names=labels, n_ctx=4)
    coop.set_class_names(labels, prompt_names=prompts)
    assert coop.config.id2label[1] == "missile (n04008634)"
    features = coop.class_text_features()
    torch.testing.assert_close(features[0], features[1])
    reference = make_coop(clip_parts, names=["missile", "red star"], n_ctx=4)
    reference.context.data.copy_(coop.context.data)
    torch.testing.assert_close(features[[0, 2]], reference.class_text_features(), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="prompt_names has 2 entries but there are 3 classes"):
        coop.set_class_names(labels, prompt_names=prompts[:2])
