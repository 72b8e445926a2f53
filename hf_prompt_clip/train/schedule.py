"""Learning-rate schedules as pure functions of (epoch, step): exact to resume, nothing to save.

Room: `train/`.
"""

from __future__ import annotations

import math

SCHEDULES = ("reference", "cosine", "constant")


def learning_rate(
    schedule: str,
    base_lr: float,
    epoch: int,
    epochs: int,
    step_in_epoch: int = 0,
    steps_per_epoch: int = 1,
    warmup_epochs: int = 1,
    warmup_lr: float = 1e-5,
    min_lr: float = 0.0,
    total_steps: int | None = None,
) -> float:
    """The learning rate for a step.

    - `"reference"` (CoOp/CoCoOp code): the first `warmup_epochs` epochs at the constant
      `warmup_lr`; then, set once per epoch, `base_lr / 2 * (1 + cos(pi * (e - w) / epochs))`
      for epoch `e` (it never reaches 0: the last epoch is at `(1 + cos(pi (E - 1) / E)) / 2`).
    - `"cosine"`: the same warm-up, then cosine decay per step to `min_lr` over the remaining steps
      (`total_steps` in all when given, as `max_steps` sets it; else `epochs x steps_per_epoch`):
      `min_lr + (base_lr - min_lr) / 2 * (1 + cos(pi * t / T))` at step `t`, torch's `CosineAnnealingLR`.
    - `"constant"`: `base_lr` throughout, after the warm-up.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown lr schedule {schedule!r}; choose from {SCHEDULES}.")
    if epoch < warmup_epochs:
        return warmup_lr
    if schedule == "constant":
        return base_lr
    if schedule == "reference":
        return base_lr / 2 * (1 + math.cos(math.pi * (epoch - warmup_epochs) / epochs))
    whole = epochs * steps_per_epoch if total_steps is None else total_steps
    total = max(1, whole - warmup_epochs * steps_per_epoch)
    done = (epoch - warmup_epochs) * steps_per_epoch + step_in_epoch
    return min_lr + (base_lr - min_lr) / 2 * (1 + math.cos(math.pi * min(done, total) / total))
