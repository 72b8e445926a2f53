"""The configuration every prompt-learning model shares."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import CLIPConfig, PreTrainedConfig

from .text_engine import DEFAULT_CHUNK_TOKENS


def _validate_name_list(names: Any, field: str) -> list[str]:
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise ValueError(f"{field} must be a list of strings, got {type(names).__name__}: {names!r}.")
    names = list(names)
    if not names:
        raise ValueError(
            f"{field} is empty: a classifier needs at least one class. "
            f"Pass the names of the classes to recognise, e.g. {field}=['cat', 'dog']."
        )
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{field}[{index}] must be a non-empty string, got {name!r}.")
    return names


def validate_prompt_names(prompt_names: Any, class_names: list[str]) -> list[str]:
    """Check prompt texts given per class (they may repeat, unlike label names)."""
    names = _validate_name_list(prompt_names, "prompt_names")
    if len(names) != len(class_names):
        raise ValueError(
            f"prompt_names has {len(names)} entries but there are {len(class_names)} classes; "
            "give one prompt text per class, in label order."
        )
    return names


def validate_class_names(class_names: Any) -> list[str]:
    """Check a class list and return it as a list of strings.

    Raises:
        ValueError: on an empty list, a non-string or blank name, or duplicated names.
    """
    names = _validate_name_list(class_names, "class_names")
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
            + ". Merge or rename the duplicated classes (labels must be unique; if two classes "
            "really share a prompt text, as two pairs of OpenAI's ImageNet names do, give unique "
            "labels and the shared texts as prompt_names)."
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
            Names of the classes, in label order, unique. `id2label` and `label2id` are derived
            from them, and prompts use them unless `prompt_names` is given.
        prompt_names (`list[str]`, *optional*):
            The text each class contributes to its prompts, when it differs from its label (one
            per class; may repeat). OpenAI's ImageNet names, for example, call two different
            classes "missile": their labels must differ, their prompts need not.
        fast (`bool`, *optional*, defaults to `True`):
            Use the exact fast text engine (EOS truncation, shared-prefix cache, batched chunks).
            `False` runs the straightforward reference path; both give the same results.
        text_chunk_tokens (`int`, *optional*, defaults to 32768):
            Most token positions per text-encoder call in the fast engine; lower it to reduce
            peak memory, raise it for fewer, larger calls.
        stage_epochs (`list[int]`, *optional*):
            Epochs of each of the method's training stages (`model.training_stages()`); `None`
            uses the training configuration's epochs in every stage.
        stage_learning_rates (`list[float]`, *optional*):
            Peak learning rate of each training stage; `None` uses the training configuration's.
        training_stage (`str`, *optional*):
            The training stage the adapter was last set to (`model.set_training_stage`), saved so a
            loaded adapter scores as it did: methods whose logits differ between stages read it
            (PLOT++ adds the global logits in its first stage). `None`: never trained.
    """

    model_type = "prompt_clip"
    #: Fields that record derived values for loading (a backbone's config), not options: cards skip them.
    recorded_fields: ClassVar[tuple[str, ...]] = ()

    base_model_name_or_path: str | None = None
    base_model_revision: str | None = None
    clip_config: dict | None = None
    class_names: list[str] | None = None
    prompt_names: list[str] | None = None
    fast: bool = True
    text_chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    stage_epochs: list[int] | None = None
    stage_learning_rates: list[float] | None = None
    training_stage: str | None = None

    def __post_init__(self, **kwargs):
        if self.text_chunk_tokens < 1:
            raise ValueError(f"text_chunk_tokens must be positive, got {self.text_chunk_tokens}.")
        for name in ("stage_epochs", "stage_learning_rates"):
            values = getattr(self, name)
            if values is not None:
                values = list(values)
                if not values or min(values) <= 0:
                    raise ValueError(f"{name} must list a positive value per training stage, got {values}.")
                setattr(self, name, values)
        if isinstance(self.clip_config, CLIPConfig):
            self.clip_config = self.clip_config.to_dict()
        elif self.clip_config is not None:
            self.clip_config = copy.deepcopy(dict(self.clip_config))
        if self.class_names is not None:
            self.set_class_names(self.class_names, self.prompt_names)
            kwargs.pop("num_labels", None)
        elif self.prompt_names is not None:
            raise ValueError("prompt_names needs class_names: give the labels of the classes too.")
        super().__post_init__(**kwargs)

    def set_class_names(self, class_names: list[str], prompt_names: list[str] | None = None) -> None:
        """Replace the class list (and prompt texts) and keep `id2label`/`label2id` in step."""
        self.class_names = validate_class_names(class_names)
        self.prompt_names = None if prompt_names is None else validate_prompt_names(prompt_names, class_names)
        self.id2label = dict(enumerate(self.class_names))
        self.label2id = {name: index for index, name in enumerate(self.class_names)}

    @property
    def class_prompt_names(self) -> list[str] | None:
        """The text of each class in prompts: `prompt_names` if given, else the labels."""
        return self.prompt_names if self.prompt_names is not None else self.class_names

    def build_clip_config(self) -> CLIPConfig:
        """A fresh `CLIPConfig` object from the stored dict (never shared with a live model)."""
        if self.clip_config is None:
            raise ValueError(
                f"{type(self).__name__}.clip_config is empty, so the CLIP architecture is unknown. "
                "Build the model with `from_clip(...)`, which records the base model's config."
            )
        return CLIPConfig(**copy.deepcopy(self.clip_config))
