"""IVLP (independent vision-language prompting, MaPLe's baseline): deep prompts in both towers, held by the
shared `DeepPrompts` component (`modeling/deep_prompts.py`).

Logits and the gradients of every learned tensor are compared with the plain references of
tests/deep_reference.py (written from the authors' `ResidualAttentionBlock_IVLP`): `reference_features` for the
text tower with the model's own prompt layout, `reference_deep_tower` for the image tower, and
`logit_scale.exp() * normalised image @ normalised text^T`, on a tiny random CLIP with 4 layers per tower.
"""

import logging

import pytest
import torch
import torch.nn.functional as F
from conftest import PATTERN_NAMES, assert_pipelines_score_like_the_model, compare_on_sketches
from deep_reference import perturb_learned, reference_deep_tower, reference_features
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from hf_prompt_clip import IVLPConfig, IVLPModel
from hf_prompt_clip.caching.feature_cache import FrozenFeaturesUnavailable
from hf_prompt_clip.core.registry import method_capabilities, method_info
from hf_prompt_clip.data import collate_fn, train_transform, with_image_transform
from hf_prompt_clip.modeling.text import phrase_token_ids
from hf_prompt_clip.runner import AugmentViewsNotSupportedError, ExperimentConfig, check_image_settings
from hf_prompt_clip.synthetic import TINY_CLIP_ID
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, tiny_clip
from hf_prompt_clip.train import PromptTrainer, TrainingConfig
from hf_prompt_clip.utils.settings import SettingError

LAYERS = 4  # per tower: prompt depths 1 .. 4, and layers past a prompt depth
NAMES = ["red star", "blue_circle", "a very long class name with many words"]
LEARNED = ("context", "deep_context", "visual_prompts", "deep_visual_prompts")  # under `prompts.`
TEXT_ONLY = {"n_ctx": 4, "n_ctx_vision": 0, "vision_depth": 0}  # deep language prompting (depth 12 -> 4)
CLAMP_LOGGER = "hf_prompt_clip.modeling.deep_prompts"


@pytest.fixture(scope="module")
def parts():
    """(CLIPModel, tokenizer, image processor): a frozen tiny random CLIP with 4 text and 4 image layers."""
    clip, tokenizer, processor = tiny_clip(seed=0, layers=LAYERS)
    return clip.requires_grad_(False), tokenizer, processor


def build(parts, names=NAMES, seed=0, **options) -> IVLPModel:
    clip, tokenizer, processor = parts
    torch.manual_seed(seed)
    return IVLPModel.from_clip(clip, names, tokenizer=tokenizer, image_processor=processor, **options)


def learned(model) -> dict[str, torch.Tensor]:
    """The model's learned tensors by short name (the visual ones only where it has visual prompts)."""
    return {name: getattr(model.prompts, name) for name in LEARNED if hasattr(model.prompts, name)}


def pixels(batch=3, seed=5):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def reference_logits(model, pixel_values) -> torch.Tensor:
    """The plain computation: deep text prompts on the model's layout, deep visual prompts (or the frozen
    tower's features without them), CLIP's scaled cosine similarity."""
    clip, prompts = model.clip, model.prompts
    text = reference_features(clip, prompts.text.layout, prompts.context, prompts.deep_context)
    if prompts.vision_depth:
        image = reference_deep_tower(clip, pixel_values, prompts.visual_prompts, prompts.deep_visual_prompts)
    else:
        image = clip.get_image_features(pixel_values=pixel_values).pooler_output
    return clip.logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T


