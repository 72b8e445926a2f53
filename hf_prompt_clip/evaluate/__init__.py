"""Evaluation protocols (few-shot, base-to-new, cross-dataset, domain generalisation) and reports."""

from .protocols import (
    Predictions,
    class_lists,
    evaluate_accuracy,
    evaluate_base_to_new,
    evaluate_targets,
    harmonic_mean,
    predict,
    summarize_runs,
)

__all__ = [
    "Predictions",
    "class_lists",
    "evaluate_accuracy",
    "evaluate_base_to_new",
    "evaluate_targets",
    "harmonic_mean",
    "predict",
    "summarize_runs",
]
