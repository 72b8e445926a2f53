"""hf-prompt-clip: prompt learning for CLIP as transformers models.

Importing the package registers every method with `AutoConfig`, `AutoModel`,
`AutoModelForImageClassification` and `AutoModelForZeroShotImageClassification`, and the shipped
tiny CLIP's name (`TINY_CLIP_ID`) as a base model; the zero-shot image pipeline then refuses unusable
`candidate_labels` for these models by name (`core.pipelines`; other models' pipelines are unchanged).
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
from .core.pipelines import register_zero_shot_pipeline
from .core.version import __version__
from .methods import (
    CLIPAdapterConfig,
    CLIPAdapterModel,
    CoCoOpConfig,
    CoCoOpModel,
    CoOpConfig,
    CoOpModel,
    KgCoOpConfig,
    KgCoOpModel,
    LinearProbeConfig,
    LinearProbeModel,
    MPFGVCConfig,
    MPFGVCModel,
    PLOTConfig,
    PLOTModel,
    PLOTPPConfig,
    PLOTPPModel,
    TipAdapterConfig,
    TipAdapterFConfig,
    TipAdapterFModel,
    TipAdapterModel,
    ZeroShotCLIPConfig,
    ZeroShotCLIPModel,
)
from .shipped import TINY_CLIP_ID

register_zero_shot_pipeline()

__all__ = [
    "METHODS",
    "TINY_CLIP_ID",
    "AdapterLoadError",
    "CLIPAdapterConfig",
    "CLIPAdapterModel",
    "CoCoOpConfig",
    "CoCoOpModel",
    "CoOpConfig",
    "CoOpModel",
    "KgCoOpConfig",
    "KgCoOpModel",
    "LinearProbeConfig",
    "LinearProbeModel",
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
    "TipAdapterConfig",
    "TipAdapterFConfig",
    "TipAdapterFModel",
    "TipAdapterModel",
    "TrainingStage",
    "ZeroShotCLIPConfig",
    "ZeroShotCLIPModel",
    "__version__",
    "get_method",
    "register_method",
]
