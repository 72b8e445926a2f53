"""The `coop` method folder: registers CoOp (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import CoOpConfig
from .model import CoOpModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "coop",
    CoOpConfig,
    CoOpModel,
    MethodInfo(
        "CoOp",
        "Zhou et al., IJCV 2022",
        "CoOp learns M context vectors (one shared M x D set, or one per class) that replace the words "
        "of a prompt template in front of each class name.",
        """@article{zhou2022coop,
  title   = {Learning to Prompt for Vision-Language Models},
  author  = {Zhou, Kaiyang and Yang, Jingkang and Loy, Chen Change and Liu, Ziwei},
  journal = {International Journal of Computer Vision (IJCV)},
  year    = {2022}
}""",
        default=True,
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        published=(
            # CoCoOp's domain-generalisation setting: 16 shots of all 1000 classes, CoOp's ImageNet recipe
            PublishedAdapter(
                "coop-vitb16-imagenet",
                "imagenet",
                "domain_generalization",
                16,
                ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"),
                training={"epochs": 50, "batch-size": 32, "lr": 0.002},
            ),
        ),
    ),
)

__all__ = ["CoOpConfig", "CoOpModel"]
