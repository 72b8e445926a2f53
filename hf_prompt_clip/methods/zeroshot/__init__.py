from ...core.registry import register_method
from .config import ZeroShotCLIPConfig
from .model import ZeroShotCLIPModel

register_method("zeroshot", ZeroShotCLIPConfig, ZeroShotCLIPModel)

__all__ = ["ZeroShotCLIPConfig", "ZeroShotCLIPModel"]
