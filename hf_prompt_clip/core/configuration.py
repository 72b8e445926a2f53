"""The configuration every prompt-learning model shares."""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import difflib
import functools
import inspect
import math
import numbers
import re
import sys
import types
import typing
import unicodedata
import warnings
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import CLIPConfig, PreTrainedConfig

from .capabilities import Capabilities
from .text_engine import DEFAULT_CHUNK_TOKENS
from .version import __version__, is_newer, upgrade_advice


class InvalidOptionError(TypeError, ValueError):
    """A config option that is unknown or of the wrong type (a `TypeError` and a `ValueError`, so code
    catching either for bad arguments catches it)."""


# ------------------------------------------------------------------ class names

#: Unicode categories of characters that show nothing (control and format characters: zero-width space,
#: joiners, direction marks, the byte-order mark, soft hyphen, ...) or only break lines.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in INVISIBLE_CATEGORIES


def _describe_char(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}" if name else f"U+{ord(char):04X} (a control character)"


def class_name_key(name: str) -> str:
    """What a class name comes down to in a prompt: compatibility forms unified (NFKC: full-width letters,
    ligatures), invisible characters dropped, case folded, `_`, `-` and runs of white space made one space.

    Two labels with the same key give the same (or, to CLIP's lower-casing tokenizer, an identical) prompt,
    so their classes could not be told apart.

    Example:
        >>> class_name_key("Red_Circle") == class_name_key("red  circle") == class_name_key("ｒｅｄ-circle")
        True
    """
    text = unicodedata.normalize("NFKC", name)
    text = "".join(" " if char.isspace() else "" if _invisible(char) else char for char in text)
    return " ".join(re.sub(r"[_\-]", " ", text.casefold()).split())


def _preview(values: Any, count: int = 4) -> str:
    items = list(values)
    shown = ", ".join(map(repr, items[:count]))
    return f"{shown}, ..." if len(items) > count else shown


def _validate_name_list(names: Any, field: str) -> list[str]:
    """`names` as a list of strings, refusing what has no label order or no visible name."""
    kind = type(names).__name__
    if isinstance(names, (str, bytes)):
        raise ValueError(
            f"{field} must be a list of strings in label order, got a single string {names!r}: pass "
            f"[{names!r}] for one class, or the names as a list."
        )
    if isinstance(names, Mapping):
        raise ValueError(
            f"{field} must be a list of strings in label order, got a {kind} ({_preview(names)}): pass a "
            "list whose position i is the name of label i (e.g. list(mapping.values()) when the dict maps "
            "label ids to names, in id order)."
        )
    if isinstance(names, Set):
        raise ValueError(
            f"{field} must be a list of strings in label order, got a {kind} ({_preview(sorted(map(str, names)))}): "
            "its order follows string hashing, which changes between runs, so the label ids would too. "
            "Pass a list in the order of your label ids, e.g. sorted(names)."
        )
    is_array = hasattr(names, "__array__") and getattr(names, "ndim", None) == 1
    if not isinstance(names, Sequence) and not is_array:
        what = (
            "an iterator (used up once, with no fixed length)"
            if isinstance(names, Iterator)
            else "not a list"
        )
        raise ValueError(
            f"{field} must be a list of strings in label order, got a {kind}, {what}: pass list(...) of "
            "it, in label order."
        )
    names = list(names)
    if not names:
        raise ValueError(
            f"{field} is empty: a classifier needs at least one class. "
            f"Pass the names of the classes to recognise, e.g. {field}=['cat', 'dog']."
        )
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{field}[{index}] must be a non-empty string, got {name!r}.")
        if not any(not char.isspace() and not _invisible(char) for char in name):
            raise ValueError(
                f"{field}[{index}] must be a non-empty string, got {name!r}, which has no visible character "
                f"({', '.join(_describe_char(char) for char in dict.fromkeys(name))}): give the class's name."
            )
    return [str(name) for name in names]


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
        ValueError: on anything but a sequence (a set's order depends on hashing; a dict, a generator
            or a single string have no label order), an empty list, a non-string or blank name (also one
            of invisible characters only), duplicated names, or names that differ only in case, `_`/`-`,
            white space or Unicode compatibility forms (`class_name_key`): their prompts are the same.
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
    keys: dict[str, int] = {}
    clashes = []
    for index, name in enumerate(names):
        key = class_name_key(name)
        if key in keys:
            first = keys[key]
            clashes.append(f"{names[first]!r} (position {first}) and {name!r} (position {index})")
        keys.setdefault(key, index)
    if clashes:
        raise ValueError(
            "class_names must name different classes, but "
            + "; ".join(clashes[:5])
            + (f" (and {len(clashes) - 5} more pairs)" if len(clashes) > 5 else "")
            + " give the same prompt: they differ only in letter case, '_', '-', white space or Unicode "
            "compatibility forms, which the prompt (and CLIP's lower-casing tokenizer) does not keep apart, "
            "so the model could not tell the classes apart. Merge them, or rename one so the names differ in "
            "words (e.g. 'crane (bird)' and 'crane (machine)')."
        )
    return names


