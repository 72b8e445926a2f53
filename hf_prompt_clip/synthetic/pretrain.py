"""Contrastive pretraining of the tiny CLIP on freshly rendered synthetic scenes and their captions.

Room: `synthetic/`.

`scripts/pretrain_tiny_clip.py` is the command line; everything it does is here: the architecture
(`tiny_clip_config`), the batches (`sample_batch`), the class-aware contrastive loss, the training
loop (`pretrain`), saving (`save_clip`) and the zero-shot measurement (`zero_shot_accuracy`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from ..methods.zeroshot import ZeroShotCLIPModel
from ..utils.atomic import atomic_write_text
from .captions import COLOUR_TEMPLATE, MENTIONS, ZERO_SHOT_TEMPLATE, styled_caption
from .datasets import build_split, class_names
from .render import COLOURS, SHAPES, VARIANTS, Scene, render_batch, sample_scene
from .tokenizer import MAX_LENGTH, caption_corpus, round_trip_errors, train_caption_tokenizer

MAX_LOGIT_SCALE = math.log(100.0)


@dataclass
class PretrainSettings:
    """Everything that determines the pretrained tiny CLIP (recorded in `pretraining.json`)."""

    seed: int = 0
    steps: int = 1200  # the shipped model's setting (pretraining.json)
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    grad_clip: float = 1.0
    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 128
    text_width: int = 128
    layers: int = 4
    heads: int = 4
    projection_dim: int = 128
    #: probability of each drawing style among training images (clean, outline, noisy, small); the
    #: styles are common enough that the style words of the captions matter to the loss
    variant_probs: dict[str, float] = field(
        default_factory=lambda: {"clean": 0.4, "outline": 0.2, "noisy": 0.2, "small": 0.2}
    )
    #: whether a caption that names a drawing style ("a sketch of a ...") is true only of images in
    #: that style (the contrastive class is then (style, colour, shape)); captions naming no style
    #: match every style
    style_aware: bool = True
    #: probability that a caption names both attributes, only the shape or only the colour
    mention_probs: dict[str, float] = field(
        default_factory=lambda: {"both": 0.8, "shape": 0.1, "colour": 0.1}
    )

    def __post_init__(self) -> None:
        for name, probs, valid in (
            ("variant_probs", self.variant_probs, VARIANTS),
            ("mention_probs", self.mention_probs, MENTIONS),
        ):
            if set(probs) != set(valid) or not math.isclose(sum(probs.values()), 1.0):
                raise ValueError(
                    f"{name} must give a probability to each of {valid}, summing to 1; got {probs}."
                )


def clip_config(
    tokenizer: CLIPTokenizer,
    *,
    text_width: int,
    vision_width: int,
    projection_dim: int,
    layers: int,
    heads: int,
    mlp_ratio: int,
    image_size: int,
    patch_size: int,
    **kwargs,
) -> CLIPConfig:
    """CLIP's structure (77 causal text positions, quick-GELU, pre-LayerNorm ViT) at any width;
    `kwargs` go to `CLIPConfig` (e.g. `logit_scale_init_value`)."""
    shared = {"num_hidden_layers": layers, "num_attention_heads": heads, "projection_dim": projection_dim}
    text_config = {
        **shared,
        "vocab_size": len(tokenizer),
        "hidden_size": text_width,
        "intermediate_size": mlp_ratio * text_width,
        "max_position_embeddings": MAX_LENGTH,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        **shared,
        "hidden_size": vision_width,
        "intermediate_size": mlp_ratio * vision_width,
        "image_size": image_size,
        "patch_size": patch_size,
    }
    return CLIPConfig(
        text_config=text_config, vision_config=vision_config, projection_dim=projection_dim, **kwargs
    )


def tiny_clip_config(tokenizer: CLIPTokenizer, settings: PretrainSettings) -> CLIPConfig:
    """The shipped tiny CLIP's structure."""
    return clip_config(
        tokenizer,
        text_width=settings.text_width,
        vision_width=settings.vision_width,
        projection_dim=settings.projection_dim,
        layers=settings.layers,
        heads=settings.heads,
        mlp_ratio=4,
        image_size=settings.image_size,
        patch_size=settings.patch_size,
    )


def clip_image_processor(image_size: int) -> CLIPImageProcessor:
    """CLIP's preprocessing (OpenAI mean/std) at `image_size`; resizing a rendered image is a no-op."""
    return CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    )


