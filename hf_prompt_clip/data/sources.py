"""Where a benchmark's images come from, behind one interface.

Room: `data/`.

A source reads one split and returns a `datasets.Dataset` (an `IterableDataset` when streaming)
with the columns

- `image`: a `datasets.Image` feature,
- `label`: `ClassLabel(names=<cleaned class names>)`, ids in the benchmark's label order,
- `example_id` (when the source has one): a stable identifier such as the image's relative path,
  used by few-shot selection records.

Three sources exist: `HubSource` (`load_dataset` on a Hub id, or on a local folder laid out like
a Hub repository), `ImageFolderSource` (a local `imagefolder` tree, one folder per class) and
`CoOpSplitSource` (the CoOp authors' `split_zhou_<Dataset>.json` files over the original images,
for exact reproduction). Each reads raw columns; `to_benchmark_format` then maps raw labels onto
the benchmark's class list with the benchmark's class-name rule.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, Features, Image, IterableDataset, Value, load_dataset

from .classnames import identity, name_key, reference_text_clean
from .errors import ColumnNotFoundError, LabelError, SplitNotFoundError


class BenchmarkClasses(Protocol):
    """What a source reads of a benchmark to name its classes (`data.registry.BenchmarkSpec` is one): the
    registry key, the shipped class list and raw keys, and how raw names are cleaned and ordered."""

    key: str
    class_names: tuple[str, ...] | None
    class_keys: tuple[str, ...] | None
    sort_raw_names: bool
    index_names_match: bool
    reference_text_cleanup: bool
    clean_name: Callable[[str], str | None]


LabelMode = Literal["name", "index"]
AnyDataset = Dataset | IterableDataset
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class RawSplit:
    """One split as a source read it, before class-name mapping.

    Attributes:
        dataset: the data with its original columns.
        image_column / label_column / id_column: which columns hold the image, the label and a
            stable example id (`None`: row indices identify examples).
        label_mode: `"name"` maps raw class names (or keys such as WordNet ids) onto the class list;
            `"index"` takes integer labels as the benchmark's label ids as they are.
        origin: a human description for error messages (`"Hub dataset 'tanganke/dtd' split 'test'"`).
    """

    dataset: AnyDataset
    image_column: str
    label_column: str
    id_column: str | None
    label_mode: LabelMode
    origin: str


class Source(ABC):
    """A place a benchmark's splits can be read from."""

    @abstractmethod
    def read(self, split: str) -> RawSplit:
        """Read protocol split `split` (`"train"`, `"val"` or `"test"`) with its original columns."""

    def describe(self) -> str:
        """Where the data comes from, in words, for results and cards (`"Hub dataset 'tanganke/dtd' at
        revision 'd2afa97...'"`)."""
        return type(self).__name__

    def hub_dataset(self, split: str) -> dict[str, str | None] | None:
        """The Hub dataset that split `split` is read from, as a model card names it: `{"id", "config",
        "split", "revision"}` (the repository's own split name), or `None` when the data is not a Hub
        dataset (a local folder, a split file, the synthetic world)."""
        return None

    def load(self, split: str, spec: BenchmarkClasses | None = None) -> AnyDataset:
        """Split `split` with columns `image`, `label` (cleaned `ClassLabel`) and, if known, `example_id`.

        Without `spec`, class names are taken as the source gives them.
        """
        return to_benchmark_format(self.read(split), spec)


