"""A feature-cache entry is used only when it is what its request needs (issue 24, item 1).

A disk entry records its row count and a digest of its tensors (`entry_digest`) beside its key; reading it
checks all of them and the row count the request expects (the dataset's length). A file with the right key
but too few rows, or with changed values, or of the older format that recorded neither, is refused with a
warning and the images are encoded again: the features are then exactly a fresh encode's, and the file is
replaced. An entry held in memory is checked for the row count too.
"""

import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hf_prompt_clip import ZeroShotCLIPConfig, ZeroShotCLIPModel
from hf_prompt_clip.caching.feature_cache import (
    DISK_FORMAT,
    FeatureKey,
    ImageFeatureCache,
    entry_digest,
    entry_problem,
)
from hf_prompt_clip.data import collate_fn, eval_transform, train_transform, with_image_transform
from hf_prompt_clip.runner import ExperimentConfig, run_experiment
from hf_prompt_clip.synthetic import TINY_CLIP_ID
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, tiny_clip
from hf_prompt_clip.train import TrainingConfig

LOGGER = "hf_prompt_clip.caching.feature_cache"


@pytest.fixture(scope="module")
def model():
    clip, tokenizer, processor = tiny_clip(seed=0)
    config = ZeroShotCLIPConfig(clip_config=clip.config.to_dict(), class_names=list(PATTERN_CLASSES))
    return ZeroShotCLIPModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor).eval()


@pytest.fixture(scope="module")
def data(model):
    return with_image_transform(pattern_benchmark(3), eval_transform(model.image_processor))


class CountingEncoder:
    def __init__(self, model):
        self.model, self.images = model, 0

    def __call__(self, pixel_values):
        self.images += len(pixel_values)
        return self.model.encode_images(pixel_values)


