from ...core.registry import MethodInfo, register_method
from .config import CoCoOpConfig
from .model import CoCoOpModel

register_method(
    "cocoop",
    CoCoOpConfig,
    CoCoOpModel,
    MethodInfo(
        "CoCoOp",
        "Zhou et al., CVPR 2022",
        "CoCoOp learns context vectors and a small Meta-Net that turns each image's features into a "
        "bias added to the context, so the prompt adapts to the image.",
        """@inproceedings{zhou2022cocoop,
  title     = {Conditional Prompt Learning for Vision-Language Models},
  author    = {Zhou, Kaiyang and Yang, Jingkang and Loy, Chen Change and Liu, Ziwei},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2022}
}""",
    ),
)

__all__ = ["CoCoOpConfig", "CoCoOpModel"]