def pixel_values(images: np.ndarray) -> torch.Tensor:
    """`(N, H, W, 3)` uint8 images -> normalised `(N, 3, H, W)` float32, as `clip_image_processor`."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


@dataclass(frozen=True)
class Batch:
    """Training scenes with one caption each; `mentions[i]` says what caption i names and `styles[i]`
    the drawing style it commits to (`None`: no style, or no style list at all: styles are ignored)."""

    scenes: list[Scene]
    captions: list[str]
    mentions: list[str]
    styles: list[str | None] | None = None


def _choose(rng: np.random.Generator, probs: dict[str, float], n: int) -> list[str]:
    names = list(probs)
    return [names[i] for i in rng.choice(len(names), size=n, p=list(probs.values()))]


def sample_batch(rng: np.random.Generator, settings: PretrainSettings) -> Batch:
    """`batch_size` random scenes covering the 80 classes evenly, each with a random caption."""
    n_classes = len(COLOURS) * len(SHAPES)
    rounds = math.ceil(settings.batch_size / n_classes)
    labels = np.concatenate([rng.permutation(n_classes) for _ in range(rounds)])[: settings.batch_size]
    variants = _choose(rng, settings.variant_probs, settings.batch_size)
    mentions = _choose(rng, settings.mention_probs, settings.batch_size)
    scenes = [
        sample_scene(SHAPES[label % len(SHAPES)], COLOURS[label // len(SHAPES)], rng, variant)
        for label, variant in zip(labels.tolist(), variants)
    ]
    styled = [styled_caption(scene, rng, mention) for scene, mention in zip(scenes, mentions)]
    captions = [text for text, _ in styled]
    styles = [style for _, style in styled] if settings.style_aware else None
    return Batch(scenes, captions, mentions, styles)


def caption_matches(batch: Batch) -> torch.Tensor:
    """`(N, N)` bool: entry (i, j) says caption j is true of image i (same class, or same shape for a
    shape-only caption, same colour for a colour-only one) and, where caption j names a drawing
    style (`batch.styles`), image i is drawn in that style."""
    colours = np.array([scene.colour for scene in batch.scenes])
    shapes = np.array([scene.shape for scene in batch.scenes])
    mentions = np.array(batch.mentions)
    same_colour = colours[:, None] == colours[None, :]
    same_shape = shapes[:, None] == shapes[None, :]
    colour_ok = same_colour | (mentions[None, :] == "shape")
    shape_ok = same_shape | (mentions[None, :] == "colour")
    matches = colour_ok & shape_ok
    if batch.styles is not None:
        variants = np.array([scene.variant for scene in batch.scenes])
        styles = np.array(["" if style is None else style for style in batch.styles])
        matches &= (styles[None, :] == "") | (variants[:, None] == styles[None, :])
    return torch.from_numpy(matches)


def contrastive_loss(logits_per_image: torch.Tensor, matches: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with class-aware targets: every matching pair is a positive, with equal
    weight, so two images of one class in a batch are not pushed apart."""
    targets = matches.float()
    image_to_text = -(targets / targets.sum(1, keepdim=True) * F.log_softmax(logits_per_image, 1)).sum(1)
    text_to_image = -(targets / targets.sum(0, keepdim=True) * F.log_softmax(logits_per_image, 0)).sum(0)
    return (image_to_text.mean() + text_to_image.mean()) / 2


def _learning_rate_factor(step: int, settings: PretrainSettings) -> float:
    """Linear warmup, then cosine decay to zero."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(model: CLIPModel, settings: PretrainSettings) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not on biases, norms, embeddings, temperature)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        is_matrix = parameter.ndim >= 2 and "embedding" not in name
        (decay if is_matrix else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.learning_rate, betas=(0.9, 0.98), eps=1e-6)


def build_tokenizer(seed: int) -> CLIPTokenizer:
    """The caption tokenizer, checked to reproduce its whole training corpus."""
    corpus = caption_corpus(seed)
    tokenizer = train_caption_tokenizer(corpus)
    errors = round_trip_errors(tokenizer, corpus)
    if errors:
        raise RuntimeError(f"The tokenizer does not round-trip {len(errors)} captions, e.g. {errors[:3]}.")
    return tokenizer


def pretrain(settings: PretrainSettings, progress: bool = True) -> tuple[CLIPModel, CLIPTokenizer]:
    """Train a tiny CLIP from scratch on fresh rendered batches; deterministic given `settings.seed`."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    tokenizer = build_tokenizer(settings.seed)
    model = CLIPModel(tiny_clip_config(tokenizer, settings)).train()
    optimizer = _optimizer(model, settings)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _learning_rate_factor(step, settings)
    )
    bar = tqdm(range(settings.steps), desc="pretraining tiny CLIP", disable=not progress)
    for _ in bar:
        batch = sample_batch(rng, settings)
        tokens = tokenizer(batch.captions, padding=True, return_tensors="pt")
        output = model(
            input_ids=tokens.input_ids,
            attention_mask=tokens.attention_mask,
            pixel_values=pixel_values(render_batch(batch.scenes, settings.image_size)),
        )
        loss = contrastive_loss(output.logits_per_image, caption_matches(batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
        bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
    return model.eval(), tokenizer


def save_clip(model: CLIPModel, tokenizer: CLIPTokenizer, folder: str | os.PathLike, image_size: int) -> Path:
    """Save model (fp16 safetensors), tokenizer and image processor like a Hub repository.

    The config records `dtype: float32`, so `CLIPModel.from_pretrained(folder)` upcasts the fp16
    weights and runs in float32 on CPU as usual.
    """
    folder = Path(folder)
    half = {name: tensor.to(torch.float16) for name, tensor in model.state_dict().items()}
    model.save_pretrained(folder, state_dict=half)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"
    atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(folder)
    clip_image_processor(image_size).save_pretrained(folder)
    return folder


@torch.no_grad()
def zero_shot_accuracy(
    clip_folder: str | os.PathLike,
    benchmark: str = "colour_shape",
    *,
    template: str | None = None,
    per_class: int = 10,
    seed: int = 0,
    variant: str = "clean",
    batch_size: int = 256,
) -> float:
    """Top-1 zero-shot accuracy of a saved CLIP on the test split of a synthetic benchmark.

    Uses the package's `ZeroShotCLIPModel` with one template (default: the benchmark's own,
    "a photo of a {}." or, for colours, "a photo of a {} shape.").
    """
    template = template or (COLOUR_TEMPLATE if benchmark == "colours" else ZERO_SHOT_TEMPLATE)
    model = ZeroShotCLIPModel.from_clip(
        os.fspath(clip_folder), class_names(benchmark), templates=[template]
    ).eval()
    data = build_split(benchmark, "test", per_class, seed=seed, variant=variant)
    correct = 0
    for start in range(0, len(data), batch_size):
        rows = data[start : start + batch_size]
        inputs = model.image_processor(rows["image"], return_tensors="pt")
        predictions = model(inputs.pixel_values).logits.argmax(-1)
        correct += int((predictions == torch.tensor(rows["label"])).sum())
    return correct / len(data)
