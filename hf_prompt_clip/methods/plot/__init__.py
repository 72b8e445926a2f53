"""The `plot` method folder: registers PLOT and PLOT++ (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import PLOTConfig, PLOTPPConfig
from .model import PLOTModel, PLOTPPModel
from .paper import PLOTPP_RESULTS
from .recipe import PLOTPP_RECIPE, RECIPE

_CITATION = """@inproceedings{chen2023plot,
  title     = {PLOT: Prompt Learning with Optimal Transport for Vision-Language Models},
  author    = {Chen, Guangyi and Yao, Weiran and Song, Xiangchen and Li, Xinyue and Rao, Yongming and
               Zhang, Kun},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2023}
}"""

register_method(
    "plot",
    PLOTConfig,
    PLOTModel,
    MethodInfo(
        "PLOT",
        "Chen et al., ICLR 2023",
        "PLOT learns N context sets shared by the classes, giving N prompts per class, and matches them "
        "to the image's patch features with optimal transport (Sinkhorn).",
        _CITATION,
        recipe=RECIPE,
        published=(
            # PLOT's few-shot ImageNet setting (the paper reports RN50; the package's CLIP is ViT-B/16)
            PublishedAdapter(
                "plot-vitb16-imagenet",
                "imagenet",
                "few_shot",
                16,
                training={"epochs": 50, "batch-size": 128, "lr": 0.002},
            ),
        ),
    ),
)
register_method(
    "plotpp",
    PLOTPPConfig,
    PLOTPPModel,
    MethodInfo(
        "PLOT++",
        "Chen et al., ICLR 2023",
        "PLOT++ learns N context sets (started from hand-written phrases) and M_v sets of visual prompt "
        "tokens on the image tower, and matches the N prompts of each class to the M_v prompted image "
        "features with optimal transport (Sinkhorn), in two training stages.",
        _CITATION,
        paper_results=PLOTPP_RESULTS,
        recipe=PLOTPP_RECIPE,
        published=(
            # PLOT++'s few-shot ImageNet setting: 50 epochs per stage (docs/methods.md)
            PublishedAdapter(
                "plotpp-vitb16-imagenet",
                "imagenet",
                "few_shot",
                16,
                training={"epochs": 50, "batch-size": 32, "lr": 0.002},
            ),
        ),
    ),
)

__all__ = ["PLOTConfig", "PLOTModel", "PLOTPPConfig", "PLOTPPModel"]
