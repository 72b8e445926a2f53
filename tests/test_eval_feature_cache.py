"""Evaluation from cached frozen image features (issue 16, item 6): the same predictions as recomputing,
a key that misses on every change that matters, a disk cache that survives a restart, and a sweep of
methods x seeds that encodes each test image once."""

import hashlib
import json
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import hf_prompt_clip.modeling.model as modeling
import hf_prompt_clip.runner as runner
from hf_prompt_clip.caching.feature_cache import FeatureKey, FrozenFeaturesUnavailable, ImageFeatureCache
from hf_prompt_clip.core.registry import get_method, method_order
from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform
from hf_prompt_clip.data.fewshot import select_classes
from hf_prompt_clip.data.transforms import ImageSettings
from hf_prompt_clip.evaluate.protocols import predict
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, tiny_clip

METHOD_OPTIONS = {"mpfgvc": {"super_category": "pattern"}}


def build(method, seed=0):
    clip, tokenizer, processor = tiny_clip(seed=seed)
    model_class = get_method(method)[1]
    return model_class.from_clip(
        clip, list(PATTERN_CLASSES), tokenizer=tokenizer, image_processor=processor,
        **METHOD_OPTIONS.get(method, {}),
    ).eval()  # fmt: skip


@pytest.fixture(scope="module")
def test_set():
    processor = tiny_clip(seed=0)[2]
    return with_image_transform(pattern_benchmark(3), eval_transform(processor))


