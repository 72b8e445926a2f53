"""The examples one seed trains on, and the record of them saved beside its adapter.

Room: the experiment. The protocol says which classes a run trains on (`Protocol.trains_on`); the method's
`Capabilities` whether it learns and searches on validation examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..data import (
    BenchmarkSpec,
    FewShotSelection,
    ImageFolderSource,
    dassl_few_shot,
    describe_data,
    folder_record,
    is_local_key,
    load_benchmark,
    sample_few_shot,
    select_classes,
    validation_shots,
)
from ..evaluate.protocol_registry import get_protocol
from ..evaluate.records import DataRecord

if TYPE_CHECKING:
    from .settings import ExperimentConfig


def load_split(config: ExperimentConfig, spec: BenchmarkSpec, split: str):
    """Split `split` of the run's benchmark, from its source and revision."""
    return load_benchmark(spec, split, source=config.source, revision=config.dataset_revision)


def describe_shots(shots: int | None, trained: bool = True) -> str:
    """`"16 shots per class"`, `"the full training set"`, or `"nothing to train"`."""
    if not trained:
        return "nothing to train"
    if shots is None:
        return "the full training set"
    return f"{shots} shot{'s' if shots != 1 else ''} per class"


def _training_classes(config: ExperimentConfig, data):
    """`data` restricted to the classes the run's protocol trains on (the base half, or all)."""
    return select_classes(data, "base") if get_protocol(config.protocol).trains_on_base else data


def data_record(
    config: ExperimentConfig,
    spec: BenchmarkSpec,
    names: Sequence[str],
    shots: int | None,
    seed: int,
    drawn: dict | None = None,
) -> DataRecord:
    """The record of the data an adapter was trained on, saved beside it (`DATA_RECORD_FILE`): the
    benchmark, where it was read, the protocol, its class list, the shots (`0`: nothing trained), the
    examples drawn per class (`drawn`: `{"min", "median", "max"}`) and, for your own folder, what rebuilds
    it (`folder_record`)."""
    own = config.source is None or config.source is spec.source
    local = is_local_key(spec.key) and own and isinstance(spec.source, ImageFolderSource)
    return DataRecord(
        dataset=spec.key,
        data=describe_data(spec, config.source, config.dataset_revision),
        dataset_revision=config.dataset_revision,
        protocol=config.protocol,
        classes=get_protocol(config.protocol).trains_on,
        class_names=list(names),
        shots=shots,
        shots_drawn=drawn,
        seed=seed,
        few_shot_sampler=config.few_shot_sampler if shots else None,
        folder=folder_record(spec, spec.source) if local else None,
    )


def validation_set(
    config: ExperimentConfig, spec: BenchmarkSpec, seed: int, train_set
) -> tuple[Any, FewShotSelection | None]:
    """The validation examples of one seed, for methods that search on them (`Capabilities.uses_validation`):
    the few-shot protocol's `validation_shots(shots)` = min(shots, 4) per class of the benchmark's val split
    (CoOp's), drawn with the run's sampler (`"dassl"`: after the training draw, from the same stream, as the
    authors' code does), or the whole val split when training on the full training set; the protocol's
    training classes only. Returns the examples and the record of the draw (`None`: all of them).
    """
    val = load_split(config, spec, "val")  # check_method_data said it exists
    selection = None
    if config.shots is not None:
        if config.few_shot_sampler == "dassl":
            _, (val, selection) = dassl_few_shot(train_set, val, config.shots, seed, benchmark=spec.key)
        else:
            val, selection = sample_few_shot(
                val, validation_shots(config.shots), seed, benchmark=spec.key, split="val"
            )
    return _training_classes(config, val), selection


@dataclass
class SeedData:
    """The examples one seed trains on (`seed_data`).

    Attributes:
        train: the training examples (the few-shot draw, or the whole training split; the protocol's training
            classes), without a transform.
        selection: the record of the few-shot draw (`None`: the whole split).
        validation / validation_selection: the validation examples and their draw (`validation_set`), for
            methods that search on them; `None` otherwise.
    """

    train: Any
    selection: FewShotSelection | None = None
    validation: Any | None = None
    validation_selection: FewShotSelection | None = None


def seed_data(
    config: ExperimentConfig, spec: BenchmarkSpec, seed: int, learns: bool, validates: bool
) -> SeedData:
    """The examples of one seed: what `run_seed` trains on and what `check_training_images` scans first.

    Args:
        config / spec: the run and its benchmark.
        seed: the seed of the draws.
        learns: the method learns parameters: `config.shots` per class are drawn (all examples otherwise,
            and with `shots=None`).
        validates: the method searches on validation examples (`validation_set`).
    """
    full_train = train_set = load_split(config, spec, "train")
    selection = None  # shots=None: the full training set
    if learns and config.shots is not None:
        train_set, selection = sample_few_shot(
            train_set, config.shots, seed, benchmark=spec.key, sampler=config.few_shot_sampler
        )
    data = SeedData(_training_classes(config, train_set), selection)
    if validates:  # e.g. a regularisation strength searched on it
        data.validation, data.validation_selection = validation_set(config, spec, seed, full_train)
    return data
