"""One contract for a method: the toy "feature_shift" (tests/toy_method.py), defined only in the tests, is a
method like any other once registered, with no change to generic code.

It trains through the command line beside the zero-shot baseline and beats it, evaluates under every protocol
its capabilities allow, saves and loads through the Auto classes with identical logits, serves both pipelines,
and the run writes its model card and report row. `unregister_method` removes every trace of it again.
docs/adding-a-method.md walks through the toy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import PATTERN_NAMES, assert_pipelines_score_like_the_model
from safetensors.torch import load_file
from toy_method import INFO, NAME, FeatureShiftConfig, FeatureShiftModel, register, unregister
from transformers import CONFIG_MAPPING, AutoConfig

from hf_prompt_clip import ZeroShotCLIPModel
from hf_prompt_clip.caching.feature_cache import ImageFeatureCache
from hf_prompt_clip.cli import main
from hf_prompt_clip.core.registry import (
    AUTO_MODEL_CLASSES,
    METHOD_INFO,
    METHODS,
    baseline_method,
    method_capabilities,
    method_order,
    unregister_method,
)
from hf_prompt_clip.data import get_benchmark
from hf_prompt_clip.evaluate.protocol_registry import OWN_TEST_SPLIT, protocol_keys, protocols
from hf_prompt_clip.experiment.evaluation import evaluate_adapter
from hf_prompt_clip.train import list_checkpoints

NAMES = ["red star", "blue circle", "green ring"]
TEMPLATES = ["a photo of a {}."]
DATASET = "synthetic_shapes_outline"  # the learning tests' sketches: zero-shot CLIP fits them badly
TARGETS = ("synthetic_shape_only",)  # a small other benchmark for the protocols tested on targets
SHOTS, EPOCHS = 4, 3  # no warm-up epoch; about 8 s on one core; measured: zero-shot 30.62 -> 38.12
MARGIN = 3.0  # accuracy points; one test image is 0.125


@pytest.fixture(scope="module")
def registered() -> Iterator[str]:
    """The toy method registered for this module's tests, unregistered after them."""
    register()
    yield NAME
    unregister()


@pytest.fixture(scope="module")
def run(registered, tmp_path_factory) -> Path:
    """One `hf-prompt-clip train --method feature_shift` on the sketches with the shipped tiny CLIP (the CLI's
    default base model there), the zero-shot baseline beside it, the frozen features cached in a folder."""
    folder = tmp_path_factory.mktemp("feature-shift")
    flags = ["--method", registered, "--dataset", DATASET, "--protocol", "few_shot"]
    flags += ["--shots", str(SHOTS), "--epochs", str(EPOCHS), "--warmup-epochs", "0"]
    flags += ["--feature-cache", str(folder / "features")]
    main(["train", *flags, "--output-dir", str(folder / "run")])
    return folder


