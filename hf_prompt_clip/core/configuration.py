"""The configuration every prompt-learning model shares."""

from __future__ import annotations

import copy
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import CLIPConfig, PreTrainedConfig


def validate_class_names(class_names: Any) -> list[str]:
    """Check a class list and return it as a list of strings.

    Raises:
        ValueError: on an empty list, a non-string or blank name, or duplicated names.
    """
    if isinstance(class_names, str) or not hasattr(class_names, "__iter__"):
        raise ValueError(
            f"class_names must be a list of strings, got {type(class_names).__name__}: {class_names!r}."
        )
    names = list(class_names)
    if not names:
        raise ValueError(
            "class_names is empty: a classifier needs at least one class. "
            "Pass the names of the classes to recognise, e.g. class_names=['cat', 'dog']."
        )
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_names[{index}] must be a non-empty string, got {name!r}.")
    seen: dict[str, int] = {}
    duplicates = []
    for index, name in enumerate(names):
        if name in seen:
            duplicates.append(f"{name!r} (positions {seen[name]} and {index})")
        seen.setdefault(name, index)
    if duplicates:
        raise ValueError(
            "class_names must be unique, but these names repeat: "
            + ", ".join(duplicates)
            + ". Merge or rename the duplicated classes."
        )
    return names


@strict
class PromptCLIPConfig(PreTrainedConfig):
    r"""Configuration shared by all prompt learners that wrap a frozen `CLIPModel`.

    Args:
        base_model_name_or_path (`str`, *optional*):
            Hub id (e.g. `"openai/clip-vit-base-patch16"`) or local folder of the frozen CLIP that the
            adapter was trained on. `from_pretrained` loads it from there.
        base_model_revision (`str`, *optional*):
            Branch, tag or commit of the base model on the Hub. Pin a commit for exact reproduction.
        clip_config (`dict`, *optional*):
            The full `CLIPConfig` of the base model as a dict, so the architecture can be built without
            network access and so adapters can be checked against the base they are loaded on.
        class_names (`list[str]`, *optional*):
            Names of the classes, in label order. `id2label` and `label2id` are derived from them.
        fast (`bool`, *optional*, defaults to `True`):
            Use the exact fast text engine (EOS truncation, shared-prefix cache, batched chunks).
            `False` runs the straightforward reference path; both give the same results.
        text_chunk_tokens (`int`, *optional*, defaults to 32768):
            Most token positions per text-encoder call in the fast engine; lower it to reduce
            peak memory, raise it for fewer, larger calls.
    """

    model_type = "prompt_clip"

    base_model_name_or_path: str | None = None
    base_model_revision: str | None = None
    clip_config: dict | None = None
    class_names: list[str] | None = None
    fast: bool = True
    text_chunk_tokens: int = 32768

    def __post_init__(self, **kwargs):
        if self.text_chunk_tokens < 1:
            raise ValueError(f"text_chunk_tokens must be positive, got {self.text_chunk_tokens}.")
        if isinstance(self.clip_config, CLIPConfig):
            self.clip_config = self.clip_config.to_dict()
        elif self.clip_config is not None:
            self.clip_config = copy.deepcopy(dict(self.clip_config))
        if self.class_names is not None:
            self.class_names = validate_class_names(self.class_names)
            self.id2label = dict(enumerate(self.class_names))
            self.label2id = {name: index for index, name in enumerate(self.class_names)}
            kwargs.pop("num_labels", None)
        super().__post_init__(**kwargs)

    def set_class_names(self, class_names: list[str]) -> None:
        """Replace the class list and keep `id2label`/`label2id` in step with it."""
        self.class_names = validate_class_names(class_names)
        self.id2label = dict(enumerate(self.class_names))
        self.label2id = {name: index for index, name in enumerate(self.class_names)}

    def build_clip_config(self) -> CLIPConfig:
        """A fresh `CLIPConfig` object from the stored dict (never shared with a live model)."""
        if self.clip_config is None:
            raise ValueError(
                f"{type(self).__name__}.clip_config is empty, so the CLIP architecture is unknown. "
                "Build the model with `from_clip(...)`, which records the base model's config."
            )
        return CLIPConfig(**copy.deepcopy(self.clip_config))
