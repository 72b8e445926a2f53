"""The experiment floor: one owner of a run.

Room: `experiment/`.

- `settings`: `ExperimentConfig`, each setting checked once, by the dataclass that defines it;
- `checks`: what is refused before anything trains (methods, options, data, an adapter's data);
- `data`: the examples one seed trains on and the record saved beside its adapter;
- `evaluation`: evaluating with a protocol, results, `evaluate_adapter` (`hf-prompt-clip evaluate`);
- `runner`: `run_experiment` / `run_comparison`, one Accelerator per process handed down
  (`hf_prompt_clip.runner` is this module, earlier releases' name).

The protocols live in `evaluate.protocol_registry` and the records in `evaluate.records` (reports and cards
read them); the command line (`hf_prompt_clip.cli`) parses arguments into these settings.
"""

from .checks import (
    AugmentViewsNotSupportedError,
    ImageDtypeNotSupportedError,
    ProtocolNotSupportedError,
    ValidationSplitMissingError,
)
from .evaluation import evaluate_adapter, evaluate_protocol, load_adapter
from .runner import PushFailedError, run_comparison, run_experiment
from .settings import ExperimentConfig

__all__ = [
    "AugmentViewsNotSupportedError",
    "ExperimentConfig",
    "ImageDtypeNotSupportedError",
    "ProtocolNotSupportedError",
    "PushFailedError",
    "ValidationSplitMissingError",
    "evaluate_adapter",
    "evaluate_protocol",
    "load_adapter",
    "run_comparison",
    "run_experiment",
]
