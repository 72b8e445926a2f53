"""One experiment end to end: data protocol -> training -> evaluation -> report, card, Hub.

The CLI (`hf-prompt-clip train`, `examples/train.py`) is a thin layer over `run_experiment`.
Nothing here depends on the method: models come from the method registry, their options are
checked against the method's config fields, and a method without trainable parameters
(zero-shot CLIP) is simply evaluated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast_object_list, set_seed
from datasets import IterableDataset

from .core.atomic import atomic_folder
from .core.configuration import (
    OptionTypeMismatch,
    PromptCLIPConfig,
    coerce_option,
    describe_type,
    option_problem,
    option_types,
    type_advice,
)
from .core.feature_cache import ImageFeatureCache
from .core.logs import main_process_logger
from .core.modeling import dtype_name
from .core.registry import default_method, get_method, method_capabilities, method_config
from .data import (
    BenchmarkSpec,
    FewShotSelection,
    ImageFolderSource,
    Source,
    SplitNotFoundError,
    base_new_counts,
    check_images,
    class_counts,
    collate_fn,
    dassl_few_shot,
    describe_data,
    eval_transform,
    folder_record,
    get_benchmark,
    hub_dataset,
    is_local_key,
    load_benchmark,
    sample_few_shot,
    select_classes,
    shots_drawn,
    train_transform,
    validation_shots,
    with_image_transform,
)
from .evaluate.protocols import (
    class_lists,
    evaluate_accuracy,
    evaluate_base_to_new,
    evaluate_targets,
    summarize_runs,
)
from .evaluate.report import METRIC_NAMES, write_report
from .hub import (
    DATA_RECORD_FILE,
    SELECTION_FILE,
    VALIDATION_SELECTION_FILE,
    PushAccessError,
    check_push_access,
    push_adapter_to_hub,
    save_model_card,
)
from .train import PromptTrainer, TrainingConfig, list_checkpoints, settings_used

logger = main_process_logger(__name__)

PROTOCOLS = ("few_shot", "base2new", "cross_dataset", "domain_generalization")


@dataclass
class ExperimentConfig:
    """What to run. `training` carries the optimisation settings (epochs, lr, ...).

    `dataset` is a registry key or a `BenchmarkSpec` (your own folder: `data.folder_benchmark`).

    Frozen image tower (docs/performance.md): `feature_cache` a folder that keeps the frozen image features
    on disk across runs (`None`: in memory, for this run only; every run shares one cache between its
    methods, seeds and protocols); `image_dtype` the dtype the frozen image tower runs in (`"float32"`,
    `"bfloat16"`/`"bf16"`, `"float16"`/`"fp16"`; refused for methods that train through it; recorded in
    the results and the card); `augment_views` train gradient methods on that many precomputed augmented
    views per image (`TrainingConfig.augment_views`; it changes the augmentation, so it is off by default and
    recorded in the results and the card, as the number of views used: no more than the epochs, with a
    warning; refused for methods whose image path is not frozen, see docs/training.md). Setting it here or in `training` is the same; two different values are refused.
    """

    method: str = field(default_factory=default_method)
    method_options: dict[str, Any] = field(default_factory=dict)
    base_model: str = "openai/clip-vit-base-patch16"
    base_revision: str | None = None
    dataset: str | BenchmarkSpec = "dtd"
    source: Source | None = None
    dataset_revision: str | None = None
    shots: int | None = 16  # None: the full training set
    few_shot_sampler: str = "numpy"  # "dassl": the CoOp authors' draw (hf_prompt_clip.data.fewshot)
    seeds: Sequence[int] = (1,)
    protocol: str = "base2new"
    targets: Sequence[str] = ()
    eval_batch_size: int = 64
    output_dir: str = "outputs/run"
    push_to_hub: str | None = None
    private: bool = False
    training: TrainingConfig = field(default_factory=TrainingConfig)
    feature_cache: str | None = None
    image_dtype: str = "float32"
    augment_views: int | None = None

    def __post_init__(self):
        check_protocol(self.protocol, get_benchmark(self.dataset), self.targets)
        repeated = sorted({seed for seed in self.seeds if list(self.seeds).count(seed) > 1})
        if repeated or not self.seeds:
            raise ValueError(
                f"seeds must be distinct and at least one, got {list(self.seeds)}: a repeated seed repeats the "
                "same run and would shrink the reported spread. Give each seed once, e.g. seeds=(1, 2, 3)."
            )
        if not isinstance(self.eval_batch_size, int) or self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be a positive integer, got {self.eval_batch_size!r}.")
        self.image_dtype = dtype_name(self.image_dtype)  # refuses unknown names
        views = self.augment_views
        if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
            raise ValueError(
                f"augment_views must be a positive number of views per training image, got {views!r}; e.g. "
                "--augment-views 10, or leave it out (no precomputed views)."
            )
        trained = self.training.augment_views
        if views is not None and trained is not None and trained != views:
            raise ValueError(
                f"augment_views is {views} but training.augment_views is {trained}: give it once (either is read)."
            )
        if views is None:
            self.augment_views = trained
        resume = self.training.resume_from_checkpoint
        if resume not in (None, "latest") and len(self.seeds) > 1:
            raise ValueError(
                f"resume_from_checkpoint={resume!r} names one seed's checkpoint but {len(self.seeds)} seeds "
                "run; use 'latest' (each seed resumes from its own last checkpoint)."
            )


def check_before_running(
    config: ExperimentConfig,
    methods: Sequence[str] | None = None,
    shots: Sequence[int | None] | None = None,
) -> None:
    """What would otherwise fail after hours of training, checked before anything trains: the output
    folder is writable, every transfer target is a known benchmark, the evaluation batch size is
    positive, every map-style test split opens (`check_images`: a quick scan of each image's
    structure; streamed sets and the synthetic world are not scanned), and so do the training and
    validation images the run will read (`check_training_images` for `methods`, default `config.method`,
    and each number of `shots`, default `config.shots`).

    Raises:
        PermissionError / ValueError / UnknownBenchmarkError / UnreadableImageError: naming the
            problem and the fix; nothing has been written.
    """
    output = Path(config.output_dir)
    created = [folder for folder in (output, *output.parents) if not folder.exists()]
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output, prefix=".write-check-"):
            pass
    except OSError as error:
        raise PermissionError(
            f"Cannot write to the output folder {str(output)!r} ({error.strerror or error}); nothing was "
            "trained. Choose a writable folder (--output-dir) or fix its permissions."
        ) from error
    finally:
        for folder in created:  # leave no trace of the check (the run creates what it writes)
            with contextlib.suppress(OSError):
                folder.rmdir()
    if not isinstance(config.eval_batch_size, int) or config.eval_batch_size < 1:
        raise ValueError(
            f"eval_batch_size must be a positive integer (images per evaluation batch), got "
            f"{config.eval_batch_size!r}; e.g. --eval-batch-size 64."
        )
    spec = get_benchmark(config.dataset)
    tests = [(spec, config.source, config.dataset_revision)]
    if config.protocol in ("cross_dataset", "domain_generalization"):
        tests = [(get_benchmark(key), None, None) for key in config.targets]  # unknown keys fail here
    for benchmark, source, revision in tests:
        if benchmark.synthetic:
            continue
        check_images(
            load_benchmark(benchmark, "test", source=source, revision=revision), f"{benchmark.key} test"
        )
    check_training_images(config, methods, shots)


def check_training_images(
    config: ExperimentConfig,
    methods: Sequence[str] | None = None,
    shots: Sequence[int | None] | None = None,
) -> int:
    """Scan (`check_images`) the training images the run will read, before anything trains: for every
    number of `shots` (default: `config.shots`) and seed, the examples `seed_data` gives the methods that
    learn (the few-shot draw, or the whole training split; the base classes for base-to-new) and, where
    one of them searches its settings on validation examples, the validation draw. Each distinct set
    (its `datasets` fingerprint) is scanned once, and only the selected examples; streamed data and the
    synthetic world are not scanned, as for the test splits.

    Args:
        config: the run (its dataset, source, protocol, seeds and sampler).
        methods: the methods that will run (default: `config.method`), with `config.method_options`.
        shots: the numbers of shots that will run (a few-shot curve), default `[config.shots]`.

    Returns:
        The number of images checked.

    Raises:
        UnreadableImageError: naming the split, the seed and draw, the file and what to do; nothing has
            been trained.
    """
    spec = get_benchmark(config.dataset)
    found = [
        method_capabilities(name, options_for(name, config.method_options))
        for name in methods or [config.method]
    ]
    learning = [capabilities for capabilities in found if capabilities.learns_parameters]
    if spec.synthetic or not learning:
        return 0
    if isinstance(_load(spec, "train", config), IterableDataset):
        return 0  # streamed: read once, by training
    validates = any(capabilities.uses_validation for capabilities in learning)
    scanned: set[str | None] = set()
    checked = 0
    with _quiet(sample_few_shot.__module__):  # run_seed draws these again and warns then
        for value in list(dict.fromkeys(shots)) if shots else [config.shots]:
            per_shots = dataclasses.replace(config, shots=value)
            for seed in config.seeds:
                data = seed_data(per_shots, spec, seed, learns=True, validates=validates)
                for dataset, selection, split in (
                    (data.train, data.selection, "train"),
                    (data.validation, data.validation_selection, "val"),
                ):
                    fingerprint = getattr(dataset, "_fingerprint", None)
                    if dataset is None or (fingerprint is not None and fingerprint in scanned):
                        continue
                    scanned.add(fingerprint)
                    drawn = describe_shots(selection.shots if selection else None)
                    where = f"seed {seed}'s draw of {drawn}" if selection else drawn  # rows counted within it
                    checked += check_images(dataset, f"{spec.key} {split} ({where})")
    return checked


@contextlib.contextmanager
def _quiet(name: str):
    """Only errors from the logger `name` inside the block."""
    quieted = logging.getLogger(name)
    level = quieted.level
    quieted.setLevel(logging.ERROR)
    try:
        yield
    finally:
        quieted.setLevel(level)


class ProtocolNotSupportedError(ValueError):
    """The method (with these options) cannot be evaluated with the requested protocol."""


def _check_classes_can_change(can_change: bool, what: str, protocol: str) -> None:
    """Refuse protocols that classify other classes than the training ones (base-to-new, cross-dataset,
    domain generalisation) for models that learn parameters per training class."""
    if protocol != "few_shot" and not can_change:
        raise ProtocolNotSupportedError(
            f"{what} learns parameters per training class, so it cannot classify the new classes or other "
            f"datasets that protocol {protocol!r} evaluates; use protocol 'few_shot' (--protocol few_shot)."
        )


class ImageDtypeNotSupportedError(ProtocolNotSupportedError):
    """The method trains through its image tower, which therefore cannot run in another dtype."""


class AugmentViewsNotSupportedError(ProtocolNotSupportedError):
    """Training on precomputed augmented views was asked for a method whose image path is not frozen."""


def check_image_settings(method: str, options: dict[str, Any], config: ExperimentConfig) -> None:
    """Refuse `config.image_dtype` (other than float32) and `config.augment_views` for `method` with
    `options`, before anything runs: its `Capabilities` say whether it trains through its image tower
    (`trains_image_tower`) and whether its training can read cached image features
    (`cached_features_problem`). Methods fitted on frozen features (a linear probe, Tip-Adapter) and
    methods that learn nothing take `augment_views` and ignore it (it applies to gradient stages)."""
    capabilities = method_capabilities(method, options)
    if config.image_dtype != "float32" and capabilities.trains_image_tower:
        raise ImageDtypeNotSupportedError(
            f"{method} trains through its image tower, so the tower cannot run in {config.image_dtype} (its "
            "gradients would too): drop --image-dtype for this method (image_dtype='float32'), or use "
            "--mixed-precision bf16, which keeps the trained tensors in float32."
        )
    if config.augment_views is not None and capabilities.learns_parameters:
        problem = capabilities.cached_features_problem
        if problem is not None:
            raise AugmentViewsNotSupportedError(
                f"--augment-views {config.augment_views} trains on precomputed image features of augmented views, "
                f"which needs a frozen image path, but {method} (with these options) cannot: {problem}. Drop "
                f"--augment-views for {method} (it then draws a fresh augmentation every epoch); with "
                "--all-methods it is left out."
            )


def check_method_protocol(method: str, options: dict[str, Any], protocol: str) -> None:
    """`ProtocolNotSupportedError` when `method` with `options` cannot run `protocol`, before anything runs."""
    _check_classes_can_change(
        method_capabilities(method, options).classes_can_change, f"{method} with these options", protocol
    )


class ValidationSplitMissingError(ProtocolNotSupportedError):
    """The method searches its settings on a validation split that the data does not have."""


def check_method_data(method: str, options: dict[str, Any], config: ExperimentConfig) -> None:
    """`ValidationSplitMissingError` when `method` with `options` searches its settings on validation
    examples (`Capabilities.uses_validation`) and the benchmark has no val split, before anything runs."""
    capabilities = method_capabilities(method, options)
    if not (capabilities.learns_parameters and capabilities.uses_validation):
        return
    try:
        _load(get_benchmark(config.dataset), "val", config)
    except SplitNotFoundError as error:
        raise ValidationSplitMissingError(
            f"{method} chooses its settings on validation examples (the few-shot protocol's min(shots, 4) per "
            f"class of the val split), but the data has no val split: {error} Or fix the searched settings "
            f"with --option (docs/methods.md names them for {method})."
        ) from error


def check_protocol(protocol: str, spec: BenchmarkSpec, targets: Sequence[str] = ()) -> None:
    """Refuse a protocol that cannot run on `spec` with these `targets`, saying what would."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    if protocol in ("cross_dataset", "domain_generalization") and not targets:
        raise ValueError(
            f"protocol {protocol!r} needs target datasets (targets=[...], --targets on the CLI)."
        )
    if protocol == "base2new" and not spec.base_new:
        raise ValueError(
            f"The base-to-new protocol is not defined for {spec.key!r}; use protocol='few_shot'."
        )


