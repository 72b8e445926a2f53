"""Throughput and feedback (issue 25): DataLoader workers read the images of evaluation and feature encoding
with the same results as this process alone, and progress bars show encoding, fit searches and `data export`
unless silenced (`TQDM_DISABLE`, which `--quiet` sets)."""

import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

import hf_prompt_clip.utils.logs as logs
from hf_prompt_clip.caching.feature_cache import ImageFeatureCache, encode_dataset
from hf_prompt_clip.cli import main
from hf_prompt_clip.core.registry import get_method
from hf_prompt_clip.data import collate_fn, eval_transform, train_transform, with_image_transform
from hf_prompt_clip.evaluate.protocols import evaluate_base_to_new, predict
from hf_prompt_clip.methods.linear_probe.logistic import search_inverse_l2
from hf_prompt_clip.methods.tip_adapter.cache_model import search_alpha_beta
from hf_prompt_clip.modeling.fitting import FitData
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, pattern_dataset, tiny_clip


@pytest.fixture(autouse=True)
def bars_on(monkeypatch):
    """Bars on whatever the caller's environment says (and `--quiet` here cannot leak into other tests)."""
    monkeypatch.setenv("TQDM_DISABLE", "0")


@pytest.fixture(scope="module")
def model():
    clip, tokenizer, processor = tiny_clip(seed=0)
    return get_method("coop")[1].from_clip(
        clip, list(PATTERN_CLASSES), tokenizer=tokenizer, image_processor=processor
    ).eval()  # fmt: skip


@pytest.fixture(scope="module")
def test_set(model):
    return with_image_transform(pattern_benchmark(3), eval_transform(model.image_processor))


class ReadBy:
    """A collate function that leaves a file named after the process that collated each batch (a
    DataLoader worker collates the batches it reads), so a test sees which processes read the images."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(exist_ok=True)

    def __call__(self, examples):
        (self.folder / str(os.getpid())).touch()
        return collate_fn(examples)

    def workers(self) -> set[int]:
        """The processes other than this one that read batches."""
        return {int(path.name) for path in self.folder.iterdir()} - {os.getpid()}


def test_evaluation_with_two_workers_predicts_what_one_process_does_on_both_paths(model, test_set, tmp_path):
    """The pixel path and the feature cache's path read the test images in 2 workers (they do: the batches
    come from 2 other processes) and give the same predictions as reading them here."""
    alone = predict(model, test_set, collate_fn, batch_size=4)
    pixels = ReadBy(tmp_path / "pixels")
    with_workers = predict(model, test_set, pixels, batch_size=4, num_workers=2)
    cached = ReadBy(tmp_path / "cached")
    cache = ImageFeatureCache()
    from_cache = predict(model, test_set, cached, batch_size=4, feature_cache=cache, num_workers=2)
    assert cache.encoded_images == len(test_set)  # the cache's path was taken
    assert len(pixels.workers()) == 2 and len(cached.workers()) == 2
    for result in (with_workers, from_cache):
        assert torch.equal(result.predicted, alone.predicted) and torch.equal(result.labels, alone.labels)


class Streamed(IterableDataset):
    """A map-style set read as a stream (a torch `IterableDataset`: every worker would read all of it)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __iter__(self):
        return (self.dataset[index] for index in range(len(self.dataset)))


def test_a_streamed_test_set_is_read_once_in_order_whatever_num_workers_says(model, test_set, tmp_path):
    alone = predict(model, Streamed(test_set), collate_fn, batch_size=4)
    read_by = ReadBy(tmp_path / "stream")
    asked = predict(model, Streamed(test_set), read_by, batch_size=4, num_workers=2)
    assert read_by.workers() == set()  # this process read it (2 workers would each read every image)
    assert len(asked.labels) == len(test_set)
    assert torch.equal(asked.predicted, alone.predicted) and torch.equal(asked.labels, alone.labels)


def test_a_negative_number_of_workers_is_refused_naming_the_option(model, test_set):
    with pytest.raises(ValueError, match=r"num_workers must be 0 .* got -1.*--num-workers"):
        predict(model, test_set, collate_fn, batch_size=4, num_workers=-1)


def test_augmented_views_encoded_by_workers_are_the_views_encoded_here(model, tmp_path):
    """Each view of each example is drawn from its own seed, whichever process draws it."""
    augmented = with_image_transform(pattern_benchmark(2), train_transform(model.image_processor, (0.3, 1.0)))
    encode = model.encode_images
    here = ImageFeatureCache().features(
        encode, "e", augmented, collate_fn=collate_fn, batch_size=3, seed=5, views=range(2)
    )[0]
    read_by = ReadBy(tmp_path / "views")
    there = ImageFeatureCache().features(
        encode, "e", augmented, collate_fn=read_by, batch_size=3, seed=5, views=range(2), num_workers=2
    )[0]
    assert read_by.workers()
    assert not torch.allclose(here[0], here[1])  # the views differ: a worker's own RNG would show
    assert torch.equal(here, there)


