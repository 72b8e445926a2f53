"""Training on cached views: gradient stages that read frozen image features instead of pixels.

Room: `TrainingConfig.augment_views` (`--augment-views V`). It holds the refusal for models whose image path
is not frozen (`check_augment_views`, asked of the model's capabilities before anything is written), the
warning when fewer views are used than asked (`warn_unused_views`), `training_views` (view `v` of every
training example, the image the pixel path shows in epoch `v`, encoded once through the feature cache, each
process encoding its shard) and `ExampleIndices`, what the loop loads instead of the examples: batches of
indices into those views, batched, shuffled and sharded as the pixel path's loader batches the examples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from accelerate import Accelerator
from torch.utils.data import Dataset

from ..caching.feature_cache import FrozenFeaturesUnavailable, ImageFeatureCache, ProcessShards
from ..modeling.model import PromptCLIPPreTrainedModel
from ..utils.logs import main_process_logger
from .config import TrainingConfig, augment_views_used

logger = main_process_logger(__name__)


class ExampleIndices(Dataset):
    """Item `i` is `i`: what a gradient stage on cached features (`augment_views`) loads, batched, shuffled
    and sharded exactly as the pixel path's loader would batch the examples themselves."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


def augment_views_refusal(config: TrainingConfig, model: PromptCLIPPreTrainedModel, reason: str) -> str:
    """The message refusing `augment_views` for `model`, because of `reason` (what to do included)."""
    return (
        f"augment_views={config.augment_views} trains on cached image features, which needs a frozen "
        f"image path, but {reason} Train {type(model).__name__} without augment_views (drop "
        "--augment-views): it then draws a fresh augmentation every epoch."
    )


def check_augment_views(config: TrainingConfig, model: PromptCLIPPreTrainedModel) -> None:
    """Refuse `augment_views` for a model with gradient stages that cannot train from cached features
    (asked of the model: `capabilities.cached_features_problem`), before anything is written.

    Raises:
        ValueError: naming the model, why, and the fix (train without `augment_views`).
    """
    if config.augment_views is None or all(stage.kind != "gradient" for stage in model.training_stages()):
        return
    problem = model.capabilities.cached_features_problem
    if problem is not None:
        raise ValueError(augment_views_refusal(config, model, f"{type(model).__name__} cannot: {problem}."))


def warn_unused_views(config: TrainingConfig, used: int | None) -> None:
    """Warn when fewer views are used than asked (`augment_views_used`: no more than the epochs)."""
    asked = config.augment_views
    if used is not None and used < asked:  # then `used` is the longest gradient stage's epochs
        logger.warning(
            "augment_views=%d asked, but the longest training stage runs %d epoch%s and epoch e reads view "
            "e: %d view%s encoded and used, recorded as augment_views %d (one view per epoch: what the "
            "default path trains). Train %d or more epochs to use %d views.",
            asked, used, "s" if used != 1 else "", used, "s" if used != 1 else "", used, asked, asked,
        )  # fmt: skip


def training_views(
    model: PromptCLIPPreTrainedModel,
    dataset: Dataset,
    config: TrainingConfig,
    feature_cache: ImageFeatureCache,
    accelerator: Accelerator,
    collate_fn: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented views of every training example a run trains on (`augment_views_used`:
    `config.augment_views`, but no more than the longest gradient stage's epochs), as frozen image features.

    View `v` of example `i` is the image the pixel path shows in epoch `v` (`SeededViews` with the run's seed,
    `view_seed(seed, v, i)`), encoded once through `feature_cache` by the model's `training_image_encoder()`
    (without autograd, under the accelerator's autocast; under several processes each encodes its shard and
    all get all, `ProcessShards`); a resumed run, or another stage, reads the same views again (from memory,
    or from the cache's folder).

    Args:
        model: the model trained (its frozen image path encodes).
        dataset: the training examples through the augmenting transform.
        config: the run's `TrainingConfig` (`augment_views`, `batch_size`, `seed`, `mixed_precision`).
        feature_cache: where the views are kept.
        accelerator: the run's `Accelerator` (device, autocast, processes).
        collate_fn: batches examples (default: torch's).

    Returns:
        features `(V, N, E)` float32 (`V` views used) and labels `(N,)`, on the accelerator's device.

    Raises:
        ValueError: `augment_views` is not set, or the model's image path is not frozen (its
            `FrozenFeaturesUnavailable` reason, with what to do).

    Example:
        >>> views, labels = training_views(model, train_set, TrainingConfig(augment_views=4), ImageFeatureCache(),
        ...                                Accelerator(), collate_fn)     # (4, N, E), (N,)
    """
    if config.augment_views is None:
        raise ValueError("training_views() reads config.augment_views, which is None: set augment_views=V.")
    try:
        encoder, encode = model.training_image_encoder()
    except FrozenFeaturesUnavailable as error:
        raise ValueError(augment_views_refusal(config, model, str(error))) from None
    used = augment_views_used(config, model.training_stages())
    was_training = model.training
    model.eval()  # the frozen tower runs as in the pixel path (frozen parts are in eval mode there too)
    try:
        views, labels = feature_cache.features(
            encode,
            encoder,
            dataset,
            collate_fn=collate_fn,
            batch_size=config.batch_size,
            seed=config.seed,
            views=range(used or config.augment_views),
            precision=config.mixed_precision,
            autocast=accelerator.autocast,
            processes=ProcessShards.of(accelerator),
            num_workers=config.num_workers,
            pin_memory=accelerator.device.type == "cuda",
        )
    finally:
        model.train(was_training)
    return views.to(accelerator.device), labels.to(accelerator.device)