def pixels(batch: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def make_model(clip_parts, names=NAMES, **options) -> FeatureShiftModel:
    clip, tokenizer, processor = clip_parts
    config = FeatureShiftConfig(
        clip_config=clip.config.to_dict(), class_names=names, templates=TEMPLATES, **options
    )
    return FeatureShiftModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def set_shift(model: FeatureShiftModel, seed: int = 1, std: float = 0.3) -> None:
    """A shift far from zero, so that a mix-up would show."""
    with torch.no_grad():
        model.shift.copy_(torch.randn(model.shift.shape, generator=torch.Generator().manual_seed(seed)) * std)


# ------------------------------------------------------------------ the method itself


def test_a_zero_shift_is_zero_shot_clip_and_a_shift_is_the_written_out_formula(clip_parts):
    clip, tokenizer, processor = clip_parts
    model = make_model(clip_parts)
    assert torch.equal(model.shift, torch.zeros(clip.config.projection_dim))  # shift_init_std=0: zero
    zero_shot = ZeroShotCLIPModel.from_clip(
        clip, NAMES, templates=TEMPLATES, tokenizer=tokenizer, image_processor=processor
    )
    with torch.no_grad():
        torch.testing.assert_close(model(pixels()).logits, zero_shot(pixels()).logits, atol=1e-5, rtol=0)
    set_shift(model)
    with torch.no_grad():
        image = F.normalize(clip.get_image_features(pixel_values=pixels()).pooler_output, dim=-1)
        batch = tokenizer([TEMPLATES[0].format(name) for name in NAMES], padding=True, return_tensors="pt")
        text = F.normalize(clip.get_text_features(**batch).pooler_output, dim=-1)
        expected = clip.logit_scale.exp() * F.normalize(image + model.shift, dim=-1) @ text.T
        torch.testing.assert_close(model(pixels()).logits, expected, atol=1e-4, rtol=0)


def test_only_the_shift_trains(clip_parts):
    model = make_model(clip_parts)
    (stage,) = model.training_stages()
    assert stage.name == "shift" and model.set_training_stage(stage) == ["shift"]
    before = {key: value.clone() for key, value in model.state_dict().items()}
    model.train()
    model(pixels(), labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    changed = [key for key, value in model.state_dict().items() if not torch.equal(before[key], value)]
    assert changed == ["shift"]


def test_it_classifies_from_cached_frozen_features_as_from_pixels(clip_parts):
    """The feature cache's contract (`frozen_image_encoder`), which the toy meets by overriding only
    `logits_from_image_features`: cached evaluation and `--augment-views` training apply to it."""
    model = make_model(clip_parts)
    set_shift(model)
    assert model.capabilities.cached_features_problem is None
    _, encode = model.training_image_encoder()
    with torch.no_grad():
        from_features, from_pixels = (
            model.logits_from_image_features(encode(pixels())),
            model(pixels()).logits,
        )
    assert torch.equal(from_features, from_pixels)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"shift_init_std": -0.1}, "shift_init_std must be at least 0"),
        ({"shift_init_sd": 0.1}, "did you mean 'shift_init_std'"),
        ({"shift_init_std": "0.1"}, "FeatureShiftConfig.shift_init_std takes"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options, error):
    with pytest.raises(ValueError, match=error):
        FeatureShiftConfig(class_names=NAMES, **options)


def test_a_class_name_too_long_for_the_text_encoder_is_refused_naming_it(clip_parts):
    model = make_model(clip_parts, names=["red star", "very " * 80 + "long name"])
    with pytest.raises(
        ValueError, match=r"The prompt for 'a photo of a very .* but the text encoder has only 77"
    ):
        model(pixels())


# ------------------------------------------------------------------ the registry


def test_registered_like_a_real_method(registered):
    assert method_order()[-1] == registered and METHOD_INFO[registered] is INFO
    assert method_capabilities(registered).classes_can_change
    assert isinstance(AutoConfig.for_model(FeatureShiftConfig.model_type), FeatureShiftConfig)


def test_unregister_method_removes_every_trace_and_registering_again_restores_it(registered):
    others = [name for name in METHODS if name != registered]
    assert unregister_method(registered) == (FeatureShiftConfig, FeatureShiftModel)
    try:
        assert list(METHODS) == others and registered not in METHOD_INFO
        assert FeatureShiftConfig.model_type not in CONFIG_MAPPING
        with pytest.raises(ValueError, match="Unrecognized model identifier"):
            AutoConfig.for_model(FeatureShiftConfig.model_type)
        assert not any(FeatureShiftConfig in auto_class._model_mapping for auto_class in AUTO_MODEL_CLASSES)
        with pytest.raises(ValueError, match=f"Unknown method '{registered}'"):
            unregister_method(registered)
    finally:
        register()
    assert list(METHODS) == [*others, registered]
    assert CONFIG_MAPPING[FeatureShiftConfig.model_type] is FeatureShiftConfig
    assert all(
        auto_class._model_mapping[FeatureShiftConfig] is FeatureShiftModel
        for auto_class in AUTO_MODEL_CLASSES
    )


