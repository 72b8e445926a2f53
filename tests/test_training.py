"""Training through Accelerate: learning, exact resume, distributed equivalence, protocols."""

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import Interrupt, accelerate_launch, launch_environment, stop_at_forward
from safetensors.torch import load_file
from transformers import AutoModel

from hf_prompt_clip import CoOpModel
from hf_prompt_clip.data import (
    collate_fn,
    eval_transform,
    train_transform,
    with_image_transform,
)
from hf_prompt_clip.evaluate import evaluate_base_to_new, harmonic_mean, predict
from hf_prompt_clip.testing import pattern_benchmark
from hf_prompt_clip.train import NonFiniteLossError, PromptTrainer, TrainingConfig, learning_rate

ROOT = Path(__file__).parent.parent


def make_model(folder, names=None, **kwargs):
    torch.manual_seed(0)
    names = names or ["red", "blue", "checkerboard", "stripes"]
    return CoOpModel.from_clip(folder, names, n_ctx=4, class_specific_context=True, **kwargs)


def train_set(model, augment=False, per_class=8):
    transform = train_transform(model.image_processor) if augment else eval_transform(model.image_processor)
    return with_image_transform(pattern_benchmark(per_class, seed=0), transform)


def config(tmp_path, **overrides):
    defaults = dict(
        output_dir=str(tmp_path),
        epochs=3,
        batch_size=8,
        learning_rate=0.05,
        optimizer="adamw",
        lr_schedule="constant",
        warmup_epochs=0,
        seed=3,
    )
    defaults.update(overrides)
    return TrainingConfig(**defaults)


def test_reference_schedule_matches_coop():
    lrs = [learning_rate("reference", 0.002, e, 10) for e in range(10)]
    assert lrs[0] == 1e-5
    assert lrs[1] == pytest.approx(0.002)
    assert lrs[6] == pytest.approx(0.001 * (1 + math.cos(math.pi * 5 / 10)))
    assert all(a > b for a, b in itertools.pairwise(lrs[1:])) and lrs[-1] > 0


def test_training_lowers_the_loss_and_the_adapter_reloads_identically(tiny_clip_folder, tmp_path):
    model = make_model(tiny_clip_folder)
    trainer = PromptTrainer(model, train_set(model), config(tmp_path, epochs=10), collate_fn=collate_fn)
    state = trainer.train()
    losses = [entry["loss"] for entry in state.log]
    assert losses[-1] < 0.5 * losses[0]
    model.save_pretrained(tmp_path / "adapter")
    test = with_image_transform(pattern_benchmark(4, seed=9), eval_transform(model.image_processor))
    before = predict(model, test, collate_fn)
    loaded = predict(AutoModel.from_pretrained(tmp_path / "adapter"), test, collate_fn)
    assert torch.equal(before.predicted, loaded.predicted)
    assert before.accuracy > 50  # 4 classes: chance is 25 %


def test_checkpoints_hold_only_the_adapter_and_only_the_last_ones_are_kept(tiny_clip_folder, tmp_path):
    model = make_model(tiny_clip_folder)
    PromptTrainer(model, train_set(model), config(tmp_path, epochs=3), collate_fn=collate_fn).train()
    checkpoints = sorted((tmp_path / "checkpoints").iterdir())
    assert [c.name for c in checkpoints] == ["checkpoint-12", "checkpoint-8"]  # 32 images, batch 8, keep 2
    assert set(load_file(checkpoints[0] / "model.safetensors")) == {"context"}
    assert json.loads((checkpoints[0] / "trainer_state.json").read_text())["global_step"] == 12


def test_gradient_accumulation_equals_the_larger_batch(tiny_clip_folder, tmp_path):
    """Batch 4 x 2 accumulation steps takes the optimiser steps of batch 8 (SGD: exact up to float error)."""
    settings = dict(epochs=2, optimizer="sgd", learning_rate=0.05)
    large, accumulated = make_model(tiny_clip_folder), make_model(tiny_clip_folder)
    PromptTrainer(
        large, train_set(large), config(tmp_path / "a", batch_size=8, **settings), collate_fn=collate_fn
    ).train()
    state = PromptTrainer(
        accumulated,
        train_set(accumulated),
        config(tmp_path / "b", batch_size=4, gradient_accumulation_steps=2, **settings),
        collate_fn=collate_fn,
    ).train()
    assert state.global_step == 8
    assert not torch.equal(large.context, make_model(tiny_clip_folder).context)
    torch.testing.assert_close(accumulated.context, large.context, atol=1e-5, rtol=1e-4)


