"""The training images a run will read are scanned before anything trains (issue 24, item 17).

An unreadable image in the training split used to be found only when its batch came (after the seeds
before it had trained); the test splits were already scanned up front. Now `check_before_running` also
scans each seed's few-shot draw (and the validation draw of methods that search on it): the same clear
error, naming the file and the fix, before anything trains. Only the selected examples are scanned.
"""

import pytest

import hf_prompt_clip.runner as runner
from hf_prompt_clip.data import UnreadableImageError, folder_benchmark
from hf_prompt_clip.runner import (
    ExperimentConfig,
    check_training_images,
    run_comparison,
    run_experiment,
    seed_data,
)
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_dataset
from hf_prompt_clip.train import TrainingConfig


@pytest.fixture
def pattern_folder(tmp_path):
    """train (6 per class), val (2 per class) and test (2 per class) folders of the generated patterns."""
    for split, per_class, seed in (("train", 6, 0), ("val", 2, 2), ("test", 2, 1)):
        images, labels = pattern_dataset(per_class, seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "patterns" / split / PATTERN_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index}.png")
    return tmp_path / "patterns"


@pytest.fixture
def trained(monkeypatch) -> list[int]:
    """The seeds whose training started (`PromptTrainer.train` calls, by seed)."""
    seeds = []
    original = runner.PromptTrainer.train

    def train(self):
        seeds.append(self.config.seed)
        return original(self)

    monkeypatch.setattr(runner.PromptTrainer, "train", train)
    return seeds


def experiment(tiny_clip_folder, pattern_folder, output, **overrides) -> ExperimentConfig:
    spec, source = folder_benchmark(pattern_folder)
    settings = dict(
        method="coop", base_model=tiny_clip_folder, dataset=spec, source=source, protocol="few_shot", shots=2,
        seeds=(1, 2), output_dir=str(output), training=TrainingConfig(epochs=1, batch_size=4),
    )  # fmt: skip
    settings.update(overrides)
    return ExperimentConfig(**settings)


def drawn_files(config: ExperimentConfig, seed: int, split: str = "train") -> set[str]:
    """The example ids (paths relative to the folder) that `seed`'s draw holds."""
    data = seed_data(config, config.dataset, seed, learns=True, validates=split == "val")
    return set((data.train if split == "train" else data.validation)["example_id"])


def break_image(pattern_folder, example_id: str) -> str:
    (pattern_folder / example_id).write_bytes(b"not an image at all")
    return example_id.rsplit("/", 1)[-1]


def test_an_unreadable_image_in_a_later_seeds_draw_stops_the_run_before_the_first_seed_trains(
    tiny_clip_folder, pattern_folder, tmp_path, trained
):
    config = experiment(tiny_clip_folder, pattern_folder, tmp_path / "run")
    only_second = sorted(drawn_files(config, 2) - drawn_files(config, 1))[0]
    name = break_image(pattern_folder, only_second)
    with pytest.raises(UnreadableImageError) as caught:
        run_experiment(config)
    message = str(caught.value)
    assert name in message and "train (seed 2's draw of 2 shots per class)" in message
    assert "Nothing was trained yet" in message and "remove or replace the file" in message
    assert trained == [] and not (tmp_path / "run" / "seed1").exists()  # seed 1 did not train first


def test_only_the_selected_examples_are_scanned(tiny_clip_folder, pattern_folder, tmp_path, trained):
    """An unreadable training image that no seed draws is never read: the run goes through, and the scan
    opened only the drawn images (each seed's 2 per class, once per draw), not the 6 per class of the split."""
    config = experiment(tiny_clip_folder, pattern_folder, tmp_path / "run")
    drawn = drawn_files(config, 1) | drawn_files(config, 2)
    all_train = {
        path.relative_to(pattern_folder).as_posix() for path in (pattern_folder / "train").rglob("*.png")
    }
    whole = experiment(tiny_clip_folder, pattern_folder, tmp_path / "all", shots=None)
    assert check_training_images(whole) == len(all_train)  # the same set for both seeds: scanned once
    break_image(pattern_folder, sorted(all_train - drawn)[0])
    assert check_training_images(config) == 2 * 2 * len(PATTERN_CLASSES)  # each seed's draw, once
    with pytest.raises(UnreadableImageError):  # the whole training split is read: every image is scanned
        check_training_images(whole)
    run_experiment(config)
    assert trained == [1, 2]


def test_the_validation_draw_is_scanned_for_a_method_that_searches_on_it(
    tiny_clip_folder, pattern_folder, tmp_path, trained
):
    config = experiment(
        tiny_clip_folder, pattern_folder, tmp_path / "probe", method="linear_probe", seeds=(1,)
    )
    name = break_image(pattern_folder, sorted(drawn_files(config, 1, "val"))[0])
    with pytest.raises(
        UnreadableImageError, match=rf"val \(seed 1's draw of 2 shots per class\): image .*{name}"
    ):
        run_experiment(config)
    assert trained == []
    # CoOp does not read validation images: the same data trains
    run_experiment(experiment(tiny_clip_folder, pattern_folder, tmp_path / "coop", seeds=(1,)))
    assert trained == [1]


def test_every_number_of_shots_of_a_sweep_is_scanned_and_methods_that_learn_nothing_read_no_training_image(
    tiny_clip_folder, pattern_folder, tmp_path, trained
):
    config = experiment(tiny_clip_folder, pattern_folder, tmp_path / "sweep", seeds=(1,))
    in_three = drawn_files(experiment(tiny_clip_folder, pattern_folder, tmp_path, seeds=(1,), shots=3), 1)
    name = break_image(pattern_folder, sorted(in_three - drawn_files(config, 1))[0])
    with pytest.raises(
        UnreadableImageError, match=rf"train \(seed 1's draw of 3 shots per class\): image .*{name}"
    ):
        run_comparison(config, ["zeroshot", "coop"], shots=[2, 3])
    assert trained == [] and not (tmp_path / "sweep").exists()
    results = run_comparison(config, ["zeroshot"], shots=[2, 3])  # zero-shot CLIP reads only test images
    assert [entry["method"] for entry in results] == ["zeroshot"]
