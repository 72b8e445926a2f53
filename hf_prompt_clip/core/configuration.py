"""The configuration every prompt-learning model shares: `PromptCLIPConfig`.

Room: core (the contract of a method). Its options are checked where they are defined (`core/options.py`),
its class lists by `core/class_names.py`; a method's config extends it with its own options, states its
`capabilities` and the `benchmark_defaults` it takes from a benchmark.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import difflib
import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import CLIPConfig, PreTrainedConfig

from ..utils.version import __version__, is_newer, upgrade_advice
from .capabilities import Capabilities
from .class_names import validate_class_names, validate_prompt_names, warn_about_class_names
from .options import (
    _NAME_LIST_FIELDS,
    TRANSFORMERS_CONFIG_KEYWORDS,
    InvalidOptionError,
    check_option_value,
    option,
    option_types,
)

#: Most token positions per text-encoder call of the fast text engine (`text_chunk_tokens`' default).
DEFAULT_CHUNK_TOKENS = 32768

# True while transformers builds a config from a saved dict (`from_dict`): keys of configs saved by other
# versions then pass as transformers lets them, instead of being refused as a user's typo.
_LOADING_SAVED_CONFIG: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "loading_saved_config", default=False
)
# The keywords a config is being built with (`PromptCLIPConfig.given`), while its __init__ runs.
_GIVEN_KEYWORDS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "given_keywords", default=frozenset()
)


def unknown_keywords(config_class: type, keywords: Mapping[str, Any], also: Sequence[str] = ()) -> list[str]:
    """The keywords that are neither fields of `config_class`, nor in `also`, nor transformers' own."""
    valid = (
        set(option_types(config_class))
        | {field.name for field in dataclasses.fields(config_class)}
        | set(also)
    )
    return [
        key
        for key in keywords
        if key not in valid
        and key not in TRANSFORMERS_CONFIG_KEYWORDS
        and not key.startswith("_")
        and not hasattr(PreTrainedConfig, key)
    ]


def check_config_keywords(
    config_class: type, keywords: Mapping[str, Any], where: str, also: Sequence[str] = ()
) -> None:
    """Refuse keywords that are neither options of `config_class` nor transformers' own config keywords,
    naming the closest valid ones (`also`: further valid names, e.g. `from_clip`'s own arguments).

    Raises:
        InvalidOptionError: a `TypeError` and a `ValueError`.
    """
    options = set(option_types(config_class))
    unknown = unknown_keywords(config_class, keywords, also)
    if not unknown:
        return
    retired = getattr(config_class, "retired_options", {})
    for key in unknown:
        if key in retired:
            raise InvalidOptionError(retired_option_problem(config_class, key, keywords[key]))
    described = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(options | set(also)), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        described.append(f"{key!r}{hint}")
    own = sorted(options - set(option_types(PromptCLIPConfig)))
    plural = "s" if len(unknown) > 1 else ""
    raise InvalidOptionError(
        f"{where} got an unknown keyword{plural} {', '.join(described)}. {config_class.__name__} takes "
        f"{', '.join(own) or 'no options of its own'} (and the shared "
        f"{', '.join(sorted(option_types(PromptCLIPConfig)))}). Fix the spelling: unknown keywords are "
        "refused, not ignored."
    )


def retired_option_problem(config_class: type, name: str, value: Any) -> str:
    """Why option `name` (given as `value`) is refused: `config_class` no longer has it
    (`PromptCLIPConfig.retired_options`), and what to use instead."""
    why = config_class.retired_options[name][1]
    return f"{config_class.__name__} has no option {name} (got {name}={value!r}): {why}."


class AdapterVersionError(ValueError):
    """A saved config from a newer hf-prompt-clip release has settings this release does not know."""


def check_saved_version(config_class: type, keywords: Mapping[str, Any], saved_version: str | None) -> None:
    """A saved config's keys that `config_class` does not know: refused when a newer release wrote them
    (the adapter would load without settings it depends on), a warning otherwise.

    Raises:
        AdapterVersionError: naming the keys, both versions and the upgrade command.
    """
    unknown = sorted(unknown_keywords(config_class, keywords))
    if not unknown:
        return
    if is_newer(saved_version):
        raise AdapterVersionError(
            f"This {config_class.__name__} was saved by hf-prompt-clip {saved_version}, which added "
            f"{', '.join(unknown)}; this is hf-prompt-clip {__version__}, which does not know "
            f"{'them' if len(unknown) > 1 else 'it'} and would load the adapter without. Upgrade: "
            f"{upgrade_advice(saved_version)}."
        ) from None
    warnings.warn(
        f"The saved {config_class.__name__} has settings this release does not know, kept but unused: "
        f"{', '.join(unknown)} (saved by hf-prompt-clip {saved_version or 'an unknown version'}, this is "
        f"{__version__}).",
        stacklevel=4,
    )