@dataclass(frozen=True)
class HubSource(Source):
    """A dataset on the Hub (or a local folder laid out like a Hub repository), read with `load_dataset`.

    Attributes:
        repo_id: Hub id (`"tanganke/dtd"`) or a local path to a repository folder.
        revision: branch, tag or commit to pin (`None`: the default branch).
        name: configuration name, if the repository has several.
        splits: protocol split -> repository split (`{"test": "validation"}`); others keep their name.
        image_column: the image column, or candidates of which the first present is used.
        label_column: the label column (`ClassLabel`, integer or string).
        id_column: a stable per-example id column, if any.
        label_mode: see `RawSplit.label_mode`.
        streaming: iterate without downloading everything (large test-only sets).
        cache_dir: the `datasets` cache folder (`None`: the default).
        val_from_train: the repository has no validation split: the protocol's `"val"` is this
            fraction of each class of `"train"` (`split_off_validation`, seeded by `val_seed`), and
            `"train"` the rest, so the two never share an image.
        val_seed: seed of that split.
        frame_groups / frame_column: the repository holds every frame of a video: keep one row per
            group of `frame_groups` values (a clip), the middle one by `frame_column` (UCF101's
            middle frames).
    """

    repo_id: str
    revision: str | None = None
    name: str | None = None
    splits: Mapping[str, str] = field(default_factory=dict)
    image_column: str | tuple[str, ...] = "image"
    label_column: str = "label"
    id_column: str | None = None
    label_mode: LabelMode = "name"
    streaming: bool = False
    cache_dir: str | None = None
    val_from_train: float | None = None
    val_seed: int = 0
    frame_groups: tuple[str, ...] = ()
    frame_column: str | None = None

    def read(self, split: str) -> RawSplit:
        if self.val_from_train is not None and split in ("train", "val"):
            return self._read_derived(split)
        raw = self._read_repository(split)
        return self._middle_frames(raw) if self.frame_column else raw

    @property
    def describe_revision(self) -> str:
        return self.revision or "the default branch"

    def describe(self) -> str:
        text = f"Hub dataset {self.repo_id!r} at revision {self.describe_revision!r}"
        if self.frame_column:
            text += f", the middle frame of each ({', '.join(self.frame_groups)}) clip"
        if self.val_from_train is not None:
            text += f", val = {self.val_from_train:.0%} of train per class (seed {self.val_seed})"
        return text

    def hub_dataset(self, split: str) -> dict[str, str | None] | None:
        """`{"id", "config", "split", "revision"}` of the repository split read for `split`; `None` for a
        local folder laid out like a Hub repository.

        Example:
            >>> HubSource("tanganke/dtd", revision="d2afa97...").hub_dataset("test")
            {'id': 'tanganke/dtd', 'config': None, 'split': 'test', 'revision': 'd2afa97...'}
        """
        if os.path.isabs(self.repo_id) or os.path.exists(self.repo_id) or self.repo_id.count("/") > 1:
            return None
        derived = self.val_from_train is not None and split in ("train", "val")
        return {
            "id": self.repo_id,
            "config": self.name,
            "split": "train" if derived else self.splits.get(split, split),
            "revision": self.revision,
        }

    def _read_derived(self, split: str) -> RawSplit:
        raw = self._read_repository("train")
        if self.frame_column:
            raw = self._middle_frames(raw)
        labels = raw.dataset.with_format("arrow")[raw.label_column].to_pylist()
        train_rows, val_rows = split_off_validation(labels, self.val_from_train, self.val_seed)
        rows, part = (val_rows, "val") if split == "val" else (train_rows, "train")
        origin = (
            f"{raw.origin} ({part} of the {self.val_from_train:.0%} per-class validation split derived "
            f"from it, seed {self.val_seed})"
        )
        return dataclasses.replace(raw, dataset=raw.dataset.select(rows), origin=origin)

    def _middle_frames(self, raw: RawSplit) -> RawSplit:
        columns = [*self.frame_groups, self.frame_column]
        for column in columns:
            _require_column(raw, column, "frame")
        table = raw.dataset.select_columns(columns).to_pandas()
        ordered = table.sort_values([*self.frame_groups, self.frame_column], kind="stable")
        groups = ordered.groupby(list(self.frame_groups), sort=False).indices
        rows = sorted(int(ordered.index[positions[len(positions) // 2]]) for positions in groups.values())
        origin = f"{raw.origin} (the middle frame of each of {len(rows)} clips)"
        return dataclasses.replace(raw, dataset=raw.dataset.select(rows), origin=origin)

    def _read_repository(self, split: str) -> RawSplit:
        hub_split = self.splits.get(split, split)
        origin = f"Hub dataset {self.repo_id!r} split {hub_split!r} at revision {self.describe_revision!r}"
        try:
            dataset = load_dataset(
                self.repo_id,
                self.name,
                split=hub_split,
                revision=self.revision,
                streaming=self.streaming,
                cache_dir=self.cache_dir,
            )
        except ValueError as err:
            if "Unknown split" not in str(err) and "Bad split" not in str(err):  # (streaming says "Bad")
                raise
            raise SplitNotFoundError(
                f"{origin} does not exist (protocol split {split!r}): {err} Map protocol splits to the "
                "repository's with HubSource(splits={'test': '<repository split>'})."
            ) from err
        columns = dataset.column_names
        candidates = (self.image_column,) if isinstance(self.image_column, str) else self.image_column
        image_column = next((c for c in candidates if columns is None or c in columns), candidates[0])
        return RawSplit(dataset, image_column, self.label_column, self.id_column, self.label_mode, origin)


def split_by_class(labels: Sequence, fractions: Mapping[str, float], seed: int = 0) -> dict[str, list[int]]:
    """Rows of each part of a seeded per-class split; the rows left over form `"train"`.

    For each class, in order of first appearance, its rows are shuffled with one
    `numpy.random.default_rng(seed)` and cut in the order of `fractions`: `round(fraction * n)` rows
    per part, at least one each where the class has more rows than there are parts (so train keeps
    at least one), none where it has fewer. Parts never share a row; every row is in one part.

    Args:
        labels: the label of each row (any hashable values), length N.
        fractions: part name -> fraction of each class, e.g. `{"val": 0.1, "test": 0.2}`; each in
            (0, 1), summing to less than 1.
        seed: the shuffle's seed.

    Returns:
        `{"train": rows, **{part: rows}}`, each list of row indices sorted.

    Example:
        >>> parts = split_by_class([0] * 10 + [1] * 10, {"val": 0.1, "test": 0.2}, seed=0)
        >>> [len(parts[name]) for name in ("train", "val", "test")]
        [14, 2, 4]
    """
    if any(not 0 < fraction < 1 for fraction in fractions.values()) or sum(fractions.values()) >= 1:
        raise ValueError(
            f"Split fractions must each be in (0, 1) and sum to less than 1 (the rest is train), got "
            f"{dict(fractions)}."
        )
    if "train" in fractions:
        raise ValueError("'train' is the rest of a split: give the fractions of the other parts only.")
    rng = np.random.default_rng(seed)
    by_class: dict = {}
    for row, label in enumerate(labels):
        by_class.setdefault(label, []).append(row)
    parts: dict[str, list[int]] = {name: [] for name in fractions}
    for rows in by_class.values():
        shuffled = rng.permutation(rows).tolist()
        if len(rows) <= len(fractions):
            continue  # too few to split: all train
        start = 0
        for name, fraction in fractions.items():
            count = min(max(1, round(fraction * len(rows))), len(rows) - start - 1)
            parts[name].extend(shuffled[start : start + count])
            start += count
    taken = set().union(*map(set, parts.values()))
    return {"train": [row for row in range(len(labels)) if row not in taken]} | {
        name: sorted(rows) for name, rows in parts.items()
    }


def split_off_validation(labels: Sequence, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train rows, validation rows) of a training split: `round(fraction * n)` rows of each class
    (at least one where the class has two or more) go to validation, drawn with
    `numpy.random.default_rng(seed)` class by class in order of first appearance
    (`split_by_class(labels, {"val": fraction}, seed)`).

    Example:
        >>> train_rows, val_rows = split_off_validation([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], 0.2, seed=0)
        >>> len(val_rows), sorted(set(train_rows) & set(val_rows))
        (2, [])
    """
    if not 0 < fraction < 1:
        raise ValueError(f"The validation fraction must be in (0, 1), got {fraction}.")
    parts = split_by_class(labels, {"val": fraction}, seed)
    return parts["train"], parts["val"]


#: Folder names `datasets`' imagefolder reads as splits; a tree with none of them is flat.
SPLIT_FOLDERS: tuple[str, ...] = ("train", "val", "validation", "valid", "dev", "test", "testing", "eval")


def has_split_folders(root: str | os.PathLike) -> bool:
    """Whether an image tree is split into `train/`, `test/`, ... folders (else it is flat: `root/<class>/`)."""
    return any(os.path.isdir(os.path.join(root, name)) for name in SPLIT_FOLDERS)


@dataclass(frozen=True)
class ImageFolderSource(Source):
    """A local `imagefolder` tree: `root/<split>/<class>/<image>`, or a flat `root/<class>/<image>`.

    Class folders are read in ASCII order; `example_id` is each file's path relative to `root`. A flat
    tree is the training split, or, with `split_fractions`, is split per class into train / val / test
    (`split_by_class`, seeded by `split_seed`), the same way on every read.

    Attributes:
        root: the top folder.
        splits: protocol split -> `imagefolder` split; `datasets` names a `val/` folder `"validation"`.
        cache_dir: the `datasets` cache folder (`None`: the default).
        split_fractions: for a flat tree, the fraction of each class in `"val"` and `"test"`
            (`{"val": 0.1, "test": 0.2}`; the rest is `"train"`); ignored by a tree with split folders.
        split_seed: seed of that split.

    Example:
        >>> source = ImageFolderSource("my_photos", split_fractions={"val": 0.1, "test": 0.2})
        >>> source.load("test").features["label"].names
        ['cat', 'dog']
    """

    root: str | os.PathLike
    splits: Mapping[str, str] = field(default_factory=lambda: {"val": "validation"})
    cache_dir: str | None = None
    split_fractions: Mapping[str, float] | None = None
    split_seed: int = 0

    @property
    def flat(self) -> bool:
        """The tree has no split folders."""
        return not has_split_folders(self.root)

    def describe(self) -> str:
        text = f"image folder {os.path.abspath(self.root)!r}"
        if self.flat and self.split_fractions:
            parts = ", ".join(f"{name} {fraction:.0%}" for name, fraction in self.split_fractions.items())
            text += f" (flat; split per class: {parts}, train the rest; seed {self.split_seed})"
        elif self.flat:
            text += " (flat: train only)"
        return text

    def read(self, split: str) -> RawSplit:
        root = os.path.abspath(self.root)
        if not os.path.isdir(root):
            raise FileNotFoundError(
                f"Image folder {root!r} does not exist. Give a folder with one sub-folder of images per "
                "class (root/<class>/*.jpg), or with train/ and test/ folders of class folders."
            )
        if self.flat:
            return self._read_flat(root, split)
        folder_split = self.splits.get(split, split)
        origin = f"image folder {root!r} split {folder_split!r}"
        try:
            dataset = load_dataset("imagefolder", data_dir=root, split=folder_split, cache_dir=self.cache_dir)
        except ValueError as err:
            if "Unknown split" not in str(err):
                raise
            raise SplitNotFoundError(
                f"{origin} does not exist: {err} Put the split's class folders in {root}/{folder_split}/."
            ) from err
        return self._raw(dataset, root, origin)

    def _read_flat(self, root: str, split: str) -> RawSplit:
        if split != "train" and split not in (self.split_fractions or {}):
            raise SplitNotFoundError(
                f"Image folder {root!r} is flat (one folder per class, no train/ or test/ folders) and is "
                f"not split into a {split!r} part. Split it per class: ImageFolderSource(root, "
                f"split_fractions={{'{split}': 0.1, ...}}) (on the CLI, your own folder given with --data-dir "
                "alone is split so; a registered benchmark's local copy needs split folders)."
            )
        dataset = load_dataset("imagefolder", data_dir=root, split="train", cache_dir=self.cache_dir)
        origin = f"image folder {root!r}"
        if self.split_fractions:
            labels = dataset.with_format("arrow")["label"].to_pylist()
            rows = split_by_class(labels, self.split_fractions, self.split_seed)[split]
            dataset = dataset.select(rows)
            origin += f" ({split} part of its per-class split, seed {self.split_seed})"
        return self._raw(dataset, root, origin)

    @staticmethod
    def _raw(dataset: Dataset, root: str, origin: str) -> RawSplit:
        paths = dataset.cast_column("image", Image(decode=False)).with_format("arrow")["image"]
        ids = [os.path.relpath(path, root) for path in pc.struct_field(paths, "path").to_pylist()]
        dataset = dataset.add_column("example_id", ids, feature=Value("string"))
        return RawSplit(dataset, "image", "label", "example_id", "name", origin)


@dataclass(frozen=True)
class CoOpSplitSource(Source):
    """The CoOp authors' split file over the original image folder (exact reproduction of the papers).

    `split_file` (`split_zhou_<Dataset>.json`) holds `"train"`, `"val"` and `"test"` lists of
    `[relative_image_path, label, classname]`; paths are relative to `image_root`. Classes are matched
    by name: the file's names pass through the benchmark's rule onto its class list (so a file whose
    label ids differ from the registry's order is relabelled, not misread); without a shipped list
    the file's label order is kept.
    """

    split_file: str | os.PathLike
    image_root: str | os.PathLike

    @cached_property
    def _content(self) -> dict:
        with open(self.split_file, encoding="utf-8") as handle:
            return json.load(handle)

    def class_names(self) -> list[str]:
        """The raw class name of each label id, over all splits of the file."""
        name_of: dict[int, str] = {}
        for split, rows in self._content.items():
            for path, label, name in rows:
                if name_of.setdefault(int(label), name) != name:
                    raise LabelError(
                        f"Split file {os.fspath(self.split_file)!r} gives label {label} two names: "
                        f"{name_of[int(label)]!r} and {name!r} (at {split!r} entry {path!r})."
                    )
        missing = sorted(set(range(max(name_of, default=-1) + 1)) - set(name_of))
        if missing or min(name_of, default=0) < 0:
            raise LabelError(
                f"Split file {os.fspath(self.split_file)!r} must use label ids 0..K-1 without gaps; "
                f"ids {missing[:10]} have no example and the smallest id is {min(name_of)}."
            )
        return [name_of[i] for i in range(len(name_of))]

    def describe(self) -> str:
        return f"CoOp split file {os.fspath(self.split_file)!r} over {os.fspath(self.image_root)!r}"

    def read(self, split: str) -> RawSplit:
        origin = f"split file {os.fspath(self.split_file)!r} split {split!r}"
        if split not in self._content:
            raise SplitNotFoundError(f"{origin} does not exist; the file has {sorted(self._content)}.")
        rows = self._content[split]
        root = os.path.abspath(self.image_root)
        paths = [os.path.join(root, path) for path, _, _ in rows]
        missing = [path for path in paths if not os.path.isfile(path)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) of {origin} are missing under {root!r}, e.g. {missing[:3]}. "
                "image_root must be the folder the split file's paths are relative to."
            )
        features = Features(
            image=Image(), label=ClassLabel(names=self.class_names()), example_id=Value("string")
        )
        data = {"image": paths, "label": [int(r[1]) for r in rows], "example_id": [r[0] for r in rows]}
        return RawSplit(
            Dataset.from_dict(data, features=features), "image", "label", "example_id", "name", origin
        )


def _require_column(raw: RawSplit, column: str, role: str) -> None:
    columns = raw.dataset.column_names
    if columns is not None and column not in columns:
        raise ColumnNotFoundError(
            f"{raw.origin} has no {role} column {column!r}; its columns are {columns}. "
            f"Name the right column (HubSource(..., {role}_column='<name>')); an image folder needs one "
            "sub-folder per class."
        )


def resolve_classes(
    raw_names: Sequence[str],
    spec: BenchmarkClasses | None,
    label_mode: LabelMode,
    origin: str,
    raw_names_given: bool = False,
) -> tuple[tuple[str, ...], list[int]]:
    """The benchmark's class names and, for every raw class id, its benchmark id (`-1`: dropped).

    `raw_names_given`: the names are the source's own (a `ClassLabel`), not filled in from the
    shipped list; `"index"` mode then requires the shipped list's class count (and, with
    `spec.index_names_match`, its names).

    `"index"` mode keeps raw ids (onto the shipped list when the benchmark has one); `"name"` mode
    matches raw names (or `spec.class_keys`) against the shipped list, or else builds the list from
    the cleaned raw names in source order (ASCII order of raw names with `spec.sort_raw_names`).
    """
    if spec is not None and spec.reference_text_cleanup:
        raw_names = [reference_text_clean(name) for name in raw_names]
    clean = spec.clean_name if spec is not None else identity
    shipped = spec.class_names if spec is not None else None
    if label_mode == "index" and shipped is not None:
        if len(raw_names) != len(shipped) and (len(raw_names) > len(shipped) or raw_names_given):
            raise LabelError(
                f"{origin} has {len(raw_names)} classes but {spec.key!r} has {len(shipped)}; its label ids "
                "cannot be read as the benchmark's. Pin the revision the registry was checked at, or "
                "pass a source that holds the benchmark."
            )
        if raw_names_given and spec.index_names_match:
            wrong = [(i, raw, name) for i, (raw, name) in enumerate(zip(raw_names, shipped))
                     if name_key(clean(raw) or "") != name_key(name)]  # fmt: skip
            if wrong:
                raise LabelError(
                    f"{origin} names {len(wrong)} label id(s) otherwise than {spec.key!r}, e.g. "
                    f"{[f'{i}: {raw!r} (expected {name!r})' for i, raw, name in wrong[:3]]}: the repository "
                    "was reordered or renamed. Pin the revision the registry was checked at."
                )
        return shipped, list(range(len(raw_names)))
    if label_mode == "name" and shipped is not None:
        return shipped, _match_shipped(raw_names, spec, origin)
    order = range(len(raw_names))
    if label_mode == "name" and spec is not None and spec.sort_raw_names:
        order = sorted(order, key=raw_names.__getitem__)
    names: list[str] = []
    mapping = [-1] * len(raw_names)
    for raw_id in order:
        cleaned = clean(raw_names[raw_id])
        if cleaned is None:
            continue
        if cleaned not in names:
            names.append(cleaned)
        mapping[raw_id] = names.index(cleaned)
    return tuple(names), mapping


def _match_shipped(raw_names: Sequence[str], spec: BenchmarkClasses, origin: str) -> list[int]:
    """Benchmark id of every raw name: by key (WordNet id), by cleaned name, else by the name's words
    (`name_key`: `apply eye makeup` finds `Apply_Eye_Makeup`); `-1` for names the rule drops."""
    by_key = {key: i for i, key in enumerate(spec.class_keys or ())}
    by_name = {name: i for i, name in enumerate(spec.class_names or ())}
    by_words: dict[tuple[str, ...], int] = {}
    for name, i in by_name.items():
        by_words[name_key(name)] = -2 if name_key(name) in by_words else i  # -2: ambiguous
    mapping, unknown = [], []
    for raw in raw_names:
        cleaned = raw if raw in by_key else spec.clean_name(raw)
        index = by_key.get(raw, by_name.get(cleaned, -1) if cleaned is not None else -1)
        if index < 0 and cleaned is not None:
            index = max(by_words.get(name_key(cleaned), -1), -1)
        if index < 0 and cleaned is not None:
            unknown.append(raw)
        mapping.append(index)
    if unknown:
        close = difflib.get_close_matches(spec.clean_name(unknown[0]) or "", list(by_name), n=3)
        raise LabelError(
            f"{origin}: {len(unknown)} class name(s) are not among the {len(by_name)} classes of "
            f"{spec.key!r}, e.g. {unknown[:5]} (closest known names to the first: {close}). Rename the "
            "classes; for a registered repository rewritten since the registry was checked, pin the "
            "revision it was checked at (revision=...). Use label_mode='index' only for your own data "
            "whose integer labels already follow the benchmark's order."
        )
    return mapping


def _check_ids(raw_ids: np.ndarray, num_raw: int, origin: str, names: Sequence[str]) -> None:
    bad = raw_ids[(raw_ids < 0) | (raw_ids >= num_raw)]
    if bad.size:
        raise LabelError(
            f"{origin} has label ids outside the class list: {sorted(set(bad.tolist()))[:10]} "
            f"({bad.size} rows), but only ids 0..{num_raw - 1} exist ({num_raw} classes, e.g. "
            f"{list(names[:3])}). Fix the labels or give the full class list."
        )


def to_benchmark_format(raw: RawSplit, spec: BenchmarkClasses | None = None) -> AnyDataset:
    """Select, rename and relabel `raw` into the columns `image`, `label` (cleaned `ClassLabel`), `example_id`."""
    _require_column(raw, raw.image_column, "image")
    _require_column(raw, raw.label_column, "label")
    if raw.id_column is not None:
        _require_column(raw, raw.id_column, "id")
    dataset = raw.dataset
    columns = [raw.image_column, raw.label_column] + ([raw.id_column] if raw.id_column else [])
    dataset = dataset.select_columns(columns)
    renames = {raw.image_column: "image", raw.label_column: "raw_label"}
    if raw.id_column:
        renames[raw.id_column] = "example_id"
    dataset = dataset.rename_columns({old: new for old, new in renames.items() if old != new})
    if isinstance(dataset, IterableDataset):
        return _relabel_stream(dataset, raw, spec)
    return _relabel(dataset, raw, spec)


def _raw_label_names(feature: object) -> list[str] | None:
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def _label_type_error(raw: RawSplit, dtype: object, examples: Sequence[object] = ()) -> LabelError:
    shown = f" (e.g. {list(examples)[:3]})" if examples else ""
    return LabelError(
        f"{raw.origin}: the label column {raw.label_column!r} holds {dtype} values{shown}, but labels "
        "must be integer class ids or class names: a fractional label "
        "would be cut to another class's id. Fix the labels, or cast the column to integers when every "
        f"value is whole (dataset.cast_column({raw.label_column!r}, Value('int64')))."
    )


def _check_integer_labels(values: pa.ChunkedArray | pa.Array, raw: RawSplit, feature: object) -> None:
    """Refuse a label column that is not of integers (floats, booleans, ...) or has empty labels."""
    if not pa.types.is_integer(values.type):
        dtype = feature.dtype if isinstance(feature, Value) else values.type
        raise _label_type_error(raw, dtype, values.slice(0, 3).to_pylist())
    if values.null_count:
        raise LabelError(
            f"{raw.origin}: the label column {raw.label_column!r} has {values.null_count} empty label(s); "
            "every example needs a class id. Drop or label those rows."
        )


def _relabel(dataset: Dataset, raw: RawSplit, spec: BenchmarkClasses | None) -> Dataset:
    values = dataset.with_format("arrow")["raw_label"]
    feature = dataset.features["raw_label"]
    label_mode = raw.label_mode
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        strings = values.to_pylist()
        raw_names = sorted(set(strings))
        position = {name: i for i, name in enumerate(raw_names)}
        raw_ids = np.array([position[v] for v in strings], dtype=np.int64)
        label_mode = "name"
        given = True
    else:
        _check_integer_labels(values, raw, feature)
        raw_ids = values.to_numpy().astype(np.int64)
        raw_names = _raw_label_names(feature)
        given = raw_names is not None
        if raw_names is None:  # plain integers: they are the benchmark's ids
            label_mode = "index"
            shipped = spec.class_names if spec is not None else None
            count = len(shipped) if shipped is not None else int(raw_ids.max(initial=-1)) + 1
            raw_names = list(shipped) if shipped is not None else [str(i) for i in range(count)]
    names, mapping = resolve_classes(raw_names, spec, label_mode, raw.origin, given)
    _check_ids(raw_ids, len(mapping), raw.origin, names)
    labels = np.asarray(mapping, dtype=np.int64)[raw_ids]
    dataset = dataset.remove_columns("raw_label").add_column(
        "label", labels, feature=ClassLabel(names=list(names))
    )
    if not isinstance(dataset.features["image"], Image):
        dataset = dataset.cast_column("image", Image())
    kept = np.flatnonzero(labels >= 0)
    return dataset if kept.size == len(labels) else dataset.select(kept)


def _relabel_stream(
    dataset: IterableDataset, raw: RawSplit, spec: BenchmarkClasses | None
) -> IterableDataset:
    feature = dataset.features["raw_label"] if dataset.features else None
    raw_names = _raw_label_names(feature)
    given = raw_names is not None
    label_mode = raw.label_mode
    if raw_names is None:  # integers or strings: both need the benchmark's fixed class list
        if spec is None or spec.class_names is None:
            raise LabelError(
                f"{raw.origin} is streamed without class names; streaming needs a benchmark with a "
                "shipped class list (ImageNet and variants) or a ClassLabel column."
            )
        if isinstance(feature, Value) and feature.dtype == "string":  # keys (WordNet ids) or names
            raw_names, label_mode = list(dict.fromkeys([*(spec.class_keys or ()), *spec.class_names])), "name"
        else:
            if isinstance(feature, Value) and not pa.types.is_integer(feature.pa_type):
                raise _label_type_error(raw, feature.dtype)
            raw_names, label_mode = list(spec.class_names), "index"
    names, mapping = resolve_classes(raw_names, spec, label_mode, raw.origin, given)
    by_name = {name: mapping[i] for i, name in enumerate(raw_names)}

    def relabel(example: dict) -> dict:
        value = example["raw_label"]
        if isinstance(value, str):
            if value not in by_name:
                raise LabelError(
                    f"{raw.origin}: label {value!r} is not one of the benchmark's classes or keys."
                )
            return {"label": by_name[value]}
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise _label_type_error(raw, type(value).__name__, [value])
        if not 0 <= value < len(mapping):
            _check_ids(np.array([value]), len(mapping), raw.origin, names)
        return {"label": mapping[value]}

    features = Features(image=Image(), label=ClassLabel(names=list(names)))
    if raw.id_column:
        features["example_id"] = Value("string")
    dataset = dataset.map(relabel, remove_columns=["raw_label"])
    if min(mapping, default=0) < 0:
        dataset = dataset.filter(lambda example: example["label"] >= 0)
    return dataset.cast(features)
