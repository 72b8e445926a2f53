"""One registration point: a method's config and model become visible to the Auto classes.

Room: `core/`.

The registry is also what generic code asks about methods: the order of tables and comparisons
(registration order), which method is the baseline every comparison includes, and what model
cards and reports say about each one (`MethodInfo`). Nothing outside a method's folder names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transformers import (
    CONFIG_MAPPING,
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForZeroShotImageClassification,
)

from .recipes import Recipe
from .reference import PaperResult

if TYPE_CHECKING:  # the registry only stores classes: it imports no model code
    from .capabilities import Capabilities
    from .configuration import PromptCLIPConfig

#: A method's model class: a `hf_prompt_clip.modeling.PromptCLIPPreTrainedModel` subclass (the registry,
#: a floor below the models, stores it without importing model code).
ModelClass = type

AUTO_MODEL_CLASSES = (AutoModel, AutoModelForImageClassification, AutoModelForZeroShotImageClassification)

#: Every method builds on CLIP: its model cards cite it beside the method's own paper.
CLIP_CITATION = """@inproceedings{radford2021clip,
  title     = {Learning Transferable Visual Models From Natural Language Supervision},
  author    = {Radford, Alec and Kim, Jong Wook and Hallacy, Chris and Ramesh, Aditya and Goh, Gabriel and
               Agarwal, Sandhini and Sastry, Girish and Askell, Amanda and Mishkin, Pamela and Clark, Jack and
               Krueger, Gretchen and Sutskever, Ilya},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2021}
}"""


#: The Hub namespace of the adapters the project publishes (`PublishedAdapter`).
PUBLISHED_NAMESPACE = "hf-prompt-clip"

#: ViT-B/16, the papers' backbone, at the commit other benchmarks pin (mteb's model registry).
PAPER_BASE_MODEL = "openai/clip-vit-base-patch16"
PAPER_BASE_REVISION = "57c216476eefef5ab752ec549e440a49ae4ae5f3"


@dataclass(frozen=True)
class PublishedAdapter:
    """An adapter the project publishes on the Hub: the method's paper setting, as the command line
    trains it. Its card lives in the repository's `model_cards/<name>.md` (`hf_prompt_clip.hub.published`).

    Attributes:
        name: the repository name (`"cocoop-vitb16-imagenet"`), under `PUBLISHED_NAMESPACE`.
        benchmark: registry key of the training data.
        protocol: `"few_shot"`, `"base2new"`, `"cross_dataset"` or `"domain_generalization"`.
        shots: training images per class (`None`: the full training set; `0`: nothing trained).
        targets: test benchmarks of a transfer protocol.
        options: method options (config fields) that differ from the method's defaults.
        training: command-line training settings of the paper's recipe (`{"epochs": 10, "lr": 0.002}`,
            flag names without the dashes).
        base_model / base_revision: the base CLIP and its pinned commit.
    """

    name: str
    benchmark: str
    protocol: str = "few_shot"
    shots: int | None = 16
    targets: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    base_model: str = PAPER_BASE_MODEL
    base_revision: str = PAPER_BASE_REVISION

    @property
    def repo_id(self) -> str:
        return f"{PUBLISHED_NAMESPACE}/{self.name}"


@dataclass(frozen=True)
class MethodInfo:
    """What model cards and reports say about one method.

    Attributes:
        title: display name (`"CoOp"`).
        paper: short reference (`"Zhou et al., IJCV 2022"`).
        learned: one or two sentences on what is learned.
        citation: BibTeX of the method's paper.
        frozen_base: whether the base CLIP stays entirely frozen (the adapter holds only the method's tensors).
        kind: what the method is, as a card's first line says it ("A **CoOp** prompt learner for CLIP").
        baseline: the method every comparison includes as its reference point (zero-shot CLIP).
        default: the method a run trains when none is named (`hf-prompt-clip train` without `--method`).
        published: the adapters of this method the project publishes (`PublishedAdapter`).
        paper_results: what the method's paper (or its authors' code) reports (`core.reference.PaperResult`),
            which cards and result tables show beside measured numbers.
        recipe: the paper's training recipe (`core.recipes.Recipe`), what `--recipe paper` applies and
            `hf-prompt-clip reproduce` runs (`None`: the method has none; the plain defaults apply).
    """

    title: str
    paper: str = ""
    learned: str = ""
    citation: str = ""
    frozen_base: bool = True
    kind: str = "prompt learner for CLIP"
    baseline: bool = False
    default: bool = False
    published: tuple[PublishedAdapter, ...] = ()
    paper_results: tuple[PaperResult, ...] = ()
    recipe: Recipe | None = None


#: Registered methods in registration order, which is the order of every table and comparison.
METHODS: dict[str, tuple[type[PromptCLIPConfig], ModelClass]] = {}
METHOD_INFO: dict[str, MethodInfo] = {}


def register_method(
    name: str,
    config_class: type[PromptCLIPConfig],
    model_class: ModelClass,
    info: MethodInfo | None = None,
) -> None:
    """Register a method under `name` (e.g. `"coop"`) with `AutoConfig` and the model Auto classes.

    Args:
        name: the method's key (CLI `--method`, results, reports).
        config_class, model_class: the method's config and model; `model_class.config_class` must
            be `config_class`.
        info: what cards and reports say about it (defaults to its name as the title).
    """
    if model_class.config_class is not config_class:
        raise TypeError(f"{model_class.__name__}.config_class must be {config_class.__name__}.")
    METHODS[name] = (config_class, model_class)
    METHOD_INFO[name] = info or MethodInfo(title=name)
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for auto_class in AUTO_MODEL_CLASSES:
        auto_class.register(config_class, model_class, exist_ok=True)


def unregister_method(name: str) -> tuple[type[PromptCLIPConfig], ModelClass]:
    """Undo `register_method(name, ...)`: the method leaves the registry (`METHODS`, `METHOD_INFO`) and the
    Auto classes (`AutoConfig`'s model type and every Auto model class's entry for its config), so a test's
    own method leaves no trace in the methods other tests see.

    Args:
        name: the key the method was registered under.

    Returns:
        Its (config class, model class).

    Raises:
        ValueError: no method is registered under `name` (naming the registered ones).

    Example:
        ```python
        register_method("feature_shift", FeatureShiftConfig, FeatureShiftModel)
        try:
            ...  # train, evaluate, save and load it like any method
        finally:
            unregister_method("feature_shift")
        ```
    """
    config_class, model_class = get_method(name)
    del METHODS[name]
    METHOD_INFO.pop(name, None)
    # transformers has no public way to unregister: its Auto mappings keep registrations in `_extra_content`
    # (model type -> config class for AutoConfig, config class -> model class for the model Auto classes)
    if CONFIG_MAPPING._extra_content.get(config_class.model_type) is config_class:
        del CONFIG_MAPPING._extra_content[config_class.model_type]
    for auto_class in AUTO_MODEL_CLASSES:
        if auto_class._model_mapping._extra_content.get(config_class) is model_class:
            del auto_class._model_mapping._extra_content[config_class]
    return config_class, model_class


def get_method(name: str) -> tuple[type[PromptCLIPConfig], ModelClass]:
    """The (config class, model class) registered under `name`."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; available: {list(METHODS)}.")
    return METHODS[name]


