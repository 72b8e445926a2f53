"""Evaluation protocols of the papers: few-shot accuracy, base-to-new, cross-dataset, domain shift.

Room: `evaluate/`.

Predictions are gathered across processes with `accelerator.gather_for_metrics` (which drops
the samples a distributed sampler duplicates to even out the last batch), and metrics are
computed in torch, so numbers are the same on one CPU or many GPUs, for map-style and streamed
(`IterableDataset`) test sets alike (see `prepare_evaluation_loader`).

With a `feature_cache` (`caching.feature_cache.ImageFeatureCache`, one per run in the experiment runner), a
model whose classification goes through frozen image features (`model.frozen_image_encoder()`) is
evaluated from cached features: each test image is encoded once per image tower, dataset (split,
selection, transform) and precision, and reused by every method, seed and protocol of the run;
`model.logits_from_image_features(features)` gives the logits (tested equal to recomputing). Under
several processes the cache's encoding is shared (`ProcessShards`): each process encodes its shard of the
test images, every process holds all the features, and each classifies its shard (predictions gathered).
Streamed sets (no fingerprint) are encoded shard by shard as usual, without the cache.

`num_workers` DataLoader workers read and transform the test images on both paths (the cache's encoding
and the pixel path), with page-locked batches when the accelerator's device is CUDA; the predictions are
the same with any number (tested). A streamed set is read by this process alone: workers would each read
the whole stream (a torch `IterableDataset`) or interleave its shards out of order (a `datasets` one).
Both paths show a progress bar (one step per batch), silenced by `--quiet` (`utils.logs.progress_bar`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from datasets import Dataset
from torch.utils.data import DataLoader, IterableDataset

from ..caching.feature_cache import (
    FrozenFeaturesUnavailable,
    ImageFeatureCache,
    ProcessShards,
    dataset_fingerprint,
)
from ..core.reference import harmonic_mean
from ..data.fewshot import select_classes
from ..data.registry import BenchmarkSpec
from ..modeling.model import PromptCLIPPreTrainedModel
from ..utils.logs import main_process_logger, progress_bar

logger = main_process_logger(__name__)


@dataclass
class Predictions:
    """Predicted and true labels of a test set (in dataset order)."""

    predicted: torch.Tensor
    labels: torch.Tensor

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy in percent, from the integer count of hits (float64: 89 of 200 is 44.5)."""
        return 100.0 * int((self.predicted == self.labels).sum()) / max(len(self.labels), 1)

    def per_class_accuracy(self, num_classes: int) -> list[float]:
        """Accuracy in percent of every class (NaN for a class without test images)."""
        result = []
        for k in range(num_classes):
            mask = self.labels == k
            result.append(
                100.0 * (self.predicted[mask] == k).float().mean().item() if mask.any() else float("nan")
            )
        return result


def prepare_evaluation_loader(accelerator: Accelerator, loader: DataLoader) -> DataLoader:
    """`accelerator.prepare_data_loader(loader)`, set up so that `gather_for_metrics` returns every
    example exactly once, in dataset order, under any number of processes.

    `gather_for_metrics` drops the padding of the last batch only when accelerate knows how many
    real examples that batch holds. With its defaults it does: a map-style set is split by a
    sampler that evens the batches out (`even_batches=True`) and knows the set's length; a
    streamed set is dispatched (`dispatch_batches=True`, accelerate's default for iterable
    datasets placed on the device): process 0 reads the stream in order, sends each process its
    slice and counts the real size of the last batch. Other settings of the accelerator break this
    under several processes (accelerate 1.15, huggingface/accelerate#3013); on 23 images in batches
    of 4 on 2 processes:

    - `dispatch_batches=False`, a stream of one shard: each process pads the last batch with the
      stream's first examples, which accelerate cannot tell apart and returns (24 predictions);
    - `dispatch_batches=False`, a stream of at least as many shards as processes: the processes
      read different shards, end with batches of different sizes and the gather fails;
    - `even_batches=False`, a map-style set: the last batches differ in size, the gather fails.

    So with several processes the loader is prepared with `even_batches=True` and, for an
    iterable dataset, `dispatch_batches=True` (with device placement, which dispatching needs),
    whatever the accelerator's `dataloader_config` says; the accelerator's own settings are
    restored afterwards. One process is never sharded: it is prepared as the accelerator says.
    """
    if accelerator.num_processes == 1:
        return accelerator.prepare_data_loader(loader)
    streamed = isinstance(loader.dataset, IterableDataset)
    settings = accelerator.dataloader_config
    accelerator.dataloader_config = dataclasses.replace(
        settings, even_batches=True, dispatch_batches=True if streamed else settings.dispatch_batches
    )
    try:
        return accelerator.prepare_data_loader(loader, device_placement=True if streamed else None)
    finally:
        accelerator.dataloader_config = settings