def logits_and_grads(model, compute) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`compute()` and the gradients of a fixed random weighting of it for every learned tensor (zeros for
    an empty tensor, which no layer reads)."""
    tensors = learned(model)
    logits = compute()
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(7))
    grads = torch.autograd.grad((logits * weights).sum(), list(tensors.values()), allow_unused=True)
    grads = {
        name: torch.zeros_like(tensor) if grad is None else grad
        for (name, tensor), grad in zip(tensors.items(), grads)
    }
    return logits.detach(), grads


def assert_equals_the_reference(model, pixel_values=None) -> dict[str, torch.Tensor]:
    pixel_values = pixels() if pixel_values is None else pixel_values
    model.train()  # the learned text features with autograd, as in training
    ours, our_grads = logits_and_grads(model, lambda: model(pixel_values).logits)
    theirs, their_grads = logits_and_grads(model, lambda: reference_logits(model, pixel_values))
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    for name, grad in our_grads.items():
        assert grad.shape == their_grads[name].shape
        torch.testing.assert_close(
            grad, their_grads[name], atol=1e-4, rtol=0, msg=lambda m, n=name: f"{n}: {m}"
        )
    return our_grads


# ---------------------------------------------------------------- logits and gradients vs the plain reference

SETTINGS = {
    "defaults (2 + 2 tokens, depth 12 = every layer)": {},
    "depth 1 in both towers": {"text_depth": 1, "vision_depth": 1},
    "full depth": {"text_depth": LAYERS, "vision_depth": LAYERS},
    "4 + 3 tokens, depths 3 and 2, random init": {
        "n_ctx": 4, "n_ctx_vision": 3, "text_depth": 3, "vision_depth": 2, "ctx_init": None,
    },
}  # fmt: skip


@pytest.mark.parametrize("options", list(SETTINGS.values()), ids=list(SETTINGS))
def test_logits_and_every_gradient_equal_the_plain_reference(parts, options):
    model = build(parts, **options)
    perturb_learned(model)
    grads = assert_equals_the_reference(model)
    text_depth, vision_depth = model.config.text_depth, model.config.vision_depth
    assert grads["deep_context"].shape[0] == text_depth - 1
    assert grads["deep_visual_prompts"].shape[0] == vision_depth - 1
    # every layer's prompts reach the logits: a wrong layer index would leave one unused
    for name in LEARNED:
        per_layer = grads[name].reshape(-1, *grads[name].shape[-2:])
        assert all(layer.abs().sum() > 0 for layer in per_layer), name


def test_the_defaults_are_the_authors_and_a_depth_past_the_layers_is_every_layer_recorded(parts, caplog):
    config = IVLPConfig()
    assert (config.n_ctx, config.n_ctx_vision, config.text_depth, config.vision_depth) == (2, 2, 12, 12)
    assert config.ctx_init == "a photo of a"
    with caplog.at_level(logging.WARNING, logger=CLAMP_LOGGER):
        model = build(parts)
    assert (model.config.text_depth, model.config.vision_depth) == (LAYERS, LAYERS)  # what runs is recorded
    messages = [r.getMessage() for r in caplog.records if r.name == CLAMP_LOGGER]
    assert any(f"text_depth=12 exceeds the {LAYERS} layers of the text tower" in m for m in messages), (
        messages
    )
    assert any(f"vision_depth=12 exceeds the {LAYERS} layers of the vision tower" in m for m in messages)
    shapes = {name: tuple(tensor.shape) for name, tensor in learned(model).items()}
    assert shapes == {
        "context": (2, 32),
        "deep_context": (LAYERS - 1, 2, 32),
        "visual_prompts": (2, 32),
        "deep_visual_prompts": (LAYERS - 1, 2, 32),
    }
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=CLAMP_LOGGER):
        inside = build(parts, text_depth=LAYERS, vision_depth=2)
    assert (inside.config.text_depth, inside.config.vision_depth) == (LAYERS, 2)
    assert not [r for r in caplog.records if r.name == CLAMP_LOGGER]


def test_the_language_only_variant_is_prompted_text_with_the_frozen_image_features(parts):
    """Deep language prompting (the authors' `..._4ctx_language_only.yaml`): no visual prompt at all, so the
    image features are the frozen tower's and training may read them from the feature cache."""
    assert method_capabilities("ivlp").trains_image_tower
    assert not method_capabilities("ivlp", dict(TEXT_ONLY)).trains_image_tower
    model = build(parts, **TEXT_ONLY)
    perturb_learned(model)
    assert not model.capabilities.trains_image_tower and model.capabilities.cached_features_problem is None
    assert set(model.saved_adapter_state_dict()) == {"prompts.context", "prompts.deep_context"}
    assert model.config.text_depth == LAYERS and model.prompts.vision_depth == 0
    assert_equals_the_reference(model)

    # training from cached features: the features path gives the pixel path's loss and gradients
    _, encode = model.training_image_encoder()
    labels = torch.tensor([0, 2, 1])
    model.train()
    runs = {}
    for path, run in {
        "pixels": lambda: model.logits_and_loss(pixels(), labels),
        "features": lambda: model.logits_and_loss_from_image_features(encode(pixels()), labels),
    }.items():
        model.zero_grad()
        logits, loss = run()
        loss.backward()
        runs[path] = (logits.detach(), loss.detach(), [t.grad.clone() for t in learned(model).values()])
    torch.testing.assert_close(runs["features"][:2], runs["pixels"][:2], atol=1e-5, rtol=0)
    for grad, expected in zip(runs["features"][2], runs["pixels"][2]):
        torch.testing.assert_close(grad, expected, atol=1e-6, rtol=1e-5)
    # with visual prompts, the image features learn: never cached
    with pytest.raises(FrozenFeaturesUnavailable, match="trains through its image tower"):
        build(parts).training_image_encoder()


def test_the_language_only_variant_trains_on_cached_views_and_the_full_one_is_refused_them(parts, tmp_path):
    """With a view per epoch (`augment_views` >= epochs) the features path trains what the pixel path trains
    (tests/test_augment_views.py's check); with image tokens the run is refused before anything runs."""

    def train(name, **settings):
        model = build(parts, names=list(PATTERN_CLASSES), **TEXT_ONLY)
        data = with_image_transform(pattern_benchmark(3, seed=0), train_transform(model.image_processor))
        config = TrainingConfig(
            output_dir=str(tmp_path / name), epochs=3, batch_size=4, learning_rate=0.05, optimizer="sgd",
            lr_schedule="constant", warmup_epochs=0, seed=3, **settings,
        )  # fmt: skip
        PromptTrainer(model, data, config, collate_fn=collate_fn).train()
        return {key: value.clone() for key, value in model.adapter_state_dict().items()}

    initial = build(parts, names=list(PATTERN_CLASSES), **TEXT_ONLY).adapter_state_dict()
    pixels_path, views_path = train("pixels"), train("views", augment_views=3)
    for key, value in pixels_path.items():
        assert not torch.equal(value, initial[key]), key
        torch.testing.assert_close(views_path[key], value, atol=1e-5, rtol=1e-4)
    experiment = ExperimentConfig(
        method="ivlp", base_model=TINY_CLIP_ID, dataset="synthetic_colours", protocol="few_shot",
        output_dir=str(tmp_path / "run"), augment_views=2,
    )  # fmt: skip
    with pytest.raises(AugmentViewsNotSupportedError, match=r"ivlp"):
        check_image_settings("ivlp", {}, experiment)
    check_image_settings("ivlp", dict(TEXT_ONLY), experiment)


def test_the_straightforward_path_equals_the_fast_one(parts):
    fast = build(parts, text_depth=3)
    slow = build(parts, text_depth=3, fast=False)
    perturb_learned(fast)
    perturb_learned(slow)
    assert all(torch.equal(a, b) for a, b in zip(learned(fast).values(), learned(slow).values()))
    fast.train()
    slow.train()
    ours, our_grads = logits_and_grads(fast, lambda: fast(pixels()).logits)
    theirs, their_grads = logits_and_grads(slow, lambda: slow(pixels()).logits)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    for name, grad in our_grads.items():
        torch.testing.assert_close(
            grad, their_grads[name], atol=1e-4, rtol=0, msg=lambda m, n=name: f"{n}: {m}"
        )
    fast.eval()
    slow.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(pixels()).logits, slow(pixels()).logits, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- ctx_init and the prompt layout


def test_n_ctx_learns_the_first_tokens_of_ctx_init_and_the_rest_stays_the_authors_text(parts):
    """n_ctx=2 with "a photo of a": the model reads the tokens of "a photo of a <name>." (the authors' prompt
    text), and only the first 2 token embeddings are learned, started from those tokens' embeddings."""
    clip, tokenizer, _ = parts
    names = ["red star", "blue circle"]
    model = build(parts, names=names, n_ctx=2)
    layout = model.prompts.text.layout
    ids = phrase_token_ids(tokenizer, "a photo of a")
    assert len(ids) > 2  # some words stay fixed text
    for k, name in enumerate(names):
        expected = tokenizer(f"a photo of a {name}.").input_ids
        assert layout.input_ids[k, : len(expected)].tolist() == expected
        assert layout.eos_positions[k].item() == len(expected) - 1
        assert layout.context_index[k].tolist() == [-1, 0, 1] + [-1] * (layout.context_index.shape[1] - 3)
    embeddings = clip.text_model.embeddings.token_embedding.weight
    assert torch.equal(model.prompts.context.detach(), embeddings[ids[:2]])
    # as initialised, the prompt is the hand-written "a photo of a <name>." at the input layer
    with torch.no_grad():
        written = tokenizer([f"a photo of a {name}." for name in names], padding=True, return_tensors="pt")
        hidden = clip.text_model.embeddings(input_ids=written.input_ids)
        ours = clip.text_model.embeddings.token_embedding(layout.input_ids)
        slots = layout.context_index >= 0
        ours[slots] = model.prompts.context[layout.context_index[slots]]
        ours = ours + clip.text_model.embeddings.position_embedding.weight[: ours.shape[1]]
        length = written.input_ids.shape[1]
        torch.testing.assert_close(ours[:, :length], hidden, atol=0, rtol=0)
    # every token of ctx_init learned: no fixed words, the same text
    whole = build(parts, names=names, n_ctx=len(ids))
    assert torch.equal(whole.prompts.text.layout.input_ids, layout.input_ids)
    assert (whole.prompts.text.layout.context_index >= 0).sum(1).tolist() == [len(ids)] * 2
    assert torch.equal(whole.prompts.context.detach(), embeddings[ids])


def test_more_learned_tokens_than_ctx_init_has_are_refused(parts):
    _, tokenizer, _ = parts
    count = len(phrase_token_ids(tokenizer, "a photo of a"))
    with pytest.raises(
        ValueError, match=rf"n_ctx={count + 1} .*ctx_init='a photo of a', which has only {count}"
    ):
        build(parts, n_ctx=count + 1)
    random_init = build(parts, n_ctx=count + 1, ctx_init=None)
    assert random_init.prompts.context.shape == (count + 1, 32)


@pytest.mark.parametrize("position", ["middle", "front"])
def test_fixed_words_with_the_class_name_elsewhere_than_at_the_end_are_refused(parts, position):
    clip, tokenizer, processor = parts
    message = (
        rf"n_ctx=2 .*ctx_init='a photo of a'.*class_token_position='{position}'.*class_token_position='end'"
    )
    with pytest.raises(SettingError, match=message):
        build(parts, n_ctx=2, class_token_position=position)
    config = IVLPConfig(clip_config=clip.config.to_dict(), n_ctx=2, class_token_position=position)
    with pytest.raises(SettingError, match=message):  # refused when built, before any class list
        IVLPModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)
    # without fixed words the name may go anywhere
    count = len(phrase_token_ids(tokenizer, "a photo of a"))
    for options in ({"n_ctx": count}, {"n_ctx": 2, "ctx_init": None}):
        model = build(parts, class_token_position=position, **options)
        perturb_learned(model)
        assert_equals_the_reference(model)


