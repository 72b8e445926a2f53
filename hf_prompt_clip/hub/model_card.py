"""Model cards for saved adapters: Hub metadata (`model-index` of measured results) and a readable README.

Example:
    >>> model.save_pretrained("coop-eurosat")
    >>> save_model_card("coop-eurosat", model.config, training_args={"lr": 0.002}, results=results)
"""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoConfig

from ..core.configuration import PromptCLIPConfig
from ..core.modeling import resolve_base_model
from ..core.registry import CLIP_CITATION, METHODS, method_info
from ..evaluate.report import PROTOCOLS, check_results, results_table

SELECTION_FILE = "few_shot_selection.json"
"""Name of the few-shot selection record inside an adapter folder."""

CARD_FILE = "README.md"
TEMPLATE = "adapter_card.md"
MAX_LISTED_CLASSES = 20

METRIC_DESCRIPTIONS: dict[str, str] = {
    "accuracy": "accuracy",
    "base": "base accuracy",
    "new": "new accuracy",
    "hm": "harmonic mean",
}


# ---------------------------------------------------------------------------------------- config facts


def method_of(config: PromptCLIPConfig) -> str:
    """The registered method key of `config` (`"coop"` for a `CoOpConfig`)."""
    for name, (config_class, _) in METHODS.items():
        if config_class.model_type == config.model_type:
            return name
    raise ValueError(
        f"No registered method has model_type {config.model_type!r}; registered: {sorted(METHODS)}. "
        "Import the method's module (or `hf_prompt_clip`) before building its card."
    )


def method_options(config: PromptCLIPConfig) -> dict:
    """The method's own config fields (those a `PromptCLIPConfig` does not have) and their values."""
    shared = {field.name for field in dataclasses.fields(PromptCLIPConfig)}
    return {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(type(config))
        if field.name not in shared
    }


def _hub_model_id(name: str | None) -> str | None:
    """`name` if it can be a Hub model id (the `base_model` metadata must be one), else `None`."""
    if not name or os.path.isdir(name) or resolve_base_model(name) != name:  # a folder or a shipped model
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def _class_preview(class_names: list[str]) -> str:
    shown = ", ".join(class_names[:MAX_LISTED_CLASSES])
    hidden = len(class_names) - MAX_LISTED_CLASSES
    return f"{shown}, … ({hidden} more)" if hidden > 0 else shown


# ---------------------------------------------------------------------------------------- metadata


def _metric_name(result: dict, key: str) -> str:
    """E.g. `"base accuracy (base-to-new, 16 shots)"`; transfer metrics name the training dataset."""
    protocol = PROTOCOLS[result["protocol"]]
    shots = result.get("shots")
    setting = f"{protocol}, full training set" if shots is None else f"{protocol}, {shots} shots"
    if result["protocol"] in ("cross_dataset", "domain_generalization"):
        setting += f", trained on {result['dataset']}"
    if result.get("synthetic"):
        setting += ", synthetic world"
    return f"{METRIC_DESCRIPTIONS.get(key, 'accuracy')} ({setting})"


def eval_results_from(results: list[dict]) -> list[EvalResult]:
    """One `EvalResult` per metric of each result, valued by the mean over seeds (percent).

    Cross-dataset and domain-generalisation metrics are keyed by target dataset, so each becomes a
    result on that dataset. Synthetic results use dataset config `"synthetic"` and a `(synthetic)`
    dataset name, so the Hub never lists them as results on the real benchmark.
    """
    evals = []
    for result in check_results(results):
        transfer = result["protocol"] in ("cross_dataset", "domain_generalization")
        synthetic = bool(result.get("synthetic"))
        for key, value in result["mean"].items():
            dataset = key if transfer else result["dataset"]
            evals.append(
                EvalResult(
                    task_type="image-classification",
                    dataset_type=dataset,
                    dataset_name=f"{dataset} (synthetic)" if synthetic else dataset,
                    dataset_config="synthetic" if synthetic else None,
                    dataset_split="test",
                    metric_type="accuracy",
                    metric_value=round(float(value), 2),
                    metric_name=_metric_name(result, key),
                )
            )
    return evals


def _card_data(
    config: PromptCLIPConfig, method: str, results: list[dict], model_name: str, license: str
) -> ModelCardData:
    base_model = _hub_model_id(config.base_model_name_or_path)
    evals = eval_results_from(results)
    return ModelCardData(
        library_name="hf_prompt_clip",
        base_model=base_model,
        base_model_relation="adapter" if base_model else None,
        tags=[method, "clip", "prompt-learning", "image-classification"],
        pipeline_tag="image-classification",
        license=license,
        metrics=["accuracy"] if evals else None,
        eval_results=evals or None,
        model_name=model_name if evals else None,
    )


