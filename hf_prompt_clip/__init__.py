"""hf-prompt-clip: prompt learning for CLIP as transformers models.

Importing the package registers every method with `AutoConfig`, `AutoModel`,
`AutoModelForImageClassification` and `AutoModelForZeroShotImageClassification`, and the shipped
tiny CLIP's name (`TINY_CLIP_ID`) as a base model.
"""

from .core import (
    METHODS,
    AdapterLoadError,
    MethodInfo,
    PromptCLIPConfig,
    PromptCLIPOutput,
    PromptCLIPPreTrainedModel,
    TrainingStage,
    get_method,
    register_method,
)
from .methods import (
    CoCoOpConfig,
    CoCoOpModel,
    CoOpConfig,
    CoOpModel,
    MPFGVCConfig,
    MPFGVCModel,
    PLOTConfig,
    PLOTModel,
    PLOTPPConfig,
    PLOTPPModel,
    ZeroShotCLIPConfig,
    ZeroShotCLIPModel,
)
from .shipped import TINY_CLIP_ID

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "TINY_CLIP_ID",
    "AdapterLoadError",
    "CoCoOpConfig",
    "CoCoOpModel",
    "CoOpConfig",
    "CoOpModel",
    "MPFGVCConfig",
    "MPFGVCModel",
    "MethodInfo",
    "PLOTConfig",
    "PLOTModel",
    "PLOTPPConfig",
    "PLOTPPModel",
    "PromptCLIPConfig",
    "PromptCLIPOutput",
    "PromptCLIPPreTrainedModel",
    "TrainingStage",
    "ZeroShotCLIPConfig",
    "ZeroShotCLIPModel",
    "get_method",
    "register_method",
]
