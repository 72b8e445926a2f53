"""The `promptsrc` method folder: registers PromptSRC (its config, model and what cards and reports say of it,
`MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, register_method
from .config import PromptSRCConfig
from .model import PromptSRCModel
from .paper import PAPER_RESULTS

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
    ),
)

__all__ = ["PromptSRCConfig", "PromptSRCModel"]
