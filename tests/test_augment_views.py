"""`--augment-views V` (issue 16, item 6): gradient stages train on V precomputed augmented views per image.

Only the views the epochs read are encoded: min(V, the longest gradient stage's epochs), the number the
results, `training_args.json`, the card and the fingerprint record, with a warning when it is less than V
(issue 24, item 3).

View `v` of every training image is encoded once through the feature cache (drawn as the pixel path draws
epoch `v`), and epoch `e` trains on view `e mod V`'s features, batches in the pixel path's order. For the same
images, the features path gives the pixel path's loss and gradients (every method that accepts it, from the
registry); with `V >= epochs` it trains exactly what the pixel path trains. Methods whose image path is not
frozen are refused, asked of the model. The setting is part of the run's fingerprint and is recorded in the
results, `training_args.json` and the card.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import Interrupt, accelerate_launch, launch_environment, stop_at_forward
from safetensors.torch import load_file

from hf_prompt_clip.caching.feature_cache import FrozenFeaturesUnavailable, SeededViews
from hf_prompt_clip.cli import main
from hf_prompt_clip.core.registry import METHODS, get_method, method_capabilities
from hf_prompt_clip.data import collate_fn, train_transform, with_image_transform
from hf_prompt_clip.modeling.stages import TrainingStage
from hf_prompt_clip.runner import (
    AugmentViewsNotSupportedError,
    ExperimentConfig,
    check_image_settings,
    run_experiment,
)
from hf_prompt_clip.synthetic import TINY_CLIP_ID
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, tiny_clip
from hf_prompt_clip.train import (
    PromptTrainer,
    RunMismatchError,
    TrainingConfig,
    augment_views_used,
    settings_used,
)

ROOT = Path(__file__).parent.parent

#: Options a method cannot be built without on the pattern classes.
REQUIRED_OPTIONS = {"mpfgvc": {"super_category": "pattern"}}


def options_of(method: str) -> dict:
    return dict(REQUIRED_OPTIONS.get(method, {}))


def build(method: str, **options):
    torch.manual_seed(0)
    clip, tokenizer, processor = tiny_clip(seed=0)
    model_class = get_method(method)[1]
    return model_class.from_clip(
        clip,
        list(PATTERN_CLASSES),
        tokenizer=tokenizer,
        image_processor=processor,
        **options_of(method),
        **options,
    )


def augmented(model, per_class: int = 3):
    """The pattern classes through the augmenting training transform (every view differs)."""
    return with_image_transform(pattern_benchmark(per_class, seed=0), train_transform(model.image_processor))


def config(tmp_path, **overrides) -> TrainingConfig:
    settings = dict(
        output_dir=str(tmp_path), epochs=3, batch_size=4, learning_rate=0.05, optimizer="sgd",
        lr_schedule="constant", warmup_epochs=0, seed=3,
    )  # fmt: skip
    settings.update(overrides)
    return TrainingConfig(**settings)


def accepting() -> list[str]:
    """Methods that learn parameters and train from cached features, as their model classes say."""
    return [
        name
        for name in METHODS
        if method_capabilities(name, options_of(name)).learns_parameters
        and method_capabilities(name, options_of(name)).cached_features_problem is None
    ]


def refusing() -> list[str]:
    return [
        name
        for name in METHODS
        if method_capabilities(name, options_of(name)).cached_features_problem is not None
    ]


def test_the_model_classes_say_which_methods_train_from_cached_features():
    """Asked of the models (never by name): the class-level answer and the built model's agree."""
    assert {"coop", "cocoop", "clip_adapter", "kgcoop"} <= set(accepting())
    assert {"plot", "plotpp", "mpfgvc"} <= set(refusing())
    for name in METHODS:
        model = build(name)
        if name in refusing():
            with pytest.raises(FrozenFeaturesUnavailable):
                model.training_image_encoder()
        else:
            identity, encode = model.training_image_encoder()
            assert isinstance(identity, str) and callable(encode)


