"""The `vpt` method folder: registers VPT-deep (its config, model and what cards and reports say of it,
`MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import VPTConfig
from .model import VPTModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "vpt",
    VPTConfig,
    VPTModel,
    MethodInfo(
        "VPT",
        "Jia et al., ECCV 2022",
        "VPT-deep learns T image tokens appended after the patches and, at every layer of the image tower up "
        "to a depth, that layer's own T tokens replacing the previous layer's outputs at those positions; the "
        "classes are the frozen CLIP's hand-written prompts.",
        """@inproceedings{jia2022vpt,
  title     = {Visual Prompt Tuning},
  author    = {Jia, Menglin and Tang, Luming and Chen, Bor-Chun and Cardie, Claire and Belongie, Serge and Hariharan, Bharath and Lim, Ser-Nam},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2022}
}""",
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        published=(
            # VPT-deep's base-to-new configuration, which the MaPLe repository also runs for cross-dataset transfer; trained on 16 shots of all ImageNet classes, tested unchanged on its variants
            PublishedAdapter(
                "vpt-vitb16-imagenet",
                "imagenet",
                "domain_generalization",
                16,
                ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"),
                options={},
                training={"epochs": 5, "batch-size": 4, "lr": 0.0025},
            ),
        ),
    ),
)

__all__ = ["VPTConfig", "VPTModel"]
