"""Captions of synthetic scenes with varied wording, and the prompt templates of the synthetic benchmarks.

Room: `synthetic/`.

Captions describe what `render` drew: "a red star", "a photo of a small red star on a striped
background", "star, red", "a drawing of a red star". A caption names the colour and the shape
(`mention="both"`), or only one of them (`"shape"`, `"colour"`), which teaches the text tower what
the shapes-only and colours-only prompts mean. Every template in `CAPTION_TEMPLATES` (the prompt
forms of the package's zero-shot models) also appears among the captions, so the tokenizer and
the text tower know them.

Most captions also name the drawing style before the object (`styled_caption` returns the style a
caption commits to): "a photo of a" means a clean photo, "a drawing / sketch / outline of a" an
outline, "a blurry / noisy / low quality photo of a" (and "a bad photo of the") a noisy image, and
"a (photo of a) tiny / small ..." the small variant. Pretraining treats a styled caption as true
only of images in that style, so the words before the class name matter; captions naming no style
("a red star", "star, red", "itap of a red star.") are true of the class in every style.
"""

from __future__ import annotations

import numpy as np

from ..data.templates import IMAGENET_SELECT_TEMPLATES
from .render import Scene

MENTIONS: tuple[str, ...] = ("both", "shape", "colour")

#: The zero-shot template of the synthetic benchmarks (as for ImageNet).
ZERO_SHOT_TEMPLATE = "a photo of a {}."
#: The zero-shot template of the colours-only benchmark, whose class names are bare colours ("red").
COLOUR_TEMPLATE = "a photo of a {} shape."

#: The 7 templates CLIP selected on ImageNet (its prompt ensemble).
CLIP_SELECT_TEMPLATES: tuple[str, ...] = IMAGENET_SELECT_TEMPLATES

#: Templates written for this world: its zero-shot template and one per drawing style.
SYNTHETIC_TEMPLATES: tuple[str, ...] = (
    ZERO_SHOT_TEMPLATE,
    "a photo of the {}.",
    "a drawing of a {}.",
    "a blurry photo of a {}.",
    "a photo of a small {}.",
    "a {} on a background.",
)

#: Every template the captions use verbatim (the package's prompt forms for this world).
CAPTION_TEMPLATES: tuple[str, ...] = SYNTHETIC_TEMPLATES + CLIP_SELECT_TEMPLATES

#: Words before the class name that say how the image is drawn. A caption that uses one commits to
#: that style: in pretraining it is a negative for images of the same class in another style, so
#: the text tower has to read the words before the class name. "a photo of a" means a clean photo;
#: "a photo of a small / tiny" means the `small` variant.
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "clean": ("a photo of", "a picture of", "an image of", "a rendering of"),
    "outline": ("a drawing of", "a sketch of", "an outline of", "a line drawing of"),
    "noisy": ("a blurry photo of", "a noisy photo of", "a low quality photo of"),
    "small": ("a photo of", "a picture of", "an image of"),
}
#: Templates that commit to a drawing style (see `STYLE_PHRASES`).
STYLE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "clean": ("a photo of a {}.", "a photo of the {}.", "a photo of the large {}."),
    "outline": ("a drawing of a {}.",),
    "noisy": ("a blurry photo of a {}.", "a bad photo of the {}."),
    "small": ("a photo of a small {}.", "a photo of the small {}."),
}
#: Templates that say nothing about the drawing style: true of the class in any style.
NEUTRAL_TEMPLATES: tuple[str, ...] = (
    "a {} on a background.",
    "itap of a {}.",
    "a origami {}.",
    "a {} in a video game.",
    "art of the {}.",
)
#: Share of free-form captions that start with a style phrase (the rest name no style).
STYLED_SHARE = 0.75
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "gradient": ("gradient", "smooth"),
    "striped": ("striped",),
    "checkered": ("checkered", "chequered"),
    "mottled": ("mottled", "blotchy"),
}
COLOUR_NOUNS: tuple[str, ...] = ("shape", "object", "thing")


def size_word(scene: Scene, rng: np.random.Generator) -> str | None:
    """A size word true of the scene: "tiny" / "small" for the `small` variant (a style cue), "large" /
    "big" for a big object of another variant, else `None`."""
    if scene.variant == "small":
        return str(rng.choice(["tiny", "small"]))
    if scene.radius > 0.36:
        return str(rng.choice(["large", "big"]))
    return None


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def noun_phrase(scene: Scene, mention: str, rng: np.random.Generator) -> str:
    """What the caption calls the object: "red star", "star", "star shape", "red shape", ..."""
    if mention == "both":
        options = [f"{scene.colour} {scene.shape}"] * 3 + [f"{scene.colour} {scene.shape} shape"]
    elif mention == "shape":
        options = [scene.shape, f"{scene.shape} shape"]
    elif mention == "colour":
        options = [f"{scene.colour} {noun}" for noun in COLOUR_NOUNS]
    else:
        raise ValueError(f"Unknown mention {mention!r}; valid mentions are: {', '.join(MENTIONS)}.")
    return str(rng.choice(options))


def styled_caption(scene: Scene, rng: np.random.Generator, mention: str = "both") -> tuple[str, str | None]:
    """A random caption of `scene` naming its colour and/or shape (`mention`), true to what is drawn,
    and the drawing style it commits to (`scene.variant`), or `None` when it names no style.

    Styled captions say the style before the object: "a photo of a red star." (clean), "a sketch of
    a red star" (outline), "a blurry photo of a red star." (noisy), "a photo of a tiny red star"
    (small). Unstyled ones ("a red star", "star, red", "a red star on a striped background", "itap
    of a red star.") are true of the class in any style.
    """
    phrase = noun_phrase(scene, mention, rng)
    draw = rng.random()
    if draw < 0.3:
        if rng.random() < 0.25:
            return str(rng.choice(NEUTRAL_TEMPLATES)).replace("{}", phrase), None
        return str(rng.choice(STYLE_TEMPLATES[scene.variant])).replace("{}", phrase), scene.variant
    if draw < 0.37 and mention == "both":
        return f"{scene.shape}, {scene.colour}", None
    styled = rng.random() < STYLED_SHARE
    style = scene.variant if styled else None
    size = None
    if scene.variant == "small":
        if styled or rng.random() < 0.5:
            size, style = size_word(scene, rng), "small"
    elif styled and rng.random() < 0.5:
        size = size_word(scene, rng)
    if size is not None:
        phrase = f"{size} {phrase}"
    text = f"{_article(phrase)} {phrase}"
    if styled:
        text = f"{rng.choice(STYLE_PHRASES[scene.variant])} {text}"
    if rng.random() < 0.35:
        text = f"{text} on a {rng.choice(BACKGROUND_WORDS[scene.background.kind])} background"
    return (text + "." if rng.random() < 0.5 else text), style


def caption(scene: Scene, rng: np.random.Generator, mention: str = "both") -> str:
    """A random caption of `scene` (the text of `styled_caption`)."""
    return styled_caption(scene, rng, mention)[0]
