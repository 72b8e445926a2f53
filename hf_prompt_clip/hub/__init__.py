"""Sharing adapters on the Hugging Face Hub: model cards with measured results, and pushing folders.

Pushing and the card itself are adapter I/O (`hf_prompt_clip.core.push`, `core.model_card`); this
package adds the measured results, which need the evaluation layer.

    from hf_prompt_clip.hub import push_adapter_to_hub, save_model_card
    model.save_pretrained("coop-eurosat")
    args = dataclasses.asdict(training_config)  # training_args is a dict
    save_model_card("coop-eurosat", model.config, training_args=args, results=results)
    push_adapter_to_hub("coop-eurosat", "org/coop-vitb16-eurosat")

See docs/reports.md.
"""

from ..core.push import PushAccessError, check_adapter_folder, check_push_access, push_adapter_to_hub
from .model_card import (
    DATA_RECORD_FILE,
    SELECTION_FILE,
    VALIDATION_SELECTION_FILE,
    build_model_card,
    eval_results_from,
    method_of,
    save_model_card,
)

__all__ = [
    "DATA_RECORD_FILE",
    "SELECTION_FILE",
    "VALIDATION_SELECTION_FILE",
    "PushAccessError",
    "build_model_card",
    "check_adapter_folder",
    "check_push_access",
    "eval_results_from",
    "method_of",
    "push_adapter_to_hub",
    "save_model_card",
]
