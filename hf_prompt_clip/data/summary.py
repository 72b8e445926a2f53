"""A readable summary of what a run trains and tests on: classes, counts per split, few-shot picks.

Room: `data/`.

hf-prompt-clip data-summary eurosat --data-dir /data/eurosat --shots 16 --seed 1
hf-prompt-clip data-summary --help                    (also: python -m hf_prompt_clip.cli data-summary)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from .errors import SplitNotFoundError
from .fewshot import FewShotSelection, Subset, sample_few_shot, select_classes
from .loading import load_benchmark
from .registry import BenchmarkSpec, base_new_counts, get_benchmark
from .sources import SPLITS, Source


def describe_dataset(dataset: Dataset, title: str, max_classes: int = 10, paper: int | None = None) -> str:
    """Rows, classes and images per class of a loaded split, with the first `max_classes` class names
    (and the papers' number of images of the split, when given)."""
    names = dataset.features["label"].names
    counts = np.bincount(dataset.with_format("arrow")["label"].to_numpy(), minlength=len(names))
    present = int((counts > 0).sum())
    papers = f" (papers: {paper:,})" if paper else ""
    lines = [
        f"{title}: {len(dataset)} images{papers}, {len(names)} classes ({present} with images; "
        f"per class min {counts.min() if counts.size else 0}, max {counts.max(initial=0)})"
    ]
    shown = ", ".join(f"{name} ({count})" for name, count in zip(names[:max_classes], counts))
    more = f", ... {len(names) - max_classes} more" if len(names) > max_classes else ""
    lines.append(f"  classes: {shown}{more}")
    return "\n".join(lines)


def describe_benchmark(spec: BenchmarkSpec, source: Source | None = None) -> str:
    """The registry facts of a benchmark: templates, protocol class counts, and the source read."""
    if source is not None:
        source = repr(source)
    elif spec.hub is not None:
        revision = f" at {spec.hub.revision}" if spec.hub.revision else " (revision not pinned)"
        source = f"Hub {spec.hub.repo_id}{revision}"
    elif spec.source is not None:
        source = f"built in ({type(spec.source).__name__})"
    else:
        source = "local only (imagefolder / split file)"
    base_new = (
        "{} / {}".format(*base_new_counts(spec.num_classes)) if spec.base_new and spec.num_classes else "-"
    )
    return "\n".join(
        [
            f"Benchmark {spec.key!r}" + (f": {spec.description}" if spec.description else ""),
            f"  source: {source}",
            f"  protocol classes: {spec.num_classes or '?'} (base / new: {base_new}); "
            f"super-category: {spec.super_category or '-'}",
            f"  zero-shot template: {spec.template!r}; ensemble: {len(spec.ensemble_templates)} templates",
        ]
    )


def describe_selection(selection: FewShotSelection, max_ids: int = 5) -> str:
    """One line for a few-shot record: parameters, size and the first chosen ids."""
    ids = ", ".join(str(i) for i in selection.ids[:max_ids])
    kind = selection.id_column or "row index"
    return (
        f"few-shot {selection.split}: {selection.shots} shots, seed {selection.seed}: "
        f"{len(selection.ids)} images by {kind}: {ids}{', ...' if len(selection.ids) > max_ids else ''}"
    )


def summarize(
    benchmark: str | BenchmarkSpec,
    *,
    source: Source | None = None,
    splits: Sequence[str] = SPLITS,
    shots: int | None = None,
    seed: int = 1,
    sampler: str = "numpy",
    subset: Subset = "all",
    max_classes: int = 10,
    print_summary: bool = True,
    revision: str | None = None,
) -> str:
    """Load each split of `benchmark` and describe it; with `shots`, also the few-shot draw of `seed`.

    The few-shot draw (`sampler`: `"numpy"` or the CoOp authors' `"dassl"`) is made on all classes and
    then restricted to `subset`, as in training. `revision` pins the registry's Hub source.
    Returns the text (and prints it unless `print_summary=False`).
    """
    spec = get_benchmark(benchmark)
    uses_hub = source is None and spec.hub is not None
    streaming = False if uses_hub else None  # summaries count every image
    parts = [describe_benchmark(spec, source)]
    papers = dict(zip(SPLITS, spec.paper_splits or ()))
    for split in splits:
        try:
            full = load_benchmark(spec, split, source=source, streaming=streaming, revision=revision)
        except SplitNotFoundError as err:
            parts.append(f"{split}: not available ({err})")
            continue
        paper = papers.get(split) if subset == "all" else None
        parts.append(
            describe_dataset(select_classes(full, subset), f"{split} [{subset}]", max_classes, paper)
        )
        if shots is not None and split == "train":
            few, record = sample_few_shot(full, shots, seed, benchmark=spec.key, split=split, sampler=sampler)
            parts.append(
                describe_dataset(select_classes(few, subset), f"{shots}-shot {split} [{subset}]", max_classes)
            )
            parts.append(describe_selection(record))
    text = "\n".join(parts)
    if print_summary:
        print(text)
    return text
