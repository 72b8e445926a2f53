"""Evaluating a model with a protocol, the results it gives, and `evaluate_adapter`: a saved adapter on the
data it was trained on (the Python API of `hf-prompt-clip evaluate`).

Room: the experiment. The protocol registry says how a protocol evaluates and what it tests on; records
(`evaluate.records`) carry the results.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator, PartialState

from ..caching.feature_cache import ImageFeatureCache
from ..core.registry import method_of
from ..data import (
    BenchmarkSpec,
    ImageFolderSource,
    Source,
    describe_data,
    folder_benchmark,
    folder_benchmark_from_record,
    get_benchmark,
    hub_dataset,
)
from ..evaluate.protocol_registry import ProtocolInputs, default_protocol, get_protocol, protocol_keys
from ..evaluate.records import ROUND_DIGITS, DataRecord, ExperimentResult, RunResult, rounded
from ..evaluate.report import METRIC_NAMES, write_report
from ..modeling.model import PromptCLIPPreTrainedModel
from ..serialization.card import DATA_RECORD_FILE, SELECTION_FILE
from ..utils.logs import main_process_logger
from ..utils.settings import SettingError
from .checks import check_adapter_data, check_classes_can_change
from .settings import check_protocol, check_setting

__all__ = [
    "ROUND_DIGITS",
    "evaluate_adapter",
    "evaluate_protocol",
    "format_metrics",
    "hub_datasets_of",
    "load_adapter",
    "read_adapter_record",
    "read_data_record",
    "results_record",
    "rounded",
]

logger = main_process_logger(__name__)


def format_metrics(metrics: Mapping[str, float]) -> str:
    """`"base 80.10 %, new 60.20 %, H 68.74 %"`: metrics rounded for people (logs, the CLI)."""
    return ", ".join(f"{METRIC_NAMES.get(key, key)} {value:.2f} %" for key, value in metrics.items())


def evaluate_protocol(
    model: PromptCLIPPreTrainedModel,
    spec: BenchmarkSpec,
    protocol: str,
    *,
    source: Source | None = None,
    targets: Sequence[str] = (),
    dataset_revision: str | None = None,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
    feature_cache: ImageFeatureCache | None = None,
    num_workers: int = 0,
) -> dict[str, float]:
    """The metrics of `protocol` for a trained model: its registry entry's `evaluate` on the test split of
    `spec` (from `source` at `dataset_revision`), or of `targets`.

    `feature_cache`: evaluate from cached frozen image features where the model classifies from them
    (`evaluate.protocols.predict`); the metrics are the same. `num_workers`: data-loading workers.

    Raises:
        SettingError: the protocol is not registered, cannot run on `spec` with `targets`, or tests other
            classes than a model with per-class parameters can classify.
    """
    check_protocol(protocol, spec, targets)
    found = get_protocol(protocol)
    check_classes_can_change(model.capabilities.classes_can_change, f"This {type(model).__name__}", protocol)
    inputs = ProtocolInputs(
        spec, source, dataset_revision, tuple(targets), batch_size, accelerator, feature_cache, num_workers,
        image_processor=model.image_processor,
    )  # fmt: skip
    started = time.perf_counter()
    metrics = found.evaluate(model, inputs)
    seconds = time.perf_counter() - started
    where = spec.key if found.tests_training_data else ", ".join(targets)
    sizes = [_size(data) for data in inputs.loaded]
    if None in sizes:  # a streamed set has no length before it is read
        images = "streamed test images"
    else:
        images = f"{sum(sizes)} test images, {sum(sizes) / max(seconds, 1e-9):.1f} images/s"
    logger.info("evaluated on %s (%s, %s): %s", where, protocol, images, format_metrics(metrics))
    return metrics


def _size(data) -> int | None:
    """The number of examples of a map-style set; `None` for a streamed one."""
    try:
        return len(data)
    except TypeError:
        return None


def results_record(
    method: str,
    base_model: str,
    spec: BenchmarkSpec,
    protocol: str,
    shots: int | None,
    runs: Sequence[RunResult | Mapping[str, Any]],
    data: str | None = None,
    trained_on: str | None = None,
    trained_protocol: str | None = None,
    hub_datasets: dict[str, dict] | None = None,
    **recorded: Any,
) -> ExperimentResult:
    """One entry of the results schema (docs/reports.md) from the runs of its seeds.

    Args:
        shots: training images per class of the adapter: `None` the full training set, `0` nothing
            trained (zero-shot CLIP).
        runs: `RunResult`s (or `{"seed", "metrics"[, "shots_drawn"]}` dicts of exact metrics); when some
            class had fewer examples than `shots` (`shots_drawn`), the result keeps `shots_drawn` over the
            runs, so tables and cards show what was trained, not what was asked.
        data: where the dataset was read (`describe_data`).
        trained_on: the benchmark the adapter was trained on, recorded when it is not `spec`'s (an
            adapter evaluated on other classes with `classes_from_data`); `shots` are of that training.
        trained_protocol: the protocol it was trained with, recorded when it is another of the protocols
            tested on the training data itself (a few-shot adapter tested base-to-new).
        hub_datasets: benchmark key -> the Hub dataset its test split was read from (`hub_datasets_of`),
            recorded when any data came from the Hub; cards cite them.
        **recorded: more of `ExperimentResult`'s optional fields (`image_dtype`, `augment_views`).

    `mean`, `std` and each run's `metrics` are rounded to `ROUND_DIGITS` decimals; `mean_full_precision`,
    `std_full_precision` and `metrics_full_precision` hold the exact values.
    """
    runs = [
        run if isinstance(run, RunResult) else RunResult.measured(
            run["seed"], run["metrics"], shots_drawn=run.get("shots_drawn")
        )
        for run in runs
    ]  # fmt: skip
    if trained_on == spec.key:
        trained_on = None
    own = trained_protocol not in (None, protocol) and all(
        key in protocol_keys() and get_protocol(key).tests_training_data
        for key in (trained_protocol, protocol)
    )
    drawn = [run.shots_drawn for run in runs if run.shots_drawn]
    shots_drawn = None
    if shots and drawn and min(d["min"] for d in drawn) < shots:  # some class had fewer than asked
        shots_drawn = {
            "min": min(d["min"] for d in drawn),
            "median": float(statistics.median(d["median"] for d in drawn)),
            "max": max(d["max"] for d in drawn),
        }
    return ExperimentResult.of_runs(
        method, base_model, spec.key, protocol, shots, runs, data=data, synthetic=spec.synthetic,
        trained_on=trained_on, trained_protocol=trained_protocol if own else None,
        hub_datasets=hub_datasets or None, shots_drawn=shots_drawn, **recorded,
    )  # fmt: skip


def hub_datasets_of(
    spec: BenchmarkSpec,
    protocol: str,
    targets: Sequence[str] = (),
    source: Source | None = None,
    revision: str | None = None,
) -> dict[str, dict]:
    """Benchmark key -> the Hub dataset (`hub_dataset`: id, config, split, revision) the test split of
    `spec` and of each transfer target is read from, for the keys whose data is on the Hub.

    Example:
        >>> hub_datasets_of(get_benchmark("dtd"), "few_shot")
        {'dtd': {'id': 'tanganke/dtd', 'config': None, 'split': 'test', 'revision': 'd2afa97...'}}
    """
    found = {spec.key: hub_dataset(spec, source, revision)}
    if not get_protocol(protocol).tests_training_data:
        found.update({key: hub_dataset(key) for key in targets if key != spec.key})
    return {key: value for key, value in found.items() if value is not None}


# ------------------------------------------------------------------------------------ a saved adapter


def load_adapter(name: str | os.PathLike) -> PromptCLIPPreTrainedModel:
    """`AutoModel.from_pretrained(name)` with one clear error for a missing folder or Hub repository, a folder
    that is no adapter of a method this release knows, and an unreachable Hub (asked once, its timeouts named).

    Raises:
        SettingError: no such folder, or it cannot be loaded (naming `model` and what to give).
        AdapterLoadError: what the folder is when it is no adapter of a method this release knows.
    """
    from transformers import AutoModel

    from ..serialization.loading import (
        AdapterLoadError,
        check_adapter_config,
        hub_failure_advice,
        saved_config,
    )

    name = str(name)
    looks_like_a_path = name.startswith((".", "/", "~")) or name.count("/") > 1  # Hub ids have one "/"
    if not os.path.isdir(name) and looks_like_a_path:
        raise SettingError(
            f"{{model}} {name!r}: no such adapter folder. Give the folder an adapter was saved in (e.g. "
            "outputs/run/<method>/seed1/adapter) or a Hub id."
        )
    where = "" if os.path.isdir(name) else "no adapter folder of that name is here, and "
    try:
        # the Hub is asked once: when it cannot be reached, that is said at once, with its timeouts
        saved = saved_config(name)
    except AdapterLoadError as error:
        advice = hub_failure_advice(error.__cause__ or error)
        raise SettingError(f"{{model}} {name!r}: {where}it could not be loaded: {advice}.") from error
    check_adapter_config(name, saved)  # what the folder is, if no adapter of a method this release knows
    try:
        return AutoModel.from_pretrained(name)
    except AdapterLoadError:
        raise  # ours: one line naming the problem and the fix
    except OSError as error:
        raise SettingError(
            f"{{model}} {name!r}: {where}it could not be loaded: {hub_failure_advice(error)}. Give a saved "
            "adapter folder (e.g. outputs/run/<method>/seed1/adapter) or a Hub id."
        ) from error


def read_adapter_record(name: str | os.PathLike, filename: str) -> dict | None:
    """A JSON record saved beside an adapter (folder or Hub repository), or `None` when it has none."""
    from transformers.utils import cached_file

    path = cached_file(str(name), filename, _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else None


def read_data_record(name: str | os.PathLike) -> DataRecord | None:
    """The record of the data an adapter was trained on (`training_data.json`), or `None`."""
    found = read_adapter_record(name, DATA_RECORD_FILE)
    return DataRecord.from_dict(found) if found is not None else None


def _recorded_data(
    record: DataRecord | None, data_dir: str | os.PathLike | None
) -> tuple[BenchmarkSpec, Source | None]:
    """The data an adapter's record names (`data_dir`: the recorded folder moved there, or a folder)."""
    folder = record.folder if record is not None else None
    if data_dir is not None:
        if folder:
            return folder_benchmark_from_record({**folder, "root": str(data_dir)})
        return folder_benchmark(data_dir)
    if record is None:
        raise SettingError(
            "Say which data to evaluate on: {dataset=KEY} or {data_dir=DIR} (this adapter has no record of its "
            "training data, training_data.json, to default to)."
        )
    if folder:
        if not os.path.isdir(folder["root"]):
            raise SettingError(
                f"The adapter was trained on the folder {folder['root']!r}, which is not here; give its new "
                "place with {data_dir=DIR} (its recorded names, template and split apply)."
            )
        return folder_benchmark_from_record(folder)
    spec = get_benchmark(record.dataset)
    registry = describe_data(spec, None, record.dataset_revision)
    if record.data and record.data != registry:
        logger.warning(
            "the adapter was trained on %s; evaluating on %s (name the same source to read the same images)",
            record.data, registry,
        )  # fmt: skip
    return spec, None


