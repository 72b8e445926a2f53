"""A small synthetic world that runs with no network: coloured shapes, their captions, and a tiny CLIP.

Room: `synthetic/`.

- `render` draws one coloured shape per image (seeded; `clean`, `outline`, `noisy`, `small` styles);
- `build_benchmark` (and `colour_shape_dataset`, `shapes_dataset`, `colours_dataset`,
  `domain_shift_datasets`) give them as `datasets.DatasetDict`s with readable class names;
- `caption` describes a scene in varied words;
- `tiny_clip_path()` is a folder with a tiny `CLIPModel`, `CLIPTokenizer` and `CLIPImageProcessor`
  pretrained on this world (`scripts/pretrain_tiny_clip.py` regenerates it).

See `docs/synthetic.md`.
"""

from __future__ import annotations

from ..shipped import TINY_CLIP_FOLDER, TINY_CLIP_ID, tiny_clip_path
from .captions import (
    CAPTION_TEMPLATES,
    CLIP_SELECT_TEMPLATES,
    COLOUR_TEMPLATE,
    SYNTHETIC_TEMPLATES,
    ZERO_SHOT_TEMPLATE,
    caption,
)
from .datasets import (
    BENCHMARKS,
    SPLITS,
    build_benchmark,
    build_split,
    class_names,
    colour_shape_dataset,
    colours_dataset,
    domain_shift_datasets,
    render_example,
    shapes_dataset,
)
from .render import (
    BACKGROUNDS,
    COLOURS,
    DEFAULT_IMAGE_SIZE,
    SHAPES,
    VARIANTS,
    Scene,
    UnknownNameError,
    draw_scene,
    render,
    render_batch,
    sample_scene,
)

__all__ = [
    "BACKGROUNDS",
    "BENCHMARKS",
    "CAPTION_TEMPLATES",
    "CLIP_SELECT_TEMPLATES",
    "COLOURS",
    "COLOUR_TEMPLATE",
    "DEFAULT_IMAGE_SIZE",
    "SHAPES",
    "SPLITS",
    "SYNTHETIC_TEMPLATES",
    "TINY_CLIP_FOLDER",
    "TINY_CLIP_ID",
    "VARIANTS",
    "ZERO_SHOT_TEMPLATE",
    "Scene",
    "UnknownNameError",
    "build_benchmark",
    "build_split",
    "caption",
    "class_names",
    "colour_shape_dataset",
    "colours_dataset",
    "domain_shift_datasets",
    "draw_scene",
    "render",
    "render_batch",
    "render_example",
    "sample_scene",
    "shapes_dataset",
    "tiny_clip_path",
]