def warn_about_class_names(names: Sequence[str]) -> None:
    """Warn about a class list that is valid but likely a mistake: a single class (always predicted, with
    probability 1) and names with invisible characters (the prompt differs from the name one reads)."""
    if len(names) == 1:
        warnings.warn(
            f"class_names has a single class ({names[0]!r}): every image gets it with probability 1, so "
            "accuracy is 100 % whatever the model sees. Give at least two classes (the ones it should be "
            "told apart from).",
            UserWarning,
            stacklevel=3,
        )
    for index, name in enumerate(names):
        hidden = [char for char in dict.fromkeys(name) if _invisible(char)]
        if hidden:
            warnings.warn(
                f"class_names[{index}] {name!r} (position {index}) contains invisible characters "
                f"({', '.join(map(_describe_char, hidden))}): the prompt gets them although no one reads "
                "them, and the label differs from the name you see; remove them (e.g. keep only "
                "ch.isprintable() characters).",
                UserWarning,
                stacklevel=3,
            )


# ------------------------------------------------------------------ option values

#: The words a boolean option reads from text (any letter case).
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

#: Class names and prompt texts are checked as lists of names (`validate_class_names`), not by type.
_NAME_LIST_FIELDS = frozenset({"class_names", "prompt_names"})

#: Keywords transformers itself passes to or saves in a config (beyond its dataclass fields).
TRANSFORMERS_CONFIG_KEYWORDS = frozenset(
    {
        "model_type",
        "auto_map",
        "name_or_path",
        "torch_dtype",
        "num_labels",
        "output_attentions",
        "attn_implementation",
        "experts_implementation",
        "per_layer_config",
        "trust_remote_code",
        "return_unused_kwargs",
    }
)

# True while transformers builds a config from a saved dict (`from_dict`): keys of configs saved by other
# versions then pass as transformers lets them, instead of being refused as a user's typo.
_LOADING_SAVED_CONFIG: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "loading_saved_config", default=False
)
# The keywords a config is being built with (`PromptCLIPConfig.given`), while its __init__ runs.
_GIVEN_KEYWORDS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "given_keywords", default=frozenset()
)


class OptionTypeMismatch(TypeError):
    """`coerce_option` could not read a value as the field's type (the caller words the error)."""


@functools.cache
def option_types(config_class: type) -> dict[str, Any]:
    """The fields of a prompt learner's config beyond transformers' own (`PreTrainedConfig`), with their
    types resolved (annotations are strings here); `Any` where one cannot be resolved."""
    hints: dict[str, Any] = {}
    for klass in reversed(config_class.__mro__):
        module = sys.modules.get(klass.__module__)
        for name, hint in inspect.get_annotations(klass).items():
            if isinstance(hint, str):
                try:
                    hint = eval(hint, vars(module) if module else {})  # a class's own annotation
                except Exception:
                    hint = Any
            hints[name] = hint
    base = {field.name for field in dataclasses.fields(PreTrainedConfig)}
    return {
        field.name: hints.get(field.name, Any)
        for field in dataclasses.fields(config_class)
        if field.name not in base
    }


