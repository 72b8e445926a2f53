"""A seeded renderer of synthetic shapes: one coloured object per image on a muted background.

Room: `synthetic/`.

A picture is described by a `Scene` (shape, colour, position, scale, rotation, shade, background,
distractors, ...) sampled from a random generator, then drawn at any size by `draw_scene`. The scene
is size-independent (coordinates are fractions of the image side), so the same scene can be drawn
at 32 px for the tiny CLIP or larger to look at it.

Styles (`VARIANTS`) mirror ImageNet's shifted test sets:

- `clean`: the filled object (the training domain);
- `outline`: the object drawn as an outline sketch;
- `noisy`: blurred, with Gaussian pixel noise;
- `small`: a tiny object.

`sample_scene` draws the same random numbers in the same order for every variant, so one generator
state gives the same scene restyled by each variant.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEFAULT_IMAGE_SIZE = 32

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "cross",
    "heart",
    "diamond",
    "ring",
    "crescent",
)
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
VARIANTS: tuple[str, ...] = ("clean", "outline", "noisy", "small")
BACKGROUNDS: tuple[str, ...] = ("gradient", "striped", "checkered", "mottled")

#: (hue in degrees, saturation, value) of each colour before per-image shade jitter.
COLOUR_HSV: dict[str, tuple[float, float, float]] = {
    "red": (0.0, 0.9, 0.9),
    "orange": (28.0, 0.92, 1.0),
    "yellow": (55.0, 0.9, 0.95),
    "green": (125.0, 0.8, 0.75),
    "cyan": (185.0, 0.85, 0.9),
    "blue": (225.0, 0.85, 0.9),
    "purple": (280.0, 0.7, 0.75),
    "pink": (330.0, 0.5, 1.0),
}

#: Object radius as a fraction of the image side: (low, high) for each variant.
RADIUS_RANGE: dict[str, tuple[float, float]] = {
    "clean": (0.22, 0.42),
    "outline": (0.22, 0.42),
    "noisy": (0.22, 0.42),
    "small": (0.08, 0.13),
}

MAX_ROTATION = 30.0  # degrees either way: a square never turns into a diamond
SUPERSAMPLE = 4  # the object mask is drawn this many times larger, then averaged down (anti-aliasing)
OUTLINE_WIDTH = 1.3  # outline stroke width in pixels of a 32 px image (scales with the size)
HUE_JITTER = 6.0  # degrees
BACKGROUND_MAX_SATURATION = 0.15


class UnknownNameError(ValueError):
    """A colour, shape, variant or background name that the synthetic world does not have."""


def _check_name(kind: str, name: str, valid: tuple[str, ...]) -> str:
    if name not in valid:
        raise UnknownNameError(f"Unknown {kind} {name!r}; valid {kind}s are: {', '.join(valid)}.")
    return name


def check_shape(name: str) -> str:
    """`name` if it is one of `SHAPES`, else an `UnknownNameError` listing them."""
    return _check_name("shape", name, SHAPES)


def check_colour(name: str) -> str:
    """`name` if it is one of `COLOURS`, else an `UnknownNameError` listing them."""
    return _check_name("colour", name, COLOURS)


def check_variant(name: str) -> str:
    """`name` if it is one of `VARIANTS`, else an `UnknownNameError` listing them."""
    return _check_name("variant", name, VARIANTS)


@dataclass(frozen=True)
class Background:
    """A muted two-tone background.

    Attributes:
        kind: one of `BACKGROUNDS`.
        tone_a, tone_b: the two RGB tones in [0, 1] (low saturation).
        angle: direction of the gradient or stripes, in radians.
        period: stripe or checker period as a fraction of the image side.
        phase: offset of the pattern, as a fraction of one period.
        texture_seed: seed of the random blotches of a `mottled` background.
    """

    kind: str
    tone_a: tuple[float, float, float]
    tone_b: tuple[float, float, float]
    angle: float
    period: float
    phase: float
    texture_seed: int


@dataclass(frozen=True)
class Distractor:
    """A small dim grey mark: a dot (`length == 0`) or a short line, at a position in [0, 1]^2."""

    x: float
    y: float
    length: float
    angle: float
    grey: float


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw one image, independent of the image size.

    Attributes:
        shape, colour, variant: the class (shape and colour) and the drawing style.
        center: object centre (x, y) as fractions of the image side.
        radius: object radius as a fraction of the image side.
        rotation: rotation in degrees; `mirrored` flips the shape left-right first.
        rgb: the object colour in [0, 1] after shade jitter.
        shading: strength and direction (radians) of a soft light gradient across the object.
        background: the background pattern.
        distractors: the small marks scattered behind the object.
        blur, noise, noise_seed: blur radius (pixels of a 32 px image), noise standard deviation
            and noise seed, used by the `noisy` variant only.
    """

    shape: str
    colour: str
    variant: str
    center: tuple[float, float]
    radius: float
    rotation: float
    mirrored: bool
    rgb: tuple[float, float, float]
    shading: tuple[float, float]
    background: Background
    distractors: tuple[Distractor, ...]
    blur: float
    noise: float
    noise_seed: int

    @property
    def class_name(self) -> str:
        """The readable class name, e.g. `"red star"`."""
        return f"{self.colour} {self.shape}"


