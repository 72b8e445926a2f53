"""The synthetic benchmarks as `datasets.DatasetDict`s with an `image` column and a `label` ClassLabel.

Room: `synthetic/`.

- `colour_shape`: the main benchmark, 80 classes "red circle" ... "pink crescent" (colour-major
  order: label = 10 * colour index + shape index);
- `shapes`: 10 classes "circle" ... "crescent", each image in a random colour;
- `colours`: 8 classes "red" ... "pink", each image a random shape (zero-shot template
  `COLOUR_TEMPLATE`, "a photo of a {} shape.").

Image `index` of class `label` in a split is drawn from its own generator, seeded by (seed,
benchmark, split, label, index): splits never share images, a split does not change when more
images per class are asked for, and the domain variants (`outline`, `noisy`, `small`) of a split
show the same scenes restyled.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features
from datasets import Image as ImageFeature
from PIL import Image

from .render import COLOURS, DEFAULT_IMAGE_SIZE, SHAPES, VARIANTS, check_variant, draw_scene, sample_scene

BENCHMARKS: tuple[str, ...] = ("colour_shape", "shapes", "colours")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
DEFAULT_PER_CLASS: dict[str, int] = {"train": 16, "validation": 4, "test": 10}


def _check_benchmark(benchmark: str) -> str:
    if benchmark not in BENCHMARKS:
        raise ValueError(
            f"Unknown synthetic benchmark {benchmark!r}; valid benchmarks are: {', '.join(BENCHMARKS)}."
        )
    return benchmark


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; valid splits are: {', '.join(SPLITS)}.")
    return split


def class_names(benchmark: str = "colour_shape") -> list[str]:
    """The class names of `benchmark` in label order ("red circle", ... for `colour_shape`)."""
    _check_benchmark(benchmark)
    if benchmark == "shapes":
        return list(SHAPES)
    if benchmark == "colours":
        return list(COLOURS)
    return [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


def image_generator(seed: int, benchmark: str, split: str, label: int, index: int) -> np.random.Generator:
    """The generator that draws image `index` of class `label` in a split of a benchmark."""
    key = [
        seed,
        BENCHMARKS.index(_check_benchmark(benchmark)),
        SPLITS.index(_check_split(split)),
        label,
        index,
    ]
    return np.random.default_rng(key)


def colour_and_shape(benchmark: str, label: int, rng: np.random.Generator) -> tuple[str, str]:
    """The (colour, shape) drawn for class `label`; the free attribute of a sub-benchmark comes from `rng`."""
    if benchmark == "shapes":
        return COLOURS[int(rng.random() * len(COLOURS))], SHAPES[label]
    if benchmark == "colours":
        return COLOURS[label], SHAPES[int(rng.random() * len(SHAPES))]
    return COLOURS[label // len(SHAPES)], SHAPES[label % len(SHAPES)]


def render_example(
    benchmark: str,
    split: str,
    label: int,
    index: int,
    *,
    seed: int = 0,
    variant: str = "clean",
    size: int = DEFAULT_IMAGE_SIZE,
) -> Image.Image:
    """Image `index` of class `label` in `split` of `benchmark`, exactly as the dataset builders draw it."""
    rng = image_generator(seed, benchmark, split, label, index)
    colour, shape = colour_and_shape(benchmark, label, rng)
    return Image.fromarray(draw_scene(sample_scene(shape, colour, rng, variant), size))


def features(benchmark: str = "colour_shape") -> Features:
    """The dataset features: `image` (Image) and `label` (ClassLabel with the readable class names)."""
    return Features({"image": ImageFeature(), "label": ClassLabel(names=class_names(benchmark))})


def build_split(
    benchmark: str,
    split: str,
    per_class: int,
    *,
    seed: int = 0,
    variant: str = "clean",
    size: int = DEFAULT_IMAGE_SIZE,
) -> Dataset:
    """One split of a synthetic benchmark: `per_class` images of every class, ordered by class."""
    _check_benchmark(benchmark)
    _check_split(split)
    check_variant(variant)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}.")
    keys = [(label, index) for label in range(len(class_names(benchmark))) for index in range(per_class)]
    images = [
        render_example(benchmark, split, label, index, seed=seed, variant=variant, size=size)
        for label, index in keys
    ]
    labels = [label for label, _ in keys]
    return Dataset.from_dict({"image": images, "label": labels}, features=features(benchmark))


def _per_split(per_class: int | Mapping[str, int]) -> dict[str, int]:
    if isinstance(per_class, int):
        return dict.fromkeys(SPLITS, per_class)
    for split in per_class:
        _check_split(split)
    return dict(per_class)


def build_benchmark(
    benchmark: str = "colour_shape",
    *,
    per_class: int | Mapping[str, int] = DEFAULT_PER_CLASS,
    seed: int = 0,
    variant: str = "clean",
    size: int = DEFAULT_IMAGE_SIZE,
) -> DatasetDict:
    """A synthetic benchmark as a `DatasetDict`.

    Args:
        benchmark: one of `BENCHMARKS`.
        per_class: images per class, one number for every split or a split -> number mapping
            (only the splits named are built).
        seed: the dataset seed; each split, class and image gets its own generator from it.
        variant: drawing style, one of `VARIANTS` (domain generalisation test sets).
        size: image side in pixels.

    Example:
        ```python
        from hf_prompt_clip.synthetic import build_benchmark
        data = build_benchmark("colour_shape", per_class={"train": 16, "test": 10})
        data["test"].features["label"].names[:2]  # ['red circle', 'red square']
        ```
    """
    counts = _per_split(per_class)
    return DatasetDict(
        {
            split: build_split(benchmark, split, count, seed=seed, variant=variant, size=size)
            for split, count in counts.items()
        }
    )


def colour_shape_dataset(**kwargs) -> DatasetDict:
    """The main benchmark: 80 colour x shape classes (keyword arguments as `build_benchmark`)."""
    return build_benchmark("colour_shape", **kwargs)


def shapes_dataset(**kwargs) -> DatasetDict:
    """Shapes only: 10 classes, any colour (keyword arguments as `build_benchmark`)."""
    return build_benchmark("shapes", **kwargs)


def colours_dataset(**kwargs) -> DatasetDict:
    """Colours only: 8 classes, any shape (keyword arguments as `build_benchmark`)."""
    return build_benchmark("colours", **kwargs)


def domain_shift_datasets(
    per_class: int = DEFAULT_PER_CLASS["test"], *, seed: int = 0, size: int = DEFAULT_IMAGE_SIZE
) -> DatasetDict:
    """The test split of the main benchmark in every shifted style, keyed by variant (`outline`,
    `noisy`, `small`): the clean test scenes restyled, for domain generalisation."""
    return DatasetDict(
        {
            variant: build_split("colour_shape", "test", per_class, seed=seed, variant=variant, size=size)
            for variant in VARIANTS
            if variant != "clean"
        }
    )
