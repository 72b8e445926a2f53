"""PLOT++'s initial prompt phrases: N hand-written context phrases per benchmark.

Room: `methods/`.

PLOT++ starts its N text contexts from N phrases that precede the class name ("a photo of a",
"this is a photo", ...). `REFERENCE_PHRASES` holds the authors' lists (CHENGY12/PLOT,
`plot-pp/trainers/plotpp.py`, keyed there by Dassl dataset names) under our registry keys, word for
word (surrounding spaces removed), including the reference's quirks: the Flowers and Pets lists repeat one phrase (two of the
four contexts start equal), and phrase lengths differ within a list. Each context here is as long
as its own phrase in BPE tokens; the reference cuts or pads every phrase to the word count of the
first one (docs/methods.md).

Benchmarks without a reference list take `phrases_from_templates`: the words before the class name
in the benchmark's templates.
"""

from __future__ import annotations

from collections.abc import Sequence

REFERENCE_PHRASES: dict[str, tuple[str, ...]] = {
    "caltech101": ("a photo of a", "this is a photo", "this is picture of", "one picture of a"),
    "dtd": (
        "a photo of a texture",
        "this is a photo texture",
        "this is a picture texture",
        "one picture of a texture",
    ),
    "eurosat": (
        "a centered satellite photo of",
        "a centered satellite picture of",
        "this is centered satellite photo of",
        "one centered satellite photo of a",
    ),
    "fgvc_aircraft": (
        "a photo of an aircraft",
        "a picture of an aircraft",
        "this is aircraft picture of",
        "one picture of an aircraft",
    ),
    "food101": (
        "a photo of a food",
        "this is a food photo",
        "this is food picture of",
        "one picture of a food",
    ),
    "imagenet": ("a photo of a", "this is a photo", "this is a", "one picture of a"),
    "oxford_flowers": (
        "a photo of a flower",
        "one picture of a flower",
        "this is flower picture of",
        "one picture of a flower",
    ),
    "oxford_pets": (
        "a photo of a pet",
        "one picture of a pet",
        "this is pet picture of",
        "one picture of a pet",
    ),
    "stanford_cars": ("a photo of a", "this is a photo", "this is picture of", "one picture of a"),
    "sun397": ("a photo of a", "this is a photo", "this is picture of", "one picture of a"),
    "ucf101": (
        "a photo of a person doing",
        "this is a photo people doing",
        "this is picture of people doing",
        "one picture of a person doing",
    ),
}

#: Used where a benchmark's templates give fewer phrases than prompts (the reference's generic list).
GENERIC_PHRASES: tuple[str, ...] = (
    "a photo of a",
    "this is a photo",
    "this is picture of",
    "one picture of a",
)


def phrases_from_templates(templates: Sequence[str], count: int) -> list[str]:
    """Up to `count` distinct context phrases: the words before `{}` in templates that end with the name.

    A template qualifies when only punctuation follows its `{}` (the class name comes last, as in
    PLOT's prompts); missing phrases are filled from `GENERIC_PHRASES`.

    Example:
        >>> phrases_from_templates(["a photo of a {}.", "a {} in a video game.", "art of the {}."], 4)
        ['a photo of a', 'art of the', 'this is a photo', 'this is picture of']
    """
    phrases: list[str] = []
    for template in templates:
        before, _, after = template.partition("{}")
        phrase = before.strip()
        if phrase and not after.strip(" .,;:!?") and phrase not in phrases:
            phrases.append(phrase)
    for phrase in GENERIC_PHRASES:
        if phrase not in phrases:
            phrases.append(phrase)
    return phrases[:count]


def initial_phrases(benchmark_key: str, templates: Sequence[str], count: int) -> list[str]:
    """The reference's phrases for `benchmark_key` when it has `count` of them, else ones from templates."""
    reference = REFERENCE_PHRASES.get(benchmark_key)
    if reference is not None and len(reference) == count:
        return list(reference)
    return phrases_from_templates(templates, count)
