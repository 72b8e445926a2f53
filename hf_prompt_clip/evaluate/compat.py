"""Use `evaluate.evaluator("image-classification")` with our models under transformers 5.

Room: `evaluate/`.

`evaluate` 0.4.6 checks `isinstance(model, transformers.TFPreTrainedModel)`, a class transformers 5
removed, so its evaluators fail for every model with an AttributeError. The check only rules
TensorFlow models out; an empty placeholder class makes it pass without changing anything else.
Metrics from the Hub (`evaluate.load("accuracy")`) still need network access: offline, pass a
metric module of your own (see docs/training.md, "With `evaluate.evaluator`").
"""

from __future__ import annotations

import transformers


def enable_evaluate_evaluator() -> None:
    """Make `evaluate`'s evaluators usable with transformers 5 (idempotent)."""
    try:
        transformers.TFPreTrainedModel  # noqa: B018
    except AttributeError:
        transformers.TFPreTrainedModel = type("TFPreTrainedModel", (), {})
