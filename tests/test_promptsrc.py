"""PromptSRC: IVLP's deep prompts, three self-regularisers towards the frozen CLIP, and Gaussian prompt
aggregation (GPA) as the training stage's epoch average (docs/deep-prompts.md, PromptSRC `trainers/promptsrc.py`).

The logits, the loss and the gradients are compared with plain references on identical tiny random weights
(tests/deep_reference.py for the prompted towers; the frozen anchors and the three losses written out here).
"""

import contextlib
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    PATTERN_NAMES,
    Interrupt,
    assert_pipelines_score_like_the_model,
    compare_on_sketches,
    stop_at_forward,
)
from deep_reference import reference_deep_tower, reference_features
from safetensors.torch import load_file
from scipy.stats import norm
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

import hf_prompt_clip.train as train
from hf_prompt_clip import PromptSRCConfig, PromptSRCModel
from hf_prompt_clip.core.registry import METHODS, method_info
from hf_prompt_clip.data import collate_fn, train_transform, with_image_transform
from hf_prompt_clip.data.templates import IMAGENET_TEMPLATES_60
from hf_prompt_clip.modeling.stages import EpochAverage
from hf_prompt_clip.testing import pattern_benchmark, tiny_clip
from hf_prompt_clip.train.epoch_average import EPOCH_SUM_FILE

LAYERS = 4
NAMES = ["red star", "blue_circle", "green square"]
LABELS = torch.tensor([0, 1, 2, 0])
LEARNED = ("context", "deep_context", "visual_prompts", "deep_visual_prompts")


@pytest.fixture(scope="module")
def parts():
    """A tiny random CLIP with 4 layers per tower (prompt depths 1 .. 4), its tokenizer and processor."""
    return tiny_clip(seed=0, layers=LAYERS)


def build(parts, **options):
    clip, tokenizer, processor = parts
    torch.manual_seed(0)
    config = PromptSRCConfig(clip_config=clip.config.to_dict(), class_names=NAMES, **options)
    model = PromptSRCModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)
    with torch.no_grad():  # prompts far from their initialisation, so that every term matters
        for name in LEARNED:
            getattr(model.prompts, name).normal_(std=0.3)
    return model.train()


def pixels(batch=4, seed=0):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def learned(model):
    return [getattr(model.prompts, name) for name in LEARNED]


def reference(model, pixel_values):
    """Prompted logits `(B, K)` and the text `(K, E)` and image `(B, E)` features, written plainly."""
    clip, prompts = model.clip, model.prompts
    model._ensure_class_prompts()
    text = reference_features(clip, prompts.text.layout, prompts.context, prompts.deep_context)
    image = reference_deep_tower(clip, pixel_values, prompts.visual_prompts, prompts.deep_visual_prompts)
    logits = clip.logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    return logits, text, image


def frozen_reference(model, pixel_values):
    """The frozen anchors as the authors compute them: CLIP's text features of the 60 templates per class,
    raw, averaged, then normalised; the unprompted tower's image features, normalised; their logits."""
    clip, tokenizer = model.clip, model.tokenizer
    names = [name.replace("_", " ") for name in NAMES]
    with torch.no_grad():
        texts = [template.format(name) for name in names for template in IMAGENET_TEMPLATES_60]
        raw = clip.get_text_features(**tokenizer(texts, padding=True, return_tensors="pt")).pooler_output
        text = F.normalize(raw.view(len(names), len(IMAGENET_TEMPLATES_60), -1).mean(1), dim=-1)
        image = F.normalize(clip.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)
    return text, image, clip.logit_scale.exp() * image @ text.T