@strict
class PromptCLIPConfig(PreTrainedConfig):
    r"""Configuration shared by all prompt learners that wrap a frozen `CLIPModel`.

    Options are checked on every assignment against their field's type (`coerce_option`: no string for a
    bool, no fraction for an int; an int is taken for a float) and against the values they take, declared
    where each option is defined (`option(...)`: a range or choices), class lists must pass
    `validate_class_names`, and a keyword that is no option
    is refused with the closest valid names (`check_config_keywords`) unless the config is read back
    from a saved one (`from_dict`, `from_pretrained`, a `to_dict()` output), whose keys transformers
    handles.

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
        hf_prompt_clip_version (`str`, *optional*):
            The hf-prompt-clip release that saved the config (written by `save_pretrained`). Loading a
            config of a newer release with settings this one does not know is refused, naming the
            upgrade (`AdapterVersionError`).
    """

    model_type = "prompt_clip"
    #: Fields that record derived values for loading (a backbone's config), not options: cards skip them.
    recorded_fields: ClassVar[tuple[str, ...]] = ()
    #: Options the method's config had in earlier releases and no longer has: name -> (the value those
    #: releases saved, why it went and what to use instead). A saved config holding that value loads as
    #: before, without the key; any other value, or the option given by a user, is refused with the reason.
    retired_options: ClassVar[dict[str, tuple[Any, str]]] = {}

    base_model_name_or_path: str | None = None
    base_model_revision: str | None = None
    clip_config: dict | None = None
    class_names: list[str] | None = None
    prompt_names: list[str] | None = None
    fast: bool = True
    text_chunk_tokens: int = option(DEFAULT_CHUNK_TOKENS, minimum=1)
    stage_epochs: list[int] | None = option(minimum=1)
    stage_learning_rates: list[float] | None = option(above=0)
    training_stage: str | None = None
    hf_prompt_clip_version: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)  # transformers makes the class a keyword-only dataclass
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args, **keywords):
            token = _GIVEN_KEYWORDS.set(frozenset(keywords))
            try:
                init(self, *args, **keywords)
            finally:
                _GIVEN_KEYWORDS.reset(token)

        cls.__init__ = __init__

    @staticmethod
    def given(name: str) -> bool:
        """In `__post_init__`: whether the config is being built with option `name` given (not its default);
        lets a config refuse two options that say the same thing.

        Example:
            ```python
            def __post_init__(self, **kwargs):
                if self.given("a") and self.given("b"):
                    raise ValueError("a and b both set ...; keep one of them.")
            ```
        """
        return name in _GIVEN_KEYWORDS.get()

    def read_from_saved(self) -> bool:
        """In `__post_init__`: whether the config is read back from a saved one (`from_dict`,
        `from_pretrained`, a `to_dict()` output) rather than built by a user."""
        return _LOADING_SAVED_CONFIG.get() or self.transformers_version is not None

    def __setattr__(self, name: str, value: Any) -> None:
        # every option is checked against its field's type on every assignment (construction, loading,
        # later changes): a string is no bool, 4.5 no int; an int becomes a float where one is expected
        if name in option_types(type(self)) and name not in _NAME_LIST_FIELDS:
            value = check_option_value(type(self), name, value)
        super().__setattr__(name, value)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs):
        # a saved config: keys that other versions wrote pass as transformers lets them (not a user's typo)
        token = _LOADING_SAVED_CONFIG.set(True)
        try:
            return super().from_dict(config_dict, **kwargs)
        finally:
            _LOADING_SAVED_CONFIG.reset(token)

    def __post_init__(self, **kwargs):
        # a user's keyword that is no option is refused (a typo would be ignored); a saved config's
        # (`from_dict`, or a dict written by `to_dict`, which records transformers_version) is not
        if not self.read_from_saved():
            check_config_keywords(type(self), kwargs, type(self).__name__)
        else:
            for name, (saved_value, _) in type(self).retired_options.items():
                value = kwargs.pop(name, saved_value)
                if value != saved_value:
                    raise ValueError(retired_option_problem(type(self), name, value))
            check_saved_version(type(self), kwargs, self.hf_prompt_clip_version)
        for name in ("stage_epochs", "stage_learning_rates"):
            if getattr(self, name) is not None and not getattr(self, name):
                raise ValueError(f"{name} must list a value per training stage, got an empty list.")
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
        self.prompt_names = (
            None if prompt_names is None else validate_prompt_names(prompt_names, self.class_names)
        )
        warn_about_class_names(self.class_names)
        self.id2label = dict(enumerate(self.class_names))
        self.label2id = {name: index for index, name in enumerate(self.class_names)}

    @property
    def capabilities(self) -> Capabilities:
        """What generic code needs to know about the method with this configuration (`Capabilities`): a
        method's config states its facts from its own fields. Default: it learns parameters, classes can
        change, no validation split, a frozen image tower."""
        return Capabilities()

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """Config values this method takes from the benchmark it is trained on (its templates, its
        phrases, its super-category...), as defaults: the experiment runner builds the model with
        `{**config.benchmark_defaults(spec), **given}`, so the options the user gives win.

        Args:
            benchmark: the benchmark's registry entry (`hf_prompt_clip.data.BenchmarkSpec`: `key`,
                `template`, `templates`, `ensemble_templates`, `super_category`, `synthetic`, ...).

        Returns:
            Option values, read from this config's own fields where they depend on them (e.g. a list
            sized by `n_prompts`); `{}` by default.
        """
        return {}

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
