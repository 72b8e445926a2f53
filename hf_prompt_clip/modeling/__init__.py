"""Room `modeling/` (above `serialization/`): the machinery every method's model is built from.

- `model`: `PromptCLIPPreTrainedModel` (a frozen `CLIPModel` and a method's adapter: construction, features
  and logits, the loss, training stages); `outputs`: its `PromptCLIPOutput`.
- `class_prompts`: its `ClassPrompts` half (the class list and the text features cached for it); `merging`: its
  `Merging` half (folding a weight-change adapter into a plain `CLIPModel`).
- `stages`: `TrainingStage`, `EpochAverage` (a stage's result as a weighted average of its epochs) and
  `stages_from_overrides`; `image_dtype`: the frozen image tower's dtype names.
- `text`, `text_engine`, `activations`: prompts with learned slots and the exact fast text engine.
- `vision`: the shared image-tower path (prompts at any depth, token selection, several prompt sets).
- `prompts`: the shared prompt components methods hold (`ContextPrompts`, `TemplatePrompts`) and their
  config bases.
- `fitting`: `FitData`, what a `"fit"` training stage reads.
- `pipelines`: the zero-shot pipeline's refusal of unusable `candidate_labels`.
"""

from ..serialization.loading import AdapterLoadError
from .fitting import FitData
from .model import PromptCLIPPreTrainedModel
from .outputs import PromptCLIPOutput
from .prompts import ContextPromptConfig, ContextPrompts, TemplatePromptConfig, TemplatePrompts
from .stages import EpochAverage, TrainingStage, gaussian_epoch_weights

__all__ = [
    "AdapterLoadError",
    "ContextPromptConfig",
    "ContextPrompts",
    "EpochAverage",
    "FitData",
    "PromptCLIPOutput",
    "PromptCLIPPreTrainedModel",
    "TemplatePromptConfig",
    "TemplatePrompts",
    "TrainingStage",
    "gaussian_epoch_weights",
]
