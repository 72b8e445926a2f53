from .configuration import PromptCLIPConfig, validate_class_names
from .feature_cache import ImageFeatureCache
from .fitting import FitData
from .modeling import AdapterLoadError, PromptCLIPPreTrainedModel, TrainingStage
from .outputs import PromptCLIPOutput
from .registry import METHODS, MethodInfo, get_method, register_method

__all__ = [
    "METHODS",
    "AdapterLoadError",
    "FitData",
    "ImageFeatureCache",
    "MethodInfo",
    "PromptCLIPConfig",
    "PromptCLIPOutput",
    "PromptCLIPPreTrainedModel",
    "TrainingStage",
    "get_method",
    "register_method",
    "validate_class_names",
]
