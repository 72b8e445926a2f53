"""MaPLe (methods/maple, the authors' `trainers/maple.py`): deep text prompts up to a depth J, the image
tower's prompts of each layer j < J a linear projection of layer j's text prompts.

The model is checked against the plain references of `deep_reference.py` on a tiny random 4-layer CLIP in
float32: logits and the gradient of the training loss for every learned tensor (the text prompts of every
layer and every projection), at the authors' settings (2 tokens of "a photo of a", depth 9, clamped to the 4
layers), at depth 1 (shallow MaPLe) and at a depth between with random initialisation. The reference's text
layout is the tokenisation of the authors' own prompts, `"a photo of a red star."`.
"""

import logging

import pytest
import torch
from conftest import PATTERN_NAMES, assert_pipelines_score_like_the_model, compare_on_sketches
from deep_reference import (
    assert_model_equals_reference,
    authors_text_layout,
    perturb_learned,
    reference_deep_tower,
    reference_features,
    reference_logits,
)
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForZeroShotImageClassification

from hf_prompt_clip import MaPLeConfig, MaPLeModel
from hf_prompt_clip.core.registry import method_capabilities, method_info
from hf_prompt_clip.testing import tiny_clip

LAYERS = 4
NAMES = ["red star", "blue_circle", "green ring"]
OTHER_NAMES = ["pink heart", "cyan cross"]
LABELS = torch.tensor([0, 1, 2, 1])


@pytest.fixture(scope="module")
def parts():
    """A tiny random CLIP with 4 layers per tower (prompt depths 1 .. 4), its tokenizer and processor."""
    return tiny_clip(seed=0, layers=LAYERS)


def build(parts, names=NAMES, **options):
    clip, tokenizer, processor = parts
    config = MaPLeConfig(clip_config=clip.config.to_dict(), class_names=names, **options)
    return MaPLeModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def pixels(batch=4, seed=0):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def authors_prompts(config, names):
    """The authors' prompt texts: `prompt_prefix + " " + name + "."`, the prefix `ctx_init` or "X X .. X"."""
    prefix = config.ctx_init or " ".join(["X"] * config.n_ctx)
    return [f"{prefix} {name.replace('_', ' ')}." for name in names]


def projected(coupling, tokens):
    """`nn.Linear` written out: `tokens @ W^T + b`."""
    return tokens @ coupling.weight.T + coupling.bias


def reference(model, parts, names=NAMES):
    """The authors' forward: text prompts `[ctx, *compound_prompts_text]` through the text tower at the slots
    after `[SOS]`, their projections through the image tower after the patches."""
    clip, tokenizer, _ = parts
    prompts, config = model.prompts, model.config
    layout = authors_text_layout(tokenizer, authors_prompts(config, names), config.n_ctx)
    text = reference_features(clip, layout, prompts.context, prompts.deep_context)
    couplings = prompts.couplings
    visual = projected(couplings[0], prompts.context)
    deep = [projected(couplings[j], prompts.deep_context[j - 1]) for j in range(1, len(couplings))]
    deep = torch.stack(deep) if deep else visual.new_zeros((0, *visual.shape))
    return reference_logits(clip, reference_deep_tower(clip, pixels(), visual, deep), text)


