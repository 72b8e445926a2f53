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
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

from .core.configuration import PromptCLIPConfig
from .core.registry import get_method
from .data import (
    BenchmarkSpec,
    Source,
    collate_fn,
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
from .hub import push_adapter_to_hub, save_model_card
from .train import PromptTrainer, TrainingConfig

logger = logging.getLogger(__name__)

PROTOCOLS = ("few_shot", "base2new", "cross_dataset", "domain_generalization")
SELECTION_FILE = "few_shot_selection.json"


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
    shots: int = 16
    seeds: Sequence[int] = (1,)
    protocol: str = "base2new"
    targets: Sequence[str] = ()
    eval_batch_size: int = 64
    output_dir: str = "outputs/run"
    push_to_hub: str | None = None
    private: bool = False
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}.")
        if self.protocol in ("cross_dataset", "domain_generalization") and not self.targets:
            raise ValueError(f"protocol {self.protocol!r} needs target datasets (targets=[...]).")


def _fields(config_class) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class)}


def options_for(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options that `method`'s config has (several methods can share one option list)."""
    fields = _fields(get_method(method)[0])
    return {key: value for key, value in options.items() if key in fields}


def check_method_options(methods: Sequence[str], options: dict[str, Any]) -> None:
    """Refuse options that none of `methods` has, naming the ones they have."""
    known = set().union(*(_fields(get_method(m)[0]) for m in methods))
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
    transform = eval_transform(model.image_processor)

    def test_set(benchmark: BenchmarkSpec, benchmark_source: Source | None = None):
        data = load_benchmark(benchmark, "test", source=benchmark_source, revision=dataset_revision)
        return with_image_transform(data, transform)

    if protocol == "base2new":
        return evaluate_base_to_new(model, test_set(spec, source), collate_fn, spec, batch_size, accelerator)
    if protocol == "few_shot":
        accuracy = evaluate_accuracy(model, test_set(spec, source), collate_fn, spec, batch_size, accelerator)
        return {"accuracy": accuracy}
    sets = {key: (test_set(get_benchmark(key)), get_benchmark(key)) for key in targets}
    return evaluate_targets(model, sets, collate_fn, batch_size, accelerator)


def results_record(
    method: str, base_model: str, spec: BenchmarkSpec, protocol: str, shots: int | None, runs: Sequence[dict]
) -> dict[str, Any]:
    """One entry of the results schema (docs/reports.md) from `[{"seed", "metrics"}]` runs."""
    mean, std = summarize_runs(runs)
    return {
        "method": method,
        "base_model": base_model,
        "dataset": spec.key,
        "protocol": protocol,
        "shots": shots,
        "synthetic": spec.synthetic,
        "runs": [{"seed": run["seed"], "metrics": run["metrics"]} for run in runs],
        "mean": mean,
        "std": std,
    }


def run_seed(config: ExperimentConfig, seed: int, accelerator: Accelerator) -> dict[str, Any]:
    """Train (if the method learns anything) and evaluate one seed; returns `{"seed", "metrics"}`."""
    spec = get_benchmark(config.dataset)
    _, model_class = get_method(config.method)
    output = Path(config.output_dir) / f"seed{seed}"
    train_full = _load(spec, "train", config)
    train_set, selection = sample_few_shot(train_full, config.shots, seed, benchmark=spec.key)
    if config.protocol == "base2new":
        train_set = select_classes(train_set, "base")
    names, prompts = class_lists(train_set, spec)
    options = options_for(config.method, config.method_options)
    if "templates" in _fields(model_class.config_class) and "templates" not in options:
        options["templates"] = list(spec.templates)  # hand-written prompts: the benchmark's own
    model = model_class.from_clip(
        config.base_model, names, prompt_names=prompts, revision=config.base_revision, **options
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    if trainable:
        training = dataclasses.replace(config.training, output_dir=str(output), seed=seed)
        examples = with_image_transform(train_set, train_transform(model.image_processor, spec.crop_scale))
        PromptTrainer(model, examples, training, collate_fn=collate_fn, accelerator=accelerator).train()
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
    if accelerator.is_main_process:
        model.save_pretrained(adapter_dir)
        selection.save(adapter_dir / SELECTION_FILE)
        (adapter_dir / "training_args.json").write_text(
            json.dumps(dataclasses.asdict(config.training), indent=1, default=str)
        )
    accelerator.wait_for_everyone()
    return {"seed": seed, "metrics": metrics, "adapter": str(adapter_dir), "model": model}


def run_experiment(
    config: ExperimentConfig, accelerator: Accelerator | None = None, write_results: bool = True
) -> dict[str, Any]:
    """Run every seed, write results JSON / markdown / plots and the model card; push if asked.

    Returns the results dict (schema in docs/reports.md).
    """
    check_method_options([config.method], config.method_options)
    accelerator = accelerator or Accelerator(
        mixed_precision=config.training.mixed_precision,
        gradient_accumulation_steps=config.training.gradient_accumulation_steps,
        log_with=config.training.report_to or None,
        project_config=ProjectConfiguration(project_dir=config.output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seeds[0]),
    )
    runs = [run_seed(config, seed, accelerator) for seed in config.seeds]
    spec = get_benchmark(config.dataset)
    results = results_record(config.method, config.base_model, spec, config.protocol, config.shots, runs)
    if accelerator.is_main_process:
        if write_results:
            write_report([results], config.output_dir)
        training_args = dataclasses.asdict(config.training)
        for run in runs:
            selection = json.loads((Path(run["adapter"]) / SELECTION_FILE).read_text())
            save_model_card(run["adapter"], run["model"].config, training_args, [results], selection)
        if config.push_to_hub:
            url = push_adapter_to_hub(runs[0]["adapter"], config.push_to_hub, private=config.private)
            logger.info("pushed %s to %s", runs[0]["adapter"], url)
    accelerator.wait_for_everyone()
    return results


def run_comparison(config: ExperimentConfig, methods: Sequence[str]) -> list[dict[str, Any]]:
    """The same protocol for several methods side by side (each in `output_dir/<method>`), with
    one combined report in `output_dir`. Options apply to the methods that have them."""
    check_method_options(methods, config.method_options)
    results = []
    for method in methods:
        method_config = dataclasses.replace(
            config,
            method=method,
            method_options=options_for(method, config.method_options),
            output_dir=str(Path(config.output_dir) / method),
            push_to_hub=None,
        )
        results.append(run_experiment(method_config, write_results=False))
    if PartialState().is_main_process:
        write_report(results, config.output_dir)
    return results