def reference_terms(model, pixel_values, labels):
    """CE and the three unweighted regularisers, written plainly (`trainers/promptsrc.py:297-311`)."""
    logits, text, image = reference(model, pixel_values)
    frozen_text, frozen_image, frozen_logits = frozen_reference(model, pixel_values)
    log_p, log_q = logits.log_softmax(-1), frozen_logits.log_softmax(-1)
    return {
        "ce": F.cross_entropy(logits, labels),
        "text": (F.normalize(text, dim=-1) - frozen_text).abs().mean(),
        "image": (F.normalize(image, dim=-1) - frozen_image).abs().mean(),
        # KL(p_frozen || p_prompted): sum_bk q (log q - log p), summed, divided by B x K
        "logits": (log_q.exp() * (log_q - log_p)).sum() / logits.numel(),
        "reverse_kl": (log_p.exp() * (log_p - log_q)).sum() / logits.numel(),
    }


def gradients(loss, model):
    """The loss's gradient of every learned tensor (zeros for the empty deep prompts of depth 1)."""
    tensors = learned(model)
    found = torch.autograd.grad(loss, tensors, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, found)]


# ---------------------------------------------------------------- equal to the plain references


@pytest.mark.parametrize("depth", [None, 1], ids=["defaults-depth-9-clamped-to-4", "depth-1"])
def test_logits_and_gradients_equal_the_plain_reference(parts, depth):
    options = {} if depth is None else {"text_depth": depth, "vision_depth": depth}
    model = build(parts, **options)
    expected_depth = LAYERS if depth is None else 1
    assert (model.config.text_depth, model.config.vision_depth) == (expected_depth, expected_depth)
    assert model.prompts.deep_context.shape == (expected_depth - 1, 4, 32)
    assert model.prompts.deep_visual_prompts.shape == (expected_depth - 1, 4, 32)
    ours = model(pixels()).logits
    theirs, _, _ = reference(model, pixels())
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    ours_grads = gradients(F.cross_entropy(ours, LABELS), model)
    theirs_grads = gradients(F.cross_entropy(theirs, LABELS), model)
    for name, a, b in zip(LEARNED, ours_grads, theirs_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=name)
        if b.numel():
            assert b.abs().max() > 1e-6, name  # every learned tensor reaches the logits


def test_each_regulariser_equals_its_plain_computation_kl_in_the_authors_direction(parts):
    terms = reference_terms(build(parts), pixels(), LABELS)
    assert abs(terms["logits"] - terms["reverse_kl"]) > 1e-3  # the direction is measurable here
    assert min(terms["text"], terms["image"], terms["logits"]) > 1e-3
    for name, field in (
        ("text", "text_loss_weight"),
        ("image", "image_loss_weight"),
        ("logits", "logits_loss_weight"),
    ):
        weights = {"text_loss_weight": 0.0, "image_loss_weight": 0.0, "logits_loss_weight": 0.0, field: 3.0}
        model = build(parts, **weights)
        output = model(pixels(), labels=LABELS)
        ce = F.cross_entropy(output.logits, LABELS)
        torch.testing.assert_close(
            output.loss - ce, 3.0 * terms[name].detach(), atol=1e-5, rtol=1e-4, msg=name
        )


def test_the_loss_is_ce_plus_the_three_weighted_terms_with_the_references_gradients(parts):
    model = build(parts)
    config = model.config
    assert (config.text_loss_weight, config.image_loss_weight, config.logits_loss_weight) == (25.0, 10.0, 1.0)
    loss = model(pixels(), labels=LABELS).loss
    terms = reference_terms(model, pixels(), LABELS)
    expected = terms["ce"] + 25.0 * terms["text"] + 10.0 * terms["image"] + 1.0 * terms["logits"]
    torch.testing.assert_close(loss, expected, atol=1e-4, rtol=1e-5)
    for name, a, b in zip(LEARNED, gradients(loss, model), gradients(expected, model)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=name)


def test_weights_zero_is_cross_entropy_only_and_the_frozen_passes_never_run(parts, monkeypatch):
    model = build(parts, text_loss_weight=0.0, image_loss_weight=0.0, logits_loss_weight=0.0)

    def refuse(*args, **kwargs):
        raise AssertionError("a frozen pass ran with every regulariser weight 0")

    monkeypatch.setattr(model, "frozen_image_features", refuse)
    monkeypatch.setattr(model, "frozen_text_features", refuse)
    output = model(pixels(), labels=LABELS)
    assert torch.equal(output.loss, F.cross_entropy(output.logits, LABELS))