# ----------------------------------------------------------------------------- sampling


def _jittered_rgb(colour: str, rng: np.random.Generator) -> tuple[float, float, float]:
    hue, saturation, value = COLOUR_HSV[colour]
    hue = (hue + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 360.0
    saturation = min(1.0, saturation * rng.uniform(0.85, 1.08))
    value = min(1.0, value * rng.uniform(0.8, 1.05))
    return colorsys.hsv_to_rgb(hue / 360.0, saturation, value)


def _muted_tone(grey: float, hue: float, saturation: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(hue, saturation, grey)


def sample_background(rng: np.random.Generator) -> Background:
    """A random muted background: grey-ish tones (saturation <= 0.15) of modest contrast."""
    kind = BACKGROUNDS[int(rng.random() * len(BACKGROUNDS))]
    grey = rng.uniform(0.25, 0.8)
    contrast = rng.uniform(0.06, 0.2) * (1.0 if rng.random() < 0.5 else -1.0)
    hue = rng.uniform(0.0, 1.0)
    saturation = rng.uniform(0.0, BACKGROUND_MAX_SATURATION)
    return Background(
        kind=kind,
        tone_a=_muted_tone(grey, hue, saturation),
        tone_b=_muted_tone(float(np.clip(grey + contrast, 0.1, 0.9)), hue, saturation),
        angle=rng.uniform(0.0, math.pi),
        period=rng.uniform(0.1, 0.25),
        phase=rng.uniform(0.0, 1.0),
        texture_seed=int(rng.random() * 2**31),
    )


def _sample_distractor(rng: np.random.Generator) -> Distractor:
    is_line = rng.random() < 0.5
    return Distractor(
        x=rng.uniform(0.05, 0.95),
        y=rng.uniform(0.05, 0.95),
        length=rng.uniform(0.06, 0.14) if is_line else 0.0,
        angle=rng.uniform(0.0, math.pi),
        grey=rng.uniform(0.15, 0.85),
    )


def sample_scene(shape: str, colour: str, rng: np.random.Generator, variant: str = "clean") -> Scene:
    """A random scene of a `colour` `shape` drawn in the style `variant`.

    The generator is advanced by the same amount whatever the variant, so equal generator states
    give the same scene in every variant (the `small` variant maps the same draw to a smaller size).
    """
    check_shape(shape)
    check_colour(colour)
    check_variant(variant)
    low, high = RADIUS_RANGE[variant]
    radius = low + (high - low) * rng.random()
    margin = radius * 1.05
    center = (margin + (1 - 2 * margin) * rng.random(), margin + (1 - 2 * margin) * rng.random())
    rotation = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    mirrored = bool(rng.random() < 0.5)
    rgb = _jittered_rgb(colour, rng)
    shading = (rng.uniform(0.0, 0.2), rng.uniform(0.0, 2 * math.pi))
    background = sample_background(rng)
    distractors = tuple(_sample_distractor(rng) for _ in range(2 + int(rng.random() * 3)))
    blur = rng.uniform(0.6, 1.1)
    noise = rng.uniform(0.05, 0.1)
    noise_seed = int(rng.random() * 2**31)
    return Scene(
        shape=shape,
        colour=colour,
        variant=variant,
        center=center,
        radius=radius,
        rotation=rotation,
        mirrored=mirrored,
        rgb=rgb,
        shading=shading,
        background=background,
        distractors=distractors,
        blur=blur,
        noise=noise,
        noise_seed=noise_seed,
    )


# ----------------------------------------------------------------------------- geometry


def _regular_polygon(n: int, radius: float = 1.0, start: float = -90.0) -> np.ndarray:
    angles = np.deg2rad(start + 360.0 * np.arange(n) / n)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star(points: int = 5, inner: float = 0.42) -> np.ndarray:
    outer = _regular_polygon(points)
    inner_points = _regular_polygon(points, inner, start=-90.0 + 180.0 / points)
    return np.stack([outer, inner_points], axis=1).reshape(-1, 2)


def _cross(arm: float = 0.32) -> np.ndarray:
    a, b = arm, 0.95
    return np.array(
        [
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        ]
    )


def _heart(n: int = 40) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 2.5], axis=1) / 17.0