def _fields(config_class) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class)}


def options_for(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options that `method`'s config has (several methods can share one option list)."""
    fields = _fields(get_method(method)[0])
    return {key: value for key, value in options.items() if key in fields}


def method_option_names(methods: Sequence[str]) -> set[str]:
    """The options (config fields) that at least one of `methods` has."""
    return set().union(*(_fields(get_method(m)[0]) for m in methods))


def own_option_names(method: str) -> list[str]:
    """The options of `method` itself (its config fields beyond the shared `PromptCLIPConfig` ones)."""
    return sorted(_fields(get_method(method)[0]) - _fields(PromptCLIPConfig))


def _field_type(config_class: type, name: str) -> Any:
    """The type of config field `name` (annotations may be strings); `Any` where it cannot be resolved."""
    own = option_types(config_class)
    if name in own:
        return own[name]
    for klass in config_class.__mro__:  # transformers' own fields
        hint = inspect.get_annotations(klass).get(name)
        if hint is not None:
            if isinstance(hint, str):
                module = sys.modules.get(klass.__module__)
                try:
                    hint = eval(hint, vars(module) if module else {})
                except Exception:
                    return Any
            return hint
    return Any


def check_option_values(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` of `method` read as the types of its config fields (`coerce_option` with words: an int
    for a float, `true`/`no`/`1`/... for a bool; never a fraction or a string for an int) and checked
    against the values each option takes (its `OptionRule`); raises `ValueError` naming the option, what
    it takes, what was given and an example.

    Example:
        >>> check_option_values(default_method(), {"n_ctx": "abc"})   # CoOp
        Traceback (most recent call last):
        ValueError: Option n_ctx of coop takes int, got 'abc' (str): give a whole number ...
    """
    config_class = get_method(method)[0]
    checked = {}
    for key, value in options.items():
        hint = _field_type(config_class, key)
        default = getattr(config_class, key, None)
        example = f"e.g. --option {key}={default!r}" if default is not None else "see its docstring"
        try:
            coerced = coerce_option(value, hint, words=True)
        except OptionTypeMismatch:
            raise ValueError(
                f"Option {key} of {method} takes {describe_type(hint, words=True)}, got {value!r} "
                f"({type(value).__name__}): {type_advice(hint, words=True)}, {example} (values are Python "
                f"literals; quote text with spaces: --option \"{key}='...'\")."
            ) from None
        problem = option_problem(config_class, key, coerced)
        if problem:
            raise ValueError(f"Option {problem.replace(key, f'{key} of {method}', 1)}; {example}.")
        checked[key] = coerced
    return checked


def check_method_options(
    methods: Sequence[str], options: dict[str, Any], named: Sequence[str] | None = None
) -> dict[str, Any]:
    """Refuse options that none of `methods` has, naming the closest option names and listing the options
    of each method the user `named` (default: all of `methods`; an implicitly added baseline is not
    listed), and values of the wrong type for a method that has the option. Returns the options with
    values coerced (`check_option_values`)."""
    known = method_option_names(methods)
    unknown = sorted(set(options) - known)
    if unknown:
        listing = "; ".join(f"{m}: {', '.join(own_option_names(m)) or 'none'}" for m in (named or methods))
        described = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            described.append(key + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
        raise ValueError(
            f"No method of this run has option {', '.join(described)}. The options are: {listing} (the shared "
            "ones, e.g. fast, stage_epochs, apply to every method). Fix the spelling in --option KEY=VALUE."
        )
    checked = dict(options)
    for method in methods:
        checked.update(check_option_values(method, options_for(method, checked)))
    return checked


def _load(spec: BenchmarkSpec, split: str, config: ExperimentConfig):
    return load_benchmark(spec, split, source=config.source, revision=config.dataset_revision)


def format_metrics(metrics: dict[str, float]) -> str:
    """`"base 80.10 %, new 60.20 %, H 68.74 %"`: metrics rounded for people (logs, the CLI)."""
    return ", ".join(f"{METRIC_NAMES.get(key, key)} {value:.2f} %" for key, value in metrics.items())


def evaluate_protocol(
    model,
    spec: BenchmarkSpec,
    protocol: str,
    *,
    source: Source | None = None,
    targets: Sequence[str] = (),
    dataset_revision: str | None = None,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
    feature_cache: ImageFeatureCache | None = None,
) -> dict[str, float]:
    """The metrics of `protocol` for a trained model (the test split of `spec`, or of `targets`).

    `feature_cache`: evaluate from cached frozen image features where the model classifies from them
    (`evaluate.protocols.predict`); the metrics are the same."""
    check_protocol(protocol, spec, targets)
    _check_classes_can_change(model.capabilities.classes_can_change, f"This {type(model).__name__}", protocol)
    transform = eval_transform(model.image_processor)

    def test_set(
        benchmark: BenchmarkSpec, benchmark_source: Source | None = None, revision: str | None = None
    ):
        data = load_benchmark(benchmark, "test", source=benchmark_source, revision=revision)
        return with_image_transform(data, transform)

    started = time.perf_counter()
    if protocol == "base2new":
        own = test_set(spec, source, dataset_revision)
        metrics = evaluate_base_to_new(model, own, collate_fn, spec, batch_size, accelerator, feature_cache)
        sizes = [_size(own)]
    elif protocol == "few_shot":
        own = test_set(spec, source, dataset_revision)
        metrics = {
            "accuracy": evaluate_accuracy(
                model, own, collate_fn, spec, batch_size, accelerator, feature_cache
            )
        }
        sizes = [_size(own)]
    else:
        sets = {key: (test_set(get_benchmark(key)), get_benchmark(key)) for key in targets}
        metrics = evaluate_targets(model, sets, collate_fn, batch_size, accelerator, feature_cache)
        sizes = [_size(data) for data, _ in sets.values()]
    seconds = time.perf_counter() - started
    where = spec.key if protocol in ("base2new", "few_shot") else ", ".join(targets)
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


ROUND_DIGITS = 2
"""Decimals of the accuracies people read (`mean`, `std`, `metrics`); `*_full_precision` keep the rest."""


def rounded(metrics: dict[str, float], digits: int = ROUND_DIGITS) -> dict[str, float]:
    """The metrics rounded to `digits` decimals (`44.49999928` -> `44.5`)."""
    return {key: round(float(value), digits) for key, value in metrics.items()}


def results_record(
    method: str,
    base_model: str,
    spec: BenchmarkSpec,
    protocol: str,
    shots: int | None,
    runs: Sequence[dict],
    data: str | None = None,
    trained_on: str | None = None,
    trained_protocol: str | None = None,
    hub_datasets: dict[str, dict] | None = None,
) -> dict[str, Any]:
    """One entry of the results schema (docs/reports.md) from `[{"seed", "metrics"}]` runs.

    Args:
        shots: training images per class of the adapter: `None` the full training set, `0` nothing
            trained (zero-shot CLIP).
        data: where the dataset was read (`describe_data`).
        trained_on: the benchmark the adapter was trained on, recorded when it is not `spec`'s (an
            adapter evaluated on other classes with `--classes-from-data`); `shots` are of that training.
        trained_protocol: the protocol it was trained with, recorded when it is another of the
            protocols tested on the training data itself (a few-shot adapter tested base-to-new).
        runs: each may carry `shots_drawn` (`{"min", "median", "max"}` examples drawn per trained class);
            when some class had fewer than `shots`, the record keeps `shots_drawn` over the runs, so
            tables and cards show what was trained, not what was asked.
        hub_datasets: benchmark key -> the Hub dataset its test split was read from
            (`hub_datasets_of`), recorded when any data came from the Hub; cards cite them.

    `mean`, `std` and each run's `metrics` are rounded to `ROUND_DIGITS` decimals; `mean_full_precision`,
    `std_full_precision` and `metrics_full_precision` hold the exact values.
    """
    mean, std = summarize_runs(runs)
    record = {
        "method": method,
        "base_model": base_model,
        "dataset": spec.key,
        "data": data,
        "protocol": protocol,
        "shots": shots,
        "synthetic": spec.synthetic,
        "runs": [
            {
                "seed": run["seed"],
                "metrics": rounded(run["metrics"]),
                "metrics_full_precision": run["metrics"],
            }
            for run in runs
        ],
        "mean": rounded(mean),
        "std": rounded(std),
        "mean_full_precision": mean,
        "std_full_precision": std,
    }
    if trained_on is not None and trained_on != spec.key:
        record["trained_on"] = trained_on
    own_data = ("few_shot", "base2new")
    if (
        trained_protocol is not None
        and trained_protocol != protocol
        and {trained_protocol, protocol} <= set(own_data)
    ):
        record["trained_protocol"] = trained_protocol
    if hub_datasets:
        record["hub_datasets"] = hub_datasets
    drawn = [run["shots_drawn"] for run in runs if run.get("shots_drawn")]
    if shots and drawn and min(d["min"] for d in drawn) < shots:  # some class had fewer than asked
        record["shots_drawn"] = {
            "min": min(d["min"] for d in drawn),
            "median": float(statistics.median(d["median"] for d in drawn)),
            "max": max(d["max"] for d in drawn),
        }
    return record


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
    if protocol in ("cross_dataset", "domain_generalization"):
        found.update({key: hub_dataset(key) for key in targets if key != spec.key})
    return {key: value for key, value in found.items() if value is not None}


def describe_shots(shots: int | None, trained: bool = True) -> str:
    """`"16 shots per class"`, `"the full training set"`, or `"nothing to train"`."""
    if not trained:
        return "nothing to train"
    if shots is None:
        return "the full training set"
    return f"{shots} shot{'s' if shots != 1 else ''} per class"


def data_record(
    config: ExperimentConfig,
    spec: BenchmarkSpec,
    names: Sequence[str],
    shots: int | None,
    seed: int,
    drawn: dict | None = None,
) -> dict[str, Any]:
    """The record of the data an adapter was trained on, saved beside it (`DATA_RECORD_FILE`): the
    benchmark, where it was read, the protocol, its class list, the shots (`0`: nothing trained), the
    examples drawn per class (`drawn`: `{"min", "median", "max"}`) and,
    for your own folder, what rebuilds it (`folder_record`)."""
    own = config.source is None or config.source is spec.source
    local = is_local_key(spec.key) and own and isinstance(spec.source, ImageFolderSource)
    return {
        "dataset": spec.key,
        "data": describe_data(spec, config.source, config.dataset_revision),
        "dataset_revision": config.dataset_revision,
        "protocol": config.protocol,
        "classes": "base" if config.protocol == "base2new" else "all",
        "class_names": list(names),
        "shots": shots,
        "shots_drawn": drawn,
        "seed": seed,
        "few_shot_sampler": config.few_shot_sampler if shots else None,
        "folder": folder_record(spec, spec.source) if local else None,
    }


def validation_set(
    config: ExperimentConfig, spec: BenchmarkSpec, seed: int, train_set
) -> tuple[Any, FewShotSelection | None]:
    """The validation examples of one seed, for methods that search on them (`Capabilities.uses_validation`): the
    few-shot protocol's `validation_shots(shots)` = min(shots, 4) per class of the benchmark's val split
    (CoOp's), drawn with the run's sampler (`"dassl"`: after the training draw, from the same stream, as
    the authors' code does), or the whole val split when training on the full training set; the base
    classes only for base-to-new. Returns the examples and the record of the draw (`None`: all of them).
    """
    val = _load(spec, "val", config)  # check_method_data said it exists
    selection = None
    if config.shots is not None:
        if config.few_shot_sampler == "dassl":
            _, (val, selection) = dassl_few_shot(train_set, val, config.shots, seed, benchmark=spec.key)
        else:
            val, selection = sample_few_shot(
                val, validation_shots(config.shots), seed, benchmark=spec.key, split="val"
            )
    if config.protocol == "base2new":
        val = select_classes(val, "base")
    return val, selection


@dataclass
class SeedData:
    """The examples one seed trains on (`seed_data`).

    Attributes:
        train: the training examples (the few-shot draw, or the whole training split; the base classes for
            base-to-new), without a transform.
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
    full_train = train_set = _load(spec, "train", config)
    selection = None  # shots=None: the full training set
    if learns and config.shots is not None:
        train_set, selection = sample_few_shot(
            train_set, config.shots, seed, benchmark=spec.key, sampler=config.few_shot_sampler
        )
    if config.protocol == "base2new":
        train_set = select_classes(train_set, "base")
    data = SeedData(train_set, selection)
    if validates:  # e.g. a regularisation strength searched on it
        data.validation, data.validation_selection = validation_set(config, spec, seed, full_train)
    return data


def run_seed(
    config: ExperimentConfig,
    seed: int,
    accelerator: Accelerator,
    feature_cache: ImageFeatureCache | None = None,
) -> dict[str, Any]:
    """Train (if the method learns anything) and evaluate one seed.

    `feature_cache`: the frozen image features that fit stages share (one per run: methods and seeds
    reading the same images under the same transform encode them once).

    Returns `{"seed", "metrics", "shots", "adapter", "config", "training"}`; `shots` is what was trained
    (`0`: nothing), `training` the settings the adapter was trained with (None when nothing was trained).
    """
    spec = get_benchmark(config.dataset)
    _, model_class = get_method(config.method)
    options = options_for(config.method, config.method_options)
    method = method_config(config.method, options)
    capabilities = model_class.capabilities_of(method)
    learns = capabilities.learns_parameters
    output = Path(config.output_dir) / f"seed{seed}"
    data = seed_data(config, spec, seed, learns, learns and capabilities.uses_validation)
    train_set, selection = data.train, data.selection
    val_set, val_selection = data.validation, data.validation_selection
    # what was drawn of each trained class: fewer than asked where a class has fewer (recorded, shown)
    drawn = shots_drawn(class_counts(train_set)) if selection is not None else None
    names, prompts = class_lists(train_set, spec)
    # the method's benchmark-dependent defaults (zero-shot templates, ...), then the user's options
    options = {**method.benchmark_defaults(spec), **options}
    subset = "base " if config.protocol == "base2new" else ""
    logger.info(
        "%s, seed %d: %s (%s), %s, %d %sclasses, %s%s; base model %s; device %s",
        config.method, seed, spec.key, describe_data(spec, config.source, config.dataset_revision),
        config.protocol, len(names), subset, describe_shots(config.shots, learns),
        f" = {len(train_set)} training images" if learns else "", config.base_model, accelerator.device,
    )  # fmt: skip
    set_seed(seed)  # the adapter's initialisation belongs to the seed too
    model = model_class.from_clip(
        config.base_model, names, prompt_names=prompts, revision=config.base_revision, **options
    )
    if config.image_dtype != "float32":
        model.set_image_dtype(config.image_dtype)  # the frozen image tower only; features in float32
    training = None
    fits = any(stage.kind == "fit" for stage in model.training_stages())
    if fits or any(p.requires_grad for p in model.parameters()):
        training = dataclasses.replace(
            config.training, output_dir=str(output), seed=seed, augment_views=config.augment_views
        )
        if training.resume_from_checkpoint == "latest" and not list_checkpoints(output):
            training.resume_from_checkpoint = None  # this seed had not started before the interruption
        crop_scale = model.training_crop_scale(spec.crop_scale)
        examples = with_image_transform(train_set, train_transform(model.image_processor, crop_scale))
        # what defines the result besides the TrainingConfig: a folder of another run is refused
        fingerprint = {
            "method": config.method, "options": options, "base_model": config.base_model,
            "base_revision": config.base_revision, "dataset": spec.key,
            "data": describe_data(spec, config.source, config.dataset_revision),
            "protocol": config.protocol, "shots": config.shots, "few_shot_sampler": config.few_shot_sampler,
            "class_names": list(names), "prompt_names": prompts,
        }  # fmt: skip
        if val_set is not None:
            fingerprint["validation_shots"] = val_selection.shots if val_selection is not None else None
        plain = eval_transform(model.image_processor)
        # its own Accelerator: the data order is seeded with this seed
        PromptTrainer(
            model,
            examples,
            training,
            collate_fn=collate_fn,
            fingerprint=fingerprint,
            train_eval_dataset=with_image_transform(train_set, plain),
            validation_dataset=None if val_set is None else with_image_transform(val_set, plain),
            feature_cache=feature_cache,
        ).train()
    shots = config.shots if training else 0
    adapter_dir = output / "adapter"
    training_args = settings_used(training, model.training_stages()) if training else None
    # settings of the frozen image tower that change the result, recorded with the training settings
    image_settings = {"image_dtype": config.image_dtype} if config.image_dtype != "float32" else {}
    if training_args:
        training_args.update(image_settings)
    if accelerator.is_main_process:  # before evaluating: a crash there keeps the trained adapter
        # written aside and renamed into place: a kill leaves the earlier adapter or this one, whole
        rerun = (
            "rerun the same command with --resume-from-checkpoint latest: training is complete in its last "
            "checkpoint, so only the adapter is written"
            if training
            else "rerun the same command"
        )
        disk_full_fix = f"Free space on that disk (or give another --output-dir), then {rerun}."
        with atomic_folder(adapter_dir, disk_full_fix=disk_full_fix) as staging:
            model.save_pretrained(staging)
            if selection is not None and training:
                selection.save(staging / SELECTION_FILE)
            if val_selection is not None and training:
                val_selection.save(staging / VALIDATION_SELECTION_FILE)
            record = data_record(config, spec, names, shots, seed, drawn if shots else None)
            (staging / DATA_RECORD_FILE).write_text(json.dumps(record, indent=1, ensure_ascii=False))
            if training_args:
                (staging / "training_args.json").write_text(json.dumps(training_args, indent=1, default=str))
    accelerator.wait_for_everyone()
    metrics = evaluate_protocol(
        model,
        spec,
        config.protocol,
        source=config.source,
        targets=config.targets,
        dataset_revision=config.dataset_revision,
        batch_size=config.eval_batch_size,
        accelerator=accelerator,
        feature_cache=feature_cache,
    )
    accelerator.wait_for_everyone()
    return {
        "seed": seed,
        "metrics": metrics,
        "shots": shots,
        "shots_drawn": drawn if shots else None,
        "adapter": str(adapter_dir),
        "config": model.config,
        "training": training_args or (image_settings or None),
    }


class PushFailedError(RuntimeError):
    """Publishing an adapter failed after training; every local result was kept (`results`: the
    results of the run, when raised by `run_comparison`)."""

    def __init__(self, message: str, results: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.results = results or []


def _preview(names: Sequence[str], count: int = 4) -> str:
    shown = ", ".join(map(repr, names[:count]))
    return f"{shown}, ..." if len(names) > count else shown


def check_adapter_data(
    model,
    record: dict[str, Any] | None,
    spec: BenchmarkSpec,
    protocol: str,
    *,
    source: Source | None = None,
    revision: str | None = None,
    classes_from_data: bool = False,
) -> str | None:
    """Refuse to evaluate an adapter on data it was not trained for, unless `classes_from_data`.

    The adapter's recorded benchmark (`DATA_RECORD_FILE`, when it has one) must be `spec`, and, for
    the protocols tested on `spec` itself, its class list the one training on `spec` with `protocol`
    gives (the base half for base-to-new, all classes for few-shot): numbers on other classes would
    not measure what it learned. (Cross-dataset and domain-generalisation targets have other classes
    by design; `spec` names the training data there.) With
    `classes_from_data` the data's classes are classified anyway (for methods that can change classes).

    Returns:
        The benchmark the adapter was trained on when it is not `spec` (results record it as
        `trained_on`), else `None`.

    Raises:
        ValueError: naming both datasets and class lists and the two ways on.
    """
    recorded = (record or {}).get("dataset")
    problems = []
    if recorded is not None and recorded != spec.key:
        problems.append(f"it was trained on {recorded!r}, not on {spec.key!r}")
    if protocol in ("cross_dataset", "domain_generalization"):  # the targets are other classes by design
        names = adapter = []
    else:
        names = list(load_benchmark(spec, "test", source=source, revision=revision).features["label"].names)
        if protocol == "base2new":
            names = names[: base_new_counts(len(names))[0]]
        adapter = list(model.config.class_names or [])
    if adapter != names:
        subset = "base " if protocol == "base2new" else ""
        problems.append(
            f"its {len(adapter)} classes ({_preview(adapter)}) are not the {len(names)} {subset}classes of "
            f"{spec.key!r} ({_preview(names)})"
        )
    if problems and not classes_from_data:
        own = (
            f" (recorded: {recorded!r} with protocol {record.get('protocol')!r}; `hf-prompt-clip evaluate "
            "--model ...` without --dataset, --data-dir or --protocol evaluates it so)"
            if record
            else ""
        )
        raise ValueError(
            f"This adapter does not fit the data: {'; '.join(problems)}, so its numbers would not measure "
            f"what it learned. Evaluate it on the data and protocol it was trained with{own}, or pass "
            "--classes-from-data to classify this data's classes anyway."
        )
    if problems:
        logger.warning(
            "evaluating on other data than the adapter's (--classes-from-data): %s", "; ".join(problems)
        )
    return recorded if recorded != spec.key else None


def _check_push_access_on_main(repo_id: str) -> None:
    """`check_push_access` on the main process, its outcome shared, so every process refuses together
    (or none does) before anything trains."""
    state = PartialState()
    outcome: list[str | None] = [None]
    if state.is_main_process:
        try:
            check_push_access(repo_id)
        except PushAccessError as error:
            outcome = [str(error)]
    if state.num_processes > 1:
        broadcast_object_list(outcome)
    if outcome[0] is not None:
        raise PushAccessError(outcome[0])


def publish(adapter: str | Path, repo_id: str, private: bool = False) -> str:
    """Push a saved adapter folder (with its card) to `repo_id`; returns the commit URL.

    Raises:
        PushFailedError: naming the reason and the command that retries the push.
    """
    try:
        url = push_adapter_to_hub(adapter, repo_id, private=private)
    except Exception as error:
        retry = f"hf-prompt-clip push {adapter} {repo_id}" + (" --private" if private else "")
        reason = " ".join(str(error).split()) or type(error).__name__
        raise PushFailedError(
            f"Pushing {adapter} to {repo_id} failed ({reason}); every local result is kept. "
            f"Retry with: {retry}"
        ) from error
    logger.info("pushed %s to %s", adapter, url)
    return url


def run_experiment(
    config: ExperimentConfig,
    accelerator: Accelerator | None = None,
    write_results: bool = True,
    push: bool = True,
    checked: bool = False,
    feature_cache: ImageFeatureCache | None = None,
) -> dict[str, Any]:
    """Run every seed, write results JSON / markdown / plots and the model card; push if asked.

    Returns the results dict (schema in docs/reports.md). `accelerator` serves evaluation and
    synchronisation; each seed trains with an Accelerator of its own (its data order is seeded).
    With `push=False`, `config.push_to_hub` only names the repository in the cards (the caller pushes).
    The Hub login and write access and `check_before_running` (unless `checked`: the caller did) come
    before anything runs; a push that fails after training raises `PushFailedError` with every local
    file written. `feature_cache`: the frozen image features fit stages share (default: one for this run).
    """
    options = check_method_options([config.method], config.method_options)
    config = dataclasses.replace(config, method_options=options)
    check_method_protocol(config.method, config.method_options, config.protocol)
    check_image_settings(config.method, config.method_options, config)
    if not checked:
        check_method_data(config.method, config.method_options, config)
    if push and config.push_to_hub:
        _check_push_access_on_main(config.push_to_hub)
    if not checked:
        check_before_running(config)
    accelerator = accelerator or Accelerator(mixed_precision=config.training.mixed_precision)
    own_cache = feature_cache is None
    if own_cache:
        feature_cache = ImageFeatureCache(directory=config.feature_cache)
    runs = [run_seed(config, seed, accelerator, feature_cache) for seed in config.seeds]
    if own_cache:
        logger.info("%s", feature_cache.summary())
    spec = get_benchmark(config.dataset)
    data = describe_data(spec, config.source, config.dataset_revision)
    results = results_record(
        config.method, config.base_model, spec, config.protocol, runs[0]["shots"], runs, data,
        hub_datasets=hub_datasets_of(
            spec, config.protocol, config.targets, config.source, config.dataset_revision
        ),
    )  # fmt: skip
    if config.image_dtype != "float32":  # it changes the features, so the numbers: recorded
        results["image_dtype"] = config.image_dtype
    used = [(run["training"] or {}).get("augment_views") for run in runs]
    if any(views is not None for views in used):  # the views trained on (no more than the epochs): recorded
        results["augment_views"] = max(views for views in used if views is not None)
    if accelerator.is_main_process:
        if write_results:
            write_report([results], config.output_dir)
        for index, run in enumerate(runs):
            # the card's loading example names where the adapter is found: the Hub repo, or this folder;
            # it reads the few-shot record saved beside the adapter
            repo_id = config.push_to_hub if config.push_to_hub and index == 0 else run["adapter"]
            save_model_card(run["adapter"], run["config"], run["training"], [results], repo_id=repo_id)
        if push and config.push_to_hub:
            publish(runs[0]["adapter"], config.push_to_hub, private=config.private)
    accelerator.wait_for_everyone()
    return results


def shots_folder(shots: int | None) -> str:
    """The folder of one number of shots in a sweep (`"shots16"`, `"shots_all"`)."""
    return "shots_all" if shots is None else f"shots{shots}"


def run_comparison(
    config: ExperimentConfig,
    methods: Sequence[str],
    skip_unsupported: bool = False,
    shots: Sequence[int | None] | None = None,
    named: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The same protocol for several methods side by side (each in `output_dir/<method>`), with
    one combined report in `output_dir`.

    Args:
        config: what to run; options apply to the methods that have them; `config.push_to_hub`
            publishes the adapter of `config.method` (first seed), after every result is written.
        methods: the methods, in order.
        skip_unsupported: leave out, with a warning, methods that cannot run the protocol
            (`check_method_protocol`); otherwise they are refused before anything runs.
        shots: several numbers of shots (the few-shot curve): each learning method runs each of them
            in `output_dir/<method>/shots<N>/`; a method that learns nothing runs once. Default:
            `config.shots` alone.
        named: the methods the user asked for (an error about options lists theirs only).

    Raises:
        PushFailedError: the push failed after training (every result is written).
    """
    values = list(dict.fromkeys(shots)) if shots else [config.shots]
    options = check_method_options(methods, config.method_options, named)
    config = dataclasses.replace(config, method_options=options)
    if config.push_to_hub and len(values) > 1:
        raise ValueError(
            f"push_to_hub publishes one adapter but {len(values)} numbers of shots run {values}; "
            "run the one to publish alone (--shots N)."
        )
    runnable = []
    for method in methods:
        try:
            check_method_protocol(method, options_for(method, options), config.protocol)
            check_image_settings(method, options_for(method, options), config)
            check_method_data(method, options_for(method, options), config)
        except ProtocolNotSupportedError as error:
            if not skip_unsupported or (config.push_to_hub and method == config.method):
                raise  # never drop the method a push was asked for
            logger.warning("skipping %s: %s", method, error)
            continue
        runnable.append(method)
    if config.push_to_hub:
        _check_push_access_on_main(config.push_to_hub)  # before anything trains
    check_before_running(config, runnable, values)  # once for every method: the same data and folder
    results, pushed = [], None
    # methods, seeds and protocols reading the same frozen features encode them once (on disk with a folder)
    feature_cache = ImageFeatureCache(directory=config.feature_cache)
    for method in runnable:
        method_options = options_for(method, options)
        learns = method_capabilities(method, method_options).learns_parameters
        for value in values if learns else [config.shots]:
            output = Path(config.output_dir) / method
            if learns and len(values) > 1:
                output = output / shots_folder(value)
            method_config = dataclasses.replace(
                config,
                method=method,
                method_options=method_options,
                shots=value,
                output_dir=str(output),
                push_to_hub=config.push_to_hub if method == config.method else None,
            )
            results.append(
                run_experiment(
                    method_config, write_results=False, push=False, checked=True, feature_cache=feature_cache
                )
            )
            if method_config.push_to_hub:
                pushed = output / f"seed{config.seeds[0]}" / "adapter"
    logger.info("%s", feature_cache.summary())
    if PartialState().is_main_process:
        write_report(results, config.output_dir)
        if pushed is not None:
            try:
                publish(pushed, config.push_to_hub, private=config.private)
            except PushFailedError as error:
                error.results = results  # the caller can still show them
                raise
    return results
