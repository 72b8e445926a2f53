"""Image transforms of the papers, sized by the base model's image processor, and a collate function.

Room: `data/`.

Train: `RandomResizedCrop` (bicubic, scale (0.08, 1)) + horizontal flip + CLIP normalisation,
applied on access through `Dataset.with_transform`, so every epoch sees new crops.
Test: resize of the shorter side (bicubic) + center crop + normalisation, as CLIP's processor does.
Every image is converted to RGB first, whatever its mode (L, LA, P, RGBA, CMYK, I;16, ...).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from datasets import Dataset, Features, Image, IterableDataset, List, Value
from datasets.fingerprint import Hasher
from torchvision import transforms as T
from transformers import BaseImageProcessor

from .errors import UnreadableImageError

ImageTransform = Callable[[PIL.Image.Image], torch.Tensor]
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    """`image` as 8-bit RGB: transparency is composited on white (as transformers does), 16-bit
    grey levels are scaled to 8 bits, other modes (L, P, CMYK, ...) go through PIL's conversion."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64) / 257.0
        return PIL.Image.fromarray(grey.clip(0, 255).round().astype(np.uint8)).convert("RGB")
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def image_location(value: dict | str) -> tuple[str | None, bytes | None]:
    """`(path, bytes)` of an undecoded image (a path, or the `{"path", "bytes"}` dict of `Image(decode=False)`)."""
    return (value, None) if isinstance(value, str) else (value.get("path"), value.get("bytes"))


def describe_image(path: str | None, data: bytes | None) -> str:
    """How errors name an image: its path, or `<N embedded bytes>`."""
    return repr(path) if path else f"<{len(data or b'')} embedded bytes>"


def load_rgb(value: PIL.Image.Image | dict | str) -> PIL.Image.Image:
    """Decode an image (a PIL image, a path, or the `{"path", "bytes"}` dict of `Image(decode=False)`) to RGB.

    Raises:
        UnreadableImageError: naming the file when PIL cannot decode it.
    """
    if isinstance(value, PIL.Image.Image):
        return to_rgb(value)
    path, data = image_location(value)
    try:
        image = PIL.Image.open(io.BytesIO(data) if data is not None else path)
        image.load()
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as err:
        where = describe_image(path, data)
        raise UnreadableImageError(
            f"Cannot read image {where}: {err}. Remove or replace the file (or fix the dataset row)."
        ) from err
    return to_rgb(image)


def _field(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else getattr(mapping, key, None)


@dataclass(frozen=True)
class ImageSettings:
    """Sizes and statistics of a CLIP image processor.

    Attributes:
        resize: the shorter side after resizing (`size["shortest_edge"]`).
        crop: `(height, width)` of the crop (`crop_size`).
        mean / std: per-channel normalisation (`image_mean`, `image_std`).
    """

    resize: int
    crop: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_processor(cls, processor: BaseImageProcessor) -> ImageSettings:
        """Read the settings of e.g. `CLIPImageProcessor.from_pretrained("openai/clip-vit-base-patch16")`."""
        size, crop = processor.size, getattr(processor, "crop_size", None) or processor.size
        height, width = _field(crop, "height"), _field(crop, "width")
        resize = _field(size, "shortest_edge") or min(_field(size, "height"), _field(size, "width"))
        if height is None:
            height = width = resize
        return cls(
            int(resize), (int(height), int(width)), tuple(processor.image_mean), tuple(processor.image_std)
        )


def _settings(processor: BaseImageProcessor | ImageSettings) -> ImageSettings:
    return processor if isinstance(processor, ImageSettings) else ImageSettings.from_processor(processor)


def train_transform(
    processor: BaseImageProcessor | ImageSettings, scale: tuple[float, float] = (0.08, 1.0)
) -> ImageTransform:
    """RGB PIL image -> `(3, H, W)` tensor: random resized crop (bicubic), random flip, normalisation."""
    settings = _settings(processor)
    return T.Compose(
        [
            T.RandomResizedCrop(settings.crop, scale=scale, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(settings.mean, settings.std),
        ]
    )


def eval_transform(processor: BaseImageProcessor | ImageSettings) -> ImageTransform:
    """RGB PIL image -> `(3, H, W)` tensor: shorter side resized (bicubic), center crop, normalisation."""
    settings = _settings(processor)
    return T.Compose(
        [
            T.Resize(settings.resize, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(settings.crop),
            T.ToTensor(),
            T.Normalize(settings.mean, settings.std),
        ]
    )


def with_image_transform(
    dataset: Dataset | IterableDataset, transform: ImageTransform
) -> Dataset | IterableDataset:
    """`dataset` whose examples are `{"pixel_values": (3, H, W) tensor, "label": int}`.

    Images are decoded by `load_rgb` at access time (so unreadable files are named in the error)
    and transformed anew on every access: random augmentation differs per epoch. A streamed
    dataset keeps its `label` feature (the class names evaluation reads); `pixel_values` is
    declared as nested float32 lists, which `IterableDataset.map` only records: the examples
    still hold the tensors.
    """
    undecoded = dataset.cast_column("image", Image(decode=False))

    def apply(batch: dict[str, list]) -> dict[str, list]:
        return {"pixel_values": [transform(load_rgb(v)) for v in batch["image"]], "label": batch["label"]}

    if isinstance(undecoded, IterableDataset):
        known = undecoded.features
        features = (
            Features(pixel_values=List(List(List(Value("float32")))), label=known["label"])
            if known is not None and "label" in known
            else None
        )
        return undecoded.map(apply, batched=True, remove_columns=undecoded.column_names, features=features)
    transformed = undecoded.with_transform(apply, columns=["image", "label"])
    stable = _transform_fingerprint(undecoded, transform)
    if stable is not None:
        transformed._fingerprint = stable
    return transformed


def _transform_fingerprint(dataset: Dataset, transform: ImageTransform) -> str | None:
    """A fingerprint of `dataset` seen through `transform` that is the same in every process.

    `datasets` fingerprints `with_transform` by pickling the closure, which differs between processes,
    so a disk feature cache (`caching.feature_cache`) would never find its entries again. This one hashes
    the dataset's own fingerprint and the transform's content (its steps and their settings); `None`
    when the transform cannot be hashed (then `datasets`' own fingerprint is kept).
    """
    try:
        return Hasher.hash(("hf_prompt_clip.with_image_transform/1", dataset._fingerprint, transform))
    except Exception:  # dill cannot pickle every callable
        return None


def collate_fn(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Batch examples of `with_image_transform`: `{"pixel_values": (B, 3, H, W) float, "labels": (B,) long}`."""
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "labels": torch.tensor([example["label"] for example in examples], dtype=torch.long),
    }
