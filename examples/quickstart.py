"""The smallest honest end-to-end run of hf-prompt-clip, fully offline, in seconds on a CPU.

What it does, for real:
1. writes a tiny *randomly initialised* CLIP (weights, tokenizer, image processor) to a folder that
   stands in for a Hub id such as `openai/clip-vit-base-patch16`;
2. builds zero-shot CLIP and CoOp around it for 4 generated pattern classes;
3. trains CoOp's context on 16 generated images per class and compares accuracy with zero-shot
   CLIP on 32 held-out images per class;
4. saves the adapter (a few KB), reloads it with `AutoModel.from_pretrained`, and runs the
   `image-classification` and `zero-shot-image-classification` pipelines on it.

The base CLIP is untrained, so zero-shot accuracy is near chance and the numbers show the
machinery, not what CoOp achieves on real data with a pretrained CLIP.

    python examples/quickstart.py [--output-dir outputs/quickstart] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from tqdm.auto import tqdm
from transformers import AutoModel, pipeline
from transformers.utils import logging as transformers_logging

from hf_prompt_clip import CoOpModel, ZeroShotCLIPModel
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_dataset, pattern_image, save_tiny_clip


@torch.no_grad()
def accuracy(model, pixel_values: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    return (model(pixel_values).logits.argmax(-1) == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", default="outputs/quickstart")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    transformers_logging.disable_progress_bar()
    output = Path(args.output_dir)
    torch.manual_seed(args.seed)

    base = save_tiny_clip(output / "tiny-random-clip", seed=args.seed)
    class_names = list(PATTERN_CLASSES)
    zero_shot = ZeroShotCLIPModel.from_clip(base, class_names)
    coop = CoOpModel.from_clip(base, class_names, n_ctx=4, class_specific_context=True)
    processor = coop.image_processor

    train_images, train_labels = pattern_dataset(per_class=16, seed=args.seed)
    test_images, test_labels = pattern_dataset(per_class=32, seed=args.seed + 1000)
    train_pixels = processor(train_images, return_tensors="pt").pixel_values
    test_pixels = processor(test_images, return_tensors="pt").pixel_values
    train_labels, test_labels = torch.tensor(train_labels), torch.tensor(test_labels)

    optimizer = torch.optim.Adam([p for p in coop.parameters() if p.requires_grad], lr=0.05)
    coop.train()
    progress = tqdm(range(args.steps), desc="training CoOp context")
    for _ in progress:
        loss = coop(train_pixels, labels=train_labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")

    results = {
        "zero_shot_accuracy": accuracy(zero_shot, test_pixels, test_labels),
        "coop_accuracy": accuracy(coop, test_pixels, test_labels),
        "test_images": len(test_images),
        "classes": class_names,
        "note": "tiny randomly initialised CLIP on generated patterns: a machinery check, not a benchmark",
    }

    adapter_dir = output / "coop-adapter"
    coop.save_pretrained(adapter_dir)
    reloaded = AutoModel.from_pretrained(adapter_dir)
    results["reloaded_accuracy"] = accuracy(reloaded, test_pixels, test_labels)
    results["adapter_bytes"] = (adapter_dir / "model.safetensors").stat().st_size

    image = pattern_image("stripes")
    classifier = pipeline("image-classification", model=str(adapter_dir))
    zero_shot_pipe = pipeline("zero-shot-image-classification", model=str(adapter_dir))
    results["image_classification_pipeline"] = classifier(image)[0]
    results["zero_shot_pipeline"] = zero_shot_pipe(
        image, candidate_labels=class_names, hypothesis_template="{}"
    )[0]
    (output / "results.json").write_text(json.dumps(results, indent=2))

    print(
        f"\nzero-shot CLIP accuracy : {results['zero_shot_accuracy']:.1%}  (chance {1 / len(class_names):.0%})"
    )
    print(f"CoOp accuracy           : {results['coop_accuracy']:.1%}")
    print(f"reloaded adapter        : {results['reloaded_accuracy']:.1%} ({results['adapter_bytes']} bytes)")
    print(f"pipeline on a stripes image: {results['image_classification_pipeline']}")
    print(f"\nadapter folder: {adapter_dir}\nresults: {output / 'results.json'}")
    print("(tiny random CLIP and generated patterns: these numbers check the machinery, not the method)")


if __name__ == "__main__":
    main()
