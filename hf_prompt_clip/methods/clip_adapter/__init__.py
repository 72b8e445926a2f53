"""The `clip_adapter` method folder: registers CLIP-Adapter (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import CLIPAdapterConfig
from .model import CLIPAdapterModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "clip_adapter",
    CLIPAdapterConfig,
    CLIPAdapterModel,
    MethodInfo(
        "CLIP-Adapter",
        "Gao et al., IJCV 2023",
        "CLIP-Adapter learns a small bottleneck MLP on the image feature and blends its output with the "
        "original feature (ratio 0.2); the classes are zero-shot CLIP's hand-written prompts.",
        """@article{gao2023clipadapter,
  title   = {CLIP-Adapter: Better Vision-Language Models with Feature Adapters},
  author  = {Gao, Peng and Geng, Shijie and Zhang, Renrui and Ma, Teli and Fang, Rongyao and Zhang, Yongfeng and
             Li, Hongsheng and Qiao, Yu},
  journal = {International Journal of Computer Vision (IJCV)},
  year    = {2023}
}""",
        paper_results=PAPER_RESULTS,
        kind="feature adapter for CLIP",
        recipe=RECIPE,
        published=(
            # the few-shot ImageNet setting of the paper (RN50 there; the package's CLIP is ViT-B/16)
            PublishedAdapter("clip-adapter-vitb16-imagenet", "imagenet", "few_shot", 16),
        ),
    ),
)

__all__ = ["CLIPAdapterConfig", "CLIPAdapterModel"]
