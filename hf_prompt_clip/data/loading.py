"""`load_benchmark`: a registered benchmark's split, from its Hub source or from a source you give."""

from __future__ import annotations

import dataclasses

from datasets import IterableDataset

from .fewshot import Subset, select_classes
from .registry import BenchmarkSpec, get_benchmark
from .sources import AnyDataset, Source


def load_benchmark(
    benchmark: str | BenchmarkSpec,
    split: str = "test",
    *,
    source: Source | None = None,
    subset: Subset = "all",
    revision: str | None = None,
    streaming: bool | None = None,
    cache_dir: str | None = None,
) -> AnyDataset:
    """Split `split` (`"train"`, `"val"`, `"test"`) of a benchmark with columns `image`, `label`
    (`ClassLabel` of the cleaned class names) and, when the source has one, `example_id`.

    Args:
        benchmark: a registry key (`"eurosat"`) or a `BenchmarkSpec`.
        source: where to read from; default: the benchmark's Hub source. Give an `ImageFolderSource`
            or `CoOpSplitSource` for local data.
        subset: `"all"`, or the `"base"` / `"new"` classes of the base-to-new protocol, relabelled
            0..k-1. (Draw few-shot training sets from `"all"`, then subset: see `fewshot.py`.)
        revision / streaming / cache_dir: override the Hub source's settings.

    Example:
        >>> test = load_benchmark("dtd", "test", revision="<commit>")
        >>> new = load_benchmark("dtd", "test", subset="new")
    """
    spec = get_benchmark(benchmark)
    overrides = {
        name: value
        for name, value in (("revision", revision), ("streaming", streaming), ("cache_dir", cache_dir))
        if value is not None
    }
    if source is None and spec.hub is None and spec.source is not None:
        source = spec.source
    if source is None:
        if spec.hub is None:
            raise ValueError(
                f"Benchmark {spec.key!r} has no Hub source. Pass a local one, e.g. "
                f"load_benchmark({spec.key!r}, {split!r}, source=ImageFolderSource('/data/{spec.key}'))."
            )
        source = dataclasses.replace(spec.hub, **overrides)
    elif overrides:
        raise ValueError(
            f"{sorted(overrides)} only apply to the registry's Hub source; set them on the source you pass."
        )
    dataset = source.load(split, spec)
    if subset != "all" and isinstance(dataset, IterableDataset):
        raise ValueError(f"subset={subset!r} needs a map-style dataset; load with streaming=False.")
    return select_classes(dataset, subset)
