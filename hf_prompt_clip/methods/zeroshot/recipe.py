"""Zero-shot CLIP's "recipe": nothing is trained, so it sets nothing; it names the tables its numbers come
from, so that `hf-prompt-clip reproduce zeroshot` evaluates that grid.

Room: `methods/`.

The classifier's templates are the benchmark's hand-written ones (`ZeroShotCLIPConfig.benchmark_defaults`),
as the CoCoOp paper's zero-shot CLIP rows use them (KaiyangZhou/CoOp `trainers/zsclip.py`, `CUSTOM_TEMPLATES`).
"""

from ...core.recipes import Recipe

RECIPE = Recipe(
    "zero-shot CLIP (as the CoCoOp paper evaluates it, KaiyangZhou/CoOp trainers/zsclip.py)",
    (),
    protocols={"base2new": (16,), "domain_generalization": (16,)},
    not_exact=(
        "The reference encodes text and images in fp16; here in fp32 (or the `--image-dtype` given).",
    ),
)
