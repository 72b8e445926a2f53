"""Image features computed once: a cache for methods whose image path is frozen.

Room: `caching/`.

A linear probe, Tip-Adapter and any method that reads only the frozen image tower's output need the
features of the same images many times: once per candidate regularisation strength, once per
(alpha, beta) pair, once per fine-tuning epoch. The image tower is by far the most expensive part, so
`ImageFeatureCache` encodes every batch of views once and hands the same tensors out again, keyed on
everything that decides them (`FeatureKey`):

- **the encoder**: what the method computes from pixels (`"projected"`: `get_image_features`) and a
  digest of the weights, dtype and device of the modules it runs (`module_digest`);
- **the data**: the dataset's fingerprint; a `datasets.Dataset` gets a new one from every `select`,
  transform or format change, so a split, a few-shot draw and a transform each have their own. Data
  without a fingerprint (a plain torch dataset) is encoded every time, never cached;
- **the view**: for an augmenting transform, the run seed and the view index. View `v` of example
  `i` is drawn with torch's RNG seeded by `view_seed(seed, v, i)`, which is what `PromptTrainer` shows
  example `i` in epoch `v`: a cached view is exactly the image the gradient trainer would see then;
- **the precision** (the autocast setting) it was encoded under; the dtype the image tower runs in
  (`--image-dtype`) is part of the encoder's digest.

With a `directory`, every entry is also kept on disk (`--feature-cache DIR`): one safetensors file per
key (no pickle), named by a hash of the key, written atomically (`utils/atomic.py`). Its metadata
(`DISK_FORMAT`, versioned) holds the key itself, the number of rows and a digest of the stored tensors
(`entry_digest`); all are checked before an entry is used, together with the row count the request
expects (the dataset's length). A file of another format version, another key, another row count or
contents that do not match their digest is refused with a warning, the images are encoded again and the
file is replaced: a damaged or edited entry costs an encode, never a result. A fresh process reading the
same folder finds the features again. An entry held in memory is checked for the expected row count too.

Under several processes (`ProcessShards`, `caching/process_shards.py`), each process encodes its shard of the
examples, the contiguous slice Accelerate's `split_between_processes` gives it, and the shards are gathered
with `Accelerator.gather` and put back in dataset order, so every process holds all the features after
encoding only its share of them; the first process of each node writes disk entries
(`ProcessShards.writer`). A process that fails to encode its shard stops every process with it
(`ProcessShards.all_succeed`), and a folder that cannot be written leaves the features in memory with a
warning (it is a cache).

Recomputing gives the same tensors (tested): caching changes the cost, never the result. Where a
method's protocol reuses views across epochs (Tip-Adapter-F's fine-tuning reads the cache's
augmented views), its documentation says so.

Example:
    ```python
    cache = ImageFeatureCache()
    features, labels = cache.features(model.encode_images, "projected|<digest>", test_set,
                                      collate_fn=collate_fn, batch_size=64, device="cuda")
    views, labels = cache.features(model.encode_images, "projected|<digest>", train_set, seed=1,
                                   views=range(10), collate_fn=collate_fn)   # (10, N, E)
    ```
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from ..utils.atomic import atomic_write_bytes
from ..utils.logs import progress_bar
from .process_shards import ProcessShards

logger = logging.getLogger(__name__)

Encode = Callable[[torch.Tensor], torch.Tensor]

#: Features the cache keeps before it drops the least recently used (4 GiB).
DEFAULT_MAX_BYTES = 4 * 2**30


class FrozenFeaturesUnavailable(ValueError):
    """A model's classification does not go through frozen, cacheable image features
    (`PromptCLIPPreTrainedModel.frozen_image_encoder` says why)."""


def view_seed(seed: int, view: int, index: int) -> int:
    """The torch seed of view `view` of example `index` in a run seeded `seed`.

    `PromptTrainer` draws epoch `e`'s augmentation of example `i` with `view_seed(seed, e, i)`, so
    views do not depend on batch order, prefetching, resuming or the number of processes.

    Example:
        >>> view_seed(1, 0, 5), view_seed(1, 1, 5)
        (1000006000014, 1000007000017)
    """
    return (seed * 1_000_003 + view) * 1_000_003 + int(index)


class SeededViews(Dataset):
    """View `view` of every example of `dataset`: item `i` is drawn with torch seeded `view_seed(seed, view, i)`
    (the global RNG is restored afterwards), so an augmenting transform gives the same image every time."""

    def __init__(self, dataset: Any, seed: int, view: int = 0):
        self.dataset = dataset
        self.seed = seed
        self.view = view

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(view_seed(self.seed, self.view, index))
            return self.dataset[index]


def module_digest(*modules: nn.Module) -> str:
    """A digest of the modules' parameters and buffers (names, dtypes, shapes, devices and values).

    Two encoders with the same digest compute the same features from the same pixels: it is what
    `FeatureKey.encoder` carries. Hashing copies every tensor to the CPU once (about 0.3 s for a
    ViT-B/16 image tower); `PromptCLIPPreTrainedModel` remembers it while the weights are unchanged.

    Example:
        >>> module_digest(nn.Linear(2, 2)) == module_digest(nn.Linear(2, 2))   # other random weights
        False
    """
    digest = hashlib.blake2b(digest_size=16)
    for number, module in enumerate(modules):
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            digest.update(
                f"{number}.{name}:{tensor.dtype}:{tuple(tensor.shape)}:{tensor.device.type}".encode()
            )
            data = tensor.detach().contiguous().cpu()
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def dataset_fingerprint(dataset: Any) -> str | None:
    """The fingerprint of a `datasets.Dataset` (it changes with every selection, transform or format),
    or `None` for data without one (never cached)."""
    fingerprint = getattr(dataset, "_fingerprint", None)
    return fingerprint if isinstance(fingerprint, str) and fingerprint else None


@dataclass(frozen=True)
class FeatureKey:
    """What decides a tensor of cached image features.

    Attributes:
        encoder: what is computed from the pixels and by which weights (`"projected|<module_digest>"`).
        data: the dataset's fingerprint (split, selection and transform).
        seed / view: the view of an augmenting transform (`SeededViews`); `None` for one deterministic view.
        precision: the autocast setting (`"no"`, `"bf16"`, `"fp16"`).
    """

    encoder: str
    data: str
    seed: int | None = None
    view: int | None = None
    precision: str = "no"

    def to_json(self) -> str:
        """The key as canonical JSON (what a disk entry stores in its metadata)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def digest(self) -> str:
        """A hash of the key (32 hex digits): the name of its disk entry.

        Example:
            >>> FeatureKey("projected|abc", "f00d").digest() == FeatureKey("projected|abc", "f00d").digest()
            True
        """
        return hashlib.blake2b(self.to_json().encode(), digest_size=16).hexdigest()


