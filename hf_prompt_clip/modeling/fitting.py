"""What a `fit` training stage reads: the data, how to encode it, and the shared feature cache.

Room: `modeling/`.

Some methods are not trained by gradient steps on image batches but fitted in closed form or by a
search on frozen features: a linear probe (L-BFGS logistic regression, its L2 strength chosen on the
validation split), Tip-Adapter (a key-value cache of training features, alpha and beta searched on
validation). Such a method declares a training stage of kind `"fit"` (`TrainingStage(kind="fit")`);
the trainer runs it by calling `model.fit(FitData(...))`, with no optimiser of its own, and
checkpoints the adapter afterwards as after any stage. The method reads features through
`FitData.image_features`, so every image is encoded once per view, whatever the method searches
(`caching/feature_cache.py`).

Example:
    ```python
    from hf_prompt_clip.modeling.fitting import FitData
    from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform
    model = LinearProbeModel.from_clip(base, names)
    plain = eval_transform(model.image_processor)
    model.fit(FitData(train=with_image_transform(train, plain), validation=with_image_transform(val, plain),
                      collate_fn=collate_fn))
    ```
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..caching.feature_cache import ImageFeatureCache, ProcessShards


class FeatureSource(Protocol):
    """What a fit reads of the model it fits (`PromptCLIPPreTrainedModel` is one): the frozen image
    encoder (`(identity, encode)`, see `frozen_image_encoder`) and the device its text side runs on."""

    text_device: torch.device

    def frozen_image_encoder(self) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]: ...


def top1_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent of `logits` `(N, K)` against `labels` `(N,)`, from the integer count of
    hits (the first maximum wins a tie), as the searches of fit stages score their candidates.

    Example:
        >>> top1_accuracy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        50.0
    """
    return 100.0 * int((logits.argmax(-1) == labels.to(logits.device)).sum()) / max(len(labels), 1)


#: The splits a fit reads (`FitData.image_features(model, split)`).
FIT_SPLITS = ("train", "train_views", "validation")

#: What the progress bar says while a split is encoded.
SPLIT_DESCRIPTIONS = {
    "train": "encoding training images",
    "train_views": "encoding augmented training views",
    "validation": "encoding validation images",
}


@dataclass
class FitData:
    """The data of a fit stage and how to encode it.

    Attributes:
        train: the training examples (`{"pixel_values", "label"}`) through the **test** transform: one
            deterministic view each (what a linear probe is fitted on).
        validation: validation examples through the test transform (the few-shot protocol's
            `min(shots, 4)` per class in the runner), for the searches; `None` when there are none.
        train_views: the training examples through the **augmenting** training transform; view `v` of
            example `i` is drawn with `view_seed(seed, v, i)`, the image the gradient trainer shows in
            epoch `v` (Tip-Adapter's augmented cache). `None`: no augmented views available.
        collate_fn: batches examples (default: torch's).
        batch_size: images per image-tower call.
        seed: the run's seed (views, shuffling).
        device: where features are computed (default: the model's device).
        precision: the autocast setting (`"no"`, `"bf16"`, `"fp16"`), part of the cache key.
        autocast: context manager factory the image tower runs under (e.g. `accelerator.autocast`).
        cache: the feature cache; one per run shares features between methods and seeds.
        processes: under several processes, how they share the encoding (`ProcessShards`: each encodes
            its shard, all get all the features); `None` for one process.
        num_workers: DataLoader worker processes that read and transform the images being encoded (the
            trainer passes its `TrainingConfig.num_workers`); the features are the same with any number.
        pin_memory: page-locked batches for the copy to the GPU; `None` (the default): when the features
            go to a CUDA device (`device`, or the model's).
    """

    train: Any
    validation: Any | None = None
    train_views: Any | None = None
    collate_fn: Callable | None = None
    batch_size: int = 64
    seed: int = 1
    device: torch.device | str | None = None
    precision: str = "no"
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    cache: ImageFeatureCache = field(default_factory=ImageFeatureCache)
    processes: ProcessShards | None = None
    num_workers: int = 0
    pin_memory: bool | None = None

    def dataset(self, split: str) -> Any:
        """The dataset of `split` (`"train"`, `"train_views"`, `"validation"`), refusing one that is missing."""
        if split not in FIT_SPLITS:
            raise ValueError(f"split must be one of {FIT_SPLITS}, got {split!r}.")
        data = getattr(self, split)
        if data is None:
            raise ValueError(
                f"This fit needs {split!r} examples, but FitData has none: pass FitData({split}=...) (the "
                "experiment runner gives validation examples to methods whose capabilities.uses_validation is true, and "
                "the training set through both transforms)."
            )
        return data

    def image_features(
        self, model: FeatureSource, split: str, views: Iterable[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen image features of `split` as `model.frozen_image_encoder()` computes them, through the cache.

        Args:
            model: the method being fitted.
            split: `"train"`, `"validation"` (one deterministic view) or `"train_views"` (give `views`).
            views: view indices of `train_views` (e.g. `range(10)`).

        Returns:
            features `(N, E)` (or `(V, N, E)` with `views`) and labels `(N,)`, on `device`.
        """
        if (split == "train_views") != (views is not None):
            raise ValueError(
                f"views go with split 'train_views' (augmented views) and only with it; got split {split!r} "
                f"and views={views!r}."
            )
        dataset = self.dataset(split)
        encoder, encode = model.frozen_image_encoder()
        device = torch.device(self.device or model.text_device)
        pin_memory = device.type == "cuda" if self.pin_memory is None else self.pin_memory
        features, labels = self.cache.features(
            encode,
            encoder,
            dataset,
            collate_fn=self.collate_fn,
            batch_size=self.batch_size,
            seed=self.seed,
            views=views,
            precision=self.precision,
            autocast=self.autocast,
            processes=self.processes,
            num_workers=self.num_workers,
            pin_memory=pin_memory,
            description=SPLIT_DESCRIPTIONS[split],
        )
        return features.to(device), labels.to(device)
