"""Option values: each config field's type and the values it takes, checked where the option is defined.

Room: core (the contract of a method). A method's config declares an option once, as a field
(`n_ctx: int = option(16, minimum=1)`); `check_option_value` reads it as the field's type (`coerce_option`:
no string for a bool, no fraction for an int) and against its rule (`OptionRule`: a range or choices), on
every assignment of a `PromptCLIPConfig` and for the command line's `--option KEY=VALUE`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedConfig


class InvalidOptionError(TypeError, ValueError):
    """A config option that is unknown or of the wrong type (a `TypeError` and a `ValueError`, so code
    catching either for bad arguments catches it)."""


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
