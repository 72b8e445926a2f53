"""One experiment end to end: data protocol -> training -> evaluation -> report, card, Hub.

The CLI (`hf-prompt-clip train`, `examples/train.py`) is a thin layer over `run_experiment`.
Nothing here depends on the method: models come from the method registry, their options are
checked against the method's config fields, and a method without trainable parameters
(zero-shot CLIP) is simply evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed

from .core.configuration import PromptCLIPConfig
from .core.registry import get_method
from .data import (
    BenchmarkSpec,
    Source,
    collate_fn,
    describe_data,
    eval_transform,
    get_benchmark,
    load_benchmark,
    sample_few_shot,
    select_classes,
    train_transform,
    with_image_transform,
)
from .evaluate.protocols import (
    class_lists,
    evaluate_accuracy,
    evaluate_base_to_new,
    evaluate_targets,
    summarize_runs,
)
from .evaluate.report import write_report
from .hub import SELECTION_FILE, push_adapter_to_hub, save_model_card
from .train import PromptTrainer, TrainingConfig, list_checkpoints

logger = logging.getLogger(__name__)

PROTOCOLS = ("few_shot", "base2new", "cross_dataset", "domain_generalization")


@dataclass
class ExperimentConfig:
    """What to run. `training` carries the optimisation settings (epochs, lr, ...)."""

    method: str = "coop"
    method_options: dict[str, Any] = field(default_factory=dict)
    base_model: str = "openai/clip-vit-base-patch16"
    base_revision: str | None = None
    dataset: str = "dtd"
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

    def __post_init__(self):
        check_protocol(self.protocol, get_benchmark(self.dataset), self.targets)
        resume = self.training.resume_from_checkpoint
        if resume not in (None, "latest") and len(self.seeds) > 1:
            raise ValueError(
                f"resume_from_checkpoint={resume!r} names one seed's checkpoint but {len(self.seeds)} seeds "
                "run; use 'latest' (each seed resumes from its own last checkpoint)."
            )


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


def check_method_protocol(method: str, options: dict[str, Any], protocol: str) -> None:
    """`ProtocolNotSupportedError` when `method` with `options` cannot run `protocol`, before anything runs."""
    _, model_class = get_method(method)
    _check_classes_can_change(
        model_class.can_change_classes(options), f"{method} with these options", protocol
    )


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


def check_method_options(methods: Sequence[str], options: dict[str, Any]) -> None:
    """Refuse options that none of `methods` has, naming the ones they have."""
    known = method_option_names(methods)
    unknown = sorted(set(options) - known)
    if unknown:
        own = sorted(known - _fields(PromptCLIPConfig))
        raise ValueError(
            f"Method {', '.join(map(repr, methods))} has no option {unknown}; its options are {own}."
        )


def _load(spec: BenchmarkSpec, split: str, config: ExperimentConfig):
    return load_benchmark(spec, split, source=config.source, revision=config.dataset_revision)


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
) -> dict[str, float]:
    """The metrics of `protocol` for a trained model (the test split of `spec`, or of `targets`)."""
    check_protocol(protocol, spec, targets)
    _check_classes_can_change(model.classes_can_change, f"This {type(model).__name__}", protocol)
    transform = eval_transform(model.image_processor)

    def test_set(
        benchmark: BenchmarkSpec, benchmark_source: Source | None = None, revision: str | None = None
    ):
        data = load_benchmark(benchmark, "test", source=benchmark_source, revision=revision)
        return with_image_transform(data, transform)

    if protocol == "base2new":
        own = test_set(spec, source, dataset_revision)
        return evaluate_base_to_new(model, own, collate_fn, spec, batch_size, accelerator)
    if protocol == "few_shot":
        own = test_set(spec, source, dataset_revision)
        return {"accuracy": evaluate_accuracy(model, own, collate_fn, spec, batch_size, accelerator)}
    sets = {key: (test_set(get_benchmark(key)), get_benchmark(key)) for key in targets}
    return evaluate_targets(model, sets, collate_fn, batch_size, accelerator)


def results_record(
    method: str,
    base_model: str,
    spec: BenchmarkSpec,
    protocol: str,
    shots: int | None,
    runs: Sequence[dict],
    data: str | None = None,
) -> dict[str, Any]:
    """One entry of the results schema (docs/reports.md) from `[{"seed", "metrics"}]` runs; `data` says
    where the dataset was read (`describe_data`)."""
    mean, std = summarize_runs(runs)
    return {
        "method": method,
        "base_model": base_model,
        "dataset": spec.key,
        "data": data,
        "protocol": protocol,
        "shots": shots,
        "synthetic": spec.synthetic,
        "runs": [{"seed": run["seed"], "metrics": run["metrics"]} for run in runs],
        "mean": mean,
        "std": std,
    }


def run_seed(config: ExperimentConfig, seed: int, accelerator: Accelerator) -> dict[str, Any]:
    """Train (if the method learns anything) and evaluate one seed.

    Returns `{"seed", "metrics", "adapter", "config", "training"}`; `training` is the settings the
    adapter was trained with (None when nothing was trained).
    """
    spec = get_benchmark(config.dataset)
    _, model_class = get_method(config.method)
    output = Path(config.output_dir) / f"seed{seed}"
    train_set = _load(spec, "train", config)
    selection = None  # shots=None: the full training set
    if config.shots is not None:
        train_set, selection = sample_few_shot(
            train_set, config.shots, seed, benchmark=spec.key, sampler=config.few_shot_sampler
        )
    if config.protocol == "base2new":
        train_set = select_classes(train_set, "base")
    names, prompts = class_lists(train_set, spec)
    # the method's benchmark-dependent defaults (zero-shot templates, ...), then the user's options
    options = options_for(config.method, config.method_options)
    options = {**model_class.benchmark_options(spec, options), **options}
    set_seed(seed)  # the adapter's initialisation belongs to the seed too
    model = model_class.from_clip(
        config.base_model, names, prompt_names=prompts, revision=config.base_revision, **options
    )
    training = None
    if any(p.requires_grad for p in model.parameters()):
        training = dataclasses.replace(config.training, output_dir=str(output), seed=seed)
        if training.resume_from_checkpoint == "latest" and not list_checkpoints(output):
            training.resume_from_checkpoint = None  # this seed had not started before the interruption
        examples = with_image_transform(train_set, train_transform(model.image_processor, spec.crop_scale))
        # its own Accelerator: the data order is seeded with this seed
        PromptTrainer(model, examples, training, collate_fn=collate_fn).train()
    metrics = evaluate_protocol(
        model,
        spec,
        config.protocol,
        source=config.source,
        targets=config.targets,
        dataset_revision=config.dataset_revision,
        batch_size=config.eval_batch_size,
        accelerator=accelerator,
    )
    adapter_dir = output / "adapter"
    training_args = dataclasses.asdict(training) if training else None
    if accelerator.is_main_process:
        model.save_pretrained(adapter_dir)
        if selection is not None:
            selection.save(adapter_dir / SELECTION_FILE)
        if training_args:
            (adapter_dir / "training_args.json").write_text(json.dumps(training_args, indent=1, default=str))
    accelerator.wait_for_everyone()
    return {
        "seed": seed,
        "metrics": metrics,
        "adapter": str(adapter_dir),
        "config": model.config,
        "training": training_args,
    }


def run_experiment(
    config: ExperimentConfig, accelerator: Accelerator | None = None, write_results: bool = True
) -> dict[str, Any]:
    """Run every seed, write results JSON / markdown / plots and the model card; push if asked.

    Returns the results dict (schema in docs/reports.md). `accelerator` serves evaluation and
    synchronisation; each seed trains with an Accelerator of its own (its data order is seeded).
    """
    check_method_options([config.method], config.method_options)
    check_method_protocol(config.method, config.method_options, config.protocol)
    accelerator = accelerator or Accelerator(mixed_precision=config.training.mixed_precision)
    runs = [run_seed(config, seed, accelerator) for seed in config.seeds]
    spec = get_benchmark(config.dataset)
    data = describe_data(spec, config.source, config.dataset_revision)
    results = results_record(
        config.method, config.base_model, spec, config.protocol, config.shots, runs, data
    )
    if accelerator.is_main_process:
        if write_results:
            write_report([results], config.output_dir)
        for index, run in enumerate(runs):
            # the card's loading example names where the adapter is found: the Hub repo, or this folder;
            # it reads the few-shot record saved beside the adapter
            repo_id = config.push_to_hub if config.push_to_hub and index == 0 else run["adapter"]
            save_model_card(run["adapter"], run["config"], run["training"], [results], repo_id=repo_id)
        if config.push_to_hub:
            url = push_adapter_to_hub(runs[0]["adapter"], config.push_to_hub, private=config.private)
            logger.info("pushed %s to %s", runs[0]["adapter"], url)
    accelerator.wait_for_everyone()
    return results


def run_comparison(
    config: ExperimentConfig, methods: Sequence[str], skip_unsupported: bool = False
) -> list[dict[str, Any]]:
    """The same protocol for several methods side by side (each in `output_dir/<method>`), with
    one combined report in `output_dir`. Options apply to the methods that have them;
    `config.push_to_hub` publishes the adapter of `config.method`. With `skip_unsupported`, methods
    that cannot run the protocol (`check_method_protocol`) are left out with a warning; otherwise
    they are refused before anything runs."""
    check_method_options(methods, config.method_options)
    runnable = []
    for method in methods:
        try:
            check_method_protocol(method, options_for(method, config.method_options), config.protocol)
        except ProtocolNotSupportedError as error:
            if not skip_unsupported or (config.push_to_hub and method == config.method):
                raise  # never drop the method a push was asked for
            logger.warning("skipping %s: %s", method, error)
            continue
        runnable.append(method)
    results = []
    for method in runnable:
        method_config = dataclasses.replace(
            config,
            method=method,
            method_options=options_for(method, config.method_options),
            output_dir=str(Path(config.output_dir) / method),
            push_to_hub=config.push_to_hub if method == config.method else None,
        )
        results.append(run_experiment(method_config, write_results=False))
    if PartialState().is_main_process:
        write_report(results, config.output_dir)
    return results