# ---------------------------------------------------------------------------------------- card


def _selection_summary(selection: dict) -> dict:
    return {
        "benchmark": selection.get("benchmark") or "unregistered data",
        "split": selection.get("split"),
        "seed": selection.get("seed"),
        "shots": selection.get("shots"),
        "examples": len(selection.get("ids", [])),
    }


def _template() -> str:
    return (resources.files("hf_prompt_clip") / "model_cards" / TEMPLATE).read_text(encoding="utf-8")


def build_model_card(
    config: PromptCLIPConfig,
    training_args: dict | None = None,
    results: list[dict] | None = None,
    selection: dict | None = None,
    *,
    repo_id: str | None = None,
    model_name: str | None = None,
    license: str = "apache-2.0",
    selection_file: str | None = None,
) -> ModelCard:
    """The model card of an adapter: Hub metadata plus a README saying what it is and how it did.

    Args:
        config: the adapter's config (method, base model id and revision, classes).
        training_args: training settings to list (optimizer, lr, epochs, ...), shown as a table.
        results: result dicts of the evaluation schema (see `hf_prompt_clip.evaluate.report`); their
            means become the `model-index` and a table beside the papers' numbers.
        selection: a few-shot selection record (`FewShotSelection.to_dict()`), summarised.
        repo_id: Hub id (or folder) shown in the loading example; defaults to `model_name`.
        model_name: the card's title and `model-index` name; defaults to `"<method>-<base model>"`.
        license: license id of the adapter.
        selection_file: name of the full selection record in the repository, linked when given.

    Returns:
        A `huggingface_hub.ModelCard` with `library_name: hf_prompt_clip`, `base_model` (when the base
        is a Hub id), `base_model_relation: adapter` and the measured results.
    """
    method = method_of(config)
    info = method_info(method)
    results = check_results(results or [])
    base = config.base_model_name_or_path or "unknown"
    model_name = model_name or f"{method}-{base.rstrip('/').split('/')[-1]}"
    class_names = config.class_names or []
    citations = list(dict.fromkeys([info.citation, CLIP_CITATION]))
    return ModelCard.from_template(
        _card_data(config, method, results, model_name, license),
        template_str=_template(),
        model_name=model_name,
        repo_id=repo_id or model_name,
        method_title=info.title,
        method_paper=info.paper,
        learned=info.learned,
        frozen_base=info.frozen_base,
        model_type=config.model_type,
        base_model_path=base,
        base_model_revision=config.base_model_revision,
        num_classes=len(class_names),
        class_preview=_class_preview(class_names),
        example_labels=json.dumps(class_names[:2] or ["cat", "dog"], ensure_ascii=False),
        # hand-written templates are the hypothesis; a learned prompt takes the bare class name
        hypothesis_template=(getattr(config, "templates", None) or ["{}"])[0],
        method_config=method_options(config),
        training_args=training_args,
        selection=_selection_summary(selection) if selection else None,
        selection_file=selection_file,
        results_table=results_table(results) if results else None,
        synthetic=any(result.get("synthetic") for result in results),
        citations=[citation for citation in citations if citation],
    )


def save_model_card(
    folder: str | os.PathLike,
    config: PromptCLIPConfig | None = None,
    training_args: dict | None = None,
    results: list[dict] | None = None,
    selection: dict | None = None,
    **card_kwargs,
) -> Path:
    """Write the adapter's model card as `README.md` into its saved folder and return the path.

    `config` defaults to the folder's `config.json`; `selection` to its `few_shot_selection.json`,
    which the card then links. Other keyword arguments go to `build_model_card`.
    """
    folder = Path(folder)
    if config is None:
        config = _load_config(folder)
    record = folder / SELECTION_FILE
    if record.is_file():
        card_kwargs.setdefault("selection_file", SELECTION_FILE)
        if selection is None:
            selection = json.loads(record.read_text(encoding="utf-8"))
    card = build_model_card(config, training_args, results, selection, **card_kwargs)
    path = folder / CARD_FILE
    card.save(path)
    return path


def _load_config(folder: Path) -> PromptCLIPConfig:
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json: pass `config=` or save the model there first (`model.save_pretrained`)."
        )
    return AutoConfig.from_pretrained(folder)
