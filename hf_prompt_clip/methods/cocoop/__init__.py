"""The `cocoop` method folder: registers CoCoOp (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import CoCoOpConfig
from .model import CoCoOpModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "cocoop",
    CoCoOpConfig,
    CoCoOpModel,
    MethodInfo(
        "CoCoOp",
        "Zhou et al., CVPR 2022",
        "CoCoOp learns context vectors and a small Meta-Net that turns each image's features into a "
        "bias added to the context, so the prompt adapts to the image.",
        """@inproceedings{zhou2022cocoop,
  title     = {Conditional Prompt Learning for Vision-Language Models},
  author    = {Zhou, Kaiyang and Yang, Jingkang and Loy, Chen Change and Liu, Ziwei},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2022}
}""",
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        published=(
            # the paper's domain-generalisation model: 16 shots of all 1000 classes, batch 1, 10 epochs
            PublishedAdapter(
                "cocoop-vitb16-imagenet",
                "imagenet",
                "domain_generalization",
                16,
                ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"),
                training={"epochs": 10, "batch-size": 1, "lr": 0.002},
            ),
        ),
    ),
)

__all__ = ["CoCoOpConfig", "CoCoOpModel"]