def type_name(hint: Any) -> str:
    """`int`, `list[str] | None`, ... for messages."""
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def coerce_option(value: Any, hint: Any, *, words: bool = False) -> Any:
    """`value` as a field of type `hint` holds it, or `OptionTypeMismatch`.

    Exact types, except: a float field takes an int (`1` -> `1.0`), a list field a tuple and a tuple
    field a list (element by element), a dict field a mapping or a config (`to_dict()`). Floats must be
    finite. A bool field takes only `True`/`False` unless `words` (values read from the command line):
    then also `true/false`, `yes/no`, `1/0` in any letter case. An int field never takes a bool, a
    fraction or a string (`4.5` and `"4.5"` are refused, not truncated).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, (str, typing.ForwardRef, typing.TypeVar)):
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is not type(None):
                try:
                    return coerce_option(value, option, words=words)
                except OptionTypeMismatch:
                    pass
        raise OptionTypeMismatch(hint)
    if hint is type(None) or hint is None:
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
        if words and isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
            return BOOLEAN_WORDS[value.strip().lower()]
        if words and isinstance(value, numbers.Integral) and value in (0, 1):
            return bool(value)
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is list or origin is list:
        if isinstance(value, (list, tuple)):
            return [coerce_option(item, args[0] if args else Any, words=words) for item in value]
    elif hint is tuple or origin is tuple:
        if isinstance(value, (list, tuple)):
            if not args or (len(args) == 2 and args[1] is Ellipsis):
                return tuple(coerce_option(item, args[0] if args else Any, words=words) for item in value)
            if len(args) == len(value):
                return tuple(coerce_option(item, arg, words=words) for item, arg in zip(value, args))
    elif hint is dict or origin is dict:
        if isinstance(value, PreTrainedConfig):
            return value.to_dict()
        if isinstance(value, Mapping):
            return dict(value)
    elif origin is typing.Literal:
        if value in args:
            return value
    elif isinstance(hint, type):
        if isinstance(value, hint):
            return value
    else:
        return value  # a type this check does not know: left to the config
    raise OptionTypeMismatch(hint)


def type_advice(hint: Any, words: bool = False) -> str:
    """What to give instead of a value `coerce_option` refused."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if bool in allowed:
        return "write true or false (also yes/no, 1/0)" if words else "pass True or False"
    if int in allowed:
        return "give a whole number (fractions are not rounded)"
    if float in allowed:
        return "give a finite number"
    if str in allowed:
        return "give text"
    return f"give a {type_name(hint)}"


def describe_type(hint: Any, words: bool = False) -> str:
    """`int`, `a bool (true/false)`, ... for messages."""
    if hint is bool:
        return "a bool (true/false, yes/no, 1/0)" if words else "a bool (True or False)"
    return type_name(hint)


# ------------------------------------------------------------------ option rules

