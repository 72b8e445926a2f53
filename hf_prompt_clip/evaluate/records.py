"""The records a run writes, as typed dataclasses: one seed's result, one entry of `results.json`, and the
record of the data beside an adapter (`training_data.json`).

Room: evaluation (reports and cards read them; the experiment writes them). Each record's `to_dict()`
is the JSON the package writes (docs/reports.md is the schema: key order, rounding, keys written only when
they apply); `from_dict()` reads what any release wrote: keys a file lacks stay absent when it is written
back, keys this release does not know are kept (`extra`), and a record read and written back gives the
same JSON (tests/test_records.py reads files written before these records existed).

`ExperimentResult` is also a read-only mapping of its JSON (`result["mean"]`), so code written for the
dicts earlier releases returned keeps working; new code reads attributes (`result.mean`).

Example:
    >>> result = ExperimentResult.from_dict(json.load(open("results.json"))[0])
    >>> result.mean, result.runs[0].seed
    ({'accuracy': 81.25}, 1)
    >>> result.to_dict() == json.load(open("results.json"))[0]
    True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .protocols import summarize_runs

#: Decimals of the accuracies people read (`mean`, `std`, `metrics`); `*_full_precision` keep the rest.
ROUND_DIGITS = 2


def rounded(metrics: Mapping[str, float], digits: int = ROUND_DIGITS) -> dict[str, float]:
    """The metrics rounded to `digits` decimals (`44.49999928` -> `44.5`)."""
    return {key: round(float(value), digits) for key, value in metrics.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


class _Record:
    """`to_dict`/`from_dict` shared by the records: the JSON fields in schema order, keys written only when
    they apply (`_ALWAYS`: written even when `None`), the read file's key order and unknown keys kept."""

    _ALWAYS: ClassVar[frozenset[str]] = frozenset()

    def _json_fields(self) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(self) if f.metadata.get("json", True)]

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values, as the package writes it (docs/reports.md)."""
        values = {f.name: _json_value(getattr(self, f.name)) for f in self._json_fields()}
        read = self.read_keys
        if read is None:  # built here: the schema's keys, optional ones when they apply
            written = {k: v for k, v in values.items() if k in self._ALWAYS or v is not None}
            return {**written, **self.extra}
        defaults = {f.name: _json_value(_default(f)) for f in self._json_fields()}
        written = {}
        for key in read:  # what the file held, in its order
            if key in values:
                written[key] = values[key]
            elif key in self.extra:
                written[key] = self.extra[key]
        for key, value in values.items():  # set since it was read
            if key not in written and value != defaults[key]:
                written[key] = value
        written.update({k: v for k, v in self.extra.items() if k not in written})
        return written

    @classmethod
    def _from_values(cls, data: Mapping[str, Any], **converted: Any):
        names = {f.name for f in dataclasses.fields(cls) if f.metadata.get("json", True)}
        known = {key: value for key, value in data.items() if key in names}
        return cls(
            **{**known, **converted},
            extra={key: value for key, value in data.items() if key not in names},
            read_keys=tuple(data),
        )

    def to_json(self) -> str:
        """`to_dict()` as the package writes it into a file (indented, non-ASCII kept)."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


_EXTRA = {"json": False}  # a field that is no key of the JSON


@dataclass(frozen=True)
class RunResult(_Record):
    """One seed's result: its metrics (an entry of a result's `runs`) and, for a run of this process, what
    it trained.

    Attributes:
        seed: the seed (`None`: an adapter evaluated without a record of its seed).
        metrics: the metrics rounded to `ROUND_DIGITS` (percent), as people read them.
        metrics_full_precision: the exact metrics (`None` in results written before they were kept).
        shots / shots_drawn / adapter / training / config: what the seed trained (shots per class, `0`
            nothing; the examples drawn per class; the adapter's folder; the training settings; the adapter's
            config), for the cards and the push; not part of `results.json`.
    """

    seed: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_full_precision: Mapping[str, float] | None = None
    shots: int | None = field(default=None, compare=False, repr=False, metadata=_EXTRA)
    shots_drawn: Mapping[str, Any] | None = field(default=None, compare=False, repr=False, metadata=_EXTRA)
    adapter: str | None = field(default=None, compare=False, repr=False, metadata=_EXTRA)
    training: Mapping[str, Any] | None = field(default=None, compare=False, repr=False, metadata=_EXTRA)
    config: Any = field(default=None, compare=False, repr=False, metadata=_EXTRA)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, metadata=_EXTRA)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False, metadata=_EXTRA)

    _ALWAYS: ClassVar[frozenset[str]] = frozenset({"seed", "metrics", "metrics_full_precision"})

    @classmethod
    def measured(cls, seed: int | None, metrics: Mapping[str, float], **trained: Any) -> RunResult:
        """The result of a seed from its exact `metrics` (rounded copies for people beside them)."""
        exact = {key: float(value) for key, value in metrics.items()}
        return cls(seed, rounded(exact), exact, **trained)

    @property
    def exact(self) -> dict[str, float]:
        """The exact metrics (the rounded ones where a result predates exact values)."""
        return dict(self.metrics_full_precision or self.metrics)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """A run entry of `results.json` (`{"seed", "metrics", "metrics_full_precision"}`)."""
        return cls._from_values(data)