def stored(path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    with safe_open(path, framework="pt") as handle:
        return handle.get_tensor("features"), handle.get_tensor("labels"), handle.metadata()


def rewrite(path, features, labels, metadata) -> None:
    save_file({"features": features.contiguous(), "labels": labels.contiguous()}, path, metadata=metadata)


def truncated(path) -> None:
    """One row instead of N, under the right key, its metadata consistent with that one row."""
    features, labels, metadata = stored(path)
    features, labels = features[:1], labels[:1]
    rewrite(path, features, labels, {**metadata, "rows": "1", "digest": entry_digest(features, labels)})


def negated(path) -> None:
    """The values negated, the key, row count and digest left as written."""
    features, labels, metadata = stored(path)
    rewrite(path, -features, labels, metadata)


def older_format(path) -> None:
    """What the previous version wrote: the right key and tensors, no row count or digest to check."""
    features, labels, metadata = stored(path)
    rewrite(
        path,
        features,
        labels,
        {"format": "hf_prompt_clip.image_features.v1", "feature_key": metadata["feature_key"]},
    )


@pytest.mark.parametrize(
    "damage, reason",
    [
        (truncated, r"holds 1 rows of features and 1 labels, but the data has 12 examples"),
        (negated, r"do not match the digest recorded with them"),
        (
            older_format,
            r"in the format 'hf_prompt_clip\.image_features\.v1', not 'hf_prompt_clip\.image_features\.v2'",
        ),
    ],
)
def test_a_damaged_disk_entry_with_the_right_key_is_refused_and_encoded_again(
    damage, reason, model, data, tmp_path, caplog
):
    fresh, labels = ImageFeatureCache().features(model.encode_images, "e", data, collate_fn=collate_fn)
    writer = ImageFeatureCache(directory=tmp_path)
    writer.features(model.encode_images, "e", data, collate_fn=collate_fn)
    (path,) = tmp_path.glob("image-features-*.safetensors")
    assert stored(path)[2]["format"] == DISK_FORMAT and stored(path)[2]["rows"] == str(len(data))
    damage(path)

    reader, encode = ImageFeatureCache(directory=tmp_path), CountingEncoder(model)
    with caplog.at_level("WARNING", logger=LOGGER):
        features, got = reader.features(encode, "e", data, collate_fn=collate_fn)
    assert (reader.disk_refused, reader.disk_hits, encode.images) == (1, 0, len(data))  # encoded again
    assert torch.equal(features, fresh) and torch.equal(got, labels)  # exactly a fresh encode
    assert (
        f"ignoring the image-feature file {path}" in caplog.text
        and "encoding the images again" in caplog.text
    )
    assert caplog.records[-1].levelname == "WARNING"
    assert len(caplog.records) == 1 and re.search(reason, caplog.text), caplog.text

    again = ImageFeatureCache(directory=tmp_path)  # the file was replaced by a good one
    features, _ = again.features(CountingEncoder(model), "e", data, collate_fn=collate_fn)
    assert (again.disk_hits, again.disk_refused, again.encoded_images) == (1, 0, 0)
    assert torch.equal(features, fresh)


def test_views_read_back_from_disk_are_checked_one_by_one(model, tmp_path, caplog):
    """Augmented views: one entry per view; a damaged view is encoded again, the good one read."""
    data = with_image_transform(pattern_benchmark(3), train_transform(model.image_processor, (0.5, 1.0)))
    fresh, _ = ImageFeatureCache().features(
        model.encode_images, "e", data, seed=3, views=range(2), collate_fn=collate_fn
    )
    ImageFeatureCache(directory=tmp_path).features(
        model.encode_images, "e", data, seed=3, views=range(2), collate_fn=collate_fn
    )
    view1 = ImageFeatureCache(directory=tmp_path).disk_path(FeatureKey("e", data._fingerprint, 3, 1))
    negated(view1)
    reader, encode = ImageFeatureCache(directory=tmp_path), CountingEncoder(model)
    with caplog.at_level("WARNING", logger=LOGGER):
        views, _ = reader.features(encode, "e", data, seed=3, views=range(2), collate_fn=collate_fn)
    assert (reader.disk_hits, reader.disk_refused, encode.images) == (1, 1, len(data))
    assert torch.equal(views, fresh)


def test_an_entry_in_memory_of_another_row_count_is_refused(model, data, caplog):
    cache, encode = ImageFeatureCache(), CountingEncoder(model)
    fresh, labels = cache.features(encode, "e", data, collate_fn=collate_fn)
    (key,) = list(cache._entries)
    cache._entries[key] = (fresh[:1], labels[:1])  # as a fingerprint shared by other data would find it
    with caplog.at_level("WARNING", logger=LOGGER):
        features, _ = cache.features(encode, "e", data, collate_fn=collate_fn)
    assert torch.equal(features, fresh) and encode.images == 2 * len(data) and cache.memory_refused == 1
    assert (
        "ignoring the image features held in memory" in caplog.text
        and "the data has 12 examples" in caplog.text
    )
    assert cache.get_or_compute(key, lambda: (fresh, labels), rows=len(data))[0] is features  # a good hit


def test_entry_checks_name_what_is_wrong():
    features, labels = torch.zeros(3, 4), torch.arange(3)
    assert entry_problem(features, labels, rows=3) is None and entry_problem(features, labels, None) is None
    assert "not one row per example" in entry_problem(features, labels[:2], rows=None)
    assert "the data has 5 examples" in entry_problem(features, labels, rows=5)
    assert entry_digest(features, labels) != entry_digest(features, labels.flip(0))
    assert entry_digest(features, labels) != entry_digest(features.double(), labels)  # dtypes count


def test_a_fit_method_end_to_end_ignores_damaged_entries_and_gives_a_fresh_runs_numbers(tmp_path, caplog):
    """Tip-Adapter through `run_experiment` with a cache folder: every entry a second run finds is damaged
    (the test features cut to one row, every other entry's values negated); it encodes them all again, warns
    once per file, and reports what the first run reported (73 %, not the 0 or 100 % of one test image)."""
    folder = tmp_path / "features"

    def run(output) -> tuple[dict, ImageFeatureCache]:
        cache = ImageFeatureCache(directory=folder)
        results = run_experiment(
            ExperimentConfig(
                method="tip_adapter", method_options={"augment_views": 2}, base_model=TINY_CLIP_ID,
                dataset="synthetic_shapes", shots=1, seeds=(1,), protocol="few_shot", output_dir=str(output),
                training=TrainingConfig(batch_size=16),
            ),
            feature_cache=cache,
        )  # fmt: skip
        return results, cache

    first, written = run(tmp_path / "first")
    files = sorted(folder.glob("image-features-*.safetensors"))
    assert len(files) == written.disk_writes == 4  # 2 training views, the validation and the test features
    sizes = {path: len(stored(path)[1]) for path in files}
    for path in files:
        (truncated if sizes[path] == max(sizes.values()) else negated)(path)  # the test split is the largest
    with caplog.at_level("WARNING", logger=LOGGER):
        second, cache = run(tmp_path / "second")
    refused = [record for record in caplog.records if "ignoring the image-feature file" in record.message]
    assert len(refused) == cache.disk_refused == len(files) and cache.disk_hits == 0
    assert cache.encoded_images == written.encoded_images == sum(sizes.values())
    assert 0 < first["mean"]["accuracy"] < 100
    assert second["mean_full_precision"] == first["mean_full_precision"]
    assert json.loads((tmp_path / "second" / "results.json").read_text())[0]["mean"] == first["mean"]
