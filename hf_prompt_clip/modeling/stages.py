"""Room: modeling. Training stages: what a stage trains (parameter-name prefixes), for how long, at which
learning rate, whether the trainer steps an optimiser or calls the model's `fit` (`TrainingStage`), and whether
the stage's result is a weighted average of its epochs' tensors (`EpochAverage`, `gaussian_epoch_weights`);
`stages_from_overrides` builds a method's stages with the config's per-stage epochs and learning rates.

Example:
    >>> stages_from_overrides({"prompt": ("ctx",)}, stage_epochs=[5])[0].epochs
    5
    >>> stage = TrainingStage("prompt", ("ctx",), epoch_average=EpochAverage(mean=2, std=1))
    >>> [round(w, 3) for w in stage.epoch_weights(3)]
    [0.274, 0.452, 0.274]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EPOCH_AVERAGES",
    "STAGE_KINDS",
    "EpochAverage",
    "TrainingStage",
    "gaussian_epoch_weights",
    "stages_from_overrides",
]

#: Kinds of training stage: `"gradient"` (the trainer's optimiser steps over image batches) and `"fit"`
#: (the trainer calls `model.fit(FitData(...))`, no optimiser: closed-form fits and searches).
STAGE_KINDS = ("gradient", "fit")

#: Kinds of epoch average (`EpochAverage.kind`): `"gaussian"`, weights from a Gaussian over the epochs.
EPOCH_AVERAGES = ("gaussian",)


def gaussian_epoch_weights(epochs: int, mean: float, std: float) -> list[float]:
    """Weights of epochs `e = 1 .. epochs` proportional to the Gaussian density at `e`, summing to 1
    (PromptSRC's Gaussian prompt aggregation, `trainers/promptsrc.py:263-270`, `:358-360`):

        w_e = pdf(e) / sum_e' pdf(e'),   pdf(e) = exp(-((e - mean) / std)^2 / 2) / (std sqrt(2 pi))

    Computed as `exp(l_e - max_e' l_e') / sum_e'' exp(l_e'' - max l)` with `l_e = -((e - mean) / std)^2 / 2`:
    the same weights (the density's constant factor cancels in the normalisation), but no weight underflows to
    0 / 0 when every epoch is far from the mean (mean 100, std 1, 5 epochs: all the weight on epoch 5).

    Args:
        epochs: the number of epochs N (at least 1); epochs are counted from 1.
        mean: the epoch the weights peak at (the authors: 15 of 20 epochs for base-to-new).
        std: the spread in epochs (positive; the authors: 1 for base-to-new).

    Returns:
        N weights, each in [0, 1], summing to 1 (up to rounding).

    Raises:
        ValueError: `epochs < 1`, `std <= 0`, or a mean or std that is not finite.

    Example:
        >>> [round(w, 3) for w in gaussian_epoch_weights(20, 15, 1)][12:17]   # epochs 13 .. 17
        [0.054, 0.242, 0.399, 0.242, 0.054]
        >>> gaussian_epoch_weights(1, 15, 1)
        [1.0]
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"gaussian_epoch_weights needs at least 1 epoch, got epochs={epochs!r}.")
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(
            f"gaussian_epoch_weights needs a finite mean and a positive finite std, got mean={mean!r}, "
            f"std={std!r}: e.g. mean=15, std=1 (PromptSRC's base-to-new setting)."
        )
    logs = [-0.5 * ((epoch - mean) / std) ** 2 for epoch in range(1, epochs + 1)]
    peak = max(logs)
    densities = [math.exp(value - peak) for value in logs]
    total = math.fsum(densities)
    return [density / total for density in densities]


@dataclass(frozen=True)
class EpochAverage:
    """A stage's result as a weighted average of its trained tensors over its epochs, a description without
    code (it is part of the run's fingerprint): the weights follow from the number of epochs the stage runs,
    which only the trainer knows (`TrainingConfig.epochs` or the stage's own), through `weights(epochs)`.

    The trainer adds `w_e x` (each trained tensor) to a running sum after every epoch `e`, keeps the sum in
    every checkpoint, and at the end of the last epoch loads the sum into the model: the stage's result, which
    its last checkpoint holds and the run saves and evaluates (docs/training.md).

    Attributes:
        kind: `"gaussian"` (`gaussian_epoch_weights`: weights from a Gaussian over epochs 1 .. N).
        mean, std: the Gaussian's mean and standard deviation, in epochs counted from 1.

    Raises:
        ValueError: an unknown kind, a std that is not positive, or a mean or std that is not finite.

    Example:
        >>> round(EpochAverage(mean=15, std=1).weights(20)[14], 4)   # epoch 15's weight
        0.3989
    """

    kind: str = "gaussian"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        if self.kind not in EPOCH_AVERAGES:
            raise ValueError(f"EpochAverage kind must be one of {EPOCH_AVERAGES}, got {self.kind!r}.")
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(
                f"EpochAverage needs a finite mean and a positive finite std, got mean={self.mean!r}, "
                f"std={self.std!r}."
            )

    def weights(self, epochs: int) -> tuple[float, ...]:
        """One weight per epoch `1 .. epochs`, summing to 1."""
        return tuple(gaussian_epoch_weights(epochs, self.mean, self.std))

    def describe(self) -> str:
        """What a run's settings and card say of it, e.g. `"Gaussian average of the epochs (mean 15, std 1)"`."""
        return f"Gaussian average of the epochs (mean {self.mean:g}, std {self.std:g})"


