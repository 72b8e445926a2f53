"""The running weighted sum of a gradient stage's trained tensors over its epochs (`TrainingStage.epoch_average`).

Room: `train/`. What the loop does for a stage whose result is an average of its epochs (PromptSRC's Gaussian
prompt aggregation): `EpochSum` adds `w_e x` every trained tensor after each epoch `e`, is written into every
checkpoint (`EPOCH_SUM_FILE`, beside the adapter) and read back on resume, so a resumed run sums exactly what
an uninterrupted one sums, and at the end of the stage's last epoch it loads the sum into the model.

Only the stage's trained tensors are summed. The authors sum the whole `state_dict()` (frozen CLIP, frozen
buffers and all); since the weights sum to 1, their frozen entries come back unchanged up to rounding, so
summing the trained tensors only is the same average without the rounding of frozen weights.

Example:
    ```python
    total = EpochSum(stage.epoch_weights(epochs))
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    ...                                    # after each epoch, in order
    total.add(trained)
    if total.complete:                     # the last epoch: the average is the stage's result
        total.load_into(trained)
    ```
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

#: The file of a checkpoint that holds the running sum (absent before the first epoch ends).
EPOCH_SUM_FILE = "epoch_average.safetensors"

__all__ = ["EPOCH_SUM_FILE", "EpochSum"]


class EpochSum:
    """`sum_e w_e x_e` over the epochs done so far, per trained tensor (see the module docstring).

    Args:
        weights: one weight per epoch of the stage, in order (`TrainingStage.epoch_weights`), summing to 1.

    Attributes:
        total: tensor name -> the running sum, on the tensor's device, in float32 (or the tensor's own dtype
            when wider); empty before the first epoch ends.
        epochs_added: the epochs summed so far.

    The sum is accumulated as the authors accumulate it: `total = total + w_e x_e`, epoch after epoch.
    """

    def __init__(self, weights: Sequence[float]):
        self.weights = tuple(float(w) for w in weights)
        self.total: dict[str, torch.Tensor] = {}
        self.epochs_added = 0

    @property
    def complete(self) -> bool:
        """Whether every epoch was added (the average is then the stage's result)."""
        return self.epochs_added == len(self.weights)

    def add(self, tensors: Sequence[tuple[str, torch.Tensor]]) -> None:
        """Add the next epoch's weight times each of `tensors` (`(name, tensor)` pairs: the trained ones).

        Raises:
            RuntimeError: every epoch was added already.
        """
        if self.complete:
            raise RuntimeError(
                f"EpochSum: all {len(self.weights)} epochs were added already; a stage adds each epoch once."
            )
        weight = self.weights[self.epochs_added]
        with torch.no_grad():
            for name, tensor in tensors:
                term = tensor.detach().to(torch.promote_types(tensor.dtype, torch.float32)) * weight
                self.total[name] = term if name not in self.total else self.total[name] + term
        self.epochs_added += 1

    def load_into(self, tensors: Sequence[tuple[str, torch.Tensor]]) -> None:
        """Copy the sum into `tensors` (`(name, tensor)` pairs, in their dtype): the stage's result.

        Raises:
            RuntimeError: not every epoch was added, or a tensor was never summed.
        """
        missing = [name for name, _ in tensors if name not in self.total]
        if not self.complete or missing:
            raise RuntimeError(
                f"EpochSum: the average needs all {len(self.weights)} epochs of every trained tensor; "
                f"{self.epochs_added} were added" + (f", never {missing}" if missing else "") + "."
            )
        with torch.no_grad():
            for name, tensor in tensors:
                tensor.copy_(self.total[name])

    # ------------------------------------------------------------------ checkpoints

    def save(self, folder: str | Path) -> None:
        """Write the sum into a checkpoint folder (`EPOCH_SUM_FILE`, with the epochs added and the weights);
        nothing before the first epoch ends."""
        if not self.epochs_added:
            return
        tensors = {name: value.detach().contiguous().cpu() for name, value in self.total.items()}
        metadata = {"epochs_added": str(self.epochs_added), "weights": json.dumps(self.weights)}
        save_file(tensors, str(Path(folder) / EPOCH_SUM_FILE), metadata=metadata)

    def load(self, checkpoint: str | Path, epochs_done: int, device: torch.device | str) -> None:
        """Read the sum a checkpoint holds (`epochs_done` epochs of this stage were done when it was written).

        Raises:
            RuntimeError: the checkpoint's sum does not hold `epochs_done` epochs with these weights (a
                checkpoint of a stage without an epoch average, or written otherwise).
        """
        path = Path(checkpoint) / EPOCH_SUM_FILE
        self.total, self.epochs_added = {}, 0
        if not path.is_file():
            found, weights = 0, self.weights
        else:
            with safe_open(str(path), framework="pt") as file:
                metadata = file.metadata() or {}
            found = int(metadata.get("epochs_added", -1))
            weights = tuple(json.loads(metadata.get("weights", "[]")))
            self.total = {name: value.to(device) for name, value in load_file(str(path)).items()}
        if found != epochs_done or weights != self.weights:
            raise RuntimeError(
                f"{checkpoint} holds the epoch average of {found} epoch(s) with weights {list(weights)}, but it was "
                f"written after {epochs_done} epoch(s) of a stage averaging with weights {list(self.weights)}: "
                "it cannot resume this run exactly. Resume another checkpoint of this run, or start afresh."
            )
        self.epochs_added = found