@pytest.mark.parametrize(("tokens", "depth"), [(0, 3), (2, 0)])
def test_visual_tokens_and_depth_must_both_be_zero_or_both_positive(parts, tokens, depth):
    message = rf"n_ctx_vision={tokens} with vision_depth={depth}: .*both at least 1.*or both 0"
    with pytest.raises(SettingError, match=message):
        IVLPConfig(n_ctx_vision=tokens, vision_depth=depth)
    with pytest.raises(SettingError, match=message):
        build(parts, n_ctx_vision=tokens, vision_depth=depth)


# ---------------------------------------------------------------- saving, loading, pipelines, class lists


@pytest.mark.parametrize("options", [{}, TEXT_ONLY], ids=["both towers", "language only"])
def test_the_adapter_round_trips_through_the_auto_classes_and_serves_both_pipelines(
    tiny_clip_folder, tmp_path, options, caplog
):
    torch.manual_seed(0)
    model = IVLPModel.from_clip(tiny_clip_folder, PATTERN_NAMES, **options)
    perturb_learned(model)
    assert (model.config.text_depth, model.config.vision_depth) == (2, 2 if not options else 0)  # 2 layers
    with torch.no_grad():
        expected = model.eval()(pixels()).logits
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert set(saved) == {f"prompts.{name}" for name in learned(model)}
    for name, tensor in learned(model).items():
        value = saved[f"prompts.{name}"]
        assert value.dtype == torch.float32 and torch.equal(value, tensor)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, IVLPConfig)
    recorded = (config.n_ctx, config.n_ctx_vision, config.text_depth, config.vision_depth)
    assert recorded == (model.config.n_ctx, model.config.n_ctx_vision, 2, model.config.vision_depth)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=CLAMP_LOGGER):
        for auto_class in (AutoModel, AutoModelForImageClassification):
            loaded = auto_class.from_pretrained(tmp_path)
            assert isinstance(loaded, IVLPModel)
            with torch.no_grad():
                assert torch.equal(loaded(pixels()).logits, expected)
    assert not [r for r in caplog.records if r.name == CLAMP_LOGGER]  # the recorded depths load as they are
    if not options:
        assert_pipelines_score_like_the_model(model, tmp_path)


