"""RGB conversion, train/eval transforms sized by the image processor, collation, and the data summary."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hf_prompt_clip.cli import main
from hf_prompt_clip.data import (
    ImageFolderSource,
    ImageSettings,
    UnreadableImageError,
    collate_fn,
    eval_transform,
    load_benchmark,
    load_rgb,
    summarize,
    to_rgb,
    train_transform,
    with_image_transform,
)
from hf_prompt_clip.testing import tiny_clip_image_processor


def grey(mode: str, value: int) -> Image.Image:
    return Image.new(mode, (8, 8), value)


@pytest.mark.parametrize(
    ("image", "pixel"),
    [
        (grey("L", 100), (100, 100, 100)),
        (Image.new("LA", (8, 8), (100, 0)), (255, 255, 255)),  # fully transparent: white
        (Image.new("RGBA", (8, 8), (10, 20, 30, 255)), (10, 20, 30)),
        (Image.new("RGBA", (8, 8), (10, 20, 30, 0)), (255, 255, 255)),
        (Image.new("RGB", (8, 8), (51, 102, 153)).convert("P"), (51, 102, 153)),
        (Image.new("CMYK", (8, 8), (0, 0, 0, 0)), (255, 255, 255)),
        (grey("I;16", 65535), (255, 255, 255)),
        (grey("I;16", 257 * 100), (100, 100, 100)),
        (grey("I", 0), (0, 0, 0)),
    ],
)
def test_every_mode_becomes_rgb(image, pixel):
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (8, 8)
    assert rgb.getpixel((0, 0)) == pixel


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 200, 0, 0])
    image.info["transparency"] = 0
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_unreadable_bytes_are_reported_with_their_path():
    with pytest.raises(UnreadableImageError, match=r"'shard/3\.jpg'"):
        load_rgb({"path": "shard/3.jpg", "bytes": b"junk"})


def test_settings_come_from_the_image_processor():
    settings = ImageSettings.from_processor(tiny_clip_image_processor(24))
    assert (settings.resize, settings.crop) == (24, (24, 24))
    assert settings.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))


def test_train_transform_is_random_and_eval_transform_is_not():
    processor = tiny_clip_image_processor(32)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    torch.manual_seed(0)
    train = train_transform(processor)
    first, second = train(image), train(image)
    assert first.shape == (3, 32, 32) and not torch.equal(first, second)
    evaluate = eval_transform(processor)
    assert evaluate(image).shape == (3, 32, 32) and torch.equal(evaluate(image), evaluate(image))


def make_tree(root, classes=("forest", "river"), per_class=(5, 3)) -> str:
    rng = np.random.default_rng(0)
    for name, count in zip(classes, per_class):
        for split in ("train", "test"):
            os.makedirs(root / split / name, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 255, (20, 24), dtype=np.uint8)
                Image.fromarray(pixels, mode="L").save(root / split / name / f"{name}_{i}.png")
    return str(root)


def test_transformed_dataset_batches_through_a_dataloader(tmp_path):
    source = ImageFolderSource(make_tree(tmp_path / "tree"), cache_dir=str(tmp_path / "cache"))
    train = load_benchmark("fgvc_aircraft", "train", source=source)  # no shipped class list: forest, river
    data = with_image_transform(train, train_transform(tiny_clip_image_processor(16)))
    batch = next(iter(DataLoader(data, batch_size=4, collate_fn=collate_fn)))
    assert batch["pixel_values"].shape == (4, 3, 16, 16) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == train["label"][:4]


def test_a_transformed_stream_keeps_its_class_names_and_yields_the_same_tensors(tmp_path):
    source = ImageFolderSource(make_tree(tmp_path / "tree"), cache_dir=str(tmp_path / "cache"))
    train = load_benchmark("fgvc_aircraft", "train", source=source)
    transform = eval_transform(tiny_clip_image_processor(16))
    streamed = with_image_transform(train.to_iterable_dataset(num_shards=2), transform)
    assert streamed.features["label"] == train.features["label"]  # what evaluation reads the names from
    mapped = with_image_transform(train, transform)
    for one, other in zip(streamed, mapped, strict=True):
        assert isinstance(one["pixel_values"], torch.Tensor) and one["label"] == other["label"]
        assert torch.equal(one["pixel_values"], other["pixel_values"])


def test_summary_shows_classes_counts_and_the_few_shot_selection(tmp_path, capsys):
    root = make_tree(tmp_path / "tree")
    source = ImageFolderSource(root, cache_dir=str(tmp_path / "cache"))
    text = summarize("eurosat", source=source, shots=2, seed=1, print_summary=False)
    assert "Benchmark 'eurosat'" in text and "a centered satellite photo of {}." in text
    assert "ImageFolderSource(root=" in text  # the source actually read, not the registry's Hub repo
    assert (  # lower-case folders map onto CoOp's 10 EuroSAT names; the papers' split size beside ours
        "train [all]: 8 images (papers: 13,500), 10 classes (2 with images; per class min 0, max 5)" in text
        and "Forest (5)" in text
        and "River (3)" in text
    )
    assert "val: not available" in text
    assert "2-shot train [all]: 4 images" in text and "seed 1" in text and "train/forest/forest_" in text
    main(["data-summary", "eurosat", "--image-folder", root, "--splits", "test", "--subset", "new"])
    printed = capsys.readouterr().out
    assert "test [new]: 3 images, 5 classes" in printed and "River (3)" in printed


def test_summary_of_a_built_in_synthetic_benchmark():
    text = summarize("synthetic_colours", splits=("train", "valid"), shots=1, print_summary=False)
    assert "source: built in" in text and "train [all]: 256 images, 8 classes" in text
    assert "1-shot train [all]: 8 images" in text and "valid: not available" in text