def test_the_frozen_text_anchors_average_raw_features_of_the_60_templates_and_are_cached(parts):
    model = build(parts)
    assert len(IMAGENET_TEMPLATES_60) == len(set(IMAGENET_TEMPLATES_60)) == 60
    assert IMAGENET_TEMPLATES_60[0] == "a photo of a {}." and IMAGENET_TEMPLATES_60[-1] == "itap of the {}."
    expected, _, _ = frozen_reference(model, pixels())
    anchors = model.frozen_text_features()
    torch.testing.assert_close(anchors, expected, atol=1e-5, rtol=0)
    assert model.frozen_text_features() is anchors  # computed once per class list
    assert not anchors.requires_grad
    with model.using_class_names(["purple", "orange"]):
        assert model.frozen_text_features().shape == (2, 16)
    # not CLIP's ensemble (each template normalised first): the raw average is what the authors anchor to
    from hf_prompt_clip.modeling.text_engine import template_text_features

    ensemble = template_text_features(model.clip, model.tokenizer, ["red star"], list(IMAGENET_TEMPLATES_60))
    assert (ensemble[0] - anchors[0]).abs().max() > 1e-4


def test_evaluation_is_the_prompted_logits_only(parts):
    model = build(parts).eval()
    with torch.no_grad():
        logits = model(pixels()).logits
        theirs, _, _ = reference(model, pixels())
        torch.testing.assert_close(logits, theirs, atol=1e-4, rtol=1e-4)
        assert torch.equal(model.classify(pixels()), logits)
        training_loss = model(pixels(), labels=LABELS).loss  # with labels: the training loss
        assert training_loss > F.cross_entropy(logits, LABELS)


# ---------------------------------------------------------------- GPA: the stage's epoch average


def test_the_stage_averages_its_epochs_with_gaussian_weights_unless_gpa_is_off(parts):
    (stage,) = build(parts).training_stages()
    assert stage.epoch_average == EpochAverage("gaussian", 15.0, 1.0)
    assert set(stage.trainable) == {f"prompts.{name}" for name in LEARNED}
    (plain,) = build(parts, gpa=False).training_stages()
    assert plain.epoch_average is None
    (moved,) = build(parts, gpa_mean=6.0, gpa_std=10.0).training_stages()
    density = norm.pdf(range(1, 21), loc=6, scale=10)
    torch.testing.assert_close(
        torch.tensor(moved.epoch_weights(20), dtype=torch.float64),
        torch.tensor(density / density.sum()),
        atol=1e-12,
        rtol=0,
    )


CLASSES = list(PATTERN_NAMES)
SETTINGS = dict(
    epochs=3,
    batch_size=8,
    learning_rate=0.05,
    optimizer="sgd",
    lr_schedule="constant",
    warmup_epochs=0,
    seed=3,
    checkpoint_every_steps=2,
    keep_checkpoints=10,
)
STEPS = 12  # 32 images, 8 per step: 4 steps per epoch


def run(folder, output, stop_at=None, gpa=True, **overrides):
    """Train a fresh tiny PromptSRC (GPA peaking at epoch 2 of 3) into `output`; with `stop_at`, die at that
    forward call. Returns the model (its learned tensors as training left them)."""
    torch.manual_seed(0)
    model = PromptSRCModel.from_clip(folder, CLASSES, gpa=gpa, gpa_mean=2.0, gpa_std=1.0)
    stop_at_forward(model, stop_at)
    examples = with_image_transform(pattern_benchmark(8, seed=0), train_transform(model.image_processor))
    config = train.TrainingConfig(output_dir=str(output), **{**SETTINGS, **overrides})
    with contextlib.suppress(Interrupt):
        train.PromptTrainer(model, examples, config, collate_fn=collate_fn).train()
    return model