def watch_forward(model, stop_at: int | None = None) -> list[bool]:
    """Record the model's forward calls (each: did it run under bf16 autocast?); raise `Interrupt`
    instead of running call number `stop_at`."""
    return stop_at_forward(
        model,
        stop_at,
        lambda *args, **kwargs: (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        ),
    )


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tiny_clip_folder, tmp_path):
    settings = dict(epochs=3, optimizer="sgd", learning_rate=0.02, checkpoint_every_steps=2)
    full = make_model(tiny_clip_folder)
    PromptTrainer(
        full, train_set(full, augment=True), config(tmp_path / "a", **settings), collate_fn=collate_fn
    ).train()

    interrupted = make_model(tiny_clip_folder)
    watch_forward(interrupted, stop_at=4)  # dies during step 4; the last checkpoint is at step 2
    with pytest.raises(Interrupt):
        PromptTrainer(
            interrupted,
            train_set(interrupted, augment=True),
            config(tmp_path / "b", **settings),
            collate_fn=collate_fn,
        ).train()

    resumed = make_model(tiny_clip_folder)
    steps = watch_forward(resumed)
    resumed_config = config(tmp_path / "b", resume_from_checkpoint="latest", **settings)
    state = PromptTrainer(
        resumed, train_set(resumed, augment=True), resumed_config, collate_fn=collate_fn
    ).train()
    assert state.global_step == 12 and len(steps) == 10  # continued after step 2, not restarted
    torch.testing.assert_close(resumed.context, full.context, atol=1e-6, rtol=0)
    assert not torch.equal(resumed.context, make_model(tiny_clip_folder).context)


def test_non_finite_loss_stops_with_the_step(tiny_clip_folder, tmp_path):
    model = make_model(tiny_clip_folder)
    with torch.no_grad():
        model.context.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"at step 1 \(stage 'prompt', epoch 0\)"):
        PromptTrainer(model, train_set(model), config(tmp_path), collate_fn=collate_fn).train()


def test_resume_without_checkpoint_is_a_clear_error(tiny_clip_folder, tmp_path):
    model = make_model(tiny_clip_folder)
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        PromptTrainer(model, train_set(model), config(tmp_path, resume_from_checkpoint="latest")).train()


def test_base_to_new_reports_b_n_h_consistent_with_predictions(tiny_clip_folder):
    """B and N from all-class logits restricted to each half's columns (a unified context scores each
    class on its own), H from B and N."""
    torch.manual_seed(0)
    model = CoOpModel.from_clip(tiny_clip_folder, ["red", "blue"], n_ctx=4)
    test = with_image_transform(pattern_benchmark(6, seed=5), eval_transform(model.image_processor))
    result = evaluate_base_to_new(model, test, collate_fn)
    assert model.config.class_names == ["red", "blue"]  # restored
    names = test.features["label"].names
    batch = collate_fn(list(test))
    with model.using_class_names(names), torch.no_grad():
        logits = model(batch["pixel_values"]).logits
    labels = batch["labels"]
    base = labels < 2
    expected_base = (logits[base, :2].argmax(-1) == labels[base]).float().mean().item() * 100
    expected_new = (logits[~base, 2:].argmax(-1) == labels[~base] - 2).float().mean().item() * 100
    assert result["base"] == pytest.approx(expected_base) and result["new"] == pytest.approx(expected_new)
    assert result["base"] + result["new"] > 0 and result["base"] != result["new"]  # not a degenerate draw
    assert result["hm"] == pytest.approx(harmonic_mean(result["base"], result["new"]))


