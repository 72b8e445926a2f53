"""The `vpt` method folder: registers VPT-deep (its config, model and what cards and reports say of it,
`MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, register_method
from .config import VPTConfig
from .model import VPTModel
from .paper import PAPER_RESULTS

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
    ),
)

__all__ = ["VPTConfig", "VPTModel"]