def adapter(model):
    return {key: value.detach().clone() for key, value in model.adapter_state_dict().items()}


def checkpoint(output, step):
    return load_file(output / "checkpoints" / f"checkpoint-{step}" / "model.safetensors")


@pytest.fixture(scope="module")
def gpa_runs(tiny_clip_folder, tmp_path_factory):
    """The same run twice, without GPA and with it (GPA changes no step: only the stage's result)."""
    root = tmp_path_factory.mktemp("gpa")
    plain = run(tiny_clip_folder, root / "plain", gpa=False)
    averaged = run(tiny_clip_folder, root / "gpa")
    return root, adapter(plain), adapter(averaged)


def test_gpa_is_the_weighted_sum_of_the_epochs_snapshots(gpa_runs):
    root, plain, averaged = gpa_runs
    snapshots = [checkpoint(root / "plain", step) for step in (4, 8, 12)]  # the end of epochs 1, 2, 3
    assert all(torch.equal(snapshots[-1][key], plain[key]) for key in plain)  # without GPA: the last epoch
    for step in (2, 4, 6, 8, 10):  # the same trajectory with GPA
        ours, theirs = checkpoint(root / "gpa", step), checkpoint(root / "plain", step)
        assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    density = norm.pdf([1, 2, 3], loc=2, scale=1)
    weights = density / density.sum()  # 0.274, 0.452, 0.274
    for key in plain:
        expected = sum(w * snapshot[key].double() for w, snapshot in zip(weights, snapshots))
        torch.testing.assert_close(averaged[key].double(), expected, atol=1e-6, rtol=0, msg=key)
        assert (averaged[key] - plain[key]).abs().max() > 1e-4, key  # the average is not the last epoch
    last = checkpoint(root / "gpa", 12)  # the stage's last checkpoint holds its result, and the running sum
    assert all(torch.equal(last[key], averaged[key]) for key in averaged)
    assert (root / "gpa" / "checkpoints" / "checkpoint-12" / EPOCH_SUM_FILE).is_file()
    assert not (root / "plain" / "checkpoints" / "checkpoint-12" / EPOCH_SUM_FILE).exists()
    assert not (root / "gpa" / "checkpoints" / "checkpoint-2" / EPOCH_SUM_FILE).exists()  # no epoch done yet


# killed in epoch 2, resumed from step 6 (the sum of epoch 1 in it) / in epoch 3, from step 8 (epochs 1 and 2)
@pytest.mark.parametrize(("stop_at", "resumed_from"), [(7, 6), (10, 8)])
def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_average_bit_for_bit(
    gpa_runs, tiny_clip_folder, tmp_path, stop_at, resumed_from
):
    _, _, averaged = gpa_runs
    run(tiny_clip_folder, tmp_path, stop_at=stop_at)
    assert train.list_checkpoints(tmp_path)[-1].name == f"checkpoint-{resumed_from}"
    resumed = adapter(run(tiny_clip_folder, tmp_path, resume_from_checkpoint="latest"))
    assert all(torch.equal(resumed[key], averaged[key]) for key in averaged)


