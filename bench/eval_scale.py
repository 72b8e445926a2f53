"""Benchmark: evaluation at scale runs in bounded memory (1000 classes, a growing test set).

Builds CLIP ViT-B/16 at its published dimensions (random weights: speed and memory do not depend on
the values), a zero-shot model over ImageNet's 1000 class names (the real CLIP tokenizer), and an
in-memory test set of N random images, and evaluates it with the package's own path
(`evaluate_accuracy`: the eval transform, Accelerate's data loader, cached class features, one batch
of images at a time). Each N runs in a fresh subprocess; it reports the time to encode the 1000
class prompts, the images per second of the image side, and the peak resident memory above the
level after the model and the data are built (`/proc/self/clear_refs`, no warm-up in the process),
so memory that grew with N would show as a growing peak.

    python bench/eval_scale.py --tokenizer ../shared/clip-tokenizer --images 64 256 --threads 2  # CPU
    python bench/eval_scale.py --device cuda --images 2048 8192                        # GPU
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    bench_parser,
    class_names,
    device_name,
    peak_memory,
    random_vit_b16,
    reset_peak_memory,
    write_results,
)


def run_one(args) -> dict:
    import numpy as np
    from accelerate import Accelerator
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature
    from PIL import Image
    from transformers import CLIPImageProcessor

    from hf_prompt_clip import ZeroShotCLIPConfig, ZeroShotCLIPModel
    from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform
    from hf_prompt_clip.evaluate.protocols import evaluate_accuracy

    tokenizer, clip = random_vit_b16(args.tokenizer)
    labels, prompts = class_names("imagenet")
    config = ZeroShotCLIPConfig(clip_config=clip.config.to_dict(), class_names=labels, prompt_names=prompts)
    processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    model = ZeroShotCLIPModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(args.images)]
    features = Features(image=ImageFeature(), label=ClassLabel(names=labels))
    data = Dataset.from_dict(
        {"image": images, "label": (np.arange(args.images) % len(labels)).tolist()}, features=features
    )
    data = with_image_transform(data, eval_transform(processor))
    accelerator = Accelerator(cpu=args.device == "cpu")
    model.to(accelerator.device)
    base = reset_peak_memory(args.device)
    started = time.perf_counter()
    with torch.no_grad():
        model.class_text_features()  # the 1000 class prompts, once (the cache evaluation uses)
    text_s = time.perf_counter() - started
    started = time.perf_counter()
    evaluate_accuracy(model, data, collate_fn, batch_size=args.batch_size, accelerator=accelerator)
    image_s = time.perf_counter() - started
    return {
        "images": args.images,
        "classes": len(labels),
        "batch_size": args.batch_size,
        "class_features_s": round(text_s, 2),
        "evaluation_s": round(image_s, 2),
        "images_per_s": round(args.images / image_s, 2),
        "peak_above_base_mb": round(peak_memory(args.device) - (0 if args.device == "cuda" else base), 1),
    }


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--images", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--one", action="store_true", help=argparse_suppress())
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        args.images = args.images[0]
        print(json.dumps(run_one(args)))
        return
    rows = []
    for images in args.images:
        command = [
            sys.executable,
            __file__,
            "--one",
            "--images",
            str(images),
            "--batch-size",
            str(args.batch_size),
        ]
        command += ["--tokenizer", args.tokenizer, "--device", args.device, "--dtype", args.dtype]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    header = (
        f"Device: {device_name(args.device)}; torch {torch.__version__}; threads "
        f"{args.threads or torch.get_num_threads()}; ViT-B/16 dimensions, random weights; 1000 ImageNet "
        f"classes; tokenizer {args.tokenizer}; batch {args.batch_size}; each row a fresh process."
    )
    write_results(
        f"eval_scale_{args.device}",
        header,
        rows,
        ["test images", "class features s", "evaluation s", "images/s", "peak above base MB"],
        lambda r: [
            str(r[key])
            for key in ("images", "class_features_s", "evaluation_s", "images_per_s", "peak_above_base_mb")
        ],
    )


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
