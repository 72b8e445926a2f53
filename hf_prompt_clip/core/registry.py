"""One registration point: a method's config and model become visible to the Auto classes."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForZeroShotImageClassification,
)

from .configuration import PromptCLIPConfig
from .modeling import PromptCLIPPreTrainedModel

AUTO_MODEL_CLASSES = (AutoModel, AutoModelForImageClassification, AutoModelForZeroShotImageClassification)

METHODS: dict[str, tuple[type[PromptCLIPConfig], type[PromptCLIPPreTrainedModel]]] = {}


def register_method(
    name: str, config_class: type[PromptCLIPConfig], model_class: type[PromptCLIPPreTrainedModel]
) -> None:
    """Register a method under `name` (e.g. `"coop"`) with `AutoConfig` and the model Auto classes."""
    if model_class.config_class is not config_class:
        raise TypeError(f"{model_class.__name__}.config_class must be {config_class.__name__}.")
    METHODS[name] = (config_class, model_class)
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for auto_class in AUTO_MODEL_CLASSES:
        auto_class.register(config_class, model_class, exist_ok=True)


def get_method(name: str) -> tuple[type[PromptCLIPConfig], type[PromptCLIPPreTrainedModel]]:
    """The (config class, model class) registered under `name`."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; available: {sorted(METHODS)}.")
    return METHODS[name]
