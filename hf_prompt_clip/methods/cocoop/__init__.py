from ...core.registry import register_method
from .config import CoCoOpConfig
from .model import CoCoOpModel

register_method("cocoop", CoCoOpConfig, CoCoOpModel)

__all__ = ["CoCoOpConfig", "CoCoOpModel"]