@pytest.mark.parametrize("method", accepting())
def test_loss_and_gradients_from_cached_features_equal_the_pixel_path(method, tmp_path):
    """For every accepting method: `model(image_features=...)` of a cached view gives the loss, logits and
    gradients of `model(pixel_values=...)` of the same view's pixels, in every training stage."""
    model = build(method)
    data = augmented(model)
    trainer = PromptTrainer(model, data, config(tmp_path, augment_views=2), collate_fn=collate_fn)
    views, labels = trainer.training_views()
    assert views.shape == (2, len(data), model.clip.config.projection_dim)
    assert not torch.equal(views[0], views[1])  # the views are augmented differently
    rows = torch.tensor([5, 0, 7, 2, 3])
    pixels = collate_fn([SeededViews(data, seed=3, view=1)[int(i)] for i in rows])
    assert torch.equal(pixels["labels"], labels[rows])
    stages = [s for s in model.training_stages() if s.kind == "gradient"] or [None]
    for stage in stages:
        if stage is not None:
            model.set_training_stage(stage)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad] if stage is not None else []
        results = []
        for inputs in ({"pixel_values": pixels["pixel_values"]}, {"image_features": views[1][rows]}):
            model.zero_grad()
            output = model(**inputs, labels=labels[rows])
            if trainable:
                output.loss.backward()
            results.append(
                (output.logits.detach(), output.loss.detach(), [p.grad.clone() for p in trainable])
            )
        (logits_a, loss_a, grads_a), (logits_b, loss_b, grads_b) = results
        torch.testing.assert_close(logits_b, logits_a, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(loss_b, loss_a, atol=1e-6, rtol=1e-6)
        assert (grads_a and all(g.abs().sum() > 0 for g in grads_a)) or stage is None
        for grad_a, grad_b in zip(grads_a, grads_b):
            torch.testing.assert_close(grad_b, grad_a, atol=1e-6, rtol=1e-5)


def test_kgcoop_features_loss_includes_the_knowledge_guided_term(tmp_path):
    model = build("kgcoop")
    data = augmented(model)
    views, labels = PromptTrainer(
        model, data, config(tmp_path, augment_views=1), collate_fn=collate_fn
    ).training_views()
    plain = build("kgcoop", kg_weight=0.0)
    with torch.no_grad():
        for learner in (model, plain):  # away from the hand-crafted prompt it starts at (L_kg = 0 there)
            learner.context.add_(
                0.5 * torch.randn(learner.context.shape, generator=torch.Generator().manual_seed(0))
            )
        with_kg = model(image_features=views[0], labels=labels).loss
        without = plain(image_features=views[0], labels=labels).loss
        expected = without + model.config.kg_weight * model.knowledge_guided_loss()
    assert with_kg > without
    torch.testing.assert_close(with_kg, expected)


def count_tower_images(model) -> list[int]:
    """The number of images of every call of the image tower."""
    calls = []
    model.clip.vision_model.embeddings.register_forward_hook(
        lambda module, args, output: calls.append(len(output))
    )
    return calls


def test_augment_views_encodes_each_training_image_exactly_v_times(tmp_path):
    """5 epochs on 2 views: the image tower sees each training image twice, all before training."""
    model = build("coop")
    data = augmented(model)
    calls = count_tower_images(model)
    trainer = PromptTrainer(model, data, config(tmp_path, epochs=5, augment_views=2), collate_fn=collate_fn)
    state = trainer.train()
    assert sum(calls) == 2 * len(data)
    assert trainer.feature_cache.encoded_images == 2 * len(data) and trainer.feature_cache.misses == 2
    assert [entry["epoch"] for entry in state.log] == [0, 1, 2, 3, 4]
    assert state.global_step == 5 * 3  # 12 images, batch 4
    pixel = build("coop")
    pixel_calls = count_tower_images(pixel)
    PromptTrainer(
        pixel, augmented(pixel), config(tmp_path / "pixels", epochs=5), collate_fn=collate_fn
    ).train()
    assert sum(pixel_calls) == 5 * len(data)  # the default encodes every image every epoch


@pytest.mark.parametrize("method", ["coop", "clip_adapter"])
def test_with_a_view_per_epoch_the_features_path_trains_what_the_pixel_path_trains(method, tmp_path):
    """V >= epochs: epoch e reads view e, the image the pixel path shows in epoch e, in the same batch order.
    V < epochs repeats views, so it trains something else."""
    trained = {}
    for name, views in (("pixels", None), ("v3", 3), ("v4", 4), ("v1", 1)):
        model = build(method)
        PromptTrainer(
            model, augmented(model), config(tmp_path / name, augment_views=views), collate_fn=collate_fn
        ).train()
        trained[name] = {key: value.clone() for key, value in model.adapter_state_dict().items()}
    initial = build(method).adapter_state_dict()
    for key, value in trained["pixels"].items():
        assert not torch.equal(value, initial[key]) or key.startswith("clip.")
        torch.testing.assert_close(trained["v3"][key], value, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(trained["v4"][key], value, atol=1e-5, rtol=1e-4)
    changed = [key for key in trained["pixels"] if not torch.equal(trained["pixels"][key], initial[key])]
    assert any(not torch.allclose(trained["v1"][key], trained["pixels"][key], atol=1e-5) for key in changed)


def test_an_interrupted_run_resumes_on_the_same_views(tmp_path):
    """Interrupted in epoch 2 (view 0 again, V=2) and resumed: what the uninterrupted run trains."""
    settings = dict(epochs=3, augment_views=2, checkpoint_every_steps=2)
    full = build("coop")
    PromptTrainer(full, augmented(full), config(tmp_path / "a", **settings), collate_fn=collate_fn).train()

    interrupted = build("coop")
    calls = stop_at_forward(interrupted, 7, lambda *args, **kwargs: kwargs.get("image_features") is not None)
    with pytest.raises(Interrupt):
        PromptTrainer(
            interrupted, augmented(interrupted), config(tmp_path / "b", **settings), collate_fn=collate_fn
        ).train()
    assert all(calls)  # every step read cached features

    resumed = build("coop")
    state = PromptTrainer(
        resumed,
        augmented(resumed),
        config(tmp_path / "b", resume_from_checkpoint="latest", **settings),
        collate_fn=collate_fn,
    ).train()
    assert state.global_step == 9
    torch.testing.assert_close(resumed.context, full.context, atol=1e-6, rtol=0)


def test_augment_views_is_part_of_the_run_fingerprint_only_when_set(tmp_path):
    model = build("coop")
    data = augmented(model)

    def trainer(**overrides):
        return PromptTrainer(model, data, config(tmp_path / "run", **overrides), collate_fn=collate_fn)

    plain, two, three = trainer(), trainer(augment_views=2), trainer(augment_views=3)
    assert "augment_views" not in plain.settings["training"]  # runs from before the option keep theirs
    assert two.settings["training"]["augment_views"] == 2
    assert len({plain.fingerprint, two.fingerprint, three.fingerprint}) == 3
    two.train()
    with pytest.raises(RunMismatchError, match=r"training\.augment_views \(2 there, 3 now\)"):
        trainer(augment_views=3, epochs=3).train()
    fitted = build("linear_probe")
    stages = fitted.training_stages()
    assert "augment_views" not in settings_used(config(tmp_path, augment_views=2), stages)  # fits ignore it
    assert settings_used(config(tmp_path, augment_views=2), model.training_stages())["augment_views"] == 2
    assert "augment_views" not in settings_used(config(tmp_path), model.training_stages())


@pytest.mark.parametrize("method", ["plot", "plotpp", "mpfgvc"])
def test_methods_whose_image_path_is_not_frozen_are_refused_with_the_fix(method, tmp_path):
    experiment = ExperimentConfig(
        method=method, method_options=options_of(method), base_model=TINY_CLIP_ID, dataset="synthetic_colours",
        protocol="few_shot", output_dir=str(tmp_path / "run"), augment_views=2,
    )  # fmt: skip
    with pytest.raises(
        AugmentViewsNotSupportedError, match=rf"but {method} .*Drop augment_views for {method}"
    ):
        check_image_settings(method, options_of(method), experiment)
    with pytest.raises(AugmentViewsNotSupportedError):
        run_experiment(experiment)
    assert not (tmp_path / "run").exists()  # refused before anything ran
    model = build(method)  # the trainer refuses too, asking the model
    trainer = PromptTrainer(
        model, augmented(model), config(tmp_path / "direct", augment_views=2), collate_fn=collate_fn
    )
    with pytest.raises(ValueError, match=r"cannot train from cached image features.*without augment_views"):
        trainer.training_views()
    with pytest.raises(ValueError, match=rf"{type(model).__name__} cannot: .*without augment_views"):
        trainer.train()
    assert not (tmp_path / "direct").exists()  # refused before the output folder is touched


def test_augment_views_is_checked():
    with pytest.raises(ValueError, match="augment_views must be a positive number"):
        TrainingConfig(augment_views=0)
    with pytest.raises(ValueError, match="give it once"):
        ExperimentConfig(
            dataset="synthetic_colours", protocol="few_shot", augment_views=2,
            training=TrainingConfig(augment_views=3),
        )  # fmt: skip
    assert (
        ExperimentConfig(
            dataset="synthetic_colours", protocol="few_shot", training=TrainingConfig(augment_views=3)
        ).augment_views
        == 3
    )


def test_augment_views_reaches_results_training_args_and_card(tmp_path):
    experiment = ExperimentConfig(
        method="coop", base_model=TINY_CLIP_ID, dataset="synthetic_colours", shots=1, seeds=(1,),
        protocol="few_shot", output_dir=str(tmp_path / "run"), augment_views=2,
        training=TrainingConfig(epochs=3, batch_size=8),
    )  # fmt: skip
    results = run_experiment(experiment)
    assert results["augment_views"] == 2
    assert json.loads((tmp_path / "run" / "results.json").read_text())[0]["augment_views"] == 2
    adapter = tmp_path / "run" / "seed1" / "adapter"
    assert json.loads((adapter / "training_args.json").read_text())["augment_views"] == 2
    card = (adapter / "README.md").read_text()
    assert "augment_views" in card
    assert load_file(adapter / "model.safetensors").keys() == {"context"}


def test_cli_trains_on_augmented_views_end_to_end(tmp_path):
    """`--augment-views 2` on the synthetic world with the shipped tiny CLIP; the zero-shot baseline beside it
    takes the setting and ignores it (nothing to train), so only CoOp records it."""
    main(["train", "--epochs", "3", "--shots", "2", "--augment-views", "2", "--output-dir", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert [entry["method"] for entry in results] == ["zeroshot", "coop"]
    assert "augment_views" not in results[0] and results[1]["augment_views"] == 2
    adapter = tmp_path / "coop" / "seed1" / "adapter"
    assert json.loads((adapter / "training_args.json").read_text())["augment_views"] == 2
    assert results[1]["mean"]["base"] > 0
    fingerprint = json.loads((tmp_path / "coop" / "seed1" / "run_fingerprint.json").read_text())
    assert fingerprint["settings"]["training"]["augment_views"] == 2


@pytest.mark.skipif(sys.platform != "linux", reason="gloo multi-process test")
def test_two_processes_train_on_augmented_views_as_one_process_with_the_same_global_batch(tmp_path):
    """Each process encodes every view and indexes it by its shard of the pixel path's sampler: two processes
    of batch 4 train what one process of batch 8 trains."""
    train = str(ROOT / "examples" / "train.py")
    options = ["--epochs", "3", "--shots", "4", "--no-baseline", "--augment-views", "2"]
    env = launch_environment(tmp_path / "hf-home")
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run(
        [sys.executable, train, *options, "--batch-size", "8", "--output-dir", str(one)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run(
        [*accelerate_launch(2), train, *options, "--batch-size", "4", "--output-dir", str(two)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    errors = "\n".join(line for line in double.stderr.splitlines() if "it/s" not in line)
    assert double.returncode == 0, errors[-3000:]
    checkpoint = next((two / "coop" / "seed1" / "checkpoints").iterdir())
    assert (checkpoint / "random_states_1.pkl").is_file()  # a second process really trained
    adapters = [load_file(run / "coop" / "seed1" / "adapter" / "model.safetensors") for run in (one, two)]
    torch.testing.assert_close(adapters[1]["context"], adapters[0]["context"], atol=1e-5, rtol=1e-4)
    results = [json.loads((run / "results.json").read_text())[0] for run in (one, two)]
    assert results[0]["augment_views"] == results[1]["augment_views"] == 2
    assert results[1]["mean"] == results[0]["mean"]


def test_only_the_views_the_epochs_read_are_encoded_and_the_number_used_is_recorded(tmp_path, caplog):
    """Issue 24, item 3: `augment_views=5` with 1 epoch encodes one view (epoch 0 reads view 0), warns naming
    both numbers, and the run's fingerprint and settings say 1; V=7 is then the same run, and it trains what
    the pixel path trains (one view per epoch)."""
    model = build("coop")
    data = augmented(model)
    calls = count_tower_images(model)
    trainer = PromptTrainer(
        model, data, config(tmp_path / "v5", epochs=1, augment_views=5), collate_fn=collate_fn
    )
    with caplog.at_level("WARNING", logger="hf_prompt_clip.train.trainer"):
        trainer.train()
    assert sum(calls) == len(data) and trainer.feature_cache.misses == 1  # one view, not five
    assert trainer.views_used == 1 and trainer.settings["training"]["augment_views"] == 1
    assert "augment_views=5 asked" in caplog.text and "1 view encoded and used" in caplog.text
    assert settings_used(trainer.config, model.training_stages())["augment_views"] == 1
    fingerprint = json.loads((tmp_path / "v5" / "run_fingerprint.json").read_text())
    assert fingerprint["settings"]["training"]["augment_views"] == 1
    seven = PromptTrainer(
        build("coop"), data, config(tmp_path / "v7", epochs=1, augment_views=7), collate_fn=collate_fn
    )
    assert seven.fingerprint == trainer.fingerprint  # the same views trained on: the same run
    pixel = build("coop")
    PromptTrainer(
        pixel, augmented(pixel), config(tmp_path / "pixels", epochs=1), collate_fn=collate_fn
    ).train()
    torch.testing.assert_close(model.context, pixel.context, atol=1e-6, rtol=1e-5)
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_prompt_clip.train.trainer"):
        enough = PromptTrainer(
            build("coop"), data, config(tmp_path / "v2", epochs=3, augment_views=2), collate_fn=collate_fn
        )
        assert enough.views_used == 2
        enough.train()
    assert "asked" not in caplog.text  # every view asked for is used: no warning


def test_the_views_used_follow_the_longest_gradient_stage():
    stages = [
        TrainingStage("first", ("a",), epochs=2),
        TrainingStage("second", ("b",)),  # the configuration's epochs
        TrainingStage("fit", (), kind="fit"),
    ]
    assert augment_views_used(TrainingConfig(epochs=3, augment_views=10), stages) == 3
    assert augment_views_used(TrainingConfig(epochs=1, augment_views=10), stages) == 2
    assert augment_views_used(TrainingConfig(epochs=8, augment_views=5), stages) == 5
    assert augment_views_used(TrainingConfig(epochs=8), stages) is None
    assert augment_views_used(TrainingConfig(epochs=8, augment_views=5), stages[2:]) is None  # fits ignore it


def test_results_training_args_and_card_record_the_views_used(tmp_path, caplog):
    experiment = ExperimentConfig(
        method="coop", base_model=TINY_CLIP_ID, dataset="synthetic_colours", shots=1, seeds=(1,),
        protocol="few_shot", output_dir=str(tmp_path / "run"), augment_views=5,
        training=TrainingConfig(epochs=1, batch_size=8),
    )  # fmt: skip
    with caplog.at_level("WARNING"):
        results = run_experiment(experiment)
    assert "augment_views=5 asked" in caplog.text
    assert results["augment_views"] == 1
    assert json.loads((tmp_path / "run" / "results.json").read_text())[0]["augment_views"] == 1
    adapter = tmp_path / "run" / "seed1" / "adapter"
    assert json.loads((adapter / "training_args.json").read_text())["augment_views"] == 1
    card = (adapter / "README.md").read_text()
    assert "| `augment_views` | `1` |" in card and "`5`" not in card
    fingerprint = json.loads((tmp_path / "run" / "seed1" / "run_fingerprint.json").read_text())
    assert fingerprint["settings"]["training"]["augment_views"] == 1
