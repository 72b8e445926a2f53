"""Room `caching/` (above `utils/`): frozen image features computed once and shared.

- `feature_cache`: `ImageFeatureCache`, features keyed on everything that decides them (`FeatureKey`: the
  encoder's weights, the data's fingerprint, the view, the precision), in memory and optionally on disk
  (safetensors entries checked by row count and digest before use); `encode_dataset`, `SeededViews`.
- `process_shards`: `ProcessShards`, several processes sharing the encoding (Accelerate's split and gather).

It knows pixels and features, not models or methods: an encoder is a function and its identity a string.
"""

from .feature_cache import FeatureKey, ImageFeatureCache, encode_dataset, module_digest
from .process_shards import ProcessShards

__all__ = ["FeatureKey", "ImageFeatureCache", "ProcessShards", "encode_dataset", "module_digest"]