#: The key of an option's `OptionRule` in its dataclass field's metadata (`option(...)`).
OPTION_RULE = "hf_prompt_clip.option_rule"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class OptionRule:
    """The values an option takes beyond its type: a range (`minimum`/`maximum` inclusive, `above`/`below`
    exclusive) or a list of `choices`. For a list option the rule applies to every item. `None` (an
    optional option left unset) always passes.

    Declared where the option is defined (`option(...)`), checked on every assignment of the option
    (`check_option_value`), so a config never holds a value that means nothing.

    Example:
        >>> OptionRule(minimum=0).problem("ctx_init_std", -1.0)
        'ctx_init_std must be at least 0, got -1.0'
        >>> OptionRule(above=0, maximum=1).describe()
        'lie in (0, 1]'
    """

    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[Any, ...] | None = None
    why: str = ""

    def describe(self) -> str:
        """What a value must do: `"be at least 1"`, `"be positive"`, `"lie in [0, 1]"`, `"be one of ('end', 'front')"`."""
        if self.choices is not None:
            return f"be one of {self.choices}"
        low = self.minimum if self.minimum is not None else self.above
        high = self.maximum if self.maximum is not None else self.below
        if low is not None and high is not None:
            left = "[" if self.minimum is not None else "("
            right = "]" if self.maximum is not None else ")"
            return f"lie in {left}{_number(low)}, {_number(high)}{right}"
        if self.above is not None:
            return "be positive" if self.above == 0 else f"be above {_number(self.above)}"
        if self.minimum is not None:
            return f"be at least {_number(self.minimum)}"
        if self.below is not None:
            return f"be below {_number(self.below)}"
        return f"be at most {_number(self.maximum)}" if self.maximum is not None else "be any value"

    def _fits(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return True  # not a number: the type check refuses it, with its own message
        return not (
            (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
            or (self.above is not None and value <= self.above)
            or (self.below is not None and value >= self.below)
        )

    def problem(self, name: str, value: Any) -> str | None:
        """Why `value` is not a value of option `name` (`"n_ctx must be at least 1, got 0"`), or `None`."""
        if value is None:
            return None
        items = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
        for index, item in items:
            if not self._fits(item):
                where = name if index is None else f"{name}[{index}]"
                return f"{where} must {self.describe()}, got {item!r}"
        return None


def option(
    default: Any = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    choices: Sequence[Any] | None = None,
    why: str = "",
) -> Any:
    """A config field with the values it takes (`OptionRule`), checked wherever the option is set.

    Args:
        default: the field's default (immutable: lists default to `None`).
        minimum / maximum: inclusive bounds; above / below: exclusive bounds (for every item of a list).
        choices: the only values allowed.
        why: what the value means, added to the refusal (e.g. "the hidden width is E // r").

    Example:
        ```python
        @strict
        class MyConfig(PromptCLIPConfig):
            n_ctx: int = option(16, minimum=1)
            ctx_init_std: float = option(0.02, minimum=0, why="the std of the random initialisation")
        ```
    """
    rule = OptionRule(minimum, maximum, above, below, None if choices is None else tuple(choices), why)
    return dataclasses.field(default=default, metadata={OPTION_RULE: rule})


@functools.cache
def option_rules(config_class: type) -> dict[str, OptionRule]:
    """The `OptionRule` of every option of `config_class` that declares one (`option(...)`); an option a
    subclass redefines with only a new default (`n_ctx: int = 4`) keeps the rule of the class defining it."""
    rules: dict[str, OptionRule] = {}
    for klass in reversed(config_class.__mro__):
        if dataclasses.is_dataclass(klass):
            for field in dataclasses.fields(klass):
                if OPTION_RULE in field.metadata:
                    rules[field.name] = field.metadata[OPTION_RULE]
    return rules


def option_problem(config_class: type, name: str, value: Any) -> str | None:
    """Why `value` is outside the values of option `name` of `config_class` (its `OptionRule`), with what
    the option means where the rule says; `None` when it fits or the option declares no rule."""
    rule = option_rules(config_class).get(name)
    problem = rule.problem(name, value) if rule is not None else None
    return f"{problem} ({rule.why})" if problem and rule.why else problem


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


def check_option_value(config_class: type, name: str, value: Any) -> Any:
    """`value` for option `name` of `config_class` (`coerce_option`, then its `OptionRule`).

    Raises:
        InvalidOptionError: the wrong type, naming the field, the type, the value and what to give.
        ValueError: a value outside the option's rule (`option(...)`: a range or choices).
    """
    hint = option_types(config_class).get(name, Any)
    try:
        coerced = coerce_option(value, hint)
    except OptionTypeMismatch:
        default = getattr(config_class, name, None)
        example = f", e.g. {name}={default!r}" if default is not None else ""
        raise InvalidOptionError(
            f"{config_class.__name__}.{name} takes {describe_type(hint)}, got {value!r} "
            f"({type(value).__name__}): {type_advice(hint)}{example}."
        ) from None
    problem = option_problem(config_class, name, coerced)
    if problem:
        default = getattr(config_class, name, None)
        example = f"; e.g. {name}={default!r}" if default is not None else ""
        raise ValueError(f"{config_class.__name__}.{problem}{example}.")
    return coerced


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
