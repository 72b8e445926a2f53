"""The processes of a run sharing work on a dataset: each takes its shard, and all get all the rows.

Room: the plumbing between Accelerate's processes for the image-feature cache (`feature_cache.py`) and
evaluation from cached features (`evaluate/protocols.py`). It holds `ProcessShards` (built from an
`Accelerator`: a process's shard is Accelerate's `split_between_processes` of the example indices, rows are
gathered with `Accelerator.gather`) and `rows_in_dataset_order`, which puts gathered, padded rows back in
dataset order by their indices, so every process holds what one process would have computed.

Example:
    ```python
    processes = ProcessShards.of(accelerator)            # None for one process
    mine = processes.shard(len(dataset))                  # this process's examples
    rows = processes.gather_rows(encode(mine), len(dataset))   # every example's row, in order, everywhere
    ```
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ProcessShards:
    """The processes of a run sharing the encoding of a dataset: each process encodes its shard of the
    examples, a contiguous slice given by Accelerate (`split`: `Accelerator.split_between_processes`), and
    `gather_rows` hands every process all the rows in dataset order (`gather`: `Accelerator.gather`), so each
    image is encoded once in the run instead of once per process.

    Attributes:
        index: this process's rank, `0 .. count - 1`.
        count: the number of processes.
        gather: a tensor of the same shape from every process, concatenated along dim 0 in process order
            (`accelerate.Accelerator.gather`); every process must call it at the same point.
        device: where tensors handed to `gather` must be (the backend's device: a GPU for NCCL).
        writer: whether this process writes disk entries (`None`: process 0 only; `of` picks each node's
            first process, so a folder local to each node is filled on every node).
        split: this process's part of a list (`accelerate.Accelerator.split_between_processes`, a context
            manager); `shard` needs it.

    Example:
        >>> shards = ProcessShards.of(accelerator)              # None for one process
        >>> shards.shard(10)                                    # on process 1 of 4
        [3, 4, 5]
    """

    index: int
    count: int
    gather: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device | str = "cpu"
    writer: bool | None = None
    split: Callable[[list[int]], contextlib.AbstractContextManager[list[int]]] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"ProcessShards needs 0 <= index < count, got index {self.index} of {self.count} processes."
            )

    @classmethod
    def of(cls, accelerator: Any) -> ProcessShards | None:
        """The shards of an `accelerate.Accelerator`'s processes (`None` for one process)."""
        if accelerator.num_processes == 1:
            return None
        return cls(
            accelerator.process_index,
            accelerator.num_processes,
            accelerator.gather,
            accelerator.device,
            writer=accelerator.is_local_main_process,
            split=accelerator.split_between_processes,
        )

    def splits(self, size: int) -> bool:
        """Whether `size` examples are shared out (each process needs one; fewer are encoded whole by each)."""
        return self.count > 1 and size >= self.count

    def shard(self, size: int) -> list[int]:
        """The indices of this process's examples among `size` (`split_between_processes` of `0 .. size - 1`:
        a contiguous slice; the first `size % count` processes hold one more)."""
        if self.split is None:
            raise ValueError(
                "This ProcessShards has no split: build it with ProcessShards.of(accelerator), or pass "
                "split=accelerator.split_between_processes."
            )
        with self.split(list(range(size))) as mine:
            return list(mine)

    def gather_rows(self, values: torch.Tensor, size: int, fill: float = 0) -> torch.Tensor:
        """Every process's rows of its shard (`values`: `(len(shard(size)), ...)`) -> all `size` rows in
        dataset order, on every process. Each process's rows and their indices are padded to
        `ceil(size / count)` (with `fill`, and index -1) for `gather`, and put in order by their indices
        (`rows_in_dataset_order`), whatever the split."""
        per = math.ceil(size / self.count)
        indices = torch.tensor(self.shard(size), dtype=torch.long)
        if len(values) != len(indices):
            raise ValueError(f"gather_rows got {len(values)} rows for a shard of {len(indices)} examples.")
        gathered = self.gather(_pad_rows(values, per, fill).to(self.device))
        rows = self.gather(_pad_rows(indices, per, -1).to(self.device))
        return rows_in_dataset_order(gathered, rows, size)

    @property
    def writes_disk(self) -> bool:
        """Whether this process writes the shared entries to the cache's folder."""
        return self.index == 0 if self.writer is None else self.writer

    def all_succeed(self, error: BaseException | None, what: str) -> None:
        """Raise on every process if any process failed at `what` (its own error on the failing one), so
        that none waits forever in a collective the failed one never reaches."""
        ok = self.gather(torch.tensor([int(error is None)], device=self.device)).tolist()
        if error is not None:
            raise error
        failed = [index for index, flag in enumerate(ok) if not flag]
        if failed:
            raise RuntimeError(
                f"process(es) {failed} of {self.count} failed at {what} (their log shows the error); process "
                f"{self.index} stops too instead of waiting for their part. Fix that error and run again."
            )


def rows_in_dataset_order(gathered: torch.Tensor, indices: torch.Tensor, size: int) -> torch.Tensor:
    """Rows gathered from every process's shard (each padded to the same length), in dataset order.

    Args:
        gathered: `(R, ...)` rows, padding included.
        indices: `(R,)` the example each row is, `-1` for padding.
        size: the number of examples.

    Returns:
        `(size, ...)`: row `i` is example `i`.

    Raises:
        ValueError: the rows are not every example exactly once.

    Example:
        >>> rows_in_dataset_order(torch.tensor([10, 11, 12, 13, 14, 0]), torch.tensor([0, 1, 2, 3, 4, -1]), 5)
        tensor([10, 11, 12, 13, 14])
        >>> rows_in_dataset_order(torch.tensor([10, 12, 14, 11, 13, 0]), torch.tensor([0, 2, 4, 1, 3, -1]), 5)
        tensor([10, 11, 12, 13, 14])
    """
    if gathered.shape[0] != indices.shape[0]:
        raise ValueError(f"{gathered.shape[0]} gathered rows but {indices.shape[0]} indices.")
    kept = indices >= 0
    rows, values = indices[kept].to(gathered.device), gathered[kept.to(gathered.device)]
    order = torch.argsort(rows)
    if not torch.equal(rows[order].cpu(), torch.arange(size)):
        raise ValueError(
            f"The gathered shards hold the examples {sorted(rows.tolist())[:10]}..., not each of the {size} "
            "examples once: every process must share out the same dataset."
        )
    return values[order]


def _pad_rows(values: torch.Tensor, rows: int, fill: float = 0) -> torch.Tensor:
    if len(values) == rows:
        return values
    padding = values.new_full((rows - len(values), *values.shape[1:]), fill)
    return torch.cat([values, padding])
