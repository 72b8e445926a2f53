"""Room: modeling. Training stages: what a stage trains (parameter-name prefixes), for how long, at which
learning rate, and whether the trainer steps an optimiser or calls the model's `fit` (`TrainingStage`);
`stages_from_overrides` builds a method's stages with the config's per-stage epochs and learning rates.

Example:
    >>> stages_from_overrides({"prompt": ("ctx",)}, stage_epochs=[5])[0].epochs
    5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["STAGE_KINDS", "TrainingStage", "stages_from_overrides"]

#: Kinds of training stage: `"gradient"` (the trainer's optimiser steps over image batches) and `"fit"`
#: (the trainer calls `model.fit(FitData(...))`, no optimiser: closed-form fits and searches).
STAGE_KINDS = ("gradient", "fit")


@dataclass(frozen=True)
class TrainingStage:
    """One stage of training: its name, the parameter-name prefixes it trains, optional overrides of
    the training configuration's epochs and learning rate, learning-rate multipliers for some
    of its parameters (`(prefix, scale)` pairs, e.g. a fine-tuned image tower at a tenth), and its
    kind: `"gradient"` (optimiser steps) or `"fit"` (`model.fit`, `modeling/fitting.py`)."""

    name: str
    trainable: tuple[str, ...]
    epochs: int | None = None
    learning_rate: float | None = None
    learning_rate_scales: tuple[tuple[str, float], ...] = ()
    kind: str = "gradient"

    def __post_init__(self):
        if self.kind not in STAGE_KINDS:
            raise ValueError(f"TrainingStage kind must be one of {STAGE_KINDS}, got {self.kind!r}.")

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
