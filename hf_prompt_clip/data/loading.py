"""`load_benchmark`: a registered benchmark's split, from its Hub source or from a source you give.

Room: `data/`.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import PIL.Image
from datasets import Image, IterableDataset

from ..utils.logs import progress_bar
from .errors import ClassListMismatchError, UnreadableImageError
from .fewshot import Subset, select_classes
from .registry import BenchmarkSpec, get_benchmark
from .sources import AnyDataset, Source
from .transforms import describe_image, image_location


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
    source, registered = resolve_source(
        spec, source, split=split, revision=revision, streaming=streaming, cache_dir=cache_dir
    )
    dataset = source.load(split, spec)
    if registered and spec.hub is not None:
        check_registry_classes(dataset, spec, source, split)
    if subset != "all" and isinstance(dataset, IterableDataset):
        raise ValueError(f"subset={subset!r} needs a map-style dataset; load with streaming=False.")
    return select_classes(dataset, subset)


def resolve_source(
    benchmark: str | BenchmarkSpec,
    source: Source | None = None,
    *,
    split: str = "test",
    revision: str | None = None,
    streaming: bool | None = None,
    cache_dir: str | None = None,
) -> tuple[Source, bool]:
    """The source `load_benchmark` reads: `source`, else the benchmark's own (its Hub source with the
    overrides applied, or its built-in source). Returns `(source, registered)`, `registered` telling
    whether it is the registry's (then loading checks its classes); `split` only words the error.

    Example:
        >>> resolve_source("dtd", revision="<commit>")[0].describe()
        "Hub dataset 'tanganke/dtd' at revision '<commit>', val = 20% of train per class (seed 0)"
    """
    spec = get_benchmark(benchmark)
    overrides = {
        name: value
        for name, value in (("revision", revision), ("streaming", streaming), ("cache_dir", cache_dir))
        if value is not None
    }
    if source is None and spec.hub is None and spec.source is not None:
        source = spec.source
    if source is not None and overrides:
        raise ValueError(
            f"{sorted(overrides)} only apply to the registry's Hub source; set them on the source you pass."
        )
    registered = source is None or source is spec.hub
    if source is None:
        if spec.hub is None:
            raise ValueError(
                f"Benchmark {spec.key!r} has no Hub source. Pass a local one, e.g. "
                f"load_benchmark({spec.key!r}, {split!r}, source=ImageFolderSource('/data/{spec.key}'))."
            )
        source = dataclasses.replace(spec.hub, **overrides)
    return source, registered


def describe_data(
    benchmark: str | BenchmarkSpec, source: Source | None = None, revision: str | None = None
) -> str:
    """The data a run reads, in words (results and cards record it): `resolve_source(...).describe()`."""
    return resolve_source(benchmark, source, revision=revision)[0].describe()


def hub_dataset(
    benchmark: str | BenchmarkSpec,
    source: Source | None = None,
    revision: str | None = None,
    split: str = "test",
) -> dict[str, str | None] | None:
    """The Hub dataset a run reads split `split` from (`{"id", "config", "split", "revision"}`, the
    repository's own split name), or `None` when the data is not on the Hub; cards cite it.

    Example:
        >>> hub_dataset("dtd")
        {'id': 'tanganke/dtd', 'config': None, 'split': 'test', 'revision': 'd2afa97f...'}
    """
    return resolve_source(benchmark, source, revision=revision)[0].hub_dataset(split)


def check_registry_classes(dataset: AnyDataset, spec: BenchmarkSpec, source: Source, split: str) -> None:
    """Refuse a registered source that does not give the benchmark's classes.

    The class count must be the papers' (`spec.num_classes`) and, for a map-style split, every class
    must have images: a repository rewritten since the registry was checked (a renamed, added or
    dropped class) fails here, naming the repository and revision, instead of silently giving
    another task. (Unknown class names already fail while mapping names onto a shipped list.)

    Raises:
        ClassListMismatchError: naming the source, the revision and the difference.
    """
    names = list(dataset.features["label"].names)
    where = f"{getattr(source, 'repo_id', source)!r} split {split!r} at revision " + (
        repr(getattr(source, "revision", None) or "the default branch")
    )
    fix = (
        "The repository may have been rewritten since the registry was checked: pin the revision it "
        f"was checked at (revision=...), or pass another source (docs/data.md, {spec.key!r})."
    )
    if spec.num_classes is not None and len(names) != spec.num_classes:
        raise ClassListMismatchError(
            f"{where} gives {len(names)} classes, but {spec.key!r} has {spec.num_classes} (the papers'); "
            f"its classes start {names[:5]}. {fix}"
        )
    if isinstance(dataset, IterableDataset):
        return
    counts = np.bincount(dataset.with_format("arrow")["label"].to_numpy(), minlength=len(names))
    empty = [name for name, count in zip(names, counts) if count == 0]
    if empty:
        raise ClassListMismatchError(
            f"{where} has no images of {len(empty)} of the {len(names)} classes of {spec.key!r}, e.g. "
            f"{empty[:5]}: a class was renamed or dropped. {fix}"
        )


def check_images(dataset: AnyDataset, where: str) -> int:
    """Open every image of a map-style split and check its structure (`PIL.Image.verify`), without
    decoding it: a quick scan that finds unreadable, empty or foreign files (and corrupt PNGs) before
    a run spends hours training. Streamed splits are not scanned (that would read them twice).
    Returns the number of images checked (`0` for a streamed split).

    Raises:
        UnreadableImageError: naming the split, the row and the file, and what to do.

    Example:
        >>> check_images(load_benchmark("dtd", "test"), "dtd test")
        1880
    """
    if isinstance(dataset, IterableDataset) or "image" not in dataset.column_names:
        return 0
    raw = dataset.cast_column("image", Image(decode=False))
    for row, value in enumerate(
        progress_bar(raw["image"], desc=f"checking {where} images", unit="image", mininterval=2)
    ):
        path, data = image_location(value)
        try:
            with PIL.Image.open(io.BytesIO(data) if data is not None else path) as image:
                image.verify()
        except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as err:
            raise UnreadableImageError(
                f"{where}: image {describe_image(path, data)} (row {row}) cannot be read: {err}. Nothing was trained yet; "
                "remove or replace the file (or fix the dataset row) and run again."
            ) from err
    return len(raw)