def method_config(name: str, options: dict[str, Any] | None = None) -> PromptCLIPConfig:
    """The config of method `name` with `options` (no class list): what generic code asks about a method
    before anything is built (`method_config(name, options).capabilities`, `.benchmark_defaults(spec)`).

    Raises:
        InvalidOptionError / ValueError: an option the method does not have, or a value it does not take.
    """
    return get_method(name)[0](**(options or {}))


def method_capabilities(name: str, options: dict[str, Any] | None = None) -> Capabilities:
    """What generic code needs to know about method `name` with `options`, before anything is built: its
    model class's `capabilities_of(method_config(name, options))`.

    Example:
        >>> method_capabilities("coop", {"class_specific_context": True}).classes_can_change
        False
    """
    return get_method(name)[1].capabilities_of(method_config(name, options))


def method_of(config: PromptCLIPConfig) -> str:
    """The registered method key of `config` (`"coop"` for a `CoOpConfig`)."""
    for name, (config_class, _) in METHODS.items():
        if config_class.model_type == config.model_type:
            return name
    raise ValueError(
        f"No registered method has model_type {config.model_type!r}; registered: {list(METHODS)}. "
        "Import the method's module (or `hf_prompt_clip`) first."
    )


def method_info(name: str) -> MethodInfo:
    """What cards and reports say about method `name` (its name as the title if it is unknown)."""
    return METHOD_INFO.get(name) or MethodInfo(title=name)


def method_order() -> tuple[str, ...]:
    """The registered methods in table order (registration order)."""
    return tuple(METHODS)


def baseline_method() -> str | None:
    """The method that every comparison includes as its baseline, if one is registered."""
    return next((name for name, info in METHOD_INFO.items() if info.baseline), None)


def default_method() -> str:
    """The method a run trains when none is named (the registered method whose `MethodInfo.default` is set)."""
    name = next((name for name, info in METHOD_INFO.items() if info.default), None)
    if name is None:
        raise ValueError(
            "No registered method is marked as the default (MethodInfo(default=True)); name one with --method "
            f"({list(METHODS)})."
        )
    return name