def test_fit_data_hands_its_workers_to_the_encoding(model, tmp_path):
    read_by = ReadBy(tmp_path / "fit")
    plain = with_image_transform(pattern_benchmark(2), eval_transform(model.image_processor))
    data = FitData(train=plain, collate_fn=read_by, batch_size=3, num_workers=1)
    features, labels = data.image_features(model, "train")
    assert len(read_by.workers()) == 1 and features.shape[0] == len(labels) == len(plain)


def test_encoding_shows_a_bar_per_split_and_view_and_none_when_silenced(model, test_set, capsys, monkeypatch):
    encode_dataset(
        model.encode_images, test_set, collate_fn=collate_fn, batch_size=4, description="encoding test"
    )
    shown = capsys.readouterr().err
    assert "encoding test" in shown and "/3 [" in shown  # one step per batch of 4 of the 12 images
    encode_dataset(model.encode_images, test_set, collate_fn=collate_fn, batch_size=4, seed=1, view=3)
    assert "encoding images, view 3" in capsys.readouterr().err
    evaluate_base_to_new(model, test_set, collate_fn, batch_size=4, feature_cache=ImageFeatureCache())
    shown = capsys.readouterr().err
    assert "evaluating base classes: encoding test images" in shown and "evaluating new classes" in shown

    monkeypatch.setenv("TQDM_DISABLE", "1")
    encode_dataset(
        model.encode_images, test_set, collate_fn=collate_fn, batch_size=4, description="encoding test"
    )
    predict(model, test_set, collate_fn, batch_size=4)
    assert capsys.readouterr().err == ""


def test_a_bar_leaves_torchs_random_numbers_as_a_plain_loop_does(model, test_set):
    """Encoding under a bar draws from torch's global RNG what one pass over its DataLoader draws (a
    `tqdm.auto` bar starts the loader twice, tqdm/tqdm#1598: a seeded run would draw other numbers after)."""
    torch.manual_seed(0)
    for _ in DataLoader(test_set, batch_size=4, collate_fn=collate_fn):
        pass
    expected = torch.rand(3)
    torch.manual_seed(0)
    encode_dataset(model.encode_images, test_set, collate_fn=collate_fn, batch_size=4)
    assert torch.equal(torch.rand(3), expected)


def test_bars_are_shown_by_each_nodes_first_process_only(monkeypatch):
    class Other:
        is_local_main_process = False

    assert logs.progress_enabled()
    monkeypatch.setattr(logs, "PartialState", Other)
    assert not logs.progress_enabled()


def test_fit_searches_show_bars_that_change_nothing(capsys, monkeypatch):
    def score(c: float) -> float:
        return -abs(torch.log10(torch.tensor(c)).item() - 1.3)

    generator = torch.Generator().manual_seed(0)
    zero_shot, affinity = torch.randn(12, 3, generator=generator), torch.rand(12, 6, generator=generator)
    values, labels = torch.eye(3)[torch.arange(6) % 3], torch.arange(12) % 3
    searches = {
        "searching the linear probe's C": lambda: search_inverse_l2(score, steps=3),
        "searching Tip-Adapter's beta x 4 alphas": lambda: search_alpha_beta(
            zero_shot, affinity, values, labels, [1.0, 2.0, 5.0], [0.1, 0.5, 1.0, 2.0]
        ),
    }
    for desc, search in searches.items():
        shown = search()
        assert desc in capsys.readouterr().err
        monkeypatch.setenv("TQDM_DISABLE", "1")
        assert search() == shown  # the same answer (and history) without the bar
        assert capsys.readouterr().err == ""
        monkeypatch.setenv("TQDM_DISABLE", "0")
    search_inverse_l2(score, steps=3)
    assert "/13" in capsys.readouterr().err  # 7 Cs swept + 2 per binary-search round


@pytest.fixture
def pattern_folder(tmp_path):
    """An imagefolder tree (train/test) of the generated pattern classes."""
    for split, per_class in (("train", 2), ("test", 1)):
        images, labels = pattern_dataset(per_class, 0)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "patterns" / split / PATTERN_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index}.png")
    return tmp_path / "patterns"


def test_data_export_shows_a_bar_per_split_and_quiet_silences_it(pattern_folder, tmp_path, capsys):
    export = ["data", "export", "fgvc_aircraft", "--image-folder", str(pattern_folder), "--output-dir"]
    main([*export, str(tmp_path / "shown")])
    shown = capsys.readouterr().err
    images = len(PATTERN_CLASSES)
    assert "exporting train: 100%" in shown and f"{2 * images}/{2 * images}" in shown
    assert "exporting test: 100%" in shown and f"{images}/{images}" in shown
    main([*export, str(tmp_path / "quiet"), "--quiet"])
    assert "exporting" not in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "quiet" / "data")) == sorted(os.listdir(tmp_path / "shown" / "data"))