def test_the_class_list_changes_and_the_text_features_cache_follows_every_prompt_tensor(parts):
    model = build(parts)
    perturb_learned(model)
    model.eval()
    features = model.class_text_features()
    assert model.class_text_features() is features  # cached in evaluation
    assert not features.requires_grad
    with torch.no_grad():
        logits = model(pixels()).logits
        with model.using_class_names(["pink heart", "cyan cross"]):
            assert model(pixels()).logits.shape == (3, 2)
        assert torch.equal(model(pixels()).logits, logits)  # the prompts of the restored list, rebuilt
    model.set_class_names(["pink heart", "cyan cross"])
    with torch.no_grad():
        assert model(pixels()).logits.shape == (3, 2)
    assert_equals_the_reference(model)

    # one optimiser step on the deep text prompts alone: the evaluation features follow it
    model.eval()
    before = model.class_text_features()
    for name, tensor in learned(model).items():
        tensor.requires_grad_(name == "deep_context")
    model.train()
    optimizer = torch.optim.SGD([model.prompts.deep_context], lr=1.0)
    loss = model(pixels(), labels=torch.tensor([0, 1, 1])).loss
    loss.backward()
    optimizer.step()
    model.eval()
    after = model.class_text_features()
    assert (after - before).abs().max() > 1e-4
    with torch.no_grad():
        fresh = reference_features(
            model.clip, model.prompts.text.layout, model.prompts.context, model.prompts.deep_context
        )
    torch.testing.assert_close(after, fresh, atol=1e-5, rtol=0)
    assert model.class_text_features() is after


def test_registered_with_its_paper():
    info = method_info("ivlp")
    assert info.title == "IVLP" and "Khattak" in info.paper and "khattak2023maple" in info.citation


# ---------------------------------------------------------------- learning on the synthetic world


def test_ivlp_beats_zero_shot_on_base_classes_and_keeps_new_ones(tmp_path):
    """The learning test (tests/test_learning.py's setting, 4 epochs, 15 to 20 s): the defaults (2 + 2 tokens
    from "a photo of a", every layer of the tiny CLIP's 4) gain on the base classes and do not lose more than
    5 points on the new ones (measured: 42.50 / 35.50 against zero-shot 32.50 / 28.75)."""
    results = compare_on_sketches(tmp_path, "base2new", ["zeroshot", "ivlp"], method="ivlp", epochs=4)
    assert results["ivlp"]["base"] >= results["zeroshot"]["base"] + 5.0, results
    assert results["ivlp"]["new"] >= results["zeroshot"]["new"] - 5.0, results
