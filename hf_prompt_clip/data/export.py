"""Export a benchmark from any source as a parquet dataset laid out like a Hub repository.

Room: `data/`.

The CoOp authors' benchmarks live in their split files over the original image folders; the most
common request to their repositories is a download. `export_benchmark` reads a registered benchmark
from any source (a CoOp split file, an image folder, the Hub) and writes

    <output>/data/train-00000-of-00001.parquet
    <output>/data/validation-00000-of-00001.parquet     # the protocol's "val"
    <output>/data/test-00000-of-00001.parquet
    <output>/README.md                                  # a dataset card: source, classes, sizes

with the columns `image` (the bytes, embedded), `label` (`ClassLabel` of the registry's class
names, in the benchmark's label order) and `example_id` (the source's id, e.g. the path in the
authors' split file; `"<split>/<row>"` where the source has none). `exported_source`
reads such a folder, or the repository it was pushed to, like any Hub dataset.

Each split shows a progress bar while its images are read into the table and written (one step per
image; silenced by `--quiet`).

Example:
    >>> source = CoOpSplitSource("split_zhou_EuroSAT.json", "eurosat/2750")
    >>> export_benchmark("eurosat", "eurosat-coop", source=source, push_to_hub="me/eurosat-coop")
    >>> load_benchmark("eurosat", "train", source=exported_source("me/eurosat-coop"))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, DatasetDict
from datasets.fingerprint import Hasher
from datasets.table import embed_table_storage
from huggingface_hub import DatasetCard

from ..utils.atomic import atomic_write_text
from ..utils.logs import progress_bar
from .errors import SplitNotFoundError
from .loading import describe_data, load_benchmark
from .registry import BenchmarkSpec, get_benchmark
from .sources import HubSource, Source

#: Protocol split -> the split name in an exported repository (`datasets` reads "validation").
EXPORT_SPLITS: dict[str, str] = {"train": "train", "val": "validation", "test": "test"}


def exported_source(repo_or_folder: str | os.PathLike, revision: str | None = None) -> HubSource:
    """The source of a dataset written by `export_benchmark` (a local folder or its Hub repository)."""
    return HubSource(
        os.fspath(repo_or_folder),
        revision=revision,
        splits={split: name for split, name in EXPORT_SPLITS.items() if split != name},
        id_column="example_id",
    )


def _embedded(dataset: Dataset, progress: Callable[[int], object]) -> Dataset:
    """The dataset with image files read into the table (as `push_to_hub` embeds them); `progress(rows)` is
    called as each batch of rows is read (a progress bar's `update`)."""

    def embed(table: pa.Table) -> pa.Table:
        table = embed_table_storage(table)
        progress(table.num_rows)
        return table

    # a fingerprint of its own for the map (a function holding a bar cannot be hashed into one)
    fingerprint = Hasher.hash((dataset._fingerprint, "embed_table_storage"))
    return (
        dataset.with_format("arrow").map(embed, batched=True, new_fingerprint=fingerprint).with_format(None)
    )


def _with_ids(dataset: Dataset, split: str) -> Dataset:
    """`dataset` with an `example_id` column: the source's, else `"<split>/<row>"` (stable within
    the export, so few-shot records drawn on it can be replayed)."""
    if "example_id" in dataset.column_names:
        return dataset
    return dataset.add_column("example_id", [f"{split}/{row:07d}" for row in range(len(dataset))])


def _card(spec: BenchmarkSpec, origin: str, sizes: dict[str, int], names: list[str]) -> str:
    rows = "\n".join(f"| {split} | {count} |" for split, count in sizes.items())
    shown = ", ".join(names[:20]) + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")
    return f"""---
task_categories:
- image-classification
tags:
- hf-prompt-clip
- {spec.key}
---

# {spec.key} ({spec.description or "benchmark"})

Exported by [hf_prompt_clip](https://github.com/hf-prompt-clip/hf-prompt-clip) from {origin}, with
the registry's class names in the benchmark's label order ({len(names)} classes: {shown}).

| split | images |
|---|---|
{rows}

Columns: `image`, `label` (`ClassLabel`), `example_id` (the image's id in the source, e.g. the
path in the authors' split file, or `<split>/<row>` where the source has none). Read it with
`load_benchmark("{spec.key}", "train", source=hf_prompt_clip.data.exported_source(<this repo>))`.
"""


def export_benchmark(
    benchmark: str | BenchmarkSpec,
    output_dir: str | os.PathLike,
    *,
    source: Source | None = None,
    splits: tuple[str, ...] = ("train", "val", "test"),
    revision: str | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
    token: str | None = None,
) -> Path:
    """Write `benchmark` (read from `source`, default its Hub source) as a Hub-layout parquet folder.

    Args:
        benchmark: a registry key or spec: its class-name rule and class list apply.
        output_dir: the folder to write (`data/<split>-00000-of-00001.parquet`, `README.md`).
        source: where to read from (`CoOpSplitSource`, `ImageFolderSource`, `HubSource`).
        splits: protocol splits to export; a split the source lacks is left out (at least one must exist).
        revision: revision of the default Hub source.
        push_to_hub: also upload the dataset to this Hub repository (`DatasetDict.push_to_hub`).
        private, token: for the push.

    Returns:
        The output folder.
    """
    spec = get_benchmark(benchmark)
    # the registry's streamed test sets (the wds ImageNet variants) are read whole to be written
    streaming = False if source is None else None
    parts: dict[str, Dataset] = {}
    for split in splits:
        try:
            data = load_benchmark(spec, split, source=source, revision=revision, streaming=streaming)
        except SplitNotFoundError:
            continue
        parts[split] = _with_ids(data, EXPORT_SPLITS[split])
    if not parts:
        raise SplitNotFoundError(f"None of the splits {list(splits)} of {spec.key!r} exists in the source.")
    output = Path(output_dir)
    (output / "data").mkdir(parents=True, exist_ok=True)
    exported = DatasetDict()
    for split, data in parts.items():
        name = EXPORT_SPLITS[split]
        with progress_bar(desc=f"exporting {name}", total=len(data), unit="image", leave=True) as bar:
            exported[name] = _embedded(data, bar.update)
            exported[name].to_parquet(output / "data" / f"{name}-00000-of-00001.parquet")
            bar.update(len(data) - bar.n)  # rows whose embedding came from the `datasets` cache
    names = list(next(iter(parts.values())).features["label"].names)
    origin = describe_data(spec, source, revision)
    card = _card(spec, origin, {split: len(data) for split, data in parts.items()}, names)
    atomic_write_text(output / "README.md", card)
    if push_to_hub:
        exported.push_to_hub(push_to_hub, private=private, token=token)
        # push_to_hub writes a card of its own (the features, the splits' files): keep its metadata,
        # give it our text
        hub_card = DatasetCard.load(push_to_hub, token=token)
        hub_card.text = card.split("---\n", 2)[2]
        hub_card.push_to_hub(push_to_hub, token=token)
    return output
