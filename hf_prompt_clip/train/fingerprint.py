"""A run's identity: the settings that define its result, and their hash (the fingerprint).

Room: what makes two runs the same run. It holds the `TrainingConfig` fields left out of the identity
(`NOT_IN_FINGERPRINT`: where to write, how often to save, how many workers), `run_settings` (the config
fields that matter, the model type and training stages, the numbers of examples and processes, and what the
caller adds), `fingerprint_hash` and `fingerprint_differences` (what a refusal lists). `run_folder.py` records
the fingerprint in the output folder and in every checkpoint, and refuses another run's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict
from typing import Any

from ..modeling.model import PromptCLIPPreTrainedModel
from .config import TrainingConfig, augment_views_used

#: `TrainingConfig` fields that do not change the trained adapter, so not part of a run's fingerprint.
NOT_IN_FINGERPRINT = (
    "output_dir",
    "resume_from_checkpoint",
    "overwrite_output_dir",
    "checkpoint_every_epochs",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "num_workers",
    "report_to",
)


def stage_settings(stage) -> Any:
    """A training stage as the run's settings record it (`kind` and `epoch_average` only when they are not
    the defaults, so runs of plain gradient stages keep the fingerprints that earlier versions wrote)."""
    if not dataclasses.is_dataclass(stage):
        return repr(stage)
    settings = asdict(stage)
    if settings.get("kind") == "gradient":
        del settings["kind"]
    if settings.get("epoch_average", 0) is None:
        del settings["epoch_average"]
    return settings


def run_settings(
    config: TrainingConfig,
    model: PromptCLIPPreTrainedModel,
    train_examples: int,
    validation_examples: int | None,
    num_processes: int,
    run: dict[str, Any],
) -> dict[str, Any]:
    """What defines a run's result, as JSON values; its hash (`fingerprint_hash`) is the run's fingerprint.

    Args:
        config: the run's `TrainingConfig`: the fields that matter (not `NOT_IN_FINGERPRINT`), with
            `augment_views` as the number of views used (`augment_views_used`; left out when none are).
        model: the model trained: its type and its training stages.
        train_examples / validation_examples: the number of training (and validation, `None`: none) examples.
        num_processes: the number of processes (with the batch size, the global batch).
        run: what else the caller says defines the result (method, options, data, shots, base model ...).

    Example:
        >>> settings = run_settings(TrainingConfig(), model, 64, None, 1, {"dataset": "dtd"})
        >>> settings["train_examples"], settings["run"]
        (64, {'dataset': 'dtd'})
    """
    training = {k: v for k, v in asdict(config).items() if k not in NOT_IN_FINGERPRINT}
    model_stages = model.training_stages()
    training["augment_views"] = augment_views_used(config, model_stages)  # the views trained on
    if training["augment_views"] is None:
        training.pop("augment_views")  # unset or unused: the fingerprint runs had before the option
    settings = {
        "training": training,
        "model_type": getattr(model.config, "model_type", None) or type(model).__name__,
        "training_stages": [stage_settings(stage) for stage in model_stages],
        "train_examples": train_examples,
        **({"validation_examples": validation_examples} if validation_examples is not None else {}),
        "num_processes": num_processes,
        "run": run,
    }
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def fingerprint_hash(settings: dict) -> str:
    """The hash of a run's settings: sha256 of their sorted JSON, first 16 hex digits.

    Example:
        >>> fingerprint_hash({"training": {"learning_rate": 0.002}})
        '97226d48e7cee6ef'
    """
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict):
        flat = {}
        for key, value in values.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat or {prefix[:-1]: {}}
    return {prefix[:-1]: values}


def fingerprint_differences(old: dict, new: dict) -> list[str]:
    """The settings that differ between two fingerprints' settings, as `key (old there, new now)`.

    Example:
        >>> fingerprint_differences({"training": {"epochs": 10}}, {"training": {"epochs": 5}})
        ['training.epochs (10 there, 5 now)']
    """
    old_flat, new_flat = _flatten(old), _flatten(new)
    missing = object()
    return [
        f"{key} ({old_flat.get(key, 'unset')!r} there, {new_flat.get(key, 'unset')!r} now)"
        for key in sorted(old_flat.keys() | new_flat.keys())
        if old_flat.get(key, missing) != new_flat.get(key, missing)
    ]
