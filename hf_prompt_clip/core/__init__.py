from .configuration import PromptCLIPConfig, validate_class_names
from .modeling import AdapterLoadError, PromptCLIPPreTrainedModel, TrainingStage
from .outputs import PromptCLIPOutput
from .registry import METHODS, MethodInfo, get_method, register_method

__all__ = [
    "METHODS",
    "AdapterLoadError",
    "MethodInfo",
    "PromptCLIPConfig",
    "PromptCLIPOutput",
    "PromptCLIPPreTrainedModel",
    "TrainingStage",
    "get_method",
    "register_method",
    "validate_class_names",
]
