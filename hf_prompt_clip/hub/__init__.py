"""Room `hub/` (above evaluation): sharing adapters on the Hugging Face Hub with their measured results.

The card is built in one place (`serialization/card.py`) and pushing is adapter I/O
(`serialization/push.py`); this room adds what needs the evaluation layer: measured results as card material
(`card_results`, `eval_results_from`, `save_model_card`), and the cards of the adapters the project
publishes (`published`).

    from hf_prompt_clip.hub import push_adapter_to_hub, save_model_card
    model.save_pretrained("coop-eurosat")
    args = dataclasses.asdict(training_config)  # training_args is a dict
    save_model_card("coop-eurosat", model.config, training_args=args, results=results)
    push_adapter_to_hub("coop-eurosat", "org/coop-vitb16-eurosat")

See docs/reports.md.
"""

from ..serialization.push import PushAccessError, check_adapter_folder, check_push_access, push_adapter_to_hub
from .results import (
    DATA_RECORD_FILE,
    SELECTION_FILE,
    VALIDATION_SELECTION_FILE,
    CardResults,
    build_model_card,
    card_results,
    eval_results_from,
    method_of,
    save_model_card,
)

__all__ = [
    "DATA_RECORD_FILE",
    "SELECTION_FILE",
    "VALIDATION_SELECTION_FILE",
    "CardResults",
    "PushAccessError",
    "build_model_card",
    "card_results",
    "check_adapter_folder",
    "check_push_access",
    "eval_results_from",
    "method_of",
    "push_adapter_to_hub",
    "save_model_card",
]
