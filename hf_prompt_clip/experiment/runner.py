"""One experiment end to end: data protocol -> training -> evaluation -> report, card, Hub.

Room: the experiment; this module owns a run. `run_comparison` (several methods, numbers of shots) and
`run_experiment` (one method) check everything first (`experiment.checks`), build one `Accelerator` per
process and hand it down: every seed's `PromptTrainer` trains with it (`train.accelerator.accelerator_for`
sets it up for that seed: its data order, accumulation, trackers) and evaluation runs on it. Results are
`ExperimentResult`s (`evaluate.records`). Nothing here depends on the method (models come from the method
registry, their facts from `Capabilities`) nor on the protocol (the protocol registry).

`hf_prompt_clip.runner` is this module (earlier releases' name): `from hf_prompt_clip.runner import ...`
gives everything below and what the experiment's other modules define.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast_object_list, set_seed

from ..caching.feature_cache import ImageFeatureCache
from ..core.registry import get_method, method_capabilities, method_config
from ..data import (
    class_counts,
    collate_fn,
    describe_data,
    eval_transform,
    get_benchmark,
    shots_drawn,
    train_transform,
    with_image_transform,
)
from ..evaluate.protocol_registry import get_protocol
from ..evaluate.protocols import class_lists
from ..evaluate.records import ROUND_DIGITS, DataRecord, ExperimentResult, RunResult, rounded
from ..evaluate.report import write_report
from ..hub import (
    DATA_RECORD_FILE,
    SELECTION_FILE,
    VALIDATION_SELECTION_FILE,
    PushAccessError,
    check_push_access,
    push_adapter_to_hub,
    save_model_card,
)
from ..train import PromptTrainer, TrainingConfig, list_checkpoints, settings_used
from ..train.accelerator import accelerator_for, check_accelerator
from ..utils.atomic import DiskFullError, atomic_folder
from ..utils.logs import main_process_logger
from ..utils.settings import SettingError, spell
from .checks import (
    AugmentViewsNotSupportedError,
    ImageDtypeNotSupportedError,
    ProtocolNotSupportedError,
    ValidationSplitMissingError,
    check_adapter_data,
    check_before_running,
    check_image_settings,
    check_method_data,
    check_method_options,
    check_method_protocol,
    check_option_values,
    check_training_images,
    method_option_names,
    options_for,
    own_option_names,
)
from .data import SeedData, data_record, describe_shots, seed_data, validation_set
from .evaluation import (
    evaluate_adapter,
    evaluate_protocol,
    format_metrics,
    hub_datasets_of,
    load_adapter,
    read_adapter_record,
    read_data_record,
    results_record,
)
from .recipes import RecipeRecord, apply_recipe, with_global_batch
from .settings import MAX_SEED, ExperimentConfig, check_protocol, check_seeds, check_setting

__all__ = [
    "MAX_SEED",
    "ROUND_DIGITS",
    "AugmentViewsNotSupportedError",
    "DataRecord",
    "ExperimentConfig",
    "ExperimentResult",
    "ImageDtypeNotSupportedError",
    "ProtocolNotSupportedError",
    "PushFailedError",
    "RunResult",
    "SeedData",
    "TrainingConfig",
    "ValidationSplitMissingError",
    "check_adapter_data",
    "check_before_running",
    "check_image_settings",
    "check_method_data",
    "check_method_options",
    "check_method_protocol",
    "check_option_values",
    "check_protocol",
    "check_seeds",
    "check_setting",
    "check_training_images",
    "data_record",
    "describe_shots",
    "evaluate_adapter",
    "evaluate_protocol",
    "format_metrics",
    "hub_datasets_of",
    "load_adapter",
    "method_option_names",
    "options_for",
    "own_option_names",
    "publish",
    "read_adapter_record",
    "read_data_record",
    "results_record",
    "rounded",
    "run_comparison",
    "run_experiment",
    "run_seed",
    "seed_data",
    "shots_folder",
    "validation_set",
]

logger = main_process_logger(__name__)


def run_seed(
    config: ExperimentConfig,
    seed: int,
    accelerator: Accelerator,
    feature_cache: ImageFeatureCache | None = None,
    recipe: RecipeRecord | None = None,
) -> RunResult:
    """Train (if the method learns anything) and evaluate one seed.

    `accelerator`: the process's; training sets it up for this seed (`accelerator_for`: the data order
    seeded with `seed`, the run's accumulation and trackers logging into this seed's folder).
    `feature_cache`: the frozen image features that fit stages share (one per run: methods and seeds
    reading the same images under the same transform encode them once). `recipe`: the record of the recipe
    `config` was built with (`apply_recipe`), saved with the training settings.

    Returns:
        Its `RunResult`: exact metrics, `shots` what was trained (`0`: nothing), the adapter's folder and
        config, `training` the settings it was trained with (`None` when nothing was trained).
    """
    spec = get_benchmark(config.dataset)
    _, model_class = get_method(config.method)
    options = options_for(config.method, config.method_options)
    method = method_config(config.method, options)
    capabilities = model_class.capabilities_of(method)
    learns = capabilities.learns_parameters
    protocol = get_protocol(config.protocol)
    output = Path(config.output_dir) / f"seed{seed}"
    data = seed_data(config, spec, seed, learns, learns and capabilities.uses_validation)
    train_set, selection = data.train, data.selection
    val_set, val_selection = data.validation, data.validation_selection
    # what was drawn of each trained class: fewer than asked where a class has fewer (recorded, shown)
    drawn = shots_drawn(class_counts(train_set)) if selection is not None else None
    names, prompts = class_lists(train_set, spec)
    # the method's benchmark-dependent defaults (zero-shot templates, ...), then the user's options
    options = {**method.benchmark_defaults(spec), **options}
    subset = "base " if protocol.trains_on_base else ""
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
        training = dataclasses.replace(config.training, output_dir=str(output), seed=seed)
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
        with accelerator_for(accelerator, training):  # the process's Accelerator, set up for this seed
            PromptTrainer(
                model,
                examples,
                training,
                collate_fn=collate_fn,
                accelerator=accelerator,
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
        if recipe is not None:
            training_args["recipe"] = recipe.to_dict()
    if accelerator.is_main_process:  # before evaluating: a crash there keeps the trained adapter
        _save_adapter(model, adapter_dir, training, selection, val_selection, training_args,
                      data_record(config, spec, names, shots, seed, drawn if shots else None))  # fmt: skip
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
        num_workers=config.training.num_workers,
    )
    accelerator.wait_for_everyone()
    return RunResult.measured(
        seed, metrics, shots=shots, shots_drawn=drawn if shots else None, adapter=str(adapter_dir),
        config=model.config, training=training_args or (image_settings or None),
    )  # fmt: skip


def _save_adapter(
    model, adapter_dir: Path, training, selection, val_selection, training_args, record
) -> None:
    """The adapter with its records, written aside and renamed into place: a kill leaves the earlier
    adapter or this one, whole; a full disk says how to finish the run."""
    rerun = (
        "rerun the same run with {resume_from_checkpoint='latest'}: training is complete in its last "
        "checkpoint, so only the adapter is written"
        if training
        else "rerun the same run"
    )
    fix = f"Free space on that disk (or give another {{output_dir}}), then {rerun}."
    try:
        with atomic_folder(adapter_dir, disk_full_fix=spell(fix)) as staging:
            model.save_pretrained(staging)
            if selection is not None and training:
                selection.save(staging / SELECTION_FILE)
            if val_selection is not None and training:
                val_selection.save(staging / VALIDATION_SELECTION_FILE)
            (staging / DATA_RECORD_FILE).write_text(record.to_json())
            if training_args:
                (staging / "training_args.json").write_text(json.dumps(training_args, indent=1, default=str))
    except DiskFullError as error:  # its advice names settings: the command line spells them as flags
        error.setting_template = str(error).replace(spell(fix), fix)
        raise


class PushFailedError(RuntimeError):
    """Publishing an adapter failed after training; every local result was kept (`results`: the
    results of the run, when raised by `run_comparison`)."""

    def __init__(self, message: str, results: list[ExperimentResult] | None = None):
        super().__init__(message)
        self.results = results or []


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


def process_accelerator(config: ExperimentConfig, accelerator: Accelerator | None) -> Accelerator:
    """The process's Accelerator: `accelerator`, checked against the run's mixed precision, or a new one."""
    if accelerator is None:
        return Accelerator(mixed_precision=config.training.mixed_precision)
    check_accelerator(accelerator, config.training)
    return accelerator


def run_experiment(
    config: ExperimentConfig,
    accelerator: Accelerator | None = None,
    write_results: bool = True,
    push: bool = True,
    checked: bool = False,
    feature_cache: ImageFeatureCache | None = None,
) -> ExperimentResult:
    """Run every seed, write results JSON / markdown / plots and the model card; push if asked.

    Returns the `ExperimentResult` (schema in docs/reports.md; it reads as the dict of earlier releases
    too). `accelerator`: the process's Accelerator (built with `config.training.mixed_precision` when
    omitted); every seed trains with it and evaluation runs on it. With `push=False`, `config.push_to_hub`
    only names the repository in the cards (the caller pushes). The Hub login and write access and
    `check_before_running` (unless `checked`: the caller did) come before anything runs; a push that fails
    after training raises `PushFailedError` with every local file written. `feature_cache`: the frozen
    image features fit stages share (default: one for this run).
    """
    config, recipe = apply_recipe(config)  # the paper's settings for this cell, under the user's
    options = check_method_options([config.method], config.method_options)
    config = dataclasses.replace(config, method_options=options)
    logger.info("%s: %s", config.method, recipe.describe())
    check_method_protocol(config.method, config.method_options, config.protocol)
    check_image_settings(config.method, config.method_options, config)
    if not checked:
        check_method_data(config.method, config.method_options, config)
    if accelerator is not None:
        check_accelerator(accelerator, config.training)
    if push and config.push_to_hub:
        _check_push_access_on_main(config.push_to_hub)
    if not checked:
        check_before_running(config)
    accelerator = process_accelerator(config, accelerator)
    recipe = with_global_batch(recipe, config.training, accelerator.num_processes)
    own_cache = feature_cache is None
    if own_cache:
        feature_cache = ImageFeatureCache(directory=config.feature_cache)
    runs = [run_seed(config, seed, accelerator, feature_cache, recipe) for seed in config.seeds]
    if own_cache:
        logger.info("%s", feature_cache.summary())
    spec = get_benchmark(config.dataset)
    used = [(run.training or {}).get("augment_views") for run in runs]
    results = results_record(
        config.method, config.base_model, spec, config.protocol, runs[0].shots, runs,
        describe_data(spec, config.source, config.dataset_revision),
        hub_datasets=hub_datasets_of(spec, config.protocol, config.targets, config.source, config.dataset_revision),
        # the image tower's dtype changes the features, so the numbers; the views trained on (no more than
        # the epochs): recorded
        image_dtype=config.image_dtype if config.image_dtype != "float32" else None,
        augment_views=max((views for views in used if views is not None), default=None),
        recipe=recipe.to_dict() if runs[0].shots != 0 else None,  # a method that trained nothing used none
    )  # fmt: skip
    if accelerator.is_main_process:
        if write_results:
            write_report([results], config.output_dir)
        for index, run in enumerate(runs):
            # the card's loading example names where the adapter is found: the Hub repo, or this folder;
            # it reads the few-shot record saved beside the adapter
            repo_id = config.push_to_hub if config.push_to_hub and index == 0 else run.adapter
            save_model_card(run.adapter, run.config, run.training, [results], repo_id=repo_id)
        if push and config.push_to_hub:
            publish(runs[0].adapter, config.push_to_hub, private=config.private)
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
    accelerator: Accelerator | None = None,
) -> list[ExperimentResult]:
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
        accelerator: the process's Accelerator (default: one is built, with the run's mixed precision),
            used by every method, seed and evaluation.

    Raises:
        PushFailedError: the push failed after training (every result is written).
    """
    values = list(dict.fromkeys(shots)) if shots else [config.shots]
    for value in values:
        check_setting("shots", value)
    options = check_method_options(methods, config.method_options, named)
    config = dataclasses.replace(config, method_options=options)
    if config.push_to_hub and len(values) > 1:
        raise SettingError(
            f"{{push_to_hub}} publishes one adapter but {len(values)} numbers of shots run {values}; run the "
            "one to publish alone ({shots=N})."
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
    for method in runnable:  # a recipe that cannot apply (steps per shot on the full set) refused up front
        for value in values:
            apply_recipe(
                dataclasses.replace(
                    config, method=method, method_options=options_for(method, options), shots=value
                )
            )
    if accelerator is not None:
        check_accelerator(accelerator, config.training)
    if config.push_to_hub:
        _check_push_access_on_main(config.push_to_hub)  # before anything trains
    check_before_running(config, runnable, values)  # once for every method: the same data and folder
    accelerator = process_accelerator(config, accelerator)  # one for the process: every method and seed
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
            method_config_ = dataclasses.replace(
                config,
                method=method,
                method_options=method_options,
                shots=value,
                output_dir=str(output),
                push_to_hub=config.push_to_hub if method == config.method else None,
            )
            results.append(
                run_experiment(
                    method_config_, accelerator, write_results=False, push=False, checked=True,
                    feature_cache=feature_cache,
                )
            )  # fmt: skip
            if method_config_.push_to_hub:
                pushed = output / f"seed{config.seeds[0]}" / "adapter"
    logger.info("%s", feature_cache.summary())
    if accelerator.is_main_process:
        write_report(results, config.output_dir)
        if pushed is not None:
            try:
                publish(pushed, config.push_to_hub, private=config.private)
            except PushFailedError as error:
                error.results = results  # the caller can still show them
                raise
    return results
