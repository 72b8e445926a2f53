"""One folder per method; importing this package registers them all with the Auto classes."""

from .coop import CoOpConfig, CoOpModel
from .zeroshot import ZeroShotCLIPConfig, ZeroShotCLIPModel

__all__ = ["CoOpConfig", "CoOpModel", "ZeroShotCLIPConfig", "ZeroShotCLIPModel"]
