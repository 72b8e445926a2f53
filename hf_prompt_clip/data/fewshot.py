"""Few-shot sampling with a replayable record, and the base/new class subsets of the CoCoOp protocol.

Room: `data/`.

Sampling (docs/data.md): for each class, in order of first appearance, draw `shots` examples
without replacement with `numpy.random.default_rng(seed)` (one generator for the whole draw);
a class with fewer examples keeps them all. Draw on the full class list, before `select_classes`,
so that all/base/new runs of one seed share their images.

`sampler="dassl"` reproduces the CoOp authors' draw instead (Dassl's `generate_fewshot_dataset`):
Python's `random` seeded with the seed, `random.sample(items, shots)` per class in order of first
appearance, examples kept in the order drawn, and the validation draw (`min(shots, 4)`) made after
the training draw from the same stream. On the authors' split files (`CoOpSplitSource`) the same
seed then picks the same images as their code.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from datasets import ClassLabel, Dataset

from ..utils.atomic import atomic_write_json
from ..utils.logs import main_process_logger
from .errors import SelectionMismatchError
from .registry import base_new_counts

logger = main_process_logger(__name__)

Subset = Literal["all", "base", "new"]
SUBSETS: tuple[str, ...] = ("all", "base", "new")
ID_COLUMN = "example_id"
SAMPLER = "numpy.random.default_rng(seed).choice per class, classes in order of first appearance"
DASSL_SAMPLER = (
    "Dassl generate_fewshot_dataset: random.seed(seed), random.sample per class in order of first "
    "appearance, in drawn order; validation drawn after train from the same stream"
)
#: Few-shot samplers: `"numpy"` (the package's, sorted within a class) and `"dassl"` (the CoOp authors').
SAMPLERS: tuple[str, ...] = ("numpy", "dassl")


@dataclass
class FewShotSelection:
    """The record of one few-shot draw: enough to rebuild the same training set anywhere.

    Attributes:
        benchmark: registry key of the data (or `None` for unregistered data).
        split: the split drawn from (`"train"` or `"val"`).
        seed / shots: the draw's parameters.
        id_column: `"example_id"` when examples are identified by a stable id (file names, Hub ids),
            `None` when `ids` are row indices of the split.
        ids: the chosen examples, grouped by class in order of first appearance.
        sampler: how the draw was made (documentation for readers of the record).
        per_class: the examples drawn of each class, in label order: `shots` unless a class has fewer
            (then all of them; `0` for a class without any), so records never claim more than was drawn.
    """

    benchmark: str | None
    split: str
    seed: int
    shots: int
    id_column: str | None
    ids: list[str | int]
    sampler: str = field(default=SAMPLER)
    per_class: list[int] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def drawn(self) -> dict[str, float] | None:
        """`{"min", "median", "max"}` of `per_class` (`shots_drawn`), or `None` when not recorded."""
        return shots_drawn(self.per_class) if self.per_class is not None else None

    @classmethod
    def from_dict(cls, data: dict) -> FewShotSelection:
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the record as JSON (e.g. next to a trained adapter)."""
        atomic_write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FewShotSelection:
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))


def class_counts(dataset: Dataset) -> list[int]:
    """The number of examples of each class of `dataset`, in label order (`0` for a class without any)."""
    return np.bincount(_labels(dataset), minlength=len(dataset.features["label"].names)).tolist()


def shots_drawn(counts: Sequence[int]) -> dict[str, float]:
    """`{"min", "median", "max"}` of the examples drawn per class (what results and cards report).

    Example:
        >>> shots_drawn([16, 16, 3])
        {'min': 3, 'median': 16.0, 'max': 16}
    """
    counts = np.asarray(counts)
    if counts.size == 0:
        return {"min": 0, "median": 0.0, "max": 0}
    return {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())}


def _warn_short_classes(dataset: Dataset, counts: list[int], shots: int, split: str) -> None:
    short = [(name, count) for name, count in zip(dataset.features["label"].names, counts) if count < shots]
    if short:
        listed = ", ".join(f"{name!r} ({count})" for name, count in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        logger.warning(
            "%d of %d classes have fewer than %d %s examples, so they train on all they have: %s%s; the "
            "results and cards record the examples drawn per class (min %d, median %g)",
            len(short), len(counts), shots, split, listed, more, min(counts), float(np.median(counts)),
        )  # fmt: skip


def validation_shots(shots: int) -> int:
    """Validation examples per class for a `shots`-shot run: min(shots, 4)."""
    return min(shots, 4)


def few_shot_indices(labels: Sequence[int] | np.ndarray, shots: int, seed: int) -> list[int]:
    """Row indices of a `shots`-per-class draw from `labels` (see the module docstring), sorted within a class."""
    if not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}.")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    _, first_rows, counts = np.unique(labels, return_index=True, return_counts=True)
    rows_of_class = np.split(np.argsort(labels, kind="stable"), np.cumsum(counts)[:-1])
    for k in np.argsort(first_rows):
        rows = rows_of_class[k]
        if rows.size > shots:
            rows = np.sort(rng.choice(rows, size=shots, replace=False))
        chosen.extend(rows.tolist())
    return chosen


