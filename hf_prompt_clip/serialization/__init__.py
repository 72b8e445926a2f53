"""Room `serialization/` (above `core/`): an adapter as files, and the Hub.

- `loading`: the base CLIP by Hub id + revision, local folder or shipped alias; checks that a saved folder
  is an adapter of the class being built (model type, tensors, dtypes, base-model dimensions).
- `adapter_io`: `AdapterIO`, the `save_pretrained` / `push_to_hub` / `from_pretrained` half of every model.
- `card`: the one model-card module (`build_model_card`, `write_model_card`, `retarget_model_card`); results
  arrive already formatted (`hub.results` turns evaluation results into card material).
- `push`: uploading an adapter folder (`push_adapter_to_hub`), checking access first.
- `remote_code`: the few-line loader module an adapter carries for `trust_remote_code=True`.
"""

from .adapter_io import AdapterIO
from .card import build_model_card, write_model_card
from .loading import AdapterLoadError
from .push import PushAccessError, check_push_access, push_adapter_to_hub

__all__ = [
    "AdapterIO",
    "AdapterLoadError",
    "PushAccessError",
    "build_model_card",
    "check_push_access",
    "push_adapter_to_hub",
    "write_model_card",
]