@pytest.mark.parametrize("method", method_order())
def test_cached_evaluation_equals_recomputation_for_every_frozen_image_method(method, test_set):
    """Every registered method: a model that classifies from frozen features predicts the same from the
    cache (first a miss that encodes, then a hit), with the same logits; a model that does not (its image
    path trains or reads more than the pooled feature) is evaluated as before and never touches the cache."""
    model = build(method)
    plain = predict(model, test_set, collate_fn, batch_size=4)
    cache = ImageFeatureCache()
    try:
        identity, encode = model.frozen_image_encoder()
    except FrozenFeaturesUnavailable:
        cached = predict(model, test_set, collate_fn, batch_size=4, feature_cache=cache)
        assert torch.equal(cached.predicted, plain.predicted)
        assert (cache.hits, cache.misses, len(cache)) == (0, 0, 0)
        return
    first = predict(model, test_set, collate_fn, batch_size=4, feature_cache=cache)
    again = predict(model, test_set, collate_fn, batch_size=4, feature_cache=cache)
    assert (cache.misses, cache.hits, cache.encoded_images) == (1, 1, len(test_set))
    for result in (first, again):
        assert torch.equal(result.predicted, plain.predicted) and torch.equal(result.labels, plain.labels)
    features, _ = cache.features(encode, identity, test_set, collate_fn=collate_fn, batch_size=4)
    pixels = collate_fn([test_set[i] for i in range(len(test_set))])["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(model.logits_from_image_features(features), model(pixels).logits)


def test_methods_that_train_through_the_image_tower_are_refused_by_their_own_hook():
    """PLOT++ and MP-FGVC train through the tower, PLOT reads patch tokens: each model says so itself."""
    refused = {
        method
        for method in method_order()
        if not _frozen(build(method))  # asked of the model, not named by the evaluator
    }
    assert {"plot", "plotpp", "mpfgvc"} <= refused
    assert {"zeroshot", "coop", "cocoop", "clip_adapter", "kgcoop", "linear_probe", "tip_adapter"}.isdisjoint(
        refused
    )


def _frozen(model) -> bool:
    try:
        model.frozen_image_encoder()
    except FrozenFeaturesUnavailable:
        return False
    return True


def test_cache_misses_when_transform_dtype_weights_or_split_change(test_set):
    model = build("coop")
    cache = ImageFeatureCache()
    predict(model, test_set, collate_fn, batch_size=4, feature_cache=cache)
    assert cache.misses == 1
    predict(model, test_set, collate_fn, batch_size=4, feature_cache=cache)
    assert (cache.misses, cache.hits) == (1, 1)

    settings = ImageSettings.from_processor(model.image_processor)
    other_transform = ImageSettings(settings.resize, settings.crop, settings.mean, (0.5, 0.5, 0.5))
    other = with_image_transform(pattern_benchmark(3), eval_transform(other_transform))
    same = with_image_transform(pattern_benchmark(3), eval_transform(model.image_processor))
    assert same._fingerprint == test_set._fingerprint != other._fingerprint
    predict(model, other, collate_fn, batch_size=4, feature_cache=cache)
    assert cache.misses == 2  # transform

    with model.using_class_names(PATTERN_CLASSES[:2]):
        predict(model, select_classes(test_set, "base"), collate_fn, batch_size=4, feature_cache=cache)
    assert cache.misses == 3  # another split / selection of the test set

    predict(build("coop", seed=1), test_set, collate_fn, batch_size=4, feature_cache=cache)
    assert cache.misses == 4  # other weights (another base model or revision)

    predict(build("cocoop"), test_set, collate_fn, batch_size=4, feature_cache=cache)
    assert cache.misses == 4  # another method with the same frozen tower: reused

    model.set_image_dtype("bf16")
    predict(model, test_set, collate_fn, batch_size=4, feature_cache=cache)
    assert cache.misses == 5  # the image tower's dtype
    keys = list(cache._entries)
    assert len({key.encoder for key in keys}) == 3 and len({key.data for key in keys}) == 3


def test_disk_cache_survives_a_restart_and_ignores_a_file_with_another_key(test_set, tmp_path):
    model = build("coop")
    expected = predict(model, test_set, collate_fn, batch_size=4)
    writer = ImageFeatureCache(directory=tmp_path)
    predict(model, test_set, collate_fn, batch_size=4, feature_cache=writer)
    files = list(tmp_path.glob("image-features-*.safetensors"))
    assert writer.disk_writes == 1 and len(files) == 1
    assert not list(tmp_path.glob(".*"))  # written atomically: no staging file left
    with safe_open(files[0], framework="pt") as handle:  # safetensors, the key in its metadata
        stored = FeatureKey(**json.loads(handle.metadata()["feature_key"]))
        assert set(handle.keys()) == {"features", "labels"}
    assert files[0].name == f"image-features-{stored.digest()}.safetensors"

    reader = ImageFeatureCache(directory=tmp_path)  # a fresh cache object reading the folder
    result = predict(build("coop"), test_set, collate_fn, batch_size=4, feature_cache=reader)
    assert (reader.disk_hits, reader.encoded_images) == (1, 0)
    assert torch.equal(result.predicted, expected.predicted)

    # a fresh process (the datasets fingerprint of the transformed set is the same in every process)
    script = textwrap.dedent(f"""
        from hf_prompt_clip.caching.feature_cache import ImageFeatureCache
        from hf_prompt_clip.core.registry import get_method
        from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform
        from hf_prompt_clip.evaluate.protocols import predict
        from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, tiny_clip
        clip, tokenizer, processor = tiny_clip(seed=0)
        model = get_method("coop")[1].from_clip(clip, list(PATTERN_CLASSES), tokenizer=tokenizer,
                                                image_processor=processor)
        data = with_image_transform(pattern_benchmark(3), eval_transform(processor))
        cache = ImageFeatureCache(directory={str(tmp_path)!r})
        result = predict(model, data, collate_fn, batch_size=4, feature_cache=cache)
        print("RESULT", cache.disk_hits, cache.encoded_images, result.predicted.tolist())
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    disk_hits, encoded, predicted = output.split("RESULT ")[1].split(" ", 2)
    assert (int(disk_hits), int(encoded)) == (1, 0)
    assert json.loads(predicted) == expected.predicted.tolist()

    # a file under the right name whose stored key is another one: ignored, encoded again, replaced
    other = FeatureKey("projected|other-weights", stored.data)
    save_file(
        {"features": torch.zeros(len(test_set), 4), "labels": torch.zeros(len(test_set), dtype=torch.long)},
        files[0],
        metadata={"format": "hf_prompt_clip.image_features.v1", "feature_key": other.to_json()},
    )
    checked = ImageFeatureCache(directory=tmp_path)
    result = predict(build("coop"), test_set, collate_fn, batch_size=4, feature_cache=checked)
    assert (checked.disk_refused, checked.disk_hits, checked.encoded_images) == (1, 0, len(test_set))
    assert torch.equal(result.predicted, expected.predicted)
    with safe_open(files[0], framework="pt") as handle:
        assert handle.metadata()["feature_key"] == stored.to_json()
    files[0].write_bytes(b"not a safetensors file")
    unreadable = ImageFeatureCache(directory=tmp_path)
    predict(build("coop"), test_set, collate_fn, batch_size=4, feature_cache=unreadable)
    assert (unreadable.disk_refused, unreadable.encoded_images) == (1, len(test_set))


class TowerCalls:
    """Counts how often each distinct image goes through the image tower (by a hash of its pixels)."""

    def __init__(self, monkeypatch):
        self.counts: Counter[str] = Counter()
        original = modeling.encode_image_tokens

        def counting(model, pixel_values, *args, **kwargs):
            for image in pixel_values:
                self.counts[_image_hash(image)] += 1
            return original(model, pixel_values, *args, **kwargs)

        monkeypatch.setattr(modeling, "encode_image_tokens", counting)


def _image_hash(image: torch.Tensor) -> str:
    return hashlib.blake2b(
        image.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=8
    ).hexdigest()


def sweep_config(output_dir):
    from hf_prompt_clip.runner import ExperimentConfig
    from hf_prompt_clip.synthetic import TINY_CLIP_ID
    from hf_prompt_clip.train import TrainingConfig

    return ExperimentConfig(
        base_model=TINY_CLIP_ID, dataset="synthetic_colours", shots=2, seeds=(1, 2, 3), protocol="base2new",
        output_dir=str(output_dir), eval_batch_size=32,
        training=TrainingConfig(epochs=1, batch_size=8, optimizer="adamw", learning_rate=0.01),
    )  # fmt: skip


def test_a_three_method_three_seed_base_to_new_sweep_encodes_each_test_image_once(tmp_path, monkeypatch):
    """zero-shot CLIP, CoOp and CLIP-Adapter x seeds 1, 2, 3, base-to-new on a synthetic benchmark: with the
    run's cache every test image goes through the image tower once; the accuracies equal an uncached run."""
    from transformers import AutoImageProcessor

    from hf_prompt_clip.data import get_benchmark, load_benchmark
    from hf_prompt_clip.synthetic import tiny_clip_path

    methods = ["zeroshot", "coop", "clip_adapter"]
    processor = AutoImageProcessor.from_pretrained(tiny_clip_path())
    test_images = load_benchmark(get_benchmark("synthetic_colours"), "test")
    transformed = with_image_transform(test_images, eval_transform(processor))
    test_hashes = [_image_hash(transformed[i]["pixel_values"]) for i in range(len(transformed))]
    assert len(set(test_hashes)) == len(test_hashes)

    calls = TowerCalls(monkeypatch)
    cached = runner.run_comparison(sweep_config(tmp_path / "cached"), methods)
    assert [calls.counts[h] for h in test_hashes] == [1] * len(test_hashes)

    evaluate = runner.evaluate_protocol
    monkeypatch.setattr(
        runner, "evaluate_protocol", lambda *args, feature_cache=None, **kwargs: evaluate(*args, **kwargs)
    )
    calls.counts.clear()
    uncached = runner.run_comparison(sweep_config(tmp_path / "uncached"), methods)
    assert [calls.counts[h] for h in test_hashes] == [len(methods) * 3] * len(test_hashes)
    for with_cache, without in zip(cached, uncached):
        assert with_cache["method"] == without["method"]
        assert [run["metrics_full_precision"] for run in with_cache["runs"]] == [
            run["metrics_full_precision"] for run in without["runs"]
        ]
