"""The `zeroshot` method folder: registers zero-shot CLIP (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import CLIP_CITATION, MethodInfo, PublishedAdapter, register_method
from .config import ZeroShotCLIPConfig
from .model import ZeroShotCLIPModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "zeroshot",
    ZeroShotCLIPConfig,
    ZeroShotCLIPModel,
    MethodInfo(
        "Zero-shot CLIP",
        "Radford et al., ICML 2021",
        "Nothing is learned: each class is described by hand-written prompt templates (averaged when "
        "there are several), so the weights file is empty and the config holds the templates.",
        CLIP_CITATION,
        baseline=True,
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        kind="classifier from CLIP's hand-written prompts",
        published=(
            # the domain-generalisation table of CoCoOp: ImageNet's classes, tested on its variants
            PublishedAdapter(
                "zeroshot-vitb16-imagenet",
                "imagenet",
                "domain_generalization",
                0,
                ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"),
            ),
        ),
    ),
)

__all__ = ["ZeroShotCLIPConfig", "ZeroShotCLIPModel"]
