"""One folder per method; importing this package registers them all with the Auto classes.

The import order below is the registration order, which is the order of every table and comparison.
"""

# isort: off
from .zeroshot import ZeroShotCLIPConfig, ZeroShotCLIPModel
from .coop import CoOpConfig, CoOpModel
from .cocoop import CoCoOpConfig, CoCoOpModel
from .plot import PLOTConfig, PLOTModel, PLOTPPConfig, PLOTPPModel
from .mpfgvc import MPFGVCConfig, MPFGVCModel
from .clip_adapter import CLIPAdapterConfig, CLIPAdapterModel
from .kgcoop import KgCoOpConfig, KgCoOpModel

# isort: on

__all__ = [
    "CLIPAdapterConfig",
    "CLIPAdapterModel",
    "CoCoOpConfig",
    "CoCoOpModel",
    "CoOpConfig",
    "CoOpModel",
    "KgCoOpConfig",
    "KgCoOpModel",
    "MPFGVCConfig",
    "MPFGVCModel",
    "PLOTConfig",
    "PLOTModel",
    "PLOTPPConfig",
    "PLOTPPModel",
    "ZeroShotCLIPConfig",
    "ZeroShotCLIPModel",
]
