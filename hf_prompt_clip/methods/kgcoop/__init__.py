"""The `kgcoop` method folder: registers KgCoOp (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import KgCoOpConfig
from .model import KgCoOpModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "kgcoop",
    KgCoOpConfig,
    KgCoOpModel,
    MethodInfo(
        "KgCoOp",
        "Yao et al., CVPR 2023",
        "KgCoOp learns CoOp's context vectors with an extra loss that keeps the class text features of the "
        "learned prompts close to those of the hand-crafted prompt, so the prompt keeps CLIP's general "
        "knowledge for unseen classes.",
        """@inproceedings{yao2023kgcoop,
  title     = {Visual-Language Prompt Tuning with Knowledge-guided Context Optimization},
  author    = {Yao, Hantao and Zhang, Rui and Xu, Changsheng},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023}
}""",
        paper_results=PAPER_RESULTS,
        recipe=RECIPE,
        published=(
            # CoOp's domain-generalisation setting (16 shots of all 1000 classes), trained with the authors'
            # released recipe (configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml: SGD lr 0.002, batch 128)
            PublishedAdapter(
                "kgcoop-vitb16-imagenet",
                "imagenet",
                "domain_generalization",
                16,
                ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"),
                training={"epochs": 100, "batch-size": 128, "lr": 0.002},
            ),
        ),
    ),
)

__all__ = ["KgCoOpConfig", "KgCoOpModel"]