def cached_features_encoder(
    model: PromptCLIPPreTrainedModel,
    dataset: Dataset,
    feature_cache: ImageFeatureCache | None,
    accelerator: Accelerator,
) -> tuple[str, Callable] | None:
    """`model.frozen_image_encoder()` when `dataset` can be evaluated from `feature_cache`, else `None`
    (logged): no cache, a set without a fingerprint (streamed, or a plain torch dataset), or a model that
    does not classify from frozen features."""
    if feature_cache is None:
        return None
    if isinstance(dataset, IterableDataset) or dataset_fingerprint(dataset) is None:
        logger.info(
            "image-feature cache not used: the test set has no fingerprint (streamed or not a datasets.Dataset)"
        )
        return None
    try:
        return model.frozen_image_encoder()
    except FrozenFeaturesUnavailable as reason:
        logger.info("image-feature cache not used for %s: %s", type(model).__name__, reason)
        return None


@torch.no_grad()
def predict(
    model: PromptCLIPPreTrainedModel,
    dataset: Dataset,
    collate_fn: Callable,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
    description: str = "evaluating",
    feature_cache: ImageFeatureCache | None = None,
    num_workers: int = 0,
) -> Predictions:
    """Top-1 predictions of `model` on a dataset of `{"pixel_values", "labels"}` batches.

    `dataset` may be map-style or streamed (`IterableDataset`); under several processes the
    predictions are those of one process, in the same order (`prepare_evaluation_loader`).

    Args:
        description: the progress bar's label (e.g. `"evaluating new classes"`).
        feature_cache: read the test images' frozen features from it (encoding them on a miss) when the
            model classifies from them (`cached_features_encoder`); the predictions are the same.
        num_workers: DataLoader worker processes reading the test images (`TrainingConfig.num_workers`;
            0: this process), on the cache's path and the pixel path alike; a streamed set is always read
            by this process (`loader_workers`). Batches are page-locked when the accelerator's device is
            CUDA. The predictions are the same with any number.

    Example:
        ```python
        cache = ImageFeatureCache()
        first = predict(coop, test_set, collate_fn, feature_cache=cache)       # encodes the images
        second = predict(cocoop, test_set, collate_fn, feature_cache=cache)    # reuses their features
        ```
    """
    accelerator = accelerator or Accelerator()
    model.eval()
    model.to(accelerator.device)
    pin_memory = accelerator.device.type == "cuda"
    encoder = cached_features_encoder(model, dataset, feature_cache, accelerator)
    if encoder is not None:
        identity, encode = encoder
        processes = ProcessShards.of(accelerator)
        features, labels = feature_cache.features(
            lambda pixel_values: encode(pixel_values.to(accelerator.device)),
            identity,
            dataset,
            collate_fn=collate_fn,
            batch_size=batch_size,
            precision=accelerator.mixed_precision,
            autocast=accelerator.autocast,
            processes=processes,
            num_workers=num_workers,
            pin_memory=pin_memory,
            description=f"{description}: encoding test images",
        )
        size = len(labels)
        shared = processes is not None and processes.splits(size)
        logger.info(
            "%s: %d test images' features %s (%s)%s", description, size,
            "encoded" if feature_cache.last_source == "encoded" else f"reused from the cache ({feature_cache.last_source})",
            identity.split("|")[0],
            f"; each of {processes.count} processes encodes and classifies its shard" if shared else "",
        )  # fmt: skip
        rows = processes.shard(size) if shared else range(size)
        predicted = []
        for start in range(0, len(rows), batch_size):
            with accelerator.autocast():
                chunk = features[rows[start : start + batch_size]].to(accelerator.device)
                predicted.append(model.logits_from_image_features(chunk).argmax(-1))
        predicted = torch.cat(predicted)
        if shared:  # every process classified its shard: all the predictions, in dataset order
            predicted = processes.gather_rows(predicted, size)
        return Predictions(predicted.cpu(), labels.cpu())
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_fn,
        num_workers=loader_workers(dataset, num_workers, batch_size),
        pin_memory=pin_memory,
    )
    loader = prepare_evaluation_loader(accelerator, loader)
    predicted, labels = [], []
    for batch in progress_bar(loader, desc=description, unit="batch"):
        with accelerator.autocast():
            logits = model(pixel_values=batch["pixel_values"]).logits
        guess, truth = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"]))
        predicted.append(guess.cpu())
        labels.append(truth.cpu())
    return Predictions(torch.cat(predicted), torch.cat(labels))