def _arc(center_x: float, radius: float, start: float, stop: float, n: int) -> np.ndarray:
    angles = np.linspace(start, stop, n)
    return np.stack([center_x + radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _crescent(offset: float = 0.45, cut_radius: float = 0.85, n: int = 24) -> np.ndarray:
    """The unit disc minus a disc of radius `cut_radius` centred at (`offset`, 0): opens to the right."""
    x = (1.0 - cut_radius**2 + offset**2) / (2 * offset)
    y = math.sqrt(1.0 - x**2)
    alpha = math.atan2(y, x)
    beta = math.atan2(y, x - offset)
    outer = _arc(0.0, 1.0, alpha, 2 * math.pi - alpha, n)
    inner = _arc(offset, cut_radius, 2 * math.pi - beta, beta, n)
    return np.concatenate([outer, inner])


@lru_cache(maxsize=1)
def shape_outlines() -> dict[str, tuple[tuple[np.ndarray, bool], ...]]:
    """Each shape as closed polygons in unit coordinates (radius about 1): (vertices, is_hole) pairs."""
    circle = _regular_polygon(48)
    return {
        "circle": ((circle, False),),
        "square": ((_regular_polygon(4, 1.0, start=-45.0) * 0.92, False),),
        "triangle": ((_regular_polygon(3) + np.array([0.0, 0.15]), False),),
        "star": ((_star(), False),),
        "hexagon": ((_regular_polygon(6, start=0.0), False),),
        "cross": ((_cross(), False),),
        "heart": ((_heart(), False),),
        "diamond": ((np.array([(0.0, -1.0), (0.6, 0.0), (0.0, 1.0), (-0.6, 0.0)]), False),),
        "ring": ((circle, False), (circle * 0.58, True)),
        "crescent": ((_crescent(), False),),
    }


def _placed_polygons(scene: Scene, canvas: int) -> list[tuple[list[float], bool]]:
    """The scene's shape polygons as flat `[x0, y0, x1, y1, ...]` pixel coordinates of a `canvas`-sized square."""
    theta = math.radians(scene.rotation)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    flip = np.array([-1.0, 1.0]) if scene.mirrored else np.ones(2)
    center = np.array(scene.center) * canvas
    placed = []
    for vertices, is_hole in shape_outlines()[scene.shape]:
        points = (vertices * flip) @ rotation.T * (scene.radius * canvas) + center
        placed.append((points.ravel().tolist(), is_hole))
    return placed


def object_mask(scene: Scene, size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Anti-aliased coverage of the object, `(size, size)` float32 in [0, 1] (outline or filled by variant)."""
    canvas = size * SUPERSAMPLE
    mask = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(mask)
    polygons = _placed_polygons(scene, canvas)
    if scene.variant == "outline":
        width = max(1, round(OUTLINE_WIDTH * SUPERSAMPLE * size / 32))
        for points, _ in polygons:
            draw.line([*points, *points[:4]], fill=255, width=width, joint="curve")
    else:
        for points, is_hole in polygons:
            draw.polygon(points, fill=0 if is_hole else 255)
    mask = mask.resize((size, size), Image.Resampling.BOX)
    return np.asarray(mask, dtype=np.float32) / 255.0


# ----------------------------------------------------------------------------- drawing


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x, y) as fractions of the side, each `(size, size)` float32."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(coords, coords)


def draw_background(background: Background, size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """The background as `(size, size, 3)` float32 RGB in [0, 1]."""
    x, y = _grid(size)
    along = x * math.cos(background.angle) + y * math.sin(background.angle)
    kind = background.kind
    if kind == "gradient":
        mix = np.clip(along / 1.42, 0.0, 1.0)
    elif kind == "striped":
        mix = (np.floor(along / background.period + background.phase) % 2).astype(np.float32)
    elif kind == "checkered":
        cells = np.floor(x / background.period + background.phase) + np.floor(y / background.period)
        mix = (cells % 2).astype(np.float32)
    elif kind == "mottled":
        blotches = np.random.default_rng(background.texture_seed).random((5, 5), dtype=np.float32)
        mix = np.asarray(Image.fromarray(blotches).resize((size, size), Image.Resampling.BICUBIC))
        mix = np.clip(mix, 0.0, 1.0)
    else:
        _check_name("background", kind, BACKGROUNDS)
    tone_a = np.asarray(background.tone_a, dtype=np.float32)
    tone_b = np.asarray(background.tone_b, dtype=np.float32)
    return tone_a + mix[..., None] * (tone_b - tone_a)


def _draw_distractors(pixels: np.ndarray, distractors: tuple[Distractor, ...]) -> np.ndarray:
    size = pixels.shape[0]
    image = Image.fromarray((pixels * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for mark in distractors:
        grey = round(mark.grey * 255)
        x, y = mark.x * size, mark.y * size
        if mark.length == 0.0:
            r = max(0.6, size / 40)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(grey, grey, grey))
        else:
            dx = 0.5 * mark.length * size * math.cos(mark.angle)
            dy = 0.5 * mark.length * size * math.sin(mark.angle)
            draw.line((x - dx, y - dy, x + dx, y + dy), fill=(grey, grey, grey), width=1)
    return np.asarray(image, dtype=np.float32) / 255.0


def _object_colour(scene: Scene, size: int) -> np.ndarray:
    """Per-pixel object colour: the scene colour under a soft linear light gradient."""
    x, y = _grid(size)
    strength, direction = scene.shading
    along = (x - scene.center[0]) * math.cos(direction) + (y - scene.center[1]) * math.sin(direction)
    light = 1.0 + strength * np.clip(along / max(scene.radius, 1e-6), -1.0, 1.0)
    return np.clip(np.asarray(scene.rgb, dtype=np.float32) * light[..., None], 0.0, 1.0)


def _degrade(pixels: np.ndarray, scene: Scene) -> np.ndarray:
    """The `noisy` variant: Gaussian blur, then Gaussian pixel noise."""
    size = pixels.shape[0]
    image = Image.fromarray((pixels * 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(scene.blur * size / 32))
    blurred = np.asarray(image, dtype=np.float32) / 255.0
    noise = np.random.default_rng(scene.noise_seed).normal(0.0, scene.noise, blurred.shape)
    return np.clip(blurred + noise.astype(np.float32), 0.0, 1.0)


def draw_scene(scene: Scene, size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """The scene as a `(size, size, 3)` uint8 RGB array."""
    if size < 8:
        raise ValueError(f"Image size must be at least 8 pixels, got {size}.")
    pixels = _draw_distractors(draw_background(scene.background, size), scene.distractors)
    alpha = object_mask(scene, size)[..., None]
    pixels = pixels * (1.0 - alpha) + _object_colour(scene, size) * alpha
    if scene.variant == "noisy":
        pixels = _degrade(pixels, scene)
    return (pixels * 255.0 + 0.5).astype(np.uint8)


def _generator(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def render(
    shape: str,
    colour: str,
    seed: int | np.random.Generator = 0,
    *,
    size: int = DEFAULT_IMAGE_SIZE,
    variant: str = "clean",
) -> Image.Image:
    """A random image of a `colour` `shape` (same seed, same pixels).

    Example:
        ```python
        from hf_prompt_clip.synthetic import render
        image = render("star", "red", seed=3, variant="outline")  # a 32 x 32 PIL image
        ```
    """
    scene = sample_scene(shape, colour, _generator(seed), variant)
    return Image.fromarray(draw_scene(scene, size))


def render_batch(scenes: list[Scene] | tuple[Scene, ...], size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Several scenes as one `(N, size, size, 3)` uint8 array (what a training loop feeds on)."""
    return np.stack([draw_scene(scene, size) for scene in scenes])
