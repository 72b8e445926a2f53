"""A run's recipe: the method's paper recipe (`core.recipes`) applied to one cell of an experiment, what the
user set over it (deviations), and the record that results, `training_args.json`, cards and logs carry.

Room: the experiment. `apply_recipe` is what `run_experiment` calls for each (method, dataset, protocol, shots);
nothing here names a method: the recipe comes from the registry (`MethodInfo.recipe`).

Example:
    >>> config = ExperimentConfig(method=method, dataset="dtd", protocol="few_shot", shots=1, recipe="paper")  # doctest: +SKIP
    >>> cell, record = apply_recipe(config)            # doctest: +SKIP
    >>> cell.training.epochs, record.deviations         # doctest: +SKIP
    (50, {})
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.recipes import (
    PAPER_SAMPLER,
    RECIPE_CHOICES,
    Recipe,
    RecipeRecord,
    ResolvedRecipe,
    describe_recipe,
)
from ..core.registry import method_info
from ..data import get_benchmark
from ..train import TrainingConfig
from .settings import ExperimentConfig

#: The recipe settings a user's setting replaces along with its own, recorded as deviations (used: unset):
#: `epochs` given, a recipe's `max_steps` (which would win over epochs in the trainer) goes too; `max_steps`
#: given, a recipe's `epochs` (which the trainer would not read) goes too.
_REPLACES = {"epochs": ("max_steps",), "max_steps": ("epochs",)}


def method_recipe(method: str) -> Recipe | None:
    """The method's paper recipe (`None`: it declares none).

    Args:
        method: a registered method name.

    Example:
        >>> method_recipe(method).paper_shots("few_shot")    # doctest: +SKIP
        (1, 2, 4, 8, 16)
    """
    return method_info(method).recipe


def resolve_recipe(method: str, protocol: str, dataset: str, shots: int | None) -> ResolvedRecipe | None:
    """The method's recipe for one cell, or `None` when the method declares none.

    Args:
        method: a registered method name.
        protocol, dataset, shots: the cell (`Recipe.resolve`).

    Example:
        >>> resolve_recipe(method, "base2new", "dtd", 16).training["batch_size"]    # doctest: +SKIP
        1
    """
    recipe = method_recipe(method)
    return None if recipe is None else recipe.resolve(protocol, dataset, shots)


def given_training_settings(config: ExperimentConfig) -> tuple[str, ...]:
    """The training settings the user set: `config.overrides` when given (the command line knows), else the
    `TrainingConfig` fields that differ from their defaults (the Python API).

    Args:
        config: the run's configuration.

    Example:
        >>> given_training_settings(ExperimentConfig(training=TrainingConfig(epochs=3)))
        ('epochs',)
    """
    if config.overrides is not None:
        return tuple(config.overrides)
    defaults = TrainingConfig()
    return tuple(
        f.name
        for f in dataclasses.fields(TrainingConfig)
        if f.name not in ("output_dir", "seed")
        and getattr(config.training, f.name) != getattr(defaults, f.name)
    )


def apply_recipe(config: ExperimentConfig) -> tuple[ExperimentConfig, RecipeRecord]:
    """`config` with its method's paper recipe applied to its cell (when `config.recipe == "paper"`), and the
    record of what was applied and what the user's settings changed.

    A setting the user gave wins and is recorded as a deviation when it differs from the recipe's; method
    options given (`config.method_options`) count as given. Settings the recipe does not name keep their
    values (the plain defaults, or what the user gave).

    A few-shot draw other than the papers' (`few_shot_sampler` not `"dassl"`) is recorded as a deviation too.

    Args:
        config: one cell of a run: its method, protocol, dataset and shots, the settings given.

    Returns:
        `(config with the recipe applied, RecipeRecord)`; with `recipe="none"`, `config` unchanged.

    Raises:
        SettingError: a `PerShot` setting the user did not replace applies to the full training set.

    Example:
        >>> cell, record = apply_recipe(ExperimentConfig(method=method, dataset="dtd", protocol="few_shot",
        ...     shots=2, recipe="paper", training=TrainingConfig(epochs=3)))    # doctest: +SKIP
        >>> cell.training.epochs, record.deviations                            # doctest: +SKIP
        (3, {'epochs': {'recipe': 100, 'used': 3}})
    """
    if config.recipe == "none":
        return config, RecipeRecord("none")
    spec = get_benchmark(config.dataset)
    recipe = method_recipe(config.method)
    if recipe is None:
        return config, RecipeRecord("paper")
    own = set(given_training_settings(config))
    # recipe settings that one the user gave replaces (epochs given: the recipe's max_steps goes too)
    dropped = {name for setting in own for name in _REPLACES.get(setting, ()) if name not in own}
    resolved = recipe.resolve(config.protocol, spec.key, config.shots, given=own | dropped)
    training_changes, applied, deviations = {}, {}, {}
    for name, value in resolved.training.items():
        if name in own or name in dropped:
            used = getattr(config.training, name) if name in own else None
            if used != value:
                deviations[name] = {"recipe": value, "used": used}
        else:
            training_changes[name] = value
            applied[name] = value
    options = dict(config.method_options)
    for name, value in resolved.options.items():
        if name in config.method_options:
            if config.method_options[name] != value:
                deviations[f"option.{name}"] = {"recipe": value, "used": config.method_options[name]}
        else:
            options[name] = value
            applied[f"option.{name}"] = value
    if config.shots is not None and config.few_shot_sampler != PAPER_SAMPLER and resolved:
        deviations["few_shot_sampler"] = {"recipe": PAPER_SAMPLER, "used": config.few_shot_sampler}
    record = resolved.record(applied, deviations)
    training = dataclasses.replace(config.training, **training_changes)
    return dataclasses.replace(config, training=training, method_options=options), record


def with_global_batch(record: RecipeRecord, training: TrainingConfig, processes: int) -> RecipeRecord:
    """`record` with the global batch as a deviation when it is not the recipe's batch: the papers trained
    on one GPU, so their batch size is the global batch; here `batch_size` is per process, and processes and
    gradient accumulation multiply it.

    Args:
        record: what `apply_recipe` recorded.
        training: the run's training settings.
        processes: the number of processes (`Accelerator.num_processes`).

    Example:
        >>> record = RecipeRecord("paper", "r", "few_shot, dtd, 16 shots", (), {"batch_size": 32})
        >>> with_global_batch(record, TrainingConfig(batch_size=32), 4).deviations
        {'global_batch_size': {'recipe': 32, 'used': 128}}
    """
    factor = processes * training.gradient_accumulation_steps
    recipe_batch = record.applied.get("batch_size", record.deviations.get("batch_size", {}).get("recipe"))
    if record.name is None or factor == 1 or recipe_batch is None:
        return record
    used = {"recipe": recipe_batch, "used": training.batch_size * factor}
    return dataclasses.replace(record, deviations={**record.deviations, "global_batch_size": used})


def _settings_text(training: dict[str, Any], options: dict[str, Any]) -> str:
    parts = [f"{name}={value}" for name, value in training.items()]
    parts += [f"option {name}={value!r}" for name, value in options.items()]
    return ", ".join(parts) or "(nothing set)"


def recipe_text(method: str) -> str:
    """The method's recipe as `hf-prompt-clip recipes METHOD` prints it: whose, the paper's grid, one line per
    entry (where it applies: what it sets [file]), and what is not exact.

    Args:
        method: a registered method name.

    Example:
        >>> recipe_text(method).splitlines()[0]    # doctest: +SKIP
        'coop: CoOp (KaiyangZhou/CoOp)'
    """
    recipe = method_recipe(method)
    if recipe is None:
        return f"{method}: no paper recipe (the plain defaults apply)"
    grid = "; ".join(
        f"{protocol}: {', '.join('all' if k is None else str(k) for k in counts)} shots"
        for protocol, counts in recipe.protocols.items()
    )
    lines = [f"{method}: {recipe.name}", f"  paper's tables: {grid or 'none declared'}"]
    lines += [
        f"  - {entry.where()}: {_settings_text(dict(entry.training), dict(entry.options))}  [{entry.source}]"
        for entry in recipe.entries
    ]
    lines += [f"  not exact: {text}" for text in recipe.not_exact]
    return "\n".join(lines)


def resolved_text(method: str, protocol: str, dataset: str, shots: int | None) -> str:
    """One cell's settings as `hf-prompt-clip recipes METHOD --protocol P --dataset D --shots K` prints them,
    each with the file its value comes from.

    Args:
        method: a registered method name.
        protocol, dataset, shots: the cell (`Recipe.resolve`).

    Example:
        >>> "epochs = 50" in resolved_text(method, "few_shot", "imagenet", 16)    # doctest: +SKIP
        True
    """
    resolved = resolve_recipe(method, protocol, dataset, shots)
    if resolved is None:
        return f"{method}: no paper recipe (the plain defaults apply)"
    cell = f"{protocol}, {dataset}, {'all' if shots is None else shots} shots"
    lines = [f"{method}: {resolved.name}; {cell}"]
    for name, value in resolved.training.items():
        lines.append(f"  {name} = {value!r}  [{resolved.origin[name]}]")
    for name, value in resolved.options.items():
        lines.append(f"  option {name} = {value!r}  [{resolved.origin['option.' + name]}]")
    if not resolved:
        lines.append("  (the recipe sets nothing here: the plain defaults apply)")
    return "\n".join(lines)


__all__ = [
    "PAPER_SAMPLER",
    "RECIPE_CHOICES",
    "RecipeRecord",
    "apply_recipe",
    "describe_recipe",
    "given_training_settings",
    "method_recipe",
    "recipe_text",
    "resolve_recipe",
    "resolved_text",
    "with_global_batch",
]
