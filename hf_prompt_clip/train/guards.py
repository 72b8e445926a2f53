"""Finite or fail: training stops, naming the step, when the loss or the trainable parameters stop being finite.

Room: the checks that keep non-finite numbers out of checkpoints and results. It holds the errors
(`NonFiniteTrainingError`, `NonFiniteLossError`, `NonFiniteParametersError`), `overflowing` (NaN, inf, or
values whose square overflows: every layer norm over them gives NaN), and `FiniteGuard`, which the loop
holds: it checks the loss and the parameters it came from in one host sync per step (the same verdict on
every process), checks the parameters before every checkpoint and at the end of every stage, and keeps the
"last good checkpoint" bookkeeping that every error names (a checkpoint is good once a finite loss has been
computed from its parameters).

Example:
    ```python
    guard = FiniteGuard(accelerator)
    value = guard.check_step(loss, named_parameters, "ctx", lr, global_step, epoch)   # raises if not finite
    guard.saved(checkpoint)                  # good once the next loss is finite
    ```
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator


class NonFiniteTrainingError(FloatingPointError):
    """Training stopped being finite (the loss or the trainable parameters); nothing non-finite was saved."""


class NonFiniteLossError(NonFiniteTrainingError):
    """The training loss became NaN or infinite."""


class NonFiniteParametersError(NonFiniteTrainingError):
    """An optimiser step made trainable parameters overflow: NaN, infinite, or so large that their
    squares are not finite (above about 1.8e19 in float32), where every layer norm over them gives NaN."""


def overflowing(tensor: torch.Tensor) -> torch.Tensor:
    """A boolean tensor (no host sync): does `tensor` hold NaN, inf, or values whose square overflows?

    Example:
        >>> overflowing(torch.tensor([1.0, 3e19])).item(), overflowing(torch.tensor([1.0, 2.0])).item()
        (True, False)
    """
    if tensor.numel() == 0:
        return torch.zeros((), dtype=torch.bool, device=tensor.device)
    return ~torch.isfinite(tensor.detach().abs().amax().float().square())


NamedParameters = list[tuple[str, torch.nn.Parameter]]


class FiniteGuard:
    """Checks that training stays finite and knows the last checkpoint known to be good.

    Args:
        accelerator: the run's `Accelerator` (its processes agree on every verdict: flags are summed).

    Attributes:
        good: the last checkpoint whose (finite) parameters gave a finite loss.
        unchecked: a checkpoint saved since, with finite parameters but no loss computed from them yet.
        resumed_from: the checkpoint this run resumed (a failure right after it is that checkpoint's).
        steps_at_start: the optimiser steps done when this run started (parameters a step of this run made).
        last_step: (epoch, learning rate) of the last optimiser step, which errors name.
    """

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator
        self.good: Path | None = None
        self.unchecked: Path | None = None
        self.resumed_from: Path | None = None
        self.steps_at_start = 0
        self.last_step: tuple[int, float] | None = None

    def start(self, global_step: int, resumed_from: Path | None = None) -> None:
        """A run starts at `global_step`, from checkpoint `resumed_from` (`None`: from scratch)."""
        if resumed_from is not None:
            self.resumed_from = self.unchecked = resumed_from
        self.steps_at_start = global_step

    def saved(self, checkpoint: Path) -> None:
        """`checkpoint` was written (its parameters are finite: `check_parameters` ran before)."""
        self.unchecked = checkpoint

    def stepped(self, epoch: int, lr: float) -> None:
        """An optimiser step was taken in `epoch` at learning rate `lr`."""
        self.last_step = (epoch, lr)

    def checkpoints_text(self) -> str:
        """The last checkpoint known to be good (finite parameters that gave a finite loss), or none."""
        good, unchecked = self.good, self.unchecked
        if good is not None:
            text = (
                f"The last checkpoint known to be good (finite parameters that gave a finite loss) is {good}"
            )
        elif unchecked is not None and unchecked == self.resumed_from:
            text = f"No checkpoint is known to be good: this failure comes from the one resumed, {unchecked}"
            unchecked = None
        else:
            text = "No checkpoint of this run is known to be good"
        if unchecked is not None:
            text += f"; {unchecked.name}, saved after it, has finite parameters but gave no finite loss yet"
        return text + ". No checkpoint with non-finite parameters was saved"

    def error(
        self, error: type, what: str, stage_name: str, epoch: int, lr: float | None, detail: str = ""
    ) -> NonFiniteTrainingError:
        """The `error` to raise: what went wrong, where (stage, epoch, learning rate), the last good
        checkpoint, and what to do."""
        lr_text = f"learning rate {lr:.3g}" if lr is not None else "learning rate unknown"
        return error(
            f"{what} (stage {stage_name!r}, epoch {epoch}) with {lr_text}{detail}. "
            f"{self.checkpoints_text()}. Resuming with the same settings repeats the same steps: lower "
            "the learning rate, set max_grad_norm or check the inputs, then train afresh (a new "
            "output_dir, or overwrite_output_dir=True)."
        )

    def flags(self, parameters: list[torch.Tensor], loss: torch.Tensor | None) -> list[float]:
        """One host sync: [loss value, loss non-finite, each parameter non-finite] (flags summed over
        processes, so that every process stops at the same step)."""
        device = parameters[0].device if parameters else self.accelerator.device
        with torch.no_grad():
            bad = [overflowing(p) for p in parameters]
            if loss is not None:
                bad.insert(0, ~torch.isfinite(loss.detach()).all())
            flags = torch.stack(bad).float() if bad else torch.zeros(0, device=device)
            if self.accelerator.num_processes > 1:
                flags = self.accelerator.reduce(flags, "sum")
            value = (
                loss.detach().float().reshape(1) if loss is not None else torch.zeros(1, device=flags.device)
            )
            return torch.cat([value.to(flags.device), flags]).tolist()

    def check_parameters(
        self, named: NamedParameters, when: str, stage_name: str | None, global_step: int, epoch: int
    ) -> None:
        """Raise `NonFiniteParametersError` naming the parameters that are not finite `when` (e.g. "before
        saving checkpoint-8"), after step `global_step` of `epoch`."""
        flags = self.flags([p for _, p in named], None)[1:]
        bad = [name for (name, _), flag in zip(named, flags) if flag]
        if bad:
            step_epoch, lr = self.last_step or (epoch, None)
            raise self.error(
                NonFiniteParametersError,
                f"The trainable parameters {', '.join(bad[:5])} are not finite {when}, after step {global_step}",
                stage_name,
                step_epoch,
                lr,
            )

    def check_step(
        self,
        loss: torch.Tensor,
        named: NamedParameters,
        stage_name: str,
        lr: float,
        global_step: int,
        epoch: int,
    ) -> float:
        """Check the loss just computed and the parameters it was computed from (the last step's result);
        raise naming step, stage, epoch, learning rate and the last good checkpoint. Returns the loss value.
        A finite result confirms the checkpoint saved since the last check."""
        values = self.flags([p for _, p in named], loss)
        value, loss_bad, params_bad = values[0], values[1], values[2:]
        bad = [name for (name, _), flag in zip(named, params_bad) if flag]
        if bad and global_step > self.steps_at_start:
            step_epoch, step_lr = self.last_step or (epoch, None)
            raise self.error(
                NonFiniteParametersError,
                f"Optimiser step {global_step} made the trainable parameters {', '.join(bad[:5])} non-finite",
                stage_name,
                step_epoch,
                step_lr,
            )
        if loss_bad:
            already = (
                f"; the trainable parameters were not finite already ({', '.join(bad[:5])})" if bad else ""
            )
            raise self.error(
                NonFiniteLossError,
                f"The loss became {value} at step {global_step + 1}",
                stage_name,
                epoch,
                lr,
                already,
            )
        if self.unchecked is not None:
            self.good, self.unchecked = self.unchecked, None
        return value
