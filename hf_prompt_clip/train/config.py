"""The run's request: how to train (`TrainingConfig`), and which of those settings a run used.

Room: the training settings, checked once when built. It holds `TrainingConfig`, the settings only gradient
stages read (`GRADIENT_SETTINGS`), what a run records as its settings (`settings_used`, `augment_views_used`)
and how trackers take them (`tracker_config`). It reads no folder, runs no model and imports nothing else from
`train/`: the loop (`trainer.py`), the run folder (`run_folder.py`) and the cached views (`cached_views.py`)
read it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..modeling.stages import TrainingStage
from .schedule import SCHEDULES


def tracker_config(values: dict) -> dict[str, bool | int | float | str]:
    """Settings as every tracker takes them (TensorBoard's `add_hparams` takes only scalars and
    strings): lists, tuples and dicts as JSON text, `None` as `"None"`, others as they are.

    Example:
        >>> tracker_config({"report_to": ["tensorboard"], "max_grad_norm": None, "epochs": 10})
        {'report_to': '["tensorboard"]', 'max_grad_norm': 'None', 'epochs': 10}
    """
    flat = {}
    for key, value in values.items():
        if value is None:
            flat[key] = "None"
        elif isinstance(value, (bool, int, float, str)):
            flat[key] = value
        else:
            flat[key] = json.dumps(value, default=str)
    return flat


@dataclass
class TrainingConfig:
    """How to train (defaults: the CoOp/CoCoOp reference recipe, docs/training.md).

    Args:
        output_dir: where checkpoints and the final adapter go.
        epochs: epochs per training stage (a stage may override it).
        batch_size: images per device per step.
        learning_rate: peak learning rate (SGD 0.002 in the papers).
        optimizer: `"sgd"` (momentum 0.9, weight decay 5e-4) or `"adamw"`.
        lr_schedule: `"reference"` (warm-up epoch at `warmup_lr`, then cosine set once per epoch),
            `"cosine"` (per step, down to `min_lr`) or `"constant"`.
        min_lr: where the `"cosine"` schedule ends (torch's `eta_min`; CLIP-LoRA: 1e-6).
        max_steps: train each gradient stage for this many optimisation steps instead of whole epochs (the
            epochs are then `ceil(max_steps / steps per epoch)`, the last one cut short, and the `"cosine"`
            schedule spans `max_steps`): CLIP-LoRA's `500 x shots` iterations. `None`: `epochs` whole epochs.
        drop_last: drop each epoch's last batch when it is incomplete (Dassl's training loaders do, when the
            set holds at least one batch: `dassl/data/data_manager.py`); the set is never dropped whole.
        gradient_accumulation_steps: steps whose gradients are summed before an update.
        max_grad_norm: clip the gradient norm to this value (`None`: no clipping).
        mixed_precision: `"no"`, `"bf16"` or `"fp16"` (autocast; trainable tensors stay fp32).
        seed: seeds Python, NumPy, torch and the data order.
        checkpoint_every_epochs: save a checkpoint every N epochs (and at the end).
        checkpoint_every_steps: also save every N optimisation steps (0: off).
        keep_checkpoints: how many recent checkpoints to keep.
        resume_from_checkpoint: a checkpoint folder, or `"latest"` for the newest complete checkpoint
            of this run (same fingerprint) in `output_dir`.
        overwrite_output_dir: train in an `output_dir` that holds another run (other settings),
            deleting that run's checkpoints; without it such a folder is refused.
        num_workers: DataLoader workers.
        report_to: trackers for `Accelerator(log_with=...)` (`[]`: none).
        augment_views: train gradient stages on this many precomputed augmented views per image (`--augment-views
            V`, the Tip-Adapter practice): view `v` of every training image is encoded once through the feature
            cache before the stage (drawn as the pixel path draws epoch `v`, `view_seed`), and epoch `e` trains
            on view `e mod V`'s features, batches shuffled as the pixel path shuffles them. It changes the
            augmentation (views repeat every V epochs), so it is off (`None`) by default; for `V >= epochs` it
            trains what the pixel path trains. No more views than the longest gradient stage's epochs are
            encoded, and that number is what the run records (`augment_views_used`; a warning when it is less). Only methods whose image path is frozen take it
            (`PromptCLIPPreTrainedModel.training_image_encoder`); fit stages ignore it.
    """

    output_dir: str = "outputs/run"
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.002
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "reference"
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    min_lr: float = 0.0
    max_steps: int | None = None
    drop_last: bool = False
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = None
    mixed_precision: str = "no"
    seed: int = 1
    checkpoint_every_epochs: int = 1
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 2
    resume_from_checkpoint: str | None = None
    overwrite_output_dir: bool = False
    num_workers: int = 0
    report_to: list[str] = field(default_factory=list)
    augment_views: int | None = None

    def __post_init__(self):
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}.")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}.")
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("warmup_epochs", "checkpoint_every_epochs", "checkpoint_every_steps", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative, got {getattr(self, name)} (0 turns it off).")
        for name in ("learning_rate", "warmup_lr", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"{name} must be a positive finite number, got {value!r}"
                    + (" (None turns clipping off)." if name == "max_grad_norm" else ".")
                )
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(
                f"max_steps must be a positive number of optimisation steps or None (whole epochs), got "
                f"{self.max_steps!r}; e.g. max_steps=8000."
            )
        if not (math.isfinite(self.min_lr) and 0 <= self.min_lr <= self.learning_rate):
            raise ValueError(
                f"min_lr must be from 0 to learning_rate ({self.learning_rate}), got {self.min_lr!r}; e.g. "
                "min_lr=1e-6 (where the cosine schedule ends)."
            )
        views = self.augment_views
        if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
            raise ValueError(
                f"augment_views must be a positive number of views per training image, got {views!r}; e.g. "
                "augment_views=10 (--augment-views 10), or None to draw a fresh augmentation every epoch."
            )
        if not 0 <= self.weight_decay < math.inf or not 0 <= self.momentum < 1:
            raise ValueError(
                f"weight_decay must be >= 0 and momentum in [0, 1), got {self.weight_decay} and {self.momentum}."
            )


#: `TrainingConfig` fields that only gradient stages read: a run whose stages are all fits ignores them.
GRADIENT_SETTINGS = (
    "epochs",
    "learning_rate",
    "optimizer",
    "momentum",
    "weight_decay",
    "lr_schedule",
    "warmup_epochs",
    "warmup_lr",
    "min_lr",
    "max_steps",
    "drop_last",
    "gradient_accumulation_steps",
    "max_grad_norm",
    "checkpoint_every_steps",
    "augment_views",
)


def settings_used(training: TrainingConfig, stages: Sequence[TrainingStage]) -> dict[str, Any]:
    """The training settings a run with `stages` used, as its results and model card record them.

    A run of fit stages only (a linear probe, Tip-Adapter) drops the optimiser's settings (`GRADIENT_SETTINGS`),
    which it never read; gradient stages that override the epochs or learning rate, or whose result is an
    average of their epochs (`TrainingStage.epoch_average`), are listed as `stages`;
    `augment_views` is listed only when set and a gradient stage reads it, as the number of views used
    (`augment_views_used`: no more than the longest gradient stage's epochs).

    Args:
        training: the run's `TrainingConfig`.
        stages: the model's `training_stages()`.

    Returns:
        A JSON-able dict: `dataclasses.asdict(training)` less what the run did not use, plus `stages` where
        a stage overrides the configuration.

    Example:
        >>> settings_used(TrainingConfig(), [TrainingStage("fit", (), kind="fit")]).get("learning_rate")  # None
        >>> settings_used(TrainingConfig(epochs=5), [TrainingStage("ctx", ("ctx",))])["epochs"]
        5
    """
    settings = asdict(training)
    settings["augment_views"] = augment_views_used(training, stages)
    if settings["augment_views"] is None:
        settings.pop("augment_views")
    gradient = [stage for stage in stages if stage.kind == "gradient"]
    if not gradient:
        for name in GRADIENT_SETTINGS:
            settings.pop(name, None)
    if training.max_steps is None:
        settings.pop("max_steps", None)
    else:  # steps decide, not epochs: the epochs setting was not read
        settings.pop("epochs", None)
    if any(
        stage.epochs is not None or stage.learning_rate is not None or stage.epoch_average is not None
        for stage in gradient
    ):
        settings["stages"] = [
            f"{stage.name}: "
            + (
                f"{training.max_steps} steps"
                if training.max_steps
                else f"{stage.epochs or training.epochs} epochs"
            )
            + " at learning rate "
            f"{stage.learning_rate or training.learning_rate}"
            + ("" if stage.epoch_average is None else f"; result: {stage.epoch_average.describe()}")
            for stage in gradient
        ]
    return settings


def augment_views_used(training: TrainingConfig, stages: Sequence[TrainingStage]) -> int | None:
    """The augmented views a run encodes and trains on: `training.augment_views` (V), but no more than the
    most epochs a gradient stage trains (`stage.epochs or training.epochs`), as epoch `e` reads view
    `e mod V` and views past the last epoch would be encoded for nothing. `None` when V is unset or no
    stage is a gradient stage (fit stages do not read it).

    With `V >= epochs` this is the number of epochs: each epoch reads its own view, what the pixel path
    trains. Results, `training_args.json`, the card and the run's fingerprint record this number.

    Args:
        training: the run's `TrainingConfig`.
        stages: the model's `training_stages()`.

    Example:
        >>> augment_views_used(TrainingConfig(epochs=1, augment_views=5), [TrainingStage("ctx", ("ctx",))])
        1
        >>> augment_views_used(TrainingConfig(epochs=10, augment_views=5), [TrainingStage("ctx", ("ctx",))])
        5
    """
    epochs = [stage.epochs or training.epochs for stage in stages if stage.kind == "gradient"]
    if training.augment_views is None or not epochs:
        return None
    if training.max_steps is not None:  # the epochs follow from the steps and the data: no cap known here
        return training.augment_views
    return min(training.augment_views, max(epochs))
