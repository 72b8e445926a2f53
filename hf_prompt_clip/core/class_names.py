"""Class lists: names in label order that give different prompts.

Room: core (the contract of a method). A class list is validated once, here (`validate_class_names`), by
every config and model that takes one.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Iterator, Mapping, Sequence, Set
from typing import Any

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
