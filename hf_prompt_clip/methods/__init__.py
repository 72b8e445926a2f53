"""One folder per method; importing this package registers them all with the Auto classes."""

from .cocoop import CoCoOpConfig, CoCoOpModel
from .coop import CoOpConfig, CoOpModel
from .zeroshot import ZeroShotCLIPConfig, ZeroShotCLIPModel

__all__ = [
    "CoCoOpConfig",
    "CoCoOpModel",
    "CoOpConfig",
    "CoOpModel",
    "ZeroShotCLIPConfig",
    "ZeroShotCLIPModel",
]
