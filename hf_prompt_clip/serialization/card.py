"""Model cards of saved adapters: Hub metadata and a README saying what the adapter is and how to load it.

Room: `serialization/`.

Saving an adapter folder (`save_pretrained(push_to_hub=True)`, `push_to_hub`) writes one, so the card
lives with the adapter I/O on the ground floor. Measured results arrive already formatted (a markdown
table and `EvalResult` entries): `hf_prompt_clip.hub.save_model_card` turns evaluation results into
them, so nothing here needs the evaluation layer.

Example:
    >>> model.save_pretrained("coop-eurosat")
    >>> write_model_card("coop-eurosat", model.config, training_args={"lr": 0.002})
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoConfig
from transformers.utils import SAFE_WEIGHTS_NAME

from ..core.configuration import PromptCLIPConfig
from ..core.recipes import describe_recipe
from ..core.registry import CLIP_CITATION, METHODS, method_info, method_of
from ..utils.atomic import atomic_write_text
from .loading import resolve_base_model

SELECTION_FILE = "few_shot_selection.json"
"""Name of the few-shot selection record inside an adapter folder."""

VALIDATION_SELECTION_FILE = "validation_selection.json"
"""Name of the record of the validation examples a fit searched on (methods whose `Capabilities.uses_validation` is
true), inside an adapter folder."""

DATA_RECORD_FILE = "training_data.json"
"""Name of the record of the data an adapter was trained on (benchmark, source, classes, shots) inside
its folder: evaluation reads it to refuse data the adapter was not trained for (docs/reports.md)."""

CARD_FILE = "README.md"
TEMPLATE = "adapter_card.md"
MAX_LISTED_CLASSES = 20


def method_options(config: PromptCLIPConfig) -> dict:
    """The method's own options (config fields a `PromptCLIPConfig` does not have, less the values it
    only records for loading, `recorded_fields`) and their values."""
    shared = {field.name for field in dataclasses.fields(PromptCLIPConfig)} | set(config.recorded_fields)
    return {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(type(config))
        if field.name not in shared
    }


def _hub_model_id(name: str | None) -> str | None:
    """`name` if it is a Hub model id (the `base_model` metadata must be one: a Hub id, or the id a
    shipped base model is published under, e.g. `hf-prompt-clip/tiny-clip-synthetic`), else `None`
    (a local folder)."""
    if not name or (resolve_base_model(name) == name and (os.path.isabs(name) or os.path.exists(name))):
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


_QUOTED_PATH = re.compile(r"""(['"])((?:[A-Za-z]:)?[\\/][^'"]*)\1""")


def without_local_paths(text: str) -> str:
    """`text` with each quoted absolute path reduced to its last part, so a card published on the Hub
    does not show the layout of the machine that trained it.

    Example:
        >>> without_local_paths("image folder '/home/me/data/flowers' (flat: train only)")
        "image folder 'flowers' (flat: train only)"
    """
    return _QUOTED_PATH.sub(lambda found: found[1] + _last_part(found[2]) + found[1], text)


def _last_part(path: str) -> str:
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or path


def _public_value(value):
    """A training argument as a card shows it: an absolute path by its last part."""
    if isinstance(value, str) and (os.path.isabs(value) or re.match(r"[A-Za-z]:[\\/]", value)):
        return _last_part(value)
    return value


def _class_preview(class_names: list[str]) -> str:
    shown = ", ".join(class_names[:MAX_LISTED_CLASSES])
    hidden = len(class_names) - MAX_LISTED_CLASSES
    return f"{shown}, … ({hidden} more)" if hidden > 0 else shown


def _card_data(
    config: PromptCLIPConfig,
    method: str,
    evals: list[EvalResult],
    model_name: str,
    license: str,
    datasets: list[str] | None,
) -> ModelCardData:
    base_model = _hub_model_id(config.base_model_name_or_path)
    return ModelCardData(
        library_name="hf_prompt_clip",
        base_model=base_model,
        base_model_relation="adapter" if base_model else None,
        datasets=datasets or None,
        tags=[method, "clip", "prompt-learning", "image-classification"],
        pipeline_tag="image-classification",
        license=license,
        metrics=["accuracy"] if evals else None,
        eval_results=evals or None,
        model_name=model_name if evals else None,
    )


def _selection_summary(selection: dict) -> dict:
    shots, counts = selection.get("shots"), selection.get("per_class")
    if counts and shots and min(counts) < shots:  # the examples drawn, not the shots asked
        shots = f"{shots} asked; drawn: min {min(counts)}, median {statistics.median(counts):g}"
    return {
        "benchmark": selection.get("benchmark") or "unregistered data",
        "split": selection.get("split"),
        "seed": selection.get("seed"),
        "shots": shots,
        "examples": len(selection.get("ids", [])),
    }


def _template() -> str:
    return (resources.files("hf_prompt_clip") / "model_cards" / TEMPLATE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class CardResults:
    """Measured results as a model card shows them, already formatted by the evaluation layer
    (`hf_prompt_clip.hub.card_results(results)`), so the card module needs no evaluation code.

    Attributes:
        markdown: the results table beside the papers' numbers (`evaluate.report.results_table`).
        eval_results: the same results as `model-index` entries (`huggingface_hub.EvalResult`).
        synthetic: whether some were measured on the synthetic world (the card says so).
        datasets: Hub ids of the datasets the adapter was trained on (the card's `datasets:`).
        data_sources: `(dataset, where it was read)` pairs (`describe_data`), listed.
    """

    markdown: str | None = None
    eval_results: tuple[EvalResult, ...] = ()
    synthetic: bool = False
    datasets: tuple[str, ...] = ()
    data_sources: tuple[tuple[str, str], ...] = ()


def build_model_card(
    config: PromptCLIPConfig,
    training_args: dict | None = None,
    selection: dict | None = None,
    *,
    results: CardResults | None = None,
    repo_id: str | None = None,
    model_name: str | None = None,
    license: str = "apache-2.0",
    selection_file: str | None = None,
    adapter_bytes: int | None = None,
    datasets: list[str] | None = None,
    num_classes: int | None = None,
    pending_command: str | None = None,
    paper_table: str | None = None,
    paper_source: str | None = None,
) -> ModelCard:
    """The model card of an adapter: Hub metadata plus a README saying what it is and how it did.

    Args:
        config: the adapter's config (method, base model id and revision, classes).
        training_args: training settings to list (optimizer, lr, epochs, ...), shown as a table.
        selection: a few-shot selection record (`FewShotSelection.to_dict()`), summarised.
        results: the measured results as the card shows them (`CardResults`: from evaluation results,
            `hf_prompt_clip.hub.card_results(results)`); `None`: no results.
        repo_id: Hub id (or folder) shown in the loading example; defaults to `model_name`.
        model_name: the card's title and `model-index` name; defaults to `"<method>-<base model>"`.
        license: license id of the adapter.
        selection_file: name of the full selection record in the repository, linked when given.
        adapter_bytes: size of the adapter's weights file, shown when given (`write_model_card`
            reads it from the folder).
        datasets: Hub ids of the datasets the adapter was trained on (the card's `datasets:`; default:
            those of `results`).
        num_classes: the number of classes when the config has no class list yet (the dataset's).
        pending_command: for the card of an adapter not trained yet (`hf_prompt_clip.hub.published`):
            the command that trains, measures and publishes it; the card then claims no results.
        paper_table / paper_source: the paper's numbers for that setting (markdown) and their source.

    Returns:
        A `huggingface_hub.ModelCard` with `library_name: hf_prompt_clip`, `base_model` (when the base
        has a Hub id), `base_model_relation: adapter`, `datasets` and the measured results. Absolute
        local paths (a base model's folder, an image folder, an output folder) show as their last
        part only.
    """
    results = results or CardResults()
    datasets = datasets if datasets is not None else list(results.datasets) or None
    method = method_of(config)
    info = method_info(method)
    model_class = METHODS[method][1]
    base = config.base_model_name_or_path or "unknown"
    local_base = _hub_model_id(base) is None and (os.path.isabs(base) or os.path.exists(base))
    model_name = model_name or f"{method}-{_last_part(base)}"
    class_names = config.class_names or []
    citations = list(dict.fromkeys([info.citation, CLIP_CITATION]))
    return ModelCard.from_template(
        _card_data(config, method, list(results.eval_results), model_name, license, datasets),
        template_str=_template(),
        model_name=model_name,
        repo_id=repo_id or model_name,
        method_title=info.title,
        method_paper=info.paper,
        method_kind=info.kind,
        learned=info.learned,
        frozen_base=info.frozen_base,
        model_type=config.model_type,
        base_model_path=_last_part(base) if local_base else base,
        base_model_local=local_base,
        base_model_revision=config.base_model_revision,
        num_classes=len(class_names) or num_classes or 0,
        class_preview=_class_preview(class_names),
        example_labels=json.dumps(class_names[:2] or ["cat", "dog"], ensure_ascii=False),
        # hand-written templates are the hypothesis; a learned prompt takes the bare class name
        hypothesis_template=(getattr(config, "templates", None) or ["{}"])[0],
        method_config=method_options(config),
        training_args={
            name: _public_value(value) for name, value in (training_args or {}).items() if name != "recipe"
        },
        recipe_text=describe_recipe(training_args["recipe"]) if "recipe" in (training_args or {}) else None,
        recipe_sources=(training_args or {}).get("recipe", {}).get("sources", []),
        selection=_selection_summary(selection) if selection else None,
        selection_file=selection_file,
        results_table=results.markdown,
        synthetic=results.synthetic,
        data_sources=[(dataset, without_local_paths(data)) for dataset, data in results.data_sources],
        citations=[citation for citation in citations if citation],
        # offered where any class list works (a class-specific CoOp takes only lists of its own size)
        free_texts=model_class.capabilities_of(config).free_texts,
        adapter_size=None if adapter_bytes is None else _file_size(adapter_bytes),
        pending_command=pending_command,
        paper_table=paper_table,
        paper_source=paper_source,
        usage_notes=model_class.card_usage_notes(config, repo_id or model_name),
    )


def _file_size(size: int) -> str:
    """`"343.2 MB"`, `"32.1 KB"`."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def write_model_card(
    folder: str | os.PathLike,
    config: PromptCLIPConfig | None = None,
    training_args: dict | None = None,
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
    weights = folder / SAFE_WEIGHTS_NAME
    if weights.is_file():
        card_kwargs.setdefault("adapter_bytes", weights.stat().st_size)
    card = build_model_card(config, training_args, selection, **card_kwargs)
    path = folder / CARD_FILE
    atomic_write_text(path, str(card))
    return path


def _load_config(folder: Path) -> PromptCLIPConfig:
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json: pass `config=` or save the model there first (`model.save_pretrained`)."
        )
    return AutoConfig.from_pretrained(folder)


_LOADING_EXAMPLE = re.compile(r'AutoModel\.from_pretrained\("([^"]+)"\)')


def retarget_model_card(folder: str | os.PathLike, repo_id: str) -> bool:
    """Make the loading examples of a saved card name `repo_id` (a card written for the local folder,
    pushed later with `hf-prompt-clip push`). Returns whether the card changed.

    Example:
        >>> retarget_model_card("outputs/run/coop/seed1/adapter", "me/coop-dtd")
        True
    """
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    found = _LOADING_EXAMPLE.search(text)
    if found is None or found.group(1) == repo_id:
        return False
    atomic_write_text(path, text.replace(f'"{found.group(1)}"', f'"{repo_id}"'))
    return True
