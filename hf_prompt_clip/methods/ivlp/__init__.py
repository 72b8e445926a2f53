"""The `ivlp` method folder: registers IVLP (its config, model and what cards and reports say of it,
`MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import IVLPConfig
from .model import IVLPModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "ivlp",
    IVLPConfig,
    IVLPModel,
    MethodInfo(
        "IVLP",
        "Khattak et al., CVPR 2023 (MaPLe's baseline)",
        "IVLP learns prompt tokens at every layer up to a depth in both towers, independently: M text tokens "
        "after the start token and T image tokens after the patches, each layer's replacing the previous layer's "
        "outputs at those positions.",
        """@inproceedings{khattak2023maple,
  title     = {MaPLe: Multi-modal Prompt Learning},
  author    = {Khattak, Muhammad Uzair and Rasheed, Hanoona and Maaz, Muhammad and Khan, Salman and Khan, Fahad Shahbaz},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023}
}""",
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        published=(
            # IVLP's base-to-new configuration (2 + 2 tokens, depth 12), which the MaPLe repository also runs for cross-dataset transfer; trained on 16 shots of all ImageNet classes, tested unchanged on its variants
            PublishedAdapter(
                "ivlp-vitb16-imagenet",
                "imagenet",
                "domain_generalization",
                16,
                ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"),
                options={},
                training={"epochs": 5, "batch-size": 4, "lr": 0.0035},
            ),
        ),
    ),
)

__all__ = ["IVLPConfig", "IVLPModel"]
