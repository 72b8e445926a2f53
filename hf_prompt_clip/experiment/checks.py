"""What is refused before anything trains: a method that cannot run the protocol, its options, the image
settings, a missing validation split, an unwritable folder, unreadable images; and an adapter evaluated on
data it was not trained for.

Room: the experiment. Nothing here names a method: it asks the method registry (`method_capabilities`, the
config's fields); nothing names a protocol: it asks the protocol registry. Refusals name settings by field
(`utils.settings`); the command line spells them as flags.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import IterableDataset

from ..core.configuration import PromptCLIPConfig
from ..core.options import (
    OptionTypeMismatch,
    coerce_option,
    describe_type,
    option_problem,
    option_types,
    type_advice,
)
from ..core.registry import get_method, method_capabilities
from ..data import (
    BenchmarkSpec,
    Source,
    SplitNotFoundError,
    check_images,
    get_benchmark,
    load_benchmark,
    sample_few_shot,
)
from ..evaluate.protocol_registry import get_protocol
from ..evaluate.records import DataRecord
from ..utils.logs import main_process_logger
from ..utils.settings import SettingError, named
from .data import describe_shots, load_split, seed_data
from .settings import ExperimentConfig

logger = main_process_logger(__name__)


class ProtocolNotSupportedError(SettingError):
    """The method (with these options) cannot be evaluated with the requested protocol."""


class ImageDtypeNotSupportedError(ProtocolNotSupportedError):
    """The method trains through its image tower, which therefore cannot run in another dtype."""


class AugmentViewsNotSupportedError(ProtocolNotSupportedError):
    """Training on precomputed augmented views was asked for a method whose image path is not frozen."""


class ValidationSplitMissingError(ProtocolNotSupportedError):
    """The method searches its settings on a validation split that the data does not have."""


# ------------------------------------------------------------------------------------ before anything runs


def check_before_running(
    config: ExperimentConfig,
    methods: Sequence[str] | None = None,
    shots: Sequence[int | None] | None = None,
) -> None:
    """What would otherwise fail after hours of training, checked before anything trains: the output
    folder is writable, every transfer target is a known benchmark, every map-style test split opens
    (`check_images`: a quick scan of each image's structure; streamed sets and the synthetic world are not
    scanned), and so do the training and validation images the run will read (`check_training_images` for
    `methods`, default `config.method`, and each number of `shots`, default `config.shots`).

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
        raise named(
            PermissionError,
            f"Cannot write to the output folder {str(output)!r} ({error.strerror or error}); nothing was "
            "trained. Choose a writable folder ({output_dir}) or fix its permissions.",
        ) from error
    finally:
        for folder in created:  # leave no trace of the check (the run creates what it writes)
            with contextlib.suppress(OSError):
                folder.rmdir()
    spec = get_benchmark(config.dataset)
    tests = [(spec, config.source, config.dataset_revision)]
    if not get_protocol(config.protocol).tests_training_data:
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
    learn (the few-shot draw, or the whole training split; the base classes where the protocol trains on
    them) and, where one of them searches its settings on validation examples, the validation draw. Each
    distinct set (its `datasets` fingerprint) is scanned once, and only the selected examples; streamed data
    and the synthetic world are not scanned, as for the test splits.

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
    if isinstance(load_split(config, spec, "train"), IterableDataset):
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


# ------------------------------------------------------------------------------------ a method and a run


def check_classes_can_change(can_change: bool, what: str, protocol: str) -> None:
    """Refuse protocols that classify other classes than the training ones (`Protocol.classes_must_change`)
    for models that learn parameters per training class."""
    if get_protocol(protocol).classes_must_change and not can_change:
        raise ProtocolNotSupportedError(
            f"{what} learns parameters per training class, so it cannot classify the new classes or other "
            f"datasets that protocol {protocol!r} evaluates; use {{protocol='few_shot'}}."
        )


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
            "gradients would too): keep {image_dtype='float32'} for this method, or use mixed precision "
            "({mixed_precision='bf16'}), which keeps the trained tensors in float32."
        )
    if config.augment_views is not None and capabilities.learns_parameters:
        problem = capabilities.cached_features_problem
        if problem is not None:
            raise AugmentViewsNotSupportedError(
                f"{{augment_views={config.augment_views}}} trains on precomputed image features of augmented "
                f"views, which needs a frozen image path, but {method} (with these options) cannot: {problem}. "
                f"Drop {{augment_views}} for {method} (it then draws a fresh augmentation every epoch); with "
                "{skip_unsupported=True} it is left out."
            )


def check_method_protocol(method: str, options: dict[str, Any], protocol: str) -> None:
    """`ProtocolNotSupportedError` when `method` with `options` cannot run `protocol`, before anything runs."""
    check_classes_can_change(
        method_capabilities(method, options).classes_can_change, f"{method} with these options", protocol
    )


