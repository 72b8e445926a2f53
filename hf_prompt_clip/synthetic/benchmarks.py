"""The synthetic world in the benchmark registry: the same data code as any Hub benchmark.

Room: `synthetic/`.

| key | classes | what |
|---|---|---|
| `synthetic_shapes` | 80 | colour x shape ("red star"): the main benchmark (base/new: 40/40) |
| `synthetic_shape_only` | 10 | shapes in any colour (cross-dataset target) |
| `synthetic_colours` | 8 | colours of any shape (cross-dataset target) |
| `synthetic_shapes_outline` / `_noisy` / `_small` | 80 | the main test scenes restyled (domain shift) |

Images are rendered on the fly from seeds (thousands per second), so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..data.errors import SplitNotFoundError
from ..data.registry import BenchmarkSpec, register_benchmark
from ..data.sources import RawSplit, Source
from .captions import COLOUR_TEMPLATE, ZERO_SHOT_TEMPLATE
from .datasets import build_split, class_names
from .render import DEFAULT_IMAGE_SIZE

#: images rendered per class and protocol split (few-shot training draws from "train")
PER_CLASS: dict[str, int] = {"train": 32, "val": 4, "test": 10}


@dataclass(frozen=True)
class SyntheticSource(Source):
    """Renders a synthetic benchmark's splits (see `hf_prompt_clip.synthetic.datasets`).

    Attributes:
        benchmark: `"colour_shape"`, `"shapes"` or `"colours"`.
        variant: drawing style: `"clean"`, `"outline"`, `"noisy"` or `"small"`.
        per_class: images per class of each protocol split (`"train"`, `"val"`, `"test"`).
        seed: the world's seed; splits never share images.
        size: image side in pixels.
    """

    benchmark: str = "colour_shape"
    variant: str = "clean"
    per_class: Mapping[str, int] = field(default_factory=lambda: dict(PER_CLASS))
    seed: int = 0
    size: int = DEFAULT_IMAGE_SIZE

    def describe(self) -> str:
        counts = ", ".join(f"{split} {n}" for split, n in self.per_class.items())
        return f"synthetic {self.benchmark} ({self.variant}, seed {self.seed}; images per class: {counts})"

    def read(self, split: str) -> RawSplit:
        if split not in self.per_class:
            raise SplitNotFoundError(
                f"Synthetic split {split!r} is not rendered; choose from {sorted(self.per_class)}."
            )
        rendered = build_split(
            self.benchmark,
            "validation" if split == "val" else split,
            self.per_class[split],
            seed=self.seed,
            variant=self.variant,
            size=self.size,
        )
        origin = f"synthetic {self.benchmark} ({self.variant}) split {split!r}"
        return RawSplit(rendered, "image", "label", None, "index", origin)


def _spec(key: str, benchmark: str, template: str, description: str, **kwargs) -> BenchmarkSpec:
    names = tuple(class_names(benchmark))
    return BenchmarkSpec(
        key,
        template,
        num_classes=len(names),
        source=SyntheticSource(benchmark, **kwargs),
        class_names=names,
        synthetic=True,
        super_category="shape",  # every class is a (coloured) shape: what MP-FGVC's prompts end with
        crop_scale=(0.6, 1.0),  # a 32-pixel image cropped to 8 % of its area loses the object
        description=description,
    )


for _spec_ in (
    _spec(
        "synthetic_shapes", "colour_shape", ZERO_SHOT_TEMPLATE, "Synthetic world: 80 colour x shape classes."
    ),
    _spec("synthetic_shape_only", "shapes", ZERO_SHOT_TEMPLATE, "Synthetic world: 10 shapes, any colour."),
    _spec("synthetic_colours", "colours", COLOUR_TEMPLATE, "Synthetic world: 8 colours, any shape."),
    *(
        _spec(
            f"synthetic_shapes_{variant}",
            "colour_shape",
            ZERO_SHOT_TEMPLATE,
            f"Synthetic world, {variant} drawings of the 80 classes (a domain shift of synthetic_shapes).",
            variant=variant,
        )
        for variant in ("outline", "noisy", "small")
    ),
):
    register_benchmark(_spec_, overwrite=True)