@dataclass(frozen=True)
class ExperimentResult(_Record, Mapping):
    """One entry of `results.json`: a method on a dataset with a protocol and a number of shots, over seeds.

    The schema is docs/reports.md's "Results schema"; `to_dict()` writes it. Read-only mapping access
    (`result["mean"]`) reads `to_dict()`.

    Attributes:
        method / base_model / dataset / protocol: what ran (`protocol` a key of the protocol registry).
        data: where the dataset was read (`describe_data`), or `None`.
        shots: training images per class (`None`: the full training set; `0`: nothing trained).
        synthetic: measured on the package's synthetic world.
        runs: one `RunResult` per seed.
        mean / std: over the seeds, rounded; `mean_full_precision` / `std_full_precision` exact.
        trained_on: the benchmark the adapter was trained on, when not `dataset`.
        trained_protocol: the protocol it was trained with, when another protocol on its own data tested it.
        hub_datasets: benchmark key -> the Hub dataset its test split was read from.
        shots_drawn: `{"min", "median", "max"}` examples drawn per class, when some class had fewer.
        image_dtype: the frozen image tower's dtype, when not float32.
        augment_views: the augmented views trained on, when used.
        recipe: the training recipe and its deviations (`experiment.recipes.RecipeRecord.to_dict()`), when
            the run trained something.
        extra: keys of a read file this release does not know (written back as they were).
    """

    method: str
    base_model: str | None = None
    dataset: str = ""
    data: str | None = None
    protocol: str = ""
    shots: int | None = None
    synthetic: bool = False
    runs: tuple[RunResult, ...] = ()
    mean: Mapping[str, float] = field(default_factory=dict)
    std: Mapping[str, float] = field(default_factory=dict)
    mean_full_precision: Mapping[str, float] | None = None
    std_full_precision: Mapping[str, float] | None = None
    trained_on: str | None = None
    trained_protocol: str | None = None
    hub_datasets: Mapping[str, Mapping[str, Any]] | None = None
    shots_drawn: Mapping[str, Any] | None = None
    image_dtype: str | None = None
    augment_views: int | None = None
    recipe: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, metadata=_EXTRA)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False, metadata=_EXTRA)

    _ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {"method", "base_model", "dataset", "data", "protocol", "shots", "synthetic", "runs", "mean", "std",
         "mean_full_precision", "std_full_precision"}
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentResult:
        """An entry of `results.json`, as any release wrote it."""
        runs = tuple(RunResult.from_dict(run) for run in data.get("runs", ()))
        return cls._from_values(data, runs=runs)

    @classmethod
    def of_runs(
        cls, method: str, base_model: str | None, dataset: str, protocol: str, shots: int | None,
        runs: Sequence[RunResult], **recorded: Any,
    ) -> ExperimentResult:  # fmt: skip
        """The result of `runs` (seeds): their mean and sample standard deviation, rounded and exact (the
        mean `hm` is H of the mean base and new accuracies, as the papers average it)."""
        mean, std = summarize_runs([{"metrics": run.exact} for run in runs])
        return cls(
            method, base_model, dataset, protocol=protocol, shots=shots, runs=tuple(runs),
            mean=rounded(mean), std=rounded(std), mean_full_precision=mean, std_full_precision=std, **recorded,
        )  # fmt: skip

    @property
    def seeds(self) -> list[int | None]:
        """The seeds of its runs."""
        return [run.seed for run in self.runs]

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExperimentResult):
            return self.to_dict() == other.to_dict()
        return isinstance(other, Mapping) and self.to_dict() == dict(other)

    __hash__ = None  # type: ignore[assignment]


def as_result(result: ExperimentResult | Mapping[str, Any]) -> ExperimentResult:
    """`result` as an `ExperimentResult` (a dict of the results schema is read with `from_dict`)."""
    return result if isinstance(result, ExperimentResult) else ExperimentResult.from_dict(result)


def as_dict(result: ExperimentResult | Mapping[str, Any]) -> dict[str, Any]:
    """`result` as a dict of the results schema."""
    return result.to_dict() if isinstance(result, ExperimentResult) else dict(result)


@dataclass(frozen=True)
class DataRecord(_Record):
    """The record of the data an adapter was trained on, saved beside it (`training_data.json`).

    Attributes:
        dataset: the benchmark key.
        data: where it was read (`describe_data`).
        dataset_revision: the revision read (`None`: the registry's own).
        protocol: the protocol it was trained with.
        classes: `"base"` or `"all"`: the classes it was trained on (the protocol's `trains_on`).
        class_names: its class list.
        shots: training images per class (`None`: the full training set; `0`: nothing trained).
        shots_drawn: `{"min", "median", "max"}` examples drawn per class (`None`: none drawn).
        seed: the seed of the run.
        few_shot_sampler: the sampler of the draw (`None` when nothing was drawn).
        folder: for your own image folder, what rebuilds it (`folder_record`: root, name, template, class
            names, super-category, split fractions and seed); `None` otherwise.
    """

    dataset: str
    data: str | None = None
    dataset_revision: str | None = None
    protocol: str | None = None
    classes: str | None = None
    class_names: Sequence[str] = ()
    shots: int | None = None
    shots_drawn: Mapping[str, Any] | None = None
    seed: int | None = None
    few_shot_sampler: str | None = None
    folder: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, metadata=_EXTRA)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False, metadata=_EXTRA)

    _ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {"dataset", "data", "dataset_revision", "protocol", "classes", "class_names", "shots", "shots_drawn",
         "seed", "few_shot_sampler", "folder"}
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataRecord:
        """A `training_data.json`, as any release wrote it."""
        return cls._from_values(data)