def _warn_if_split_differs(record: DataRecord | None, source: Source | None) -> None:
    folder = record.folder if record is not None else None
    if not folder or not isinstance(source, ImageFolderSource):
        return
    if (dict(source.split_fractions or {}), source.split_seed) != (
        folder["split_fractions"],
        folder["split_seed"],
    ):
        logger.warning(
            "the split differs from the one the adapter was trained with (%s, seed %s): its test "
            "images may include training images", folder["split_fractions"], folder["split_seed"],
        )  # fmt: skip


def evaluate_adapter(
    model: str | os.PathLike | PromptCLIPPreTrainedModel,
    *,
    dataset: str | BenchmarkSpec | None = None,
    source: Source | None = None,
    data_dir: str | os.PathLike | None = None,
    dataset_revision: str | None = None,
    protocol: str | None = None,
    targets: Sequence[str] = (),
    classes_from_data: bool = False,
    eval_batch_size: int = 64,
    image_dtype: str = "float32",
    feature_cache: str | os.PathLike | ImageFeatureCache | None = None,
    output_dir: str | os.PathLike | None = None,
    accelerator: Accelerator | None = None,
    num_workers: int = 0,
) -> ExperimentResult:
    """Evaluate a saved adapter: on the data and with the protocol it was trained with (its
    `training_data.json`, `DataRecord`) unless told otherwise; what `hf-prompt-clip evaluate` runs.

    Args:
        model: an adapter folder, a Hub id, or a loaded model (its record is read from where it was loaded).
        dataset / source / dataset_revision: the data to evaluate on (a registry key or a `BenchmarkSpec`;
            default: the recorded data, at the recorded revision).
        data_dir: your own image folder: the recorded folder moved there (its recorded names, template and
            split apply), or any folder.
        protocol: a key of the protocol registry (default: the recorded one, else base-to-new where the
            benchmark defines base and new classes, else few-shot); `targets` its target benchmarks.
        classes_from_data: evaluate on data other than the adapter's own (another benchmark or class list),
            classifying the data's classes; refused without it (`check_adapter_data`).
        eval_batch_size: test images per batch and process.
        image_dtype: the dtype of the frozen image tower (refused for methods that train through it).
        feature_cache: a folder (or an `ImageFeatureCache`) of frozen image features to read and fill.
        output_dir: also write `results.json`, `results.md` and the charts there (main process).
        accelerator: the process's Accelerator (default: one is built).
        num_workers: data-loading workers of the evaluation.

    Returns:
        The `ExperimentResult` (its `shots` those of the training, `trained_on` / `trained_protocol` when
        evaluated on other data or with another protocol).

    Raises:
        SettingError: the adapter or data cannot be found, or does not fit (naming the settings to change).

    Example:
        >>> result = evaluate_adapter("outputs/run/coop/seed1/adapter")      # its own data and protocol
        >>> result.mean
        {'accuracy': 81.25}
    """
    if isinstance(model, PromptCLIPPreTrainedModel):
        name = getattr(model, "name_or_path", "") or ""
        record = read_data_record(name) if name and os.path.isdir(name) else None
        name = name or None
    else:
        name = str(model)
        model = load_adapter(name)
        record = read_data_record(name)
    eval_batch_size = check_setting("eval_batch_size", eval_batch_size)
    image_dtype = check_setting("image_dtype", image_dtype)
    names_data = dataset is not None or data_dir is not None or source is not None
    if dataset is not None:
        spec = get_benchmark(dataset)
    else:
        spec, recorded_source = _recorded_data(record, data_dir)
        source = source if source is not None else recorded_source
    _warn_if_split_differs(record, source)
    recorded_protocol = record.protocol if record is not None else None
    protocol = protocol or recorded_protocol or default_protocol(spec)
    revision = dataset_revision or (None if names_data or record is None else record.dataset_revision)
    trained_on = check_adapter_data(
        model, record, spec, protocol, source=source, revision=revision, classes_from_data=classes_from_data
    )
    if record is not None:
        shots = record.shots
    elif not model.capabilities.learns_parameters:
        shots = 0
    else:  # an adapter saved without a data record: its few-shot draw, if any
        selection = read_adapter_record(name, SELECTION_FILE) if name else None
        shots = selection["shots"] if selection else None
    if image_dtype != "float32":
        model.set_image_dtype(image_dtype)  # refused for a method that trains through its image tower
    if feature_cache is not None and not isinstance(feature_cache, ImageFeatureCache):
        feature_cache = ImageFeatureCache(directory=feature_cache)
    metrics = evaluate_protocol(
        model, spec, protocol, source=source, targets=targets, dataset_revision=revision,
        batch_size=eval_batch_size, accelerator=accelerator or Accelerator(), feature_cache=feature_cache,
        num_workers=num_workers,
    )  # fmt: skip
    if feature_cache is not None:
        logger.info("%s", feature_cache.summary())
    result = results_record(
        method_of(model.config),
        model.config.base_model_name_or_path,
        spec,
        protocol,
        shots,
        [RunResult.measured(record.seed if record is not None else None, metrics)],
        describe_data(spec, source, revision),
        trained_on=trained_on,
        trained_protocol=recorded_protocol,
        hub_datasets=hub_datasets_of(spec, protocol, targets or (), source, revision),
        image_dtype=image_dtype if image_dtype != "float32" else None,
    )
    if output_dir and PartialState().is_main_process:
        write_report([result], output_dir)
    return result
