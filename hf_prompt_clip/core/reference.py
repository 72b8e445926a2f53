"""What a method's paper reports, as data each method declares beside its code (`MethodInfo.paper_results`).

Room: `core/`.

Model cards and result tables compare measured accuracies with these numbers
(`hf_prompt_clip.evaluate.reference_numbers` gathers them from the registry); they are what published runs
measured, never targets for tests. Accuracies are in percent; metric keys follow the results schema
(`base`/`new`/`hm` for base-to-new, `accuracy` for few-shot, one key per target for transfer protocols).

Example:
    >>> rows = base_to_new_results({"dtd": (79.44, 41.18)}, source="CoOp (IJCV 2022)")
    >>> rows[0].metrics
    {'base': 79.44, 'new': 41.18, 'hm': 54.24}
    >>> few_shot_results({"imagenet": (62.01, 61.45)}, shots=(16, 8), source="Tip", backbone="RN50")[1].shots
    8
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

AVERAGE = "average"
"""Dataset key of a paper's average over its datasets (the 11 of CoOp's benchmark suite)."""

PAPER_BACKBONE = "ViT-B/16"
"""The backbone of the papers' main tables, and of the adapters the project publishes."""


@dataclass(frozen=True)
class PaperResult:
    """One setting a paper reports for a method.

    Attributes:
        dataset: a benchmark key (`"dtd"`) or `AVERAGE`; for transfer protocols, the training dataset.
        protocol: `"few_shot"`, `"base2new"`, `"cross_dataset"` or `"domain_generalization"`.
        shots: training images per class of the paper's table; `None` when it trained on the full training
            set. A method that trains nothing stands in its table's row (the lookup matches it at 0 shots).
        metrics: metric key -> accuracy in percent, keyed as the results schema.
        source: where the number comes from (paper, table, or the authors' repository file).
        backbone: the CLIP image encoder the paper used (`"ViT-B/16"`, `"RN50"`); numbers of another
            backbone are never compared with ViT-B/16 results.
    """

    dataset: str
    protocol: str
    shots: int | None
    metrics: dict[str, float]
    source: str
    backbone: str = PAPER_BACKBONE


def harmonic_mean(base: float, new: float) -> float:
    """H = 2BN / (B + N), the base-to-new summary (0 when both are 0).

    Example:
        >>> round(harmonic_mean(79.44, 41.18), 2)
        54.24
    """
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


def base_to_new_results(
    rows: Mapping[str, tuple[float, float]], source: str, shots: int = 16, backbone: str = PAPER_BACKBONE
) -> tuple[PaperResult, ...]:
    """Base-to-new rows from `{dataset: (base, new)}`; `hm` is computed from them (rounded to 2 places).

    Example:
        >>> base_to_new_results({"average": (80.47, 71.69)}, "CoCoOp")[0].metrics["hm"]
        75.83
    """
    return tuple(
        PaperResult(
            dataset,
            "base2new",
            shots,
            {"base": base, "new": new, "hm": round(harmonic_mean(base, new), 2)},
            source,
            backbone,
        )
        for dataset, (base, new) in rows.items()
    )


def few_shot_results(
    rows: Mapping[str, Sequence[float]],
    shots: Sequence[int | None],
    source: str,
    backbone: str = PAPER_BACKBONE,
) -> tuple[PaperResult, ...]:
    """Few-shot rows from `{dataset: (accuracy at shots[0], accuracy at shots[1], ...)}`.

    Raises:
        ValueError: a row does not have one accuracy per entry of `shots`.
    """
    results = []
    for dataset, accuracies in rows.items():
        if len(accuracies) != len(shots):
            raise ValueError(
                f"{dataset!r} has {len(accuracies)} accuracies for {len(shots)} shot counts {tuple(shots)}: "
                "give one accuracy per shot count, in the same order."
            )
        results += [
            PaperResult(dataset, "few_shot", count, {"accuracy": accuracy}, source, backbone)
            for count, accuracy in zip(shots, accuracies)
        ]
    return tuple(results)


def transfer_result(
    dataset: str,
    protocol: str,
    targets: Mapping[str, float],
    source: str,
    shots: int = 16,
    backbone: str = PAPER_BACKBONE,
) -> PaperResult:
    """A cross-dataset or domain-generalisation row: trained on `dataset`, accuracy per target test set."""
    return PaperResult(dataset, protocol, shots, dict(targets), source, backbone)
