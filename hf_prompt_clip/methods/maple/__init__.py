"""The `maple` method folder: registers MaPLe (its config, model and what cards and reports say of it,
`MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import MaPLeConfig
from .model import MaPLeModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "maple",
    MaPLeConfig,
    MaPLeModel,
    MethodInfo(
        "MaPLe",
        "Khattak et al., CVPR 2023",
        "MaPLe learns M text tokens after the start token with their own tokens at every text layer up to a "
        "depth, and one linear map per layer that projects those text tokens into the image tower's prompts "
        "for the same layer, so the two towers' prompts are coupled.",
        """@inproceedings{khattak2023maple,
  title     = {MaPLe: Multi-modal Prompt Learning},
  author    = {Khattak, Muhammad Uzair and Rasheed, Hanoona and Maaz, Muhammad and Khan, Salman and Khan, Fahad Shahbaz},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023}
}""",
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        published=(
            # MaPLe's cross-dataset configuration: depth 3, 2 epochs; trained on 16 shots of all ImageNet classes, tested unchanged on its variants
            PublishedAdapter(
                "maple-vitb16-imagenet",
                "imagenet",
                "domain_generalization",
                16,
                ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"),
                options={"text_depth": 3},
                training={"epochs": 2, "batch-size": 4, "lr": 0.0026},
            ),
        ),
    ),
)

__all__ = ["MaPLeConfig", "MaPLeModel"]
