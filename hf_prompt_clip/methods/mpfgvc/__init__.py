"""The `mpfgvc` method folder: registers MP-FGVC (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import MPFGVCConfig
from .model import MPFGVCModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "mpfgvc",
    MPFGVCConfig,
    MPFGVCModel,
    MethodInfo(
        "MP-FGVC",
        "Jiang et al., AAAI 2024",
        "MP-FGVC learns subcategory-specific text prompt tokens and a vision-language fusion module with "
        "its classifier, and fine-tunes the image encoder: this is **not** a tiny adapter, the changed "
        "image-encoder weights are stored here with the prompts (the text encoder stays frozen).",
        """@inproceedings{jiang2024mpfgvc,
  title     = {Delving into Multimodal Prompting for Fine-grained Visual Classification},
  author    = {Jiang, Xin and Tang, Hao and Gao, Junyao and Du, Xiaoyu and He, Shengfeng and Li, Zechao},
  booktitle = {AAAI Conference on Artificial Intelligence},
  year      = {2024}
}""",
        frozen_base=False,
        # the paper's CUB-200-2011 setting: the full training set (it publishes no training recipe)
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        published=(PublishedAdapter("mpfgvc-vitb16-cub200", "cub200", "few_shot", None),),
    ),
)

__all__ = ["MPFGVCConfig", "MPFGVCModel"]
