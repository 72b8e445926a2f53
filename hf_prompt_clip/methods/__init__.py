"""One folder per method; importing this package registers them all with the Auto classes.

Room: `methods/`.

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
from .linear_probe import LinearProbeConfig, LinearProbeModel
from .tip_adapter import TipAdapterConfig, TipAdapterFConfig, TipAdapterFModel, TipAdapterModel
from .vpt import VPTConfig, VPTModel
from .ivlp import IVLPConfig, IVLPModel
from .maple import MaPLeConfig, MaPLeModel
from .promptsrc import PromptSRCConfig, PromptSRCModel
from .clip_lora import CLIPLoRAConfig, CLIPLoRAModel

# isort: on

__all__ = [
    "CLIPAdapterConfig",
    "CLIPAdapterModel",
    "CLIPLoRAConfig",
    "CLIPLoRAModel",
    "CoCoOpConfig",
    "CoCoOpModel",
    "CoOpConfig",
    "CoOpModel",
    "IVLPConfig",
    "IVLPModel",
    "KgCoOpConfig",
    "KgCoOpModel",
    "LinearProbeConfig",
    "LinearProbeModel",
    "MPFGVCConfig",
    "MPFGVCModel",
    "MaPLeConfig",
    "MaPLeModel",
    "PLOTConfig",
    "PLOTModel",
    "PLOTPPConfig",
    "PLOTPPModel",
    "PromptSRCConfig",
    "PromptSRCModel",
    "TipAdapterConfig",
    "TipAdapterFConfig",
    "TipAdapterFModel",
    "TipAdapterModel",
    "VPTConfig",
    "VPTModel",
    "ZeroShotCLIPConfig",
    "ZeroShotCLIPModel",
]