@dataclass(frozen=True)
class TrainingStage:
    """One stage of training: its name, the parameter-name prefixes it trains, optional overrides of
    the training configuration's epochs and learning rate, learning-rate multipliers for some
    of its parameters (`(prefix, scale)` pairs, e.g. a fine-tuned image tower at a tenth), its
    kind: `"gradient"` (optimiser steps) or `"fit"` (`model.fit`, `modeling/fitting.py`), and for a gradient
    stage an optional `epoch_average` (`EpochAverage`): the average of the stage's trained tensors over its
    epochs, with the weights `epoch_weights(epochs)` (one per epoch, summing to 1), replaces the trained ones at
    the stage's end (PromptSRC's Gaussian prompt aggregation; `None`: the last epoch's tensors)."""

    name: str
    trainable: tuple[str, ...]
    epochs: int | None = None
    learning_rate: float | None = None
    learning_rate_scales: tuple[tuple[str, float], ...] = ()
    kind: str = "gradient"
    epoch_average: EpochAverage | None = None

    def __post_init__(self):
        if self.kind not in STAGE_KINDS:
            raise ValueError(f"TrainingStage kind must be one of {STAGE_KINDS}, got {self.kind!r}.")
        if self.epoch_average is not None and self.kind != "gradient":
            raise ValueError(
                f"TrainingStage {self.name!r}: epoch_average averages a gradient stage's epochs, and a "
                f"{self.kind!r} stage has none: drop epoch_average or make the stage a gradient stage."
            )

    def epoch_weights(self, epochs: int) -> tuple[float, ...] | None:
        """The weight of each of the stage's `epochs` epochs in its result (summing to 1), or `None` when the
        result is the last epoch's tensors (no `epoch_average`)."""
        return None if self.epoch_average is None else self.epoch_average.weights(epochs)

    def learning_rate_scale(self, parameter_name: str) -> float:
        """The multiplier of the stage's learning rate for `parameter_name` (first matching prefix)."""
        return next(
            (scale for prefix, scale in self.learning_rate_scales if parameter_name.startswith(prefix)), 1.0
        )


def stages_from_overrides(
    trainable: dict[str, tuple[str, ...]],
    stage_epochs: Sequence[int | None] | None = None,
    stage_learning_rates: Sequence[float | None] | None = None,
    owner: str = "this model",
) -> list[TrainingStage]:
    """`TrainingStage`s named and ordered as `trainable`, with one epochs and one learning-rate override per
    stage (`None`: the training configuration's).

    Args:
        trainable: stage name -> parameter-name prefixes it trains, in training order.
        stage_epochs: one value per stage, or `None` (no override).
        stage_learning_rates: one value per stage, or `None` (no override).
        owner: who trains in these stages, for the error message.

    Raises:
        ValueError: a list of overrides does not give one value per stage.

    Example:
        >>> [s.name for s in stages_from_overrides({"a": ("x",), "b": ("y",)}, stage_learning_rates=[0.1, 0.2])]
        ['a', 'b']
    """
    names = list(trainable)
    overrides = {}
    for field, values in (("stage_epochs", stage_epochs), ("stage_learning_rates", stage_learning_rates)):
        if values is not None and len(values) != len(names):
            raise ValueError(
                f"{field}={list(values)} gives {len(values)} values, but {owner} trains in {len(names)} stage(s) "
                f"{names}: give one value per stage."
            )
        overrides[field] = list(values) if values else [None] * len(names)
    return [
        TrainingStage(
            name, trainable[name], overrides["stage_epochs"][i], overrides["stage_learning_rates"][i]
        )
        for i, name in enumerate(names)
    ]
