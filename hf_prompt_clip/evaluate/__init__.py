"""Evaluation protocols (few-shot, base-to-new, cross-dataset, domain generalisation), their registry, the
records of results, and reports.

Room: `evaluate/`.
"""

from .protocol_registry import Protocol, ProtocolInputs, get_protocol, protocol_keys, register_protocol
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
from .records import DataRecord, ExperimentResult, RunResult

__all__ = [
    "DataRecord",
    "ExperimentResult",
    "Predictions",
    "Protocol",
    "ProtocolInputs",
    "RunResult",
    "class_lists",
    "evaluate_accuracy",
    "evaluate_base_to_new",
    "evaluate_targets",
    "get_protocol",
    "harmonic_mean",
    "predict",
    "protocol_keys",
    "register_protocol",
    "summarize_runs",
]
