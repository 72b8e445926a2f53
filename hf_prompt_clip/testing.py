"""Tiny, randomly initialised CLIP components for tests and examples that must run offline.

Room: `testing.py`.

Everything here is built in memory in well under a second: a `CLIPModel` a few hundred
kilobytes large, a byte-level `CLIPTokenizer` with a character vocabulary (every string
tokenises, one token per character), and a `CLIPImageProcessor` for 32 x 32 images.
`save_tiny_clip(folder)` writes them like a Hub repository, so `from_pretrained(folder)`
stands in for `from_pretrained("openai/clip-vit-base-patch16")`.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

from .synthetic.pretrain import clip_config, clip_image_processor
from .synthetic.tokenizer import END_OF_WORD, END_TOKEN, START_TOKEN, byte_to_unicode


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A byte-level CLIP tokenizer whose vocabulary holds single characters only (no merges)."""
    table = byte_to_unicode()
    characters = [table[byte] for byte in range(256)]
    vocab = {char: i for i, char in enumerate(characters)}
    vocab.update({char + END_OF_WORD: 256 + i for i, char in enumerate(characters)})
    vocab[START_TOKEN] = len(vocab)
    vocab[END_TOKEN] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_clip_config(
    tokenizer: CLIPTokenizer | None = None,
    text_width: int = 32,
    vision_width: int = 32,
    projection_dim: int = 16,
    layers: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
) -> CLIPConfig:
    """A `CLIPConfig` with CLIP's structure (77 text positions, quick-GELU, causal text) at toy width."""
    return clip_config(
        tokenizer or tiny_clip_tokenizer(),
        text_width=text_width,
        vision_width=vision_width,
        projection_dim=projection_dim,
        layers=layers,
        heads=4,
        mlp_ratio=2,
        image_size=image_size,
        patch_size=patch_size,
        logit_scale_init_value=math.log(100.0),  # as in OpenAI's trained CLIP (untrained: 1 / 0.07)
    )


def tiny_clip_image_processor(image_size: int = 32) -> CLIPImageProcessor:
    """CLIP's preprocessing (OpenAI mean/std) at `image_size`."""
    return clip_image_processor(image_size)


def tiny_clip(seed: int = 0, **config_kwargs) -> tuple[CLIPModel, CLIPTokenizer, CLIPImageProcessor]:
    """A randomly initialised tiny `CLIPModel` with its tokenizer and image processor."""
    tokenizer = tiny_clip_tokenizer()
    config = tiny_clip_config(tokenizer, **config_kwargs)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    return model, tokenizer, tiny_clip_image_processor(config.vision_config.image_size)


def tiny_vit(seed: int = 0, width: int = 32, layers: int = 3, image_size: int = 32, patch_size: int = 8):
    """A randomly initialised tiny transformers `ViTModel` (no pooler) and its `ViTImageProcessor`, for
    the methods that take a separate image tower (MP-FGVC's ImageNet-21k ViT in real use)."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * width,
        image_size=image_size,
        patch_size=patch_size,
    )
    torch.manual_seed(seed)
    processor = ViTImageProcessor(size={"height": image_size, "width": image_size})
    return ViTModel(config, add_pooling_layer=False).eval(), processor


def save_tiny_clip(folder: str | os.PathLike, seed: int = 0, **config_kwargs) -> str:
    """Write a tiny CLIP (weights, config, tokenizer, image processor) to `folder`, laid out like a Hub repo."""
    model, tokenizer, image_processor = tiny_clip(seed, **config_kwargs)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return os.fspath(folder)


PATTERN_CLASSES = ("red", "blue", "checkerboard", "stripes")


def pattern_image(name: str, rng: np.random.Generator | None = None, size: int = 32) -> Image.Image:
    """A generated image of one of `PATTERN_CLASSES`; with `rng`, shade and noise vary per image."""
    if name == "red":
        pixels = np.broadcast_to(np.array([1.0, 0.0, 0.0]), (size, size, 3))
    elif name == "blue":
        pixels = np.broadcast_to(np.array([0.0, 0.0, 1.0]), (size, size, 3))
    elif name == "checkerboard":
        pixels = np.repeat((np.indices((size, size)).sum(0) // 4 % 2)[..., None], 3, axis=-1)
    elif name == "stripes":
        band = np.arange(size)[None, :].repeat(size, 0) // 4 % 2
        pixels = np.stack([band, band * 0, band], -1)
    else:
        raise ValueError(f"Unknown pattern {name!r}; choose from {PATTERN_CLASSES}.")
    pixels = pixels.astype(np.float64)
    if rng is not None:
        pixels = pixels * rng.uniform(0.7, 1.0) + rng.normal(0.0, 0.08, pixels.shape)
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def pattern_dataset(per_class: int, seed: int = 0) -> tuple[list[Image.Image], list[int]]:
    """`per_class` varied images of every pattern class, with their labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(PATTERN_CLASSES):
        for _ in range(per_class):
            images.append(pattern_image(name, rng))
            labels.append(label)
    return images, labels


def pattern_benchmark(per_class: int, seed: int = 0):
    """The generated pattern images as a `datasets.Dataset` (`image`, `label` as `ClassLabel`)."""
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    images, labels = pattern_dataset(per_class, seed)
    features = Features(image=ImageFeature(), label=ClassLabel(names=list(PATTERN_CLASSES)))
    return Dataset.from_dict({"image": images, "label": labels}, features=features)