def test_a_checkpoint_without_its_running_sum_is_not_resumed(tiny_clip_folder, tmp_path):
    run(tiny_clip_folder, tmp_path, stop_at=7)
    folder = tmp_path / "checkpoints" / "checkpoint-6"
    (folder / EPOCH_SUM_FILE).unlink()  # lost: the checkpoint is incomplete
    with pytest.raises(FileNotFoundError, match=f"not a complete checkpoint.*{EPOCH_SUM_FILE} is missing"):
        run(tiny_clip_folder, tmp_path, resume_from_checkpoint=str(folder))
    state = json.loads((folder / "trainer_state.json").read_text())
    del state["files"][EPOCH_SUM_FILE]  # as a loop that never kept the sum would have written it
    (folder / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(RuntimeError, match=r"holds the epoch average of 0 epoch.*after 1 epoch"):
        run(tiny_clip_folder, tmp_path, resume_from_checkpoint=str(folder))


# ---------------------------------------------------------------- saving, registration, options


def test_adapter_round_trips_through_the_auto_classes_and_serves_both_pipelines(tiny_clip_folder, tmp_path):
    torch.manual_seed(0)
    model = PromptSRCModel.from_clip(tiny_clip_folder, PATTERN_NAMES, text_loss_weight=5.0, gpa_mean=3.0)
    with torch.no_grad():
        for tensor in learned(model):
            tensor.normal_(std=0.3)
        expected = model.eval()(pixels()).logits
    model.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == {f"prompts.{name}" for name in LEARNED}
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, PromptSRCConfig) and (config.text_loss_weight, config.gpa_mean) == (5.0, 3.0)
    for auto_class in (AutoModel, AutoModelForImageClassification):
        loaded = auto_class.from_pretrained(tmp_path)
        assert isinstance(loaded, PromptSRCModel)
        with torch.no_grad():
            assert torch.equal(loaded(pixels()).logits, expected)
    assert_pipelines_score_like_the_model(model, tmp_path)


def test_registered_after_ivlp_with_its_paper():
    order = list(METHODS)
    assert order.index("promptsrc") > order.index("ivlp") > order.index("tip_adapter_f")
    info = method_info("promptsrc")
    assert info.title == "PromptSRC" and "ICCV 2023" in info.paper and "khattak2023promptsrc" in info.citation
    (average,) = info.paper_results
    assert average.metrics == {"base": 84.26, "new": 76.10, "hm": 79.97}
    assert PromptSRCModel.capabilities_of(PromptSRCConfig()).trains_image_tower


def test_defaults_are_the_authors_base_to_new_setting():
    config = PromptSRCConfig()
    assert (config.n_ctx, config.n_ctx_vision, config.text_depth, config.vision_depth) == (4, 4, 9, 9)
    assert config.ctx_init == "a photo of a" and config.model_type == "prompt_clip_promptsrc"
    assert (config.gpa, config.gpa_mean, config.gpa_std) == (True, 15.0, 1.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"text_loss_weight": -1.0}, "text_loss_weight must be at least 0"),
        ({"image_loss_weight": -0.5}, "image_loss_weight must be at least 0"),
        ({"logits_loss_weight": -2.0}, "logits_loss_weight must be at least 0"),
        ({"gpa_std": 0.0}, "gpa_std must be positive"),
        ({"gpa_mean": -1.0}, "gpa_mean must be at least 0"),
        ({"n_ctx_vision": 0}, "n_ctx_vision must be at least 1"),
        ({"vision_depth": 0}, "vision_depth must be at least 1"),
        ({"gpa": "yes"}, "gpa"),
        ({"text_los_weight": 1.0}, "text_loss_weight"),  # misspelt: the closest option is named
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PromptSRCConfig(**options)


# ---------------------------------------------------------------- learning


@pytest.mark.slow  # about 40 s on a loaded 2-core machine
def test_promptsrc_beats_zero_shot_on_base_classes_and_keeps_new_ones(tmp_path):
    """The learning test (tests/test_learning.py's setting), a short run: 4 epochs (GPA, mean 15 of the
    authors' 20 epochs, then weighs the last epoch almost alone)."""
    methods = ["zeroshot", "promptsrc"]
    results = compare_on_sketches(tmp_path, "base2new", methods, method="promptsrc", epochs=4)
    assert results["promptsrc"]["base"] >= results["zeroshot"]["base"] + 5.0, results
    # new classes: not forgotten (measured: base 43.0 vs 32.5, new 40.25 vs 28.75 zero-shot)
    assert results["promptsrc"]["new"] >= results["zeroshot"]["new"] - 5.0, results