def check_method_data(method: str, options: dict[str, Any], config: ExperimentConfig) -> None:
    """`ValidationSplitMissingError` when `method` with `options` searches its settings on validation
    examples (`Capabilities.uses_validation`) and the benchmark has no val split, before anything runs."""
    capabilities = method_capabilities(method, options)
    if not (capabilities.learns_parameters and capabilities.uses_validation):
        return
    try:
        load_split(config, get_benchmark(config.dataset), "val")
    except SplitNotFoundError as error:
        raise ValidationSplitMissingError(
            f"{method} chooses its settings on validation examples (the few-shot protocol's min(shots, 4) per "
            f"class of the val split), but the data has no val split: {error} Or fix the searched settings "
            f"with {{method_options}} (docs/methods.md names them for {method})."
        ) from error


# ------------------------------------------------------------------------------------ method options


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
    against the values each option takes (its `OptionRule`); raises `SettingError` naming the option, what
    it takes, what was given and an example.

    Example:
        >>> check_option_values(default_method(), {"n_ctx": "abc"})   # CoOp
        Traceback (most recent call last):
        SettingError: Option n_ctx of coop takes int, got 'abc' (str): give a whole number ...
    """
    config_class = get_method(method)[0]
    checked = {}
    for key, value in options.items():
        hint = _field_type(config_class, key)
        default = getattr(config_class, key, None)
        example = (
            f"e.g. {{method_options[{key}]={default!r}}}" if default is not None else "see its docstring"
        )
        try:
            coerced = coerce_option(value, hint, words=True)
        except OptionTypeMismatch:
            raise SettingError(
                f"Option {key} of {method} takes {describe_type(hint, words=True)}, got {value!r} "
                f"({type(value).__name__}): {type_advice(hint, words=True)}, {example} (values are Python "
                f"literals; quote text with spaces: {{method_options[{key}]='...'}})."
            ) from None
        problem = option_problem(config_class, key, coerced)
        if problem:
            raise SettingError(f"Option {problem.replace(key, f'{key} of {method}', 1)}; {example}.")
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
        raise SettingError(
            f"No method of this run has option {', '.join(described)}. The options are: {listing} (the shared "
            "ones, e.g. fast, stage_epochs, apply to every method). Fix the spelling in {method_options}."
        )
    checked = dict(options)
    for method in methods:
        checked.update(check_option_values(method, options_for(method, checked)))
    return checked


# ------------------------------------------------------------------------------------ an adapter's data


def _preview(names: Sequence[str], count: int = 4) -> str:
    shown = ", ".join(map(repr, names[:count]))
    return f"{shown}, ..." if len(names) > count else shown


def check_adapter_data(
    model,
    record: DataRecord | dict[str, Any] | None,
    spec: BenchmarkSpec,
    protocol: str,
    *,
    source: Source | None = None,
    revision: str | None = None,
    classes_from_data: bool = False,
) -> str | None:
    """Refuse to evaluate an adapter on data it was not trained for, unless `classes_from_data`.

    The adapter's recorded benchmark (`DataRecord`, when it has one) must be `spec`, and, for the protocols
    tested on `spec` itself, its class list the one training on `spec` with `protocol` gives (its
    `training_classes`: the base half for base-to-new, all classes for few-shot): numbers on other classes
    would not measure what it learned. (Protocols tested on targets have other classes by design; `spec`
    names the training data there.) With `classes_from_data` the data's classes are classified anyway (for
    methods that can change classes).

    Returns:
        The benchmark the adapter was trained on when it is not `spec` (results record it as
        `trained_on`), else `None`.

    Raises:
        SettingError: naming both datasets and class lists and the two ways on.
    """
    if record is not None and not isinstance(record, DataRecord):
        record = DataRecord.from_dict(record)
    recorded = record.dataset if record is not None else None
    trained = get_protocol(protocol)
    problems = []
    if recorded is not None and recorded != spec.key:
        problems.append(f"it was trained on {recorded!r}, not on {spec.key!r}")
    if not trained.tests_training_data:  # the targets are other classes by design
        names = adapter = []
    else:
        names = list(load_benchmark(spec, "test", source=source, revision=revision).features["label"].names)
        names = trained.training_classes(names)
        adapter = list(model.config.class_names or [])
    if adapter != names:
        subset = "base " if trained.trains_on_base else ""
        problems.append(
            f"its {len(adapter)} classes ({_preview(adapter)}) are not the {len(names)} {subset}classes of "
            f"{spec.key!r} ({_preview(names)})"
        )
    if problems and not classes_from_data:
        own = (
            f" (recorded: {recorded!r} with protocol {record.protocol!r}; evaluating it without naming "
            "{dataset}, {data_dir} or {protocol} evaluates it so)"
            if record is not None
            else ""
        )
        raise SettingError(
            f"This adapter does not fit the data: {'; '.join(problems)}, so its numbers would not measure "
            f"what it learned. Evaluate it on the data and protocol it was trained with{own}, or pass "
            "{classes_from_data=True} to classify this data's classes anyway."
        )
    if problems:
        logger.warning(
            "evaluating on other data than the adapter's (classes_from_data): %s", "; ".join(problems)
        )
    return recorded if recorded != spec.key else None
