"""The `promptsrc` method folder: registers PromptSRC (its config, model and what cards and reports say of it,
`MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import PromptSRCConfig
from .model import PromptSRCModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "promptsrc",
    PromptSRCConfig,
    PromptSRCModel,
    MethodInfo(
        "PromptSRC",
        "Khattak et al., ICCV 2023",
        "PromptSRC learns IVLP's deep prompts in both towers, regularised towards the frozen CLIP (L1 to its text "
        "features over 60 templates and to its image features, KL to its logits), and keeps a Gaussian-weighted "
        "average of the prompts over the training epochs.",
        """@inproceedings{khattak2023promptsrc,
  title     = {Self-regulating Prompts: Foundational Model Adaptation without Forgetting},
  author    = {Khattak, Muhammad Uzair and Wasim, Syed Talal and Naseer, Muzammal and Khan, Salman and Yang, Ming-Hsuan and Khan, Fahad Shahbaz},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages     = {15190--15200},
  year      = {2023}
}""",
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        published=(
            # PromptSRC's cross-dataset configuration: depth 3, GPA mean 6, std 10; trained on 16 shots of all ImageNet classes, tested unchanged on its variants
            PublishedAdapter(
                "promptsrc-vitb16-imagenet",
                "imagenet",
                "domain_generalization",
                16,
                ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"),
                options={"text_depth": 3, "vision_depth": 3, "gpa_mean": 6, "gpa_std": 10},
                training={"epochs": 20, "batch-size": 4, "lr": 0.0025},
            ),
        ),
    ),
)

__all__ = ["PromptSRCConfig", "PromptSRCModel"]
