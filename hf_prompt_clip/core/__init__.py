"""Room `core/` (above `caching/`): the contract of a method, which every floor above reads.

- `configuration`: `PromptCLIPConfig`, the config every method's extends, its options checked where they are
  defined (`option(...)`: a type, a range or choices), class lists validated.
- `capabilities`: `Capabilities`, what generic code needs to know about a method with one configuration
  (`config.capabilities`): what it learns, whether classes can change, which pipelines apply.
- `registry`: `register_method` and `MethodInfo`, the one place a method becomes visible (Auto classes, tables,
  cards; `unregister_method` undoes it); `method_config` / `method_capabilities` answer for a method before
  anything is built.
- `reference`: numbers the papers report (`PaperResult`), which each method declares beside its code.

It holds no model code: the base model is `modeling/`, reading and writing adapters `serialization/`.
"""

from .capabilities import Capabilities
from .class_names import validate_class_names
from .configuration import PromptCLIPConfig
from .options import option
from .registry import (
    METHODS,
    MethodInfo,
    get_method,
    method_capabilities,
    method_config,
    register_method,
    unregister_method,
)

__all__ = [
    "METHODS",
    "Capabilities",
    "MethodInfo",
    "PromptCLIPConfig",
    "get_method",
    "method_capabilities",
    "method_config",
    "option",
    "register_method",
    "unregister_method",
    "validate_class_names",
]
