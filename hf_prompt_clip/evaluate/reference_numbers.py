"""The numbers the papers report, gathered from the methods' registry entries, for cards, docs and tables.

Room: `evaluate/`.

Each method declares what its paper reports beside its code (`MethodInfo.paper_results`, e.g.
`methods/coop/paper.py`); this module only looks them up. They are what published runs measured, not
targets for tests. Base-to-new and domain generalisation come from the CoCoOp paper (CLIP, CoOp and CoCoOp
rows; KgCoOp's base-to-new average from its authors' README), few-shot accuracies from PLOT (PLOT++),
fine-grained accuracies from MP-FGVC (trained on the full training sets), all ViT-B/16. Tip-Adapter,
Tip-Adapter-F and CLIP-Adapter publish ResNet-50 numbers only (the Tip-Adapter authors' log): they are kept
with `backbone="RN50"` and a lookup for ViT-B/16 (the default) never returns them. PLOT's paper reports RN50
only and is not recorded; no ViT-B/16 few-shot numbers of the linear probe are published. Accuracies are in
percent.

Keys follow the results schema of `hf_prompt_clip.evaluate`: registered method names, dataset keys of
the benchmark registry, `"average"` for the mean over the 11 base-to-new datasets (or the 11 few-shot
datasets for PLOT++).

Examples of lookups (CoOp on DTD base-to-new, PLOT++'s 4-shot average, Tip-Adapter's ResNet-50 row):
docs/reports.md, "The papers' numbers".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.reference import AVERAGE, PAPER_BACKBONE, PaperResult
from ..core.registry import METHOD_INFO, METHODS, method_capabilities

__all__ = [
    "AVERAGE",
    "BASE_TO_NEW_DATASETS",
    "PAPER_BACKBONE",
    "ReferenceNumber",
    "reference_metrics",
    "reference_number",
    "reference_numbers",
]

BASE_TO_NEW_DATASETS: tuple[str, ...] = (
    "imagenet",
    "caltech101",
    "oxford_pets",
    "stanford_cars",
    "oxford_flowers",
    "food101",
    "fgvc_aircraft",
    "sun397",
    "dtd",
    "eurosat",
    "ucf101",
)
"""The 11 datasets of the CoOp/CoCoOp benchmarks, in the papers' order."""


@dataclass(frozen=True)
class ReferenceNumber(PaperResult):
    """A method's `PaperResult` (dataset, protocol, shots, metrics, source, backbone) with the method's
    registered name, `method`."""

    method: str = ""


def reference_numbers(backbone: str | None = PAPER_BACKBONE) -> tuple[ReferenceNumber, ...]:
    """Every registered method's paper rows, in registration order (`backbone=None`: every backbone)."""
    return tuple(
        ReferenceNumber(**{**vars(r), "metrics": dict(r.metrics)}, method=method)
        for method, info in METHOD_INFO.items()
        for r in info.paper_results
        if backbone is None or r.backbone == backbone
    )


def reference_number(
    method: str, dataset: str, protocol: str, shots: int | None = 16, backbone: str = PAPER_BACKBONE
) -> ReferenceNumber | None:
    """The papers' row for (method, dataset, protocol, shots) with `backbone`, or `None` when no paper
    reports it."""
    rows = [
        r
        for r in reference_numbers(backbone)
        if (r.method, r.dataset, r.protocol) == (method, dataset, protocol)
    ]
    row = next((r for r in rows if r.shots == shots), None)
    trains_nothing = method in METHODS and not method_capabilities(method).learns_parameters
    if row is None and shots == 0 and trains_nothing and rows:  # its results record 0 shots: its table row
        row = rows[0]
    return row


def reference_metrics(
    method: str, dataset: str, protocol: str, shots: int | None = 16, backbone: str = PAPER_BACKBONE
) -> dict[str, float] | None:
    """The papers' metrics for (method, dataset, protocol, shots), keyed like the results schema.

    Args:
        method: a registered method name (its `MethodInfo.paper_results` are searched).
        dataset: a benchmark key (`"dtd"`, `"imagenet"`, ...) or `"average"`. For domain
            generalisation it is the training dataset (`"imagenet"`); the metrics are keyed by target.
        protocol: `"few_shot"`, `"base2new"`, `"cross_dataset"` or `"domain_generalization"`.
        shots: training images per class (`None`: the full training set, as MP-FGVC reports).
        backbone: the paper's CLIP image encoder (default ViT-B/16, the published adapters' base).

    Returns:
        A fresh dict of accuracies in percent (base-to-new rows carry `hm` computed from the
        paper's base and new accuracies), or `None` when no paper reports that combination.
    """
    row = reference_number(method, dataset, protocol, shots, backbone)
    return None if row is None else dict(row.metrics)
