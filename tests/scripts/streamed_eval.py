"""Evaluate streamed and map-style test sets, as `accelerate launch` runs them; the main process
writes what it gathered to a JSON file.

    python streamed_eval.py DATA OUTPUT.json             # one process
    accelerate launch ... streamed_eval.py DATA OUTPUT.json

DATA holds Hub-like repositories of one test split (`data/test-*.parquet`) of `synthetic_shapes`,
one per sub-folder; each is read with `HubSource` streamed (`IterableDataset`), as the
ImageNet variants are, and the sub-folder `one-shard` also map-style. Every set is evaluated
under three accelerators: accelerate's defaults, `dispatch_batches=False`, `even_batches=False`.
The map-style set is also evaluated from an image-feature cache (`cached`: each process encodes its shard
of the images, then classifies its shard of the features), twice: the second time from memory.
OUTPUT: `{accelerator: {set: {"count", "correct", "accuracy", "evaluate_accuracy", "predicted",
"labels"}}, "cached": {...as above, "encoded_here", "encoded_again"}}` (`encoded_here`: images the
main process encoded).
"""

import json
import sys
import tempfile
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration

from hf_prompt_clip import TINY_CLIP_ID, ZeroShotCLIPModel
from hf_prompt_clip.caching.feature_cache import ImageFeatureCache
from hf_prompt_clip.data import (
    HubSource,
    collate_fn,
    eval_transform,
    get_benchmark,
    load_benchmark,
    with_image_transform,
)
from hf_prompt_clip.evaluate import evaluate_accuracy, predict

BATCH_SIZE = 4
ACCELERATORS = {
    "default": DataLoaderConfiguration(),
    "no_dispatch": DataLoaderConfiguration(dispatch_batches=False),
    "uneven": DataLoaderConfiguration(even_batches=False),
}


def main(data: Path, output: Path, cache: str) -> None:
    torch.set_num_threads(1)
    spec = get_benchmark("synthetic_shapes")
    model = ZeroShotCLIPModel.from_clip(TINY_CLIP_ID, list(spec.class_names))
    transform = eval_transform(model.image_processor)
    sets = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        for streaming in (True, False) if folder.name == "one-shard" else (True,):
            source = HubSource(str(folder), streaming=streaming, cache_dir=cache)
            name = f"{folder.name}-{'stream' if streaming else 'map'}"
            sets[name] = with_image_transform(load_benchmark(spec, "test", source=source), transform)
    results = {}
    for setting, config in ACCELERATORS.items():
        accelerator = Accelerator(dataloader_config=config)
        results[setting] = {}
        for name, dataset in sets.items():
            found = predict(model, dataset, collate_fn, BATCH_SIZE, accelerator)
            results[setting][name] = {
                "count": len(found.labels),
                "correct": int((found.predicted == found.labels).sum()),
                "accuracy": found.accuracy,
                "evaluate_accuracy": evaluate_accuracy(
                    model, dataset, collate_fn, spec, BATCH_SIZE, accelerator
                ),
                "predicted": found.predicted.tolist(),
                "labels": found.labels.tolist(),
            }
        assert accelerator.dataloader_config is config  # predict restored the accelerator's own settings
    cache, dataset = ImageFeatureCache(), sets["one-shard-map"]
    found = predict(model, dataset, collate_fn, BATCH_SIZE, accelerator, feature_cache=cache)
    encoded = cache.encoded_images
    again = predict(model, dataset, collate_fn, BATCH_SIZE, accelerator, feature_cache=cache)
    assert torch.equal(again.predicted, found.predicted) and cache.last_source == "memory"
    results["cached"] = {
        "count": len(found.labels),
        "correct": int((found.predicted == found.labels).sum()),
        "accuracy": found.accuracy,
        "predicted": found.predicted.tolist(),
        "labels": found.labels.tolist(),
        "encoded_here": encoded,
        "encoded_again": cache.encoded_images - encoded,
    }
    if accelerator.is_main_process:
        output.write_text(json.dumps({"num_processes": accelerator.num_processes, "results": results}))
    accelerator.wait_for_everyone()
    accelerator.end_training()  # close the process group before exiting


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as cache:  # one `datasets` cache per process
        main(Path(sys.argv[1]), Path(sys.argv[2]), cache)
