"""A run builds one Accelerator per process and hands it to every seed's trainer and to evaluation, and
trains exactly what it trained when each trainer built its own: tests/fixtures/records/expected_run.json
holds the metrics and adapters of the same run written by the code before (make_fixtures.py there)."""

import json
from pathlib import Path

import accelerate
import pytest
from transformers import AutoModel

from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_dataset

EXPECTED = json.loads((Path(__file__).parent / "fixtures" / "records" / "expected_run.json").read_text())


@pytest.fixture
def built(monkeypatch):
    """The Accelerators built while it is held (a list of them)."""
    made = []
    original = accelerate.Accelerator.__init__

    def counting(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "__init__", counting)
    return made


@pytest.fixture
def pattern_folder(tmp_path):
    """The images of make_fixtures.py: train 6, test 4, val 2 per pattern class."""
    for split, per_class, seed in (("train", 6, 0), ("test", 4, 1), ("val", 2, 2)):
        images, labels = pattern_dataset(per_class, seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "patterns" / split / PATTERN_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index}.png")
    return tmp_path / "patterns"


def test_a_run_builds_one_accelerator_and_trains_what_each_trainer_with_its_own_trained(
    built, tiny_clip_folder, pattern_folder, tmp_path
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hf_prompt_clip.data import folder_benchmark
    from hf_prompt_clip.runner import ExperimentConfig, run_comparison
    from hf_prompt_clip.train import TrainingConfig

    spec, source = folder_benchmark(str(pattern_folder))
    output = tmp_path / "run"
    config = ExperimentConfig(
        method="coop", method_options={"n_ctx": 2}, base_model=tiny_clip_folder, dataset=spec, source=source,
        protocol="few_shot", shots=2, seeds=(1, 2), output_dir=str(output),
        training=TrainingConfig(epochs=2, batch_size=2, learning_rate=0.05, optimizer="adamw",
                                gradient_accumulation_steps=2, report_to=["tensorboard"]),
    )  # fmt: skip
    results = run_comparison(config, ["zeroshot", "coop", "linear_probe"])
    assert len(built) == 1, "one Accelerator for every method, seed and evaluation"
    for result, expected in zip(results, EXPECTED["results"], strict=True):
        assert result.method == expected["method"]
        assert [run.to_dict() for run in result.runs] == expected["runs"]
        assert result.mean_full_precision == expected["mean_full_precision"]
    for name, tensors in EXPECTED["adapters"].items():
        method, seed = name.split("/")
        state = AutoModel.from_pretrained(output / method / seed / "adapter").adapter_state_dict()
        assert sorted(state) == sorted(tensors)
        for key, expected in tensors.items():
            value = state[key].double()
            assert float(value.sum()) == pytest.approx(expected["sum"], rel=1e-5, abs=1e-6), (name, key)
            assert float(value.abs().sum()) == pytest.approx(expected["abs_sum"], rel=1e-5), (name, key)
            assert value.flatten()[:4].tolist() == pytest.approx(expected["first"], rel=1e-5, abs=1e-6)
    for seed in (1, 2):  # every seed logs into its own folder, as with a tracker of its own
        losses = []
        for events in sorted((output / "coop" / f"seed{seed}").glob("**/events.out.tfevents*")):
            accumulator = EventAccumulator(str(events))
            accumulator.Reload()
            if "train/loss" in accumulator.Tags()["scalars"]:
                losses += accumulator.Scalars("train/loss")
        assert len(losses) == 2, seed  # its own two epochs, not the other seed's
    assert not built[0].trackers and built[0].gradient_accumulation_steps == 1  # given back as it was


def test_evaluating_an_adapter_builds_one_accelerator(built, tiny_clip_folder, tmp_path):
    from hf_prompt_clip import CoOpModel
    from hf_prompt_clip.experiment import evaluate_adapter

    model = CoOpModel.from_clip(tiny_clip_folder, ["circle", "square", "triangle", "star"], n_ctx=2)
    model.save_pretrained(tmp_path / "adapter")
    built.clear()
    result = evaluate_adapter(tmp_path / "adapter", dataset="synthetic_colours", protocol="base2new",
                              classes_from_data=True)  # fmt: skip
    assert set(result.mean) == {"base", "new", "hm"}
    assert len(built) == 1  # was one per test set (base, new)


def test_a_trainer_given_no_accelerator_builds_its_own_for_its_seed(built, tiny_clip_folder, tmp_path):
    from hf_prompt_clip import CoOpModel
    from hf_prompt_clip.train import PromptTrainer, TrainingConfig

    model = CoOpModel.from_clip(tiny_clip_folder, ["a", "b"], n_ctx=2)
    settings = TrainingConfig(seed=7, output_dir=str(tmp_path), gradient_accumulation_steps=3)
    trainer = PromptTrainer(model, list(range(4)), settings)
    assert len(built) == 1 and trainer.accelerator is built[0]
    assert trainer.accelerator.dataloader_config.data_seed == 7
    assert trainer.accelerator.gradient_accumulation_steps == 3