# ------------------------------------------------------------------ what a method gets for free


def test_it_trains_from_the_command_line_and_beats_zero_shot(run, registered):
    results = {entry["method"]: entry for entry in json.loads((run / "run" / "results.json").read_text())}
    baseline = baseline_method()  # zero-shot CLIP, which every comparison includes
    assert list(results) == [baseline, registered]
    assert results[registered]["shots"] == SHOTS and results[baseline]["shots"] == 0
    gain = results[registered]["mean"]["accuracy"] - results[baseline]["mean"]["accuracy"]
    assert gain >= MARGIN, results
    seed = run / "run" / registered / "seed1"
    assert load_file(seed / "adapter" / "model.safetensors")["shift"].abs().max() > 0.01  # it learned
    log = json.loads((list_checkpoints(seed)[-1] / "trainer_state.json").read_text())["log"]
    assert [entry["stage"] for entry in log] == ["shift"] * EPOCHS
    assert log[-1]["loss"] < log[0]["loss"], log


def test_it_evaluates_under_every_protocol_its_capabilities_allow(run, registered):
    spec = get_benchmark(DATASET)
    capabilities = method_capabilities(registered)
    allowed = [
        protocol
        for protocol in protocols()
        if protocol.problem(spec, TARGETS) is None
        and (capabilities.classes_can_change or not protocol.classes_must_change)
    ]
    assert [protocol.key for protocol in allowed] == list(protocol_keys())  # its classes can change: all
    cache = ImageFeatureCache(directory=run / "features")  # the run's: its test features are reused
    adapter = run / "run" / registered / "seed1" / "adapter"
    recorded = json.loads((run / "run" / "results.json").read_text())[-1]
    assert recorded["method"] == registered
    for protocol in allowed:
        targets = TARGETS if protocol.needs_targets else ()
        # the adapter knows all classes; protocols testing other classes classify the data's own
        result = evaluate_adapter(
            adapter, dataset=DATASET, protocol=protocol.key, targets=targets, classes_from_data=True,
            feature_cache=cache,
        )  # fmt: skip
        assert result.method == registered and result.protocol == protocol.key
        assert list(result.mean) == list(protocol.metrics or targets)
        assert all(0 <= value <= 100 for value in result.mean.values()), result.mean
        if protocol.tests_on == OWN_TEST_SPLIT:  # the run's own protocol: the run's own number
            assert result.mean == recorded["mean"]


def test_save_and_auto_load_give_identical_logits(registered, tiny_clip_folder, tmp_path):
    torch.manual_seed(0)
    model = FeatureShiftModel.from_clip(tiny_clip_folder, PATTERN_NAMES, shift_init_std=0.3)
    assert model.shift.abs().max() > 0  # shift_init_std draws it
    with torch.no_grad():
        expected = model.eval()(pixels()).logits
    model.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == {"shift"}  # the adapter only, never CLIP
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, FeatureShiftConfig) and config.shift_init_std == 0.3
    for auto_class in AUTO_MODEL_CLASSES:
        loaded = auto_class.from_pretrained(tmp_path)
        assert type(loaded) is FeatureShiftModel and loaded.config.templates == model.config.templates
        with torch.no_grad():
            assert torch.equal(loaded(pixels()).logits, expected)
    assert_pipelines_score_like_the_model(model, tmp_path, hypothesis_template=model.config.templates[0])


def test_the_run_writes_a_model_card_and_a_report_row_naming_the_method(run, registered):
    card = (run / "run" / registered / "seed1" / "adapter" / "README.md").read_text()
    assert f"A **{INFO.title}** {INFO.kind}" in card and INFO.learned in card
    assert f"| method | {INFO.title} (`{FeatureShiftConfig.model_type}`) |" in card
    assert "| `shift_init_std` | `0.0` |" in card  # its options, as for any method
    report = (run / "run" / "results.md").read_text()
    row = f"| {registered} | {DATASET} *(synthetic)* | few-shot | {SHOTS} | accuracy |"
    assert row in report, report