def dassl_few_shot_indices(labels: Sequence[int] | np.ndarray, shots: int, rng: random.Random) -> list[int]:
    """Row indices of Dassl's `generate_fewshot_dataset(data, num_shots=shots)` with Python RNG `rng`.

    Classes in order of first appearance; `rng.sample(rows, shots)` for a class with at least `shots`
    rows (kept in the drawn order), all its rows otherwise. `rng` advances exactly as Dassl's global
    `random` does, so a second call continues the authors' stream (their validation draw).

    Example:
        >>> rng = random.Random(1)                                      # Dassl: set_random_seed(1)
        >>> train_rows = dassl_few_shot_indices(train_labels, 16, rng)
        >>> val_rows = dassl_few_shot_indices(val_labels, 4, rng)       # min(16, 4), same stream
    """
    if not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}.")
    tracker: dict[int, list[int]] = {}
    for row, label in enumerate(np.asarray(labels).tolist()):
        tracker.setdefault(label, []).append(row)
    chosen: list[int] = []
    for rows in tracker.values():
        chosen.extend(rng.sample(rows, shots) if len(rows) >= shots else rows)
    return chosen


def _labels(dataset: Dataset) -> np.ndarray:
    return dataset.with_format("arrow")["label"].to_numpy()


def sample_few_shot(
    dataset: Dataset,
    shots: int,
    seed: int,
    benchmark: str | None = None,
    split: str = "train",
    sampler: str = "numpy",
) -> tuple[Dataset, FewShotSelection]:
    """`shots` examples per class of `dataset` and the record that reproduces the draw.

    Examples are identified by the `example_id` column when the dataset has one, else by row index.
    `sampler="dassl"` makes the CoOp authors' training draw (see the module docstring; for their
    validation draw as well, use `dassl_few_shot`).

    Example:
        >>> train = load_benchmark("eurosat", "train")
        >>> train16, record = sample_few_shot(train, shots=16, seed=1, benchmark="eurosat")
        >>> record.save("few_shot_selection.json")
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
    labels = _labels(dataset)
    if sampler == "dassl":
        rows, described = dassl_few_shot_indices(labels, shots, random.Random(seed)), DASSL_SAMPLER
    else:
        rows, described = few_shot_indices(labels, shots, seed), SAMPLER
    return _selected(dataset, rows, benchmark, split, seed, shots, described)


def dassl_few_shot(
    train: Dataset, val: Dataset, shots: int, seed: int, benchmark: str | None = None
) -> tuple[tuple[Dataset, FewShotSelection], tuple[Dataset, FewShotSelection]]:
    """The CoOp authors' few-shot training and validation sets: `shots` per class from `train`, then
    `min(shots, 4)` per class from `val`, both from one Python RNG seeded with `seed`."""
    rng = random.Random(seed)
    train_rows = dassl_few_shot_indices(_labels(train), shots, rng)
    val_shots = validation_shots(shots)
    val_rows = dassl_few_shot_indices(_labels(val), val_shots, rng)
    return (
        _selected(train, train_rows, benchmark, "train", seed, shots, DASSL_SAMPLER),
        _selected(val, val_rows, benchmark, "val", seed, val_shots, DASSL_SAMPLER),
    )


def _selected(
    dataset: Dataset, rows: list[int], benchmark: str | None, split: str, seed: int, shots: int, sampler: str
) -> tuple[Dataset, FewShotSelection]:
    id_column = ID_COLUMN if ID_COLUMN in dataset.column_names else None
    selected = dataset.select(rows)
    ids: list[str | int] = [str(i) for i in selected[ID_COLUMN]] if id_column else list(rows)
    counts = class_counts(selected)
    _warn_short_classes(selected, counts, shots, split)
    return selected, FewShotSelection(benchmark, split, seed, shots, id_column, ids, sampler, counts)


def apply_selection(dataset: Dataset, selection: FewShotSelection) -> Dataset:
    """The examples of `selection` from `dataset`, in the record's order; fails if any is missing."""
    if selection.id_column is None:
        bad = [i for i in selection.ids if not 0 <= int(i) < len(dataset)]
        if bad:
            raise SelectionMismatchError(
                f"The selection lists row indices {bad[:5]} but the dataset has {len(dataset)} rows; "
                "apply it to the same split of the same dataset version."
            )
        return dataset.select([int(i) for i in selection.ids])
    if selection.id_column not in dataset.column_names:
        raise SelectionMismatchError(
            f"The selection identifies examples by {selection.id_column!r}, which the dataset lacks "
            f"(columns: {dataset.column_names}); load the data with the same source as the record."
        )
    position: dict[str, int] = {}
    for row, example_id in enumerate(dataset[selection.id_column]):
        position.setdefault(str(example_id), row)
    missing = [i for i in selection.ids if str(i) not in position]
    if missing:
        raise SelectionMismatchError(
            f"{len(missing)} of the {len(selection.ids)} selected examples are not in the dataset, "
            f"e.g. {missing[:3]}; was the record made on another split or source?"
        )
    return dataset.select([position[str(i)] for i in selection.ids])


def select_classes(dataset: Dataset, subset: Subset) -> Dataset:
    """The `"all"`, `"base"` or `"new"` classes of `dataset`, relabelled 0..k-1 in label order.

    Base = the first ceil(K / 2) label ids, new = the rest (CoCoOp); the `ClassLabel` keeps the
    subset's names.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}.")
    if subset == "all":
        return dataset
    names = dataset.features["label"].names
    if len(names) < 2:
        raise ValueError(
            f"Base and new classes need at least 2 classes (base = the first ceil(K / 2), new = the "
            f"rest); this dataset has {len(names)}. Use subset='all' (protocol 'few_shot')."
        )
    base, _ = base_new_counts(len(names))
    start, stop = (0, base) if subset == "base" else (base, len(names))
    labels = _labels(dataset)
    inside = (labels >= start) & (labels < stop)
    relabelled = np.where(inside, labels - start, -1)
    feature = ClassLabel(names=names[start:stop])
    dataset = dataset.remove_columns("label").add_column("label", relabelled, feature=feature)
    return dataset.select(np.flatnonzero(inside))