@pytest.mark.skipif(sys.platform != "linux", reason="gloo multi-process test")
def test_accelerate_launch_with_two_processes_matches_one_process_with_the_same_global_batch(tmp_path):
    """The main job itself (`examples/train.py` on the embedded default) under `accelerate launch`."""
    train = str(ROOT / "examples" / "train.py")
    options = ["--epochs", "2", "--shots", "4", "--no-baseline"]
    env = launch_environment(tmp_path / "hf-home")
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run(
        [sys.executable, train, *options, "--batch-size", "8", "--output-dir", str(one)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run(
        [*accelerate_launch(2), train, *options, "--batch-size", "4", "--output-dir", str(two)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = "\n".join(line for line in double.stderr.splitlines() if "it/s" not in line)
    assert double.returncode == 0, errors[-3000:]
    assert double.stdout.count("results.json, results.md") == 1  # printed by the main process only
    checkpoint = next((two / "coop" / "seed1" / "checkpoints").iterdir())
    assert (checkpoint / "random_states_1.pkl").is_file()  # a second process really trained
    assert load_file(checkpoint / "model.safetensors").keys() == {"context"}  # resumable: the adapter
    adapters = [load_file(run / "coop" / "seed1" / "adapter" / "model.safetensors") for run in (one, two)]
    assert adapters[0].keys() == adapters[1].keys() == {"context"}
    torch.testing.assert_close(adapters[1]["context"], adapters[0]["context"], atol=1e-5, rtol=1e-4)
    results = [json.loads((run / "results.json").read_text())[0] for run in (one, two)]
    assert results[1]["mean"] == results[0]["mean"]


def test_augmentation_draws_depend_on_run_seed_epoch_and_index_only():
    from hf_prompt_clip.train.trainer import EpochSeededDataset

    class Draws(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.rand(3)

    def draws(seed, epoch):
        dataset = EpochSeededDataset(Draws(), seed)
        dataset.set_epoch(epoch)
        return [dataset[index] for index in reversed(range(4))][::-1]  # loading order does not matter

    epoch0 = draws(seed=1, epoch=0)
    assert all(torch.equal(a, b) for a, b in zip(epoch0, draws(seed=1, epoch=0)))
    pairs = itertools.combinations(epoch0, 2)
    assert not any(torch.equal(a, b) for a, b in pairs), "two images share one augmentation"
    assert not any(torch.equal(a, b) for a, b in zip(epoch0, draws(seed=1, epoch=1)))
    assert not any(torch.equal(a, b) for a, b in zip(epoch0, draws(seed=2, epoch=0)))


def test_protocols_that_cannot_run_are_refused_with_the_fix():
    from hf_prompt_clip.cli import one_line
    from hf_prompt_clip.data import get_benchmark
    from hf_prompt_clip.runner import check_protocol

    with pytest.raises(ValueError, match=r"needs target datasets.*targets=") as refused:
        check_protocol("cross_dataset", get_benchmark("imagenet"))
    assert "--targets" in one_line(refused.value)  # the field, spelled as its flag on the command line
    with pytest.raises(ValueError, match="not defined for 'imagenet_v2'; use protocol='few_shot'"):
        check_protocol("base2new", get_benchmark("imagenet_v2"))
    with pytest.raises(ValueError, match="protocol must be one of"):
        check_protocol("zero_shot", get_benchmark("dtd"))
    check_protocol("domain_generalization", get_benchmark("imagenet"), ["imagenet_v2"])


def test_cross_dataset_evaluates_each_target_among_its_own_classes_and_restores_the_model():
    from hf_prompt_clip import TINY_CLIP_ID, ZeroShotCLIPModel
    from hf_prompt_clip.data import get_benchmark, load_benchmark
    from hf_prompt_clip.evaluate import evaluate_accuracy
    from hf_prompt_clip.runner import evaluate_protocol

    source = get_benchmark("synthetic_shapes")
    own = list(source.class_names[:6])
    model = ZeroShotCLIPModel.from_clip(TINY_CLIP_ID, own)
    targets = ["synthetic_colours", "synthetic_shape_only"]
    metrics = evaluate_protocol(model, source, "cross_dataset", targets=targets)
    assert list(metrics) == targets
    assert model.config.class_names == own  # the adapter's own classes again
    for key in targets:
        spec = get_benchmark(key)
        test = with_image_transform(load_benchmark(spec, "test"), eval_transform(model.image_processor))
        with model.using_class_names(list(spec.class_names)):
            direct = predict(model, test, collate_fn)
        assert metrics[key] == pytest.approx(direct.accuracy)
        assert metrics[key] == pytest.approx(evaluate_accuracy(model, test, collate_fn, spec))
        assert metrics[key] > 2 * 100 / len(spec.class_names)  # the tiny CLIP knows colours and shapes


def two_stage_cocoop(folder, stages):
    """A CoCoOp whose training is split into stages, as PLOT++ and MP-FGVC will be."""
    from hf_prompt_clip import CoCoOpModel, TrainingStage

    class StagedCoCoOp(CoCoOpModel):
        def training_stages(self):
            return [TrainingStage(*stage) for stage in stages]

    torch.manual_seed(0)
    return StagedCoCoOp.from_clip(folder, ["red", "blue", "checkerboard", "stripes"], n_ctx=4)


def test_stages_train_their_own_parameters_with_their_own_epochs_and_rates_and_resume_inside(
    tiny_clip_folder, tmp_path
):
    stages = [("context", ("context",), 1, 0.05), ("meta_net", ("meta_net",), 2, 0.01)]
    settings = dict(optimizer="sgd", epochs=5, learning_rate=0.5)  # the stages override both
    staged = two_stage_cocoop(tiny_clip_folder, stages)
    initial_meta = {k: v.clone() for k, v in staged.meta_net.state_dict().items()}
    state = PromptTrainer(
        staged, train_set(staged), config(tmp_path / "a", **settings), collate_fn=collate_fn
    ).train()
    assert [(e["stage"], e["epoch"], e["lr"]) for e in state.log] == [
        ("context", 0, 0.05),
        ("meta_net", 0, 0.01),
        ("meta_net", 1, 0.01),
    ]
    assert state.global_step == 12  # 32 images, batch 8: 4 steps x 3 epochs

    first_only = two_stage_cocoop(tiny_clip_folder, stages[:1])
    PromptTrainer(
        first_only, train_set(first_only), config(tmp_path / "b", **settings), collate_fn=collate_fn
    ).train()
    assert torch.equal(staged.context, first_only.context)  # stage 2 left the context alone
    assert all(torch.equal(v, initial_meta[k]) for k, v in first_only.meta_net.state_dict().items())
    assert not all(torch.equal(v, initial_meta[k]) for k, v in staged.meta_net.state_dict().items())

    interrupted = two_stage_cocoop(tiny_clip_folder, stages)
    watch_forward(interrupted, stop_at=10)  # stage 2, epoch 1; the last checkpoint ends its epoch 0
    with pytest.raises(Interrupt):
        PromptTrainer(
            interrupted, train_set(interrupted), config(tmp_path / "c", **settings), collate_fn=collate_fn
        ).train()
    resumed = two_stage_cocoop(tiny_clip_folder, stages)
    resumed_config = config(tmp_path / "c", resume_from_checkpoint="latest", **settings)
    state = PromptTrainer(resumed, train_set(resumed), resumed_config, collate_fn=collate_fn).train()
    assert state.global_step == 12 and [e["stage"] for e in state.log] == ["context", "meta_net", "meta_net"]
    torch.testing.assert_close(resumed.context, staged.context, atol=0, rtol=0)
    for key, value in resumed.meta_net.state_dict().items():
        torch.testing.assert_close(value, staged.meta_net.state_dict()[key], atol=1e-6, rtol=0)


def test_a_stage_scales_the_learning_rate_of_some_parameters(tiny_clip_folder, tmp_path):
    """One SGD step: with `learning_rate_scales`, those parameters move by the scale times as much."""
    settings = dict(
        optimizer="sgd", epochs=1, batch_size=32, learning_rate=0.5, warmup_epochs=0, lr_schedule="constant"
    )
    moved = {}
    for scale in (1.0, 0.1):
        model = two_stage_cocoop(
            tiny_clip_folder, [("all", ("context", "meta_net"), None, None, (("meta_net", scale),))]
        )
        before = {name: value.clone() for name, value in model.adapter_state_dict().items()}
        PromptTrainer(
            model, train_set(model), config(tmp_path / str(scale), **settings), collate_fn=collate_fn
        ).train()
        moved[scale] = {name: value - before[name] for name, value in model.adapter_state_dict().items()}
    torch.testing.assert_close(moved[0.1]["context"], moved[1.0]["context"])
    for name in ("meta_net.linear1.weight", "meta_net.linear2.bias"):
        assert moved[1.0][name].abs().max() > 0
        torch.testing.assert_close(moved[0.1][name], 0.1 * moved[1.0][name], atol=1e-7, rtol=1e-4)


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate fixes the mixed precision once per process: start and leave this test with none."""
    from accelerate.state import AcceleratorState, GradientState

    def reset():
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()

    reset()
    yield
    reset()


def test_bf16_mixed_precision_trains_a_float32_adapter(tiny_clip_folder, tmp_path, fresh_accelerate_state):
    model = make_model(tiny_clip_folder)
    in_bf16 = watch_forward(model)
    settings = config(tmp_path, epochs=6, mixed_precision="bf16")
    state = PromptTrainer(model, train_set(model), settings, collate_fn=collate_fn).train()
    assert in_bf16 and all(in_bf16)  # every training forward ran under bf16 autocast
    assert model.context.dtype == torch.float32 and model.clip.dtype == torch.float32
    losses = [entry["loss"] for entry in state.log]
    assert losses[-1] < 0.5 * losses[0]


def test_method_options_are_checked_and_coerced_against_the_config_types():
    from hf_prompt_clip.runner import check_method_options, check_option_values

    assert check_option_values("coop", {"n_ctx": 4, "ctx_init_std": 1}) == {"n_ctx": 4, "ctx_init_std": 1.0}
    with pytest.raises(ValueError, match=r"n_ctx of coop takes int, got '4' \(str\)"):
        check_option_values("coop", {"n_ctx": "4"})
    with pytest.raises(ValueError, match=r"coop: class_specific_context.*n_ctx") as error:
        check_method_options(["zeroshot", "coop"], {"n_context": 4}, named=["coop"])
    assert "zeroshot" not in str(error.value)  # only the methods the user named are listed
    # an option of one method passes the others by
    assert check_method_options(["zeroshot", "coop"], {"n_ctx": 2}) == {"n_ctx": 2}


@pytest.mark.skipif(sys.platform != "linux", reason="gloo multi-process test")
def test_fit_stages_under_two_processes_give_one_process_adapters(tmp_path):
    """The linear probe and Tip-Adapter-F fit on every process; the main process's adapter and chosen
    settings are shared, and equal what one process fits."""
    train = str(ROOT / "examples" / "train.py")
    options = ["--method", "linear_probe", "tip_adapter_f", "--protocol", "few_shot", "--shots", "2"]
    options += ["--option", "augment_views=2", "--option", "finetune_epochs=2", "--no-baseline"]
    env = launch_environment(tmp_path / "hf-home")
    runs = {}
    for name, launcher in (("one", [sys.executable]), ("two", accelerate_launch(2))):
        done = subprocess.run(
            [*launcher, train, *options, "--output-dir", str(tmp_path / name)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        errors = "\n".join(line for line in done.stderr.splitlines() if "it/s" not in line)
        assert done.returncode == 0, errors[-3000:]
        runs[name] = tmp_path / name
    for method in ("linear_probe", "tip_adapter_f"):
        checkpoint = next((runs["two"] / method / "seed1" / "checkpoints").iterdir())
        assert (checkpoint / "random_states_1.pkl").is_file()  # a second process really fitted
        adapters = [
            load_file(runs[name] / method / "seed1" / "adapter" / "model.safetensors") for name in runs
        ]
        assert adapters[0].keys() == adapters[1].keys()
        for key in adapters[0]:
            torch.testing.assert_close(adapters[1][key], adapters[0][key], atol=1e-5, rtol=1e-4)
        configs = [
            json.loads((runs[name] / method / "seed1" / "adapter" / "config.json").read_text())
            for name in runs
        ]
        for key in ("selected_C", "alpha", "beta", "validation_accuracy"):
            assert configs[0].get(key) == configs[1].get(key), key
    results = [json.loads((run / "results.json").read_text()) for run in runs.values()]
    assert [entry["mean"] for entry in results[0]] == [entry["mean"] for entry in results[1]]


def test_the_recorded_settings_are_the_ones_the_stages_use():
    from hf_prompt_clip.modeling.stages import TrainingStage
    from hf_prompt_clip.train import settings_used

    training = TrainingConfig(epochs=3, learning_rate=0.01)
    fit = TrainingStage("fit", (), kind="fit")
    only_fit = settings_used(training, [fit])
    assert "learning_rate" not in only_fit and "optimizer" not in only_fit and "epochs" not in only_fit
    assert only_fit["seed"] == training.seed and only_fit["batch_size"] == training.batch_size
    gradient = settings_used(training, [fit, TrainingStage("keys", ("cache",))])
    assert gradient["learning_rate"] == 0.01 and gradient["epochs"] == 3 and "stages" not in gradient
    staged = settings_used(training, [TrainingStage("a", ("x",)), TrainingStage("b", ("y",), epochs=5)])
    assert staged["stages"] == ["a: 3 epochs at learning rate 0.01", "b: 5 epochs at learning rate 0.01"]