def loader_workers(dataset: Dataset | IterableDataset, num_workers: int, batch_size: int = 1) -> int:
    """The DataLoader workers that read `dataset` in batches of `batch_size`: `num_workers` for a map-style
    set (no more than it has batches), 0 for a streamed one (`IterableDataset`), which this process reads alone: each worker would
    read the whole of a torch stream (every example `num_workers` times), and a `datasets` stream's shards
    would come out interleaved, out of order.

    Example:
        >>> loader_workers(test_set, 4, 64), loader_workers(test_set, 4, 1000), loader_workers(stream, 4, 64)
        (4, 2, 0)   # a test set of 1,500 images
    """
    if num_workers < 0:
        raise ValueError(
            f"num_workers must be 0 (read the images in this process) or more, got {num_workers}: set "
            "--num-workers / TrainingConfig.num_workers to 0 or a positive number."
        )
    if isinstance(dataset, IterableDataset):
        if num_workers:
            logger.info(
                "the streamed test set is read by this process, not by %d DataLoader workers (they would repeat "
                "or reorder its examples)", num_workers,
            )  # fmt: skip
        return 0
    return min(num_workers, math.ceil(len(dataset) / batch_size))


def class_lists(dataset: Dataset, spec: BenchmarkSpec | None) -> tuple[list[str], list[str] | None]:
    """The dataset's label names and, when the benchmark has them, their prompt texts."""
    names = list(dataset.features["label"].names)
    prompts = spec.prompt_names_for(names) if spec is not None else None
    return names, (prompts if prompts != names else None)


def evaluate_accuracy(
    model: PromptCLIPPreTrainedModel,
    dataset: Dataset,
    collate_fn: Callable,
    spec: BenchmarkSpec | None = None,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
    feature_cache: ImageFeatureCache | None = None,
    *,
    num_workers: int = 0,
    description: str = "evaluating",
) -> float:
    """Accuracy (%) of `model` on `dataset`, classifying among the dataset's own classes
    (`feature_cache`, `num_workers`, `description`: as `predict`)."""
    names, prompts = class_lists(dataset, spec)
    with model.using_class_names(names, prompts):
        return predict(
            model, dataset, collate_fn, batch_size, accelerator, description=description,
            feature_cache=feature_cache, num_workers=num_workers,
        ).accuracy  # fmt: skip


def evaluate_base_to_new(
    model: PromptCLIPPreTrainedModel,
    test_dataset: Dataset,
    collate_fn: Callable,
    spec: BenchmarkSpec | None = None,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
    feature_cache: ImageFeatureCache | None = None,
    *,
    num_workers: int = 0,
) -> dict[str, float]:
    """CoCoOp's protocol on a test set with all classes: base = first ceil(K/2) classes.

    "base" is the accuracy on base-class images among the base classes, "new" on new-class
    images among the new classes only (a K_new-way problem), "hm" their harmonic mean
    (`feature_cache`, `num_workers`: as `predict`).
    """
    base, new = (
        evaluate_accuracy(
            model,
            select_classes(test_dataset, part),
            collate_fn,
            spec,
            batch_size,
            accelerator,
            feature_cache,
            num_workers=num_workers,
            description=f"evaluating {part} classes",
        )
        for part in ("base", "new")
    )
    return {"base": base, "new": new, "hm": harmonic_mean(base, new)}


def evaluate_targets(
    model: PromptCLIPPreTrainedModel,
    targets: dict[str, tuple[Dataset, BenchmarkSpec | None]],
    collate_fn: Callable,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
    feature_cache: ImageFeatureCache | None = None,
    *,
    num_workers: int = 0,
) -> dict[str, float]:
    """One adapter on several test sets (cross-dataset transfer, domain generalisation; `feature_cache`,
    `num_workers`: as `predict`)."""
    return {
        name: evaluate_accuracy(
            model,
            dataset,
            collate_fn,
            spec,
            batch_size,
            accelerator,
            feature_cache,
            num_workers=num_workers,
            description=f"evaluating {name}",
        )
        for name, (dataset, spec) in targets.items()
    }


def summarize_runs(runs: Sequence[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and (sample) standard deviation of each metric over runs `[{"seed", "metrics"}]`."""
    keys = runs[0]["metrics"].keys()
    mean = {k: statistics.fmean(run["metrics"][k] for run in runs) for k in keys}
    std = {k: statistics.stdev(run["metrics"][k] for run in runs) if len(runs) > 1 else 0.0 for k in keys}
    if "hm" in mean:  # H of the mean base and new accuracies, as the papers average it
        mean["hm"] = harmonic_mean(mean["base"], mean["new"])
    return mean, std
