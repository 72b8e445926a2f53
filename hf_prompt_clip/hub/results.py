"""Measured results as model cards and the Hub read them: `model-index` entries and the results table.

Room: hub (above evaluation). The card itself is built in one place, `serialization/card.py`
(`build_model_card`); this module turns evaluation results into its `CardResults` (`card_results`), and
`save_model_card` writes a card with them.

Example:
    >>> model.save_pretrained("coop-eurosat")
    >>> save_model_card("coop-eurosat", model.config, training_args={"lr": 0.002}, results=results)
    >>> build_model_card(model.config, results=card_results(results))   # the card object itself
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import EvalResult

from ..core.configuration import PromptCLIPConfig
from ..core.registry import method_of
from ..data.local import is_local_key, local_name
from ..evaluate.protocol_registry import get_protocol
from ..evaluate.records import ExperimentResult
from ..evaluate.report import check_results, results_table, shots_setting
from ..serialization.card import (
    CARD_FILE,
    DATA_RECORD_FILE,
    SELECTION_FILE,
    VALIDATION_SELECTION_FILE,
    CardResults,
    build_model_card,
    method_options,
    write_model_card,
)

__all__ = [
    "CARD_FILE",
    "DATA_RECORD_FILE",
    "SELECTION_FILE",
    "VALIDATION_SELECTION_FILE",
    "build_model_card",
    "card_results",
    "eval_results_from",
    "method_of",
    "method_options",
    "save_model_card",
]

METRIC_DESCRIPTIONS: dict[str, str] = {
    "accuracy": "accuracy",
    "base": "base accuracy",
    "new": "new accuracy",
    "hm": "harmonic mean",
}


def _metric_name(result: dict, key: str) -> str:
    """E.g. `"base accuracy (base-to-new, 16 shots)"`, `"accuracy (few-shot, zero-shot)"`; transfer
    metrics name the training dataset."""
    protocol = get_protocol(result["protocol"])
    setting = f"{protocol.title}, {shots_setting(result)}"
    if not protocol.tests_training_data:
        setting += f", trained on {result['dataset']}"
    if result.get("synthetic"):
        setting += ", synthetic world"
    return f"{METRIC_DESCRIPTIONS.get(key, 'accuracy')} ({setting})"


def eval_results_from(results: list[ExperimentResult | dict]) -> list[EvalResult]:
    """One `EvalResult` per metric of each result, valued by the mean over seeds (percent).

    Cross-dataset and domain-generalisation metrics are keyed by target dataset, so each becomes a
    result on that dataset. A dataset read from the Hub is named by its Hub id, config, split and
    revision (the result's `hub_datasets`), so the Hub links it. Synthetic results use dataset config
    `"synthetic"` and a `(synthetic)` dataset name, so the Hub never lists them as results on the real
    benchmark; results on your own folder have dataset type `imagefolder` and the folder's name.
    """
    evals = []
    for result in check_results(results):
        transfer = not get_protocol(result["protocol"]).tests_training_data
        synthetic = bool(result.get("synthetic"))
        for key, value in result["mean"].items():
            dataset = key if transfer else result["dataset"]
            hub = (result.get("hub_datasets") or {}).get(dataset)
            if synthetic:
                where = {"dataset_type": dataset, "dataset_name": f"{dataset} (synthetic)"}
                where.update(dataset_config="synthetic", dataset_split="test")
            elif hub:
                where = {"dataset_type": hub["id"], "dataset_name": dataset, "dataset_config": hub["config"]}
                where.update(dataset_split=hub["split"], dataset_revision=hub["revision"])
            elif is_local_key(dataset):
                where = {
                    "dataset_type": "imagefolder",
                    "dataset_name": f"{local_name(dataset)} (local image folder)",
                }
                where.update(dataset_split="test")
            else:  # a registered benchmark read from elsewhere (a split file, an export), or not recorded
                where = {
                    "dataset_type": dataset,
                    "dataset_name": dataset,
                    "dataset_split": "test",
                }
            evals.append(
                EvalResult(
                    task_type="image-classification",
                    metric_type="accuracy",
                    metric_value=round(float(value), 2),
                    metric_name=_metric_name(result, key),
                    **where,
                )
            )
    return evals


def training_datasets(results: list[dict]) -> list[str]:
    """The Hub ids of the datasets the results' adapters were trained on (a card's `datasets:`)."""
    found = [(result.get("hub_datasets") or {}).get(result["dataset"]) for result in results]
    return list(dict.fromkeys(hub["id"] for hub in found if hub and not hub.get("synthetic")))


def card_results(results: list[ExperimentResult | dict] | None) -> CardResults:
    """`results` (`ExperimentResult`s or dicts of the results schema) as a model card shows them: the table
    beside the papers' numbers, the `model-index` entries, the training datasets and where data was read.

    Example:
        >>> card = build_model_card(config, training_args, results=card_results(results))
    """
    results = check_results(results or [])
    return CardResults(
        markdown=results_table(results) if results else None,
        eval_results=tuple(eval_results_from(results)),
        synthetic=any(result.get("synthetic") for result in results),
        datasets=tuple(training_datasets(results)),
        data_sources=tuple(
            dict.fromkeys((result["dataset"], result["data"]) for result in results if result.get("data"))
        ),
    )


def save_model_card(
    folder: str | os.PathLike,
    config: PromptCLIPConfig | None = None,
    training_args: dict | None = None,
    results: list[ExperimentResult | dict] | None = None,
    selection: dict | None = None,
    **card_kwargs,
) -> Path:
    """Write the adapter's model card, with its measured results, as `README.md` into its folder.

    `config` defaults to the folder's `config.json`; `selection` to its `few_shot_selection.json`,
    which the card then links. Other keyword arguments go to `serialization.card.build_model_card`.
    """
    return write_model_card(
        folder, config, training_args, selection, results=card_results(results), **card_kwargs
    )