#: The format of a disk entry, whose metadata holds `format` (this tag), `feature_key` (the key's JSON),
#: `rows` (the number of examples) and `digest` (`entry_digest` of its tensors). v1 files (key and format only)
#: cannot be checked: they are refused with a warning and encoded again.
DISK_FORMAT = "hf_prompt_clip.image_features.v2"


def entry_digest(features: torch.Tensor, labels: torch.Tensor) -> str:
    """A digest of an entry's tensors (dtypes, shapes and bytes; blake2b, 32 hex digits): what a disk entry
    records beside them and what reading it checks, so a changed value is never used.

    Args:
        features: `(N, E)` (or any shape) image features.
        labels: `(N,)` labels.

    Example:
        >>> features, labels = torch.ones(2, 3), torch.tensor([0, 1])
        >>> entry_digest(features, labels) == entry_digest(features.clone(), labels)
        True
        >>> entry_digest(features, labels) == entry_digest(-features, labels)
        False
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in (("features", features), ("labels", labels)):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        if data.numel():
            digest.update(data.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def entry_problem(features: torch.Tensor, labels: torch.Tensor, rows: int | None) -> str | None:
    """Why an entry cannot be the features of `rows` examples (`None`: it can): one row of features per
    label, and `rows` of each (`rows=None`: any number).

    Example:
        >>> entry_problem(torch.zeros(1, 4), torch.zeros(1), rows=12)
        'it holds 1 rows of features and 1 labels, but the data has 12 examples'
        >>> entry_problem(torch.zeros(12, 4), torch.zeros(12), rows=12) is None
        True
    """
    if features.dim() == 0 or labels.dim() != 1 or features.shape[0] != labels.shape[0]:
        return f"its features {tuple(features.shape)} and labels {tuple(labels.shape)} are not one row per example"
    if rows is not None and features.shape[0] != rows:
        return (
            f"it holds {features.shape[0]} rows of features and {len(labels)} labels, but the data has {rows} "
            "examples"
        )
    return None


def _batch_labels(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    labels = batch.get("labels", batch.get("label"))
    if labels is None:
        raise ValueError(
            f"Feature batches need labels ('labels' or 'label'), got keys {sorted(batch)}: give examples "
            "as hf_prompt_clip.data.with_image_transform makes them ({'pixel_values', 'label'})."
        )
    return torch.as_tensor(labels)


@torch.no_grad()
def encode_dataset(
    encode: Encode,
    dataset: Any,
    *,
    collate_fn: Callable | None = None,
    batch_size: int = 64,
    seed: int | None = None,
    view: int | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    indices: Sequence[int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    description: str = "encoding images",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of every example of `dataset` (or of `indices`), in that order, without autograd,
    with a progress bar (`utils.logs.progress_bar`: one step per batch; silenced by `--quiet`).

    Args:
        encode: pixel values `(B, 3, H, W)` -> features `(B, E)` (e.g. `model.encode_images`).
        dataset: map-style examples `{"pixel_values", "label"}`.
        collate_fn: batches examples (default: torch's); batches need `pixel_values` and `labels`/`label`.
        batch_size: images per `encode` call.
        seed / view: draw view `view` of an augmenting transform (`SeededViews`); `None`: as the dataset gives it.
        autocast: a context manager factory to encode under (e.g. `accelerator.autocast`).
        indices: only these examples (a process's shard); a view of example `i` is still drawn with
            `view_seed(seed, view, i)`, `i` its index in `dataset`.
        num_workers: DataLoader worker processes that read and transform the images (0: this process;
            no more are started than there are batches). Each view is drawn from its own seed whichever
            process draws it, so the features are the same with any number (tested).
        pin_memory: batches in page-locked memory, for a faster copy to a CUDA device (only there).
        description: the progress bar's label, e.g. `"encoding validation"` (`", view v"` is added).

    Returns:
        features `(N, E)` float32 and labels `(N,)` int64 (`N = len(indices)` when given).

    Example:
        >>> features, labels = encode_dataset(model.encode_images, test_set, collate_fn=collate_fn,
        ...                                   batch_size=64, num_workers=4, description="encoding test")
    """
    source = dataset if view is None else SeededViews(dataset, 0 if seed is None else seed, view)
    if indices is not None:
        source = Subset(source, indices)
    loader = DataLoader(
        source,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_fn or default_collate,
        num_workers=min(num_workers, math.ceil(len(source) / batch_size)),
        pin_memory=pin_memory,
    )
    features, labels = [], []
    label = description if view is None else f"{description}, view {view}"
    for batch in progress_bar(loader, desc=label, unit="batch"):
        with (autocast or contextlib.nullcontext)():
            features.append(encode(batch["pixel_values"]).float())
        labels.append(_batch_labels(batch).long())
    if not features:
        raise ValueError("Cannot encode an empty dataset: it holds no examples.")
    return torch.cat(features), torch.cat(labels).to(features[0].device)


