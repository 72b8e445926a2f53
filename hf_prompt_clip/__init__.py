"""hf-prompt-clip: prompt learning for CLIP as transformers models.

Room: the package roof.

Importing the package registers every method with `AutoConfig`, `AutoModel`,
`AutoModelForImageClassification` and `AutoModelForZeroShotImageClassification`, and the shipped
tiny CLIP's name (`TINY_CLIP_ID`) as a base model, and names the synthetic world's benchmarks to the registry (loaded on
the first benchmark lookup); the zero-shot image pipeline then refuses unusable
`candidate_labels` for these models by name (`modeling.pipelines`; other models' pipelines are unchanged).
"""

from .core import METHODS, MethodInfo, PromptCLIPConfig, get_method, register_method
from .data.registry import register_benchmark_provider
from .methods import (
    CLIPAdapterConfig,
    CLIPAdapterModel,
    CLIPLoRAConfig,
    CLIPLoRAModel,
    CoCoOpConfig,
    CoCoOpModel,
    CoOpConfig,
    CoOpModel,
    IVLPConfig,
    IVLPModel,
    KgCoOpConfig,
    KgCoOpModel,
    LinearProbeConfig,
    LinearProbeModel,
    MaPLeConfig,
    MaPLeModel,
    MPFGVCConfig,
    MPFGVCModel,
    PLOTConfig,
    PLOTModel,
    PLOTPPConfig,
    PLOTPPModel,
    PromptSRCConfig,
    PromptSRCModel,
    TipAdapterConfig,
    TipAdapterFConfig,
    TipAdapterFModel,
    TipAdapterModel,
    VPTConfig,
    VPTModel,
    ZeroShotCLIPConfig,
    ZeroShotCLIPModel,
)
from .modeling import AdapterLoadError, PromptCLIPOutput, PromptCLIPPreTrainedModel, TrainingStage
from .modeling.pipelines import register_zero_shot_pipeline
from .shipped import TINY_CLIP_ID
from .utils.version import __version__

register_zero_shot_pipeline()
# the synthetic world registers its benchmarks (synthetic_shapes, ...) on the first benchmark lookup
register_benchmark_provider("hf_prompt_clip.synthetic.benchmarks")

__all__ = [
    "METHODS",
    "TINY_CLIP_ID",
    "AdapterLoadError",
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
    "MethodInfo",
    "PLOTConfig",
    "PLOTModel",
    "PLOTPPConfig",
    "PLOTPPModel",
    "PromptCLIPConfig",
    "PromptCLIPOutput",
    "PromptCLIPPreTrainedModel",
    "PromptSRCConfig",
    "PromptSRCModel",
    "TipAdapterConfig",
    "TipAdapterFConfig",
    "TipAdapterFModel",
    "TipAdapterModel",
    "TrainingStage",
    "VPTConfig",
    "VPTModel",
    "ZeroShotCLIPConfig",
    "ZeroShotCLIPModel",
    "__version__",
    "get_method",
    "register_method",
]
