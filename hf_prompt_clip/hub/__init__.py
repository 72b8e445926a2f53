"""Sharing adapters on the Hugging Face Hub: model cards with measured results, and pushing folders.

    from hf_prompt_clip.hub import push_adapter_to_hub, save_model_card
    model.save_pretrained("coop-eurosat")
    args = dataclasses.asdict(training_config)  # training_args is a dict
    save_model_card("coop-eurosat", model.config, training_args=args, results=results)
    push_adapter_to_hub("coop-eurosat", "org/coop-vitb16-eurosat")

See docs/reports.md.
"""

from .model_card import (
    SELECTION_FILE,
    build_model_card,
    eval_results_from,
    method_of,
    save_model_card,
)
from .push import check_adapter_folder, push_adapter_to_hub

__all__ = [
    "SELECTION_FILE",
    "build_model_card",
    "check_adapter_folder",
    "eval_results_from",
    "method_of",
    "push_adapter_to_hub",
    "save_model_card",
]
