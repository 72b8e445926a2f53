"""Refusals that name settings by their field, spelled for whoever reads them.

Room: core (shared by every floor). Code that refuses a setting writes its message once, marking each
setting it names: `{name}` (the setting) or `{name=value}` (the setting with a value, `value` a Python
literal). `str(error)` spells them as the Python fields they are (`augment_views`, `seeds=(1, 2, 3)`);
the command line spells the same message with its flags (`--augment-views`, `--seed 1 2 3`) from its
one table of flags (`hf_prompt_clip.cli.arguments.FLAGS`). No module below the command line names a flag.

An entry of a setting that holds several (`{method_options[n_ctx]=4}`, a method's option) is spelled as
the entry in Python (`n_ctx=4`, the field of the method's config) and as the holder's flag with the entry on
the command line (`--option n_ctx=4`); a dotted name (`{training.augment_views}`) is a field of a field.

Example:
    >>> error = SettingError("{augment_views} must be positive, got 0; e.g. {augment_views=10}")
    >>> str(error)
    'augment_views must be positive, got 0; e.g. augment_views=10'
    >>> spell(error.setting_template, {"augment_views": Flag("--augment-views")})
    '--augment-views must be positive, got 0; e.g. --augment-views 10'
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: `{name}` or `{name=value}`: a setting named in a message; `name` an identifier, a dotted field of a field
#: (`training.augment_views`), or an entry of a setting that holds several (`method_options[n_ctx]`).
SETTING = re.compile(
    r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[A-Za-z_][A-Za-z0-9_]*\])?)(?:=([^{}]*))?\}"
)


@dataclass(frozen=True)
class Flag:
    """How the command line spells one setting.

    Attributes:
        flag: the option string (`"--seed"`).
        values: how some values are written on the command line (`{None: "all"}` for `--shots`).
        switch: a flag without a value (`store_true`): `{name=True}` is the flag alone.
    """

    flag: str
    values: Mapping[Any, str] = field(default_factory=dict)
    switch: bool = False

    def spell(self, value: str | None, entry: str | None = None) -> str:
        """The flag with `value` (a Python literal's text) as the command line writes it."""
        if entry is not None:  # --option KEY=VALUE
            return f"{self.flag} {entry}" + (f"={value}" if value is not None else "=VALUE")
        if value is None:
            return self.flag
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return f"{self.flag} {value}"
        if self.switch:
            return self.flag if parsed else f"no {self.flag}"
        if isinstance(parsed, (list, tuple)):
            return " ".join([self.flag, *(self._word(item) for item in parsed)])
        return f"{self.flag} {self._word(parsed)}"

    def _word(self, value: Any) -> str:
        try:
            if value in self.values:
                return self.values[value]
        except TypeError:  # unhashable
            pass
        text = str(value)
        return repr(text) if isinstance(value, str) and (not text or " " in text) else text


def spell(template: str, flags: Mapping[str, Flag] | None = None) -> str:
    """`template` with each `{name}` / `{name=value}` spelled as a Python field (`flags=None`) or, where
    `flags` has the setting, as its command-line flag (settings it lacks stay Python fields).

    Example:
        >>> spell("give distinct {seeds}, e.g. {seeds=(1, 2, 3)}")
        'give distinct seeds, e.g. seeds=(1, 2, 3)'
        >>> spell("give distinct {seeds}, e.g. {seeds=(1, 2, 3)}", {"seeds": Flag("--seed")})
        'give distinct --seed, e.g. --seed 1 2 3'
    """

    def one(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        holder, _, entry = name.partition("[")
        entry = entry.rstrip("]")
        flag = None if flags is None else flags.get(holder if entry else name)
        if flag is None:
            shown = entry or name
            return shown if value is None else f"{shown}={value}"
        return flag.spell(value, entry or None)

    return SETTING.sub(one, template)


def setting_template(error: BaseException) -> str | None:
    """The message of `error` with its settings marked (`named`, `SettingError`), or `None`."""
    return getattr(error, "setting_template", None)


def named(error_class: type[BaseException], template: str) -> BaseException:
    """An exception of `error_class` whose message names settings (`template`): `str()` spells them as
    fields, the command line as its flags. For refusals that must keep their type (`PermissionError`).

    Example:
        >>> raise named(PermissionError, "Choose a writable folder ({output_dir})")
        Traceback (most recent call last):
        PermissionError: Choose a writable folder (output_dir)
    """
    error = error_class(spell(template))
    error.setting_template = template
    return error


class SettingError(ValueError):
    """A setting's value refused, the message naming settings by field (`spell`).

    Args:
        template: the message, each setting marked `{name}` or `{name=value}`.
    """

    def __init__(self, template: str):
        super().__init__(spell(template))
        self.setting_template = template
