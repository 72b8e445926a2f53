from ...core.registry import register_method
from .config import CoOpConfig
from .model import CoOpModel

register_method("coop", CoOpConfig, CoOpModel)

__all__ = ["CoOpConfig", "CoOpModel"]