class ImageFeatureCache:
    """Image features by `FeatureKey`, each batch of views encoded once; least recently used dropped first.

    Args:
        max_bytes: most bytes of features kept in memory (features and labels); older entries are dropped first.
        directory: also keep every entry on disk there (`--feature-cache DIR`, created when needed): one
            `image-features-<FeatureKey.digest()>.safetensors` file per key, its key, row count and content
            digest stored in its metadata and checked on load (`DISK_FORMAT`). `None` (the default): memory
            only, for the life of the object.

    Attributes:
        hits / misses: how many requests found their features (in memory or on disk) / had to encode them.
        disk_hits / disk_writes / disk_refused: entries read from, written to, and ignored in `directory`
            (a file of another format version, whose stored key, row count or contents do not match).
        memory_refused: entries held in memory that were ignored (not the row count the request expected).
        encoded_images: how many images (views) were run through an encoder.
        last_source: where the last request's features came from: `"memory"`, `"disk"` or `"encoded"`.

    Example:
        ```python
        cache = ImageFeatureCache()
        a, _ = cache.features(model.encode_images, key, data, collate_fn=collate_fn)  # encodes
        b, _ = cache.features(model.encode_images, key, data, collate_fn=collate_fn)  # the same tensor
        assert a is b and cache.hits == 1
        on_disk = ImageFeatureCache(directory="feature-cache")  # a later process finds them again
        ```
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, directory: str | os.PathLike | None = None):
        if max_bytes < 0:
            raise ValueError(f"max_bytes cannot be negative, got {max_bytes} (0 caches nothing).")
        self.max_bytes = max_bytes
        self.directory = None if directory is None else Path(directory)
        self._entries: OrderedDict[FeatureKey, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        self.disk_writes = 0
        self.disk_refused = 0
        self.memory_refused = 0
        self.encoded_images = 0
        self.last_source: str | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (features and labels)."""
        return sum(_nbytes(entry) for entry in self._entries.values())

    def clear(self) -> None:
        """Forget the entries held in memory (the disk entries stay)."""
        self._entries.clear()

    def summary(self) -> str:
        """One line for the logs: requests served, images encoded, disk traffic.

        Example:
            >>> ImageFeatureCache().summary()
            'image-feature cache: 0 requests, 0 served from the cache (0 from disk), 0 encoded (0 images)'
        """
        line = (
            f"image-feature cache: {self.hits + self.misses} requests, {self.hits} served from the cache "
            f"({self.disk_hits} from disk), {self.misses} encoded ({self.encoded_images} images)"
        )
        if self.directory is not None:
            line += f"; {self.disk_writes} written to {self.directory}"
            if self.disk_refused:
                line += f", {self.disk_refused} mismatching files ignored"
        return line

    def disk_path(self, key: FeatureKey) -> Path:
        """The file of `key` in `directory` (which must be set)."""
        if self.directory is None:
            raise ValueError("This ImageFeatureCache keeps nothing on disk: build it with directory=DIR.")
        return self.directory / f"image-features-{key.digest()}.safetensors"

    def _read_disk(self, key: FeatureKey) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The entry of `key` from its file, or `None` (logged, counted in `disk_refused`) when the file cannot
        be read, is of another format version, holds another key, or tensors that do not match the row count
        and digest recorded with them."""
        path = self.disk_path(key)
        if not path.is_file():
            return None
        entry = None
        try:
            with safe_open(path, framework="pt") as handle:
                metadata = handle.metadata() or {}
                stored, written = metadata.get("feature_key"), metadata.get("format")
                if written != DISK_FORMAT:
                    problem = (
                        f"it is in the format {written!r}, not {DISK_FORMAT!r} (another version of "
                        "hf-prompt-clip wrote it, and its contents cannot be checked)"
                    )
                elif stored != key.to_json():
                    problem = f"it holds the key {stored}"
                else:
                    features, labels = handle.get_tensor("features"), handle.get_tensor("labels")
                    problem = _disk_entry_problem(features, labels, metadata)
                    if problem is None:
                        entry = features, labels
        except (SafetensorError, OSError, KeyError) as error:
            problem = f"it cannot be read ({error})"
        if entry is None:
            self._refuse(key, None, problem, path)
        return entry

    def _refuse(self, key: FeatureKey, rows: int | None, problem: str, path: Path | None = None) -> None:
        """Count and log an entry that is not used: the file at `path`, or (`None`) the one held in memory."""
        if path is not None:
            self.disk_refused += 1
        else:
            self.memory_refused += 1
        logger.warning(
            "ignoring %s (expected the key %s%s): %s; encoding the images again%s.",
            "the image features held in memory" if path is None else f"the image-feature file {path}",
            key.to_json(), "" if rows is None else f" and {rows} rows", problem,
            "" if path is None else " (the file is replaced)",
        )  # fmt: skip

    def _write_disk(self, key: FeatureKey, value: tuple[torch.Tensor, torch.Tensor]) -> None:
        features, labels = (tensor.detach().cpu().contiguous() for tensor in value)
        self.directory.mkdir(parents=True, exist_ok=True)
        metadata = {
            "format": DISK_FORMAT,
            "feature_key": key.to_json(),
            "rows": str(len(labels)),
            "digest": entry_digest(features, labels),
        }
        data = save_safetensors({"features": features, "labels": labels}, metadata=metadata)
        atomic_write_bytes(self.disk_path(key), data)
        self.disk_writes += 1

    def _remember(self, key: FeatureKey, value: tuple[torch.Tensor, torch.Tensor]) -> None:
        if _nbytes(value) <= self.max_bytes:
            self._entries[key] = value
            while self.nbytes > self.max_bytes:
                self._entries.popitem(last=False)

    def _lookup(
        self, key: FeatureKey | None, rows: int | None = None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, str | None]:
        """(the entry under `key` from memory, else from `directory`, and where it came from) or (None, None).
        An entry that is not `rows` rows (`entry_problem`; `None`: any number) is refused with a warning
        (a refused memory entry is forgotten; a refused file is replaced once the features are encoded
        again)."""
        if key is None:
            return None, None
        if key in self._entries:
            problem = None if rows is None else entry_problem(*self._entries[key], rows)
            if problem is None:
                self._entries.move_to_end(key)
                return self._entries[key], "memory"
            del self._entries[key]
            self._refuse(key, rows, problem)
        if self.directory is not None:
            value = self._read_disk(key)
            problem = None if value is None or rows is None else entry_problem(*value, rows)
            if problem is not None:
                self._refuse(key, rows, problem, self.disk_path(key))
            elif value is not None:
                return value, "disk"
        return None, None

    def _served(self, key: FeatureKey, value: tuple[torch.Tensor, torch.Tensor], source: str):
        self.hits += 1
        self.last_source = source
        if source == "disk":
            self.disk_hits += 1
            self._remember(key, value)
        return value

    def _stored(self, key: FeatureKey | None, value, images: int, write: bool = True):
        self.misses += 1
        self.last_source = "encoded"
        self.encoded_images += images
        if key is not None:
            self._remember(key, value)
            if self.directory is not None and write:
                try:
                    self._write_disk(key, value)
                except OSError as error:  # a cache: the run goes on with the features in memory
                    logger.warning(
                        "could not write the image-feature file %s (%s); the features stay in memory only, "
                        "and a later run encodes them again. Free space or fix the permissions of %s.",
                        self.disk_path(key), error, self.directory,
                    )  # fmt: skip
        return value

    def get_or_compute(
        self,
        key: FeatureKey | None,
        compute: Callable[[], tuple[torch.Tensor, torch.Tensor]],
        rows: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The entry under `key` (from memory, else from `directory`), or `compute()` stored under it
        (`key=None`: computed, not stored). Entries read from disk are on the CPU.

        `rows`: the number of examples the entry must hold (the dataset's length; `None`: unchecked). A stored
        entry of another row count, or a disk entry whose contents do not match their digest, is refused
        with a warning and computed again."""
        value, source = self._lookup(key, rows)
        if value is not None:
            return self._served(key, value, source)
        value = compute()
        return self._stored(key, value, len(value[1]))

    def get_or_compute_sharded(
        self,
        key: FeatureKey | None,
        compute_shard: Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor]],
        size: int,
        processes: ProcessShards,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`get_or_compute` shared by several processes: unless every process finds the entry, each computes
        its shard (`compute_shard(indices)`, `processes.shard(size)`), and the gathered shards are the entry
        on every process (`processes.writes_disk` ones write it to disk). Every process must call it with the
        same key at the same point (it gathers), and `size >= processes.count`."""
        if not processes.splits(size):
            raise ValueError(
                f"{size} examples cannot be shared by {processes.count} processes (each needs one); "
                "use get_or_compute."
            )
        value, source = self._lookup(key, size)
        found = processes.gather(torch.tensor([int(value is not None)], device=processes.device))
        if bool(found.all()):  # else every process encodes its shard, so that the collectives line up
            return self._served(key, value, source)
        shard = processes.shard(size)
        error = features = labels = None
        try:
            features, labels = compute_shard(shard)
        except Exception as caught:  # re-raised on this process by all_succeed, after the others hear of it
            error = caught
        processes.all_succeed(error, "encoding their shard of the images")
        value = processes.gather_rows(features, size), processes.gather_rows(labels, size, fill=-1)
        return self._stored(key, value, len(shard), write=processes.writes_disk)

    def features(
        self,
        encode: Encode,
        encoder: str,
        dataset: Any,
        *,
        collate_fn: Callable | None = None,
        batch_size: int = 64,
        seed: int | None = None,
        views: Iterable[int] | None = None,
        precision: str = "no",
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
        processes: ProcessShards | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        description: str = "encoding images",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of `dataset` from `encode`, each view encoded at most once.

        Args:
            encode / encoder: the encoding and its identity (`FeatureKey.encoder`).
            dataset: map-style examples `{"pixel_values", "label"}` (its fingerprint keys the cache).
            views: view indices of an augmenting transform (`SeededViews` with `seed`); `None`: the one
                deterministic view the dataset gives (a test transform).
            collate_fn, batch_size, autocast, num_workers, pin_memory, description: as `encode_dataset`
                (how the images are read and shown being encoded; not part of the key: they change no
                feature); precision: the autocast setting, for the key.
            processes: several processes share the encoding (`ProcessShards`): each encodes its shard of
                every view and all get all of them (every process must call this at the same point). A
                dataset with fewer examples than processes is encoded whole by each.

        Returns:
            features `(N, E)` (`views=None`) or `(V, N, E)`, and labels `(N,)`.
        """
        fingerprint = dataset_fingerprint(dataset)

        def one(view: int | None) -> tuple[torch.Tensor, torch.Tensor]:
            key = None
            if fingerprint is not None:
                key = FeatureKey(encoder, fingerprint, None if view is None else seed, view, precision)

            def compute(indices: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
                return encode_dataset(
                    encode, dataset, collate_fn=collate_fn, batch_size=batch_size, seed=seed, view=view,
                    autocast=autocast, indices=indices, num_workers=num_workers, pin_memory=pin_memory,
                    description=description,
                )  # fmt: skip

            if processes is None or not processes.splits(len(dataset)):
                return self.get_or_compute(key, compute, rows=len(dataset))
            return self.get_or_compute_sharded(key, compute, len(dataset), processes)

        if views is None:
            return one(None)
        chosen: Sequence[int] = list(views)
        if not chosen:
            raise ValueError("views names no view: give at least one view index (e.g. views=range(10)).")
        encoded = [one(view) for view in chosen]
        device = encoded[0][0].device  # disk entries are on the CPU, encoded ones where the encoder ran
        return torch.stack([features.to(device) for features, _ in encoded]), encoded[0][1]


def _disk_entry_problem(features: torch.Tensor, labels: torch.Tensor, metadata: dict[str, str]) -> str | None:
    """Why the tensors of a disk entry cannot be used (`None`: they can): not one row per label
    (`entry_problem`), another row count than its metadata records, or contents that do not match its
    recorded digest."""
    problem = entry_problem(features, labels, None)
    if problem is not None:
        return problem
    if metadata.get("rows") != str(len(labels)):
        return f"it records {metadata.get('rows')} rows but holds {len(labels)}"
    if metadata.get("digest") != entry_digest(features, labels):
        return (
            f"its contents do not match the digest recorded with them ({metadata.get('digest')}): the file "
            "was changed or damaged after it was written"
        )
    return None


def _nbytes(entry: tuple[torch.Tensor, ...]) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in entry)
