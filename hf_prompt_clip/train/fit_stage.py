"""Fit stages: a model fits on frozen image features (`model.fit`) instead of taking optimiser steps.

Room: what the loop does around `model.fit` (a linear probe's closed form and C search, Tip-Adapter's cache
and search). It holds `fit_model` (the fit, the config values it set, and under several processes the main
process's result on every process: `share_fit`) and `model_options` / `set_model_options`: the config values
a fit sets are recorded in the run's log, so that a run resumed after the fit sets them again without
fitting. The loop (`PromptTrainer._fit_stage`) writes the checkpoint.
"""

from __future__ import annotations

from typing import Any

from accelerate import Accelerator
from accelerate.utils import broadcast, broadcast_object_list

from ..core.options import option_types
from ..modeling.fitting import FitData
from ..modeling.model import PromptCLIPPreTrainedModel


def model_options(model: PromptCLIPPreTrainedModel) -> dict[str, Any]:
    """The model's option values (its config fields), but its class list.

    Example:
        >>> model_options(model)["alpha"]      # a Tip-Adapter: the value its fit searched
        1.0
    """
    config = model.config
    return {
        key: getattr(config, key)
        for key in option_types(type(config))
        if key not in ("class_names", "prompt_names")
    }


def set_model_options(model: PromptCLIPPreTrainedModel, values: dict[str, Any]) -> None:
    """Set config values (`model_options` names) on the model, as a fit set them."""
    for key, value in values.items():
        setattr(model.config, key, value)


def share_fit(
    accelerator: Accelerator, model: PromptCLIPPreTrainedModel, record: dict, changed: dict[str, Any]
) -> tuple[dict, dict[str, Any]]:
    """With several processes: the main process's fit (its record, the config values it set and its adapter
    tensors) on every process. Each process fitted the same data; this makes them exactly equal. Every
    process must call it (it broadcasts)."""
    if accelerator.num_processes == 1:
        return record, changed
    shared = [record, changed]
    broadcast_object_list(shared, from_process=0)
    record, changed = shared
    set_model_options(model, changed)
    state = model.adapter_state_dict()
    model.load_adapter_state_dict(
        {key: broadcast(value.detach().clone().contiguous(), from_process=0) for key, value in state.items()},
        source="the main process's fit",
    )
    return record, changed


def fit_model(
    model: PromptCLIPPreTrainedModel, data: FitData, accelerator: Accelerator
) -> tuple[dict, dict[str, Any]]:
    """Fit `model` on `data` (in eval mode; a fit may take gradients of its own, Tip-Adapter-F), on every
    process, and keep the main process's result (`share_fit`).

    Returns:
        the fit's record (what it chose and why, JSON-able) and the config values it changed.

    Example:
        >>> record, changed = fit_model(probe, trainer.fit_data(), accelerator)
        >>> changed                              # the regularisation strength its search chose
        {'C': 0.316}
    """
    before = model_options(model)
    model.eval()
    record = model.fit(data)
    changed = {key: value for key, value in model_options(model).items() if before[key] != value}
    return share_fit(accelerator, model, record, changed)