@pytest.mark.parametrize(
    ("options", "depth", "tokens"),
    [({}, LAYERS, 2), ({"text_depth": 1}, 1, 2), ({"text_depth": 2, "n_ctx": 3, "ctx_init": None}, 2, 3)],
    ids=["authors-defaults-clamped", "depth-1", "depth-2-random-init"],
)
def test_logits_and_gradients_equal_the_plain_reference(parts, options, depth, tokens, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_prompt_clip.modeling.deep_prompts"):
        model = build(parts, **options)
    if not options:  # the authors' depth 9 on 4-layer towers: every layer, recorded in the config
        assert "text_depth=9 exceeds the 4 layers" in caplog.text
    assert model.config.text_depth == depth
    assert (model.prompts.text_depth, model.prompts.vision_depth) == (depth, depth)
    assert (
        model.prompts.deep_context.shape == (depth - 1, tokens, 32) and len(model.prompts.couplings) == depth
    )
    perturb_learned(model)
    learned = assert_model_equals_reference(model, lambda: reference(model, parts), pixels(), LABELS)
    couplings = {f"prompts.couplings.{j}.{kind}" for j in range(depth) for kind in ("weight", "bias")}
    assert learned == {"prompts.context", "prompts.deep_context", *couplings}


def test_the_prompts_are_the_authors_a_photo_of_a_name(parts):
    """`[SOS] v_1 v_2 <rest of "a photo of a"> name. [EOS]`: the tokens of the authors' "a photo of a name.",
    the first 2 learned from their own token embeddings, the rest fixed words."""
    clip, tokenizer, _ = parts
    model = build(parts)
    model._ensure_class_prompts()
    ours = model.prompts.text.layout
    theirs = authors_text_layout(tokenizer, authors_prompts(model.config, NAMES), n_ctx=2)
    for k in range(len(NAMES)):
        end = int(theirs.eos_positions[k]) + 1
        assert int(ours.eos_positions[k]) + 1 == end
        assert torch.equal(ours.input_ids[k, :end], theirs.input_ids[k, :end])
        assert torch.equal(ours.context_index[k, :end], theirs.context_index[k, :end])
    embedding = clip.text_model.embeddings.token_embedding.weight
    assert torch.equal(model.prompts.context.detach(), embedding[theirs.input_ids[0, 1:3]])


def test_each_layers_visual_prompts_are_its_projected_text_prompts(parts):
    model = build(parts)
    perturb_learned(model)
    prompts = model.prompts
    visual, deep = prompts.visual_tokens()
    text = [prompts.context, *prompts.deep_context]
    assert len(text) == len(prompts.couplings) == 1 + len(deep) == LAYERS
    for j, tokens in enumerate([visual, *deep]):
        torch.testing.assert_close(tokens, projected(prompts.couplings[j], text[j]), atol=1e-6, rtol=0)


def test_the_projections_map_the_text_width_to_the_image_width():
    """A CLIP whose towers differ in width (text 32, image 48): each coupling is `Linear(32, 48)` and the
    model still equals the reference."""
    parts = tiny_clip(seed=0, layers=3, vision_width=48)
    model = build(parts)
    assert all(c.weight.shape == (48, 32) and c.bias.shape == (48,) for c in model.prompts.couplings)
    perturb_learned(model)
    assert_model_equals_reference(model, lambda: reference(model, parts), pixels(), LABELS)


def test_the_deeper_projections_start_as_copies_of_one_linear_the_first_its_own(parts):
    """The authors' initialisation (maple.py:103-117): `proj` is its own `nn.Linear` draw, the J - 1
    `compound_prompt_projections` are `copy.deepcopy`s of one `nn.Linear`: equal, yet separate parameters."""
    torch.manual_seed(0)
    model = build(parts)
    first, *deeper = model.prompts.couplings
    assert len(deeper) == LAYERS - 1
    for coupling in deeper[1:]:
        assert torch.equal(coupling.weight, deeper[0].weight) and torch.equal(coupling.bias, deeper[0].bias)
        assert coupling.weight.data_ptr() != deeper[0].weight.data_ptr()
    assert not torch.equal(first.weight, deeper[0].weight) and not torch.equal(first.bias, deeper[0].bias)
    bound = 32**-0.5  # PyTorch's default nn.Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for coupling in (first, deeper[0]):
        assert coupling.weight.abs().max() <= bound and coupling.bias.abs().max() <= bound
        assert coupling.weight.abs().max() > bound / 2
    deep_std = model.prompts.deep_context.std()
    assert 0.012 < deep_std < 0.03  # compound_prompts_text: N(0, 0.02^2)
    # separate parameters: one training step sets them apart (their layers' text prompts differ)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model.train()
    model(pixels(), labels=LABELS).loss.backward()
    optimizer.step()
    assert not torch.equal(deeper[0].weight, deeper[1].weight)


def test_new_classes_reuse_the_learned_prompts(parts):
    model = build(parts)
    perturb_learned(model)
    model.set_class_names(OTHER_NAMES)
    model.eval()
    with torch.no_grad():
        logits = model(pixels()).logits
        torch.testing.assert_close(logits, reference(model, parts, OTHER_NAMES), atol=1e-4, rtol=0)


def test_the_defaults_are_the_authors_and_capabilities():
    config = MaPLeConfig()
    assert (config.n_ctx, config.ctx_init, config.text_depth, config.ctx_init_std) == (
        2,
        "a photo of a",
        9,
        0.02,
    )
    assert config.class_token_position == "end" and config.model_type == "prompt_clip_maple"
    assert not hasattr(config, "n_ctx_vision") and not hasattr(config, "vision_depth")
    capabilities = method_capabilities("maple")
    assert capabilities.trains_image_tower and capabilities.classes_can_change and capabilities.free_texts


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_ctx": 0}, r"MaPLeConfig\.n_ctx must be at least 1, got 0"),
        ({"text_depth": 0}, r"MaPLeConfig\.text_depth must be at least 1, got 0"),
        ({"ctx_init_std": -0.5}, r"MaPLeConfig\.ctx_init_std must be at least 0"),
        ({"class_token_position": "side"}, r"MaPLeConfig\.class_token_position must be one of"),
        ({"n_ctx_vision": 2}, r"MaPLeConfig got an unknown keyword 'n_ctx_vision'"),
        ({"vision_depth": 9}, r"MaPLeConfig got an unknown keyword 'vision_depth'"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        MaPLeConfig(class_names=NAMES, **options)


def test_more_learned_tokens_than_ctx_init_has_are_refused(parts):
    with pytest.raises(ValueError, match=r"n_ctx=10 learned tokens .* has only 9: give n_ctx <= 9"):
        build(parts, n_ctx=10)  # the tiny tokenizer spells "a photo of a" in 9 tokens


def test_adapter_round_trips_with_equal_logits(tiny_clip_folder, tmp_path, caplog):
    torch.manual_seed(0)
    model = MaPLeModel.from_clip(tiny_clip_folder, NAMES)
    perturb_learned(model)
    with torch.no_grad():
        expected = model.eval()(pixels()).logits
    model.save_pretrained(tmp_path)
    saved = {key: tuple(value.shape) for key, value in load_file(tmp_path / "model.safetensors").items()}
    assert saved == {  # the tiny CLIP folder has 2 layers per tower: depth 9 recorded as 2
        "prompts.context": (2, 32),
        "prompts.deep_context": (1, 2, 32),
        **{f"prompts.couplings.{j}.weight": (32, 32) for j in range(2)},
        **{f"prompts.couplings.{j}.bias": (32,) for j in range(2)},
    }
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, MaPLeConfig) and config.text_depth == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_prompt_clip.modeling.deep_prompts"):
        for auto_class in (AutoModel, AutoModelForZeroShotImageClassification):
            loaded = auto_class.from_pretrained(tmp_path)
            assert isinstance(loaded, MaPLeModel)
            with torch.no_grad():
                assert torch.equal(loaded(pixels()).logits, expected)
    assert "exceeds" not in caplog.text  # the recorded depth is what runs


def test_maple_in_both_pipelines(tiny_clip_folder, tmp_path):
    """Learned text prompts: the zero-shot pipeline's candidate labels with `hypothesis_template="{}"` are
    classified as `set_class_names(candidate_labels)` classifies them."""
    torch.manual_seed(0)
    model = MaPLeModel.from_clip(tiny_clip_folder, PATTERN_NAMES)
    perturb_learned(model, std=0.3)
    model.save_pretrained(tmp_path)
    assert_pipelines_score_like_the_model(model, tmp_path, hypothesis_template="{}")


def test_registered_with_its_paper():
    info = method_info("maple")
    assert info.title == "MaPLe" and info.paper == "Khattak et al., CVPR 2023"
    assert "khattak2023maple" in info.citation
    (average,) = info.paper_results
    assert (average.protocol, average.metrics["base"], average.metrics["new"]) == ("base2new", 82.28, 75.14)


def test_maple_beats_zero_shot_on_base_classes_and_keeps_new_classes(tmp_path):
    """The learning test's setting (tests/test_learning.py), 2 epochs (the first a warm-up at 1e-5), about 15 s.
    Measured: zero-shot 32.5 base / 28.75 new, MaPLe 45.75 / 40.75 (3 epochs: 44.5 / 41.25; 4: 43.5 / 41.0).
    Asked: the learning suite's 5 points on base; new classes (the same learned prompts with the new names)
    must not lose more than 5 points."""
    results = compare_on_sketches(tmp_path, "base2new", ["zeroshot", "maple"], method="maple", epochs=2)
    assert results["maple"]["base"] >= results["zeroshot"]["base"] + 5.0, results
    assert results["maple"]["new"] >= results["zeroshot"]["new"] - 5.0, results
