"""Regenerate the tiny CLIP shipped in `hf_prompt_clip/assets/tiny-clip/` from scratch.

Trains a byte-level BPE tokenizer on the caption grammar, then a tiny `CLIPModel` contrastively on
freshly rendered synthetic scenes and captions (fixed seed), saves it with `save_pretrained`
(fp16 safetensors, tokenizer, image processor), measures its zero-shot top-1 accuracy on the
synthetic test sets and writes the settings and results to `pretraining.json` in the folder.

    python scripts/pretrain_tiny_clip.py                      # the shipped model (about 18 min, 1 core)
    python scripts/pretrain_tiny_clip.py --steps 50 --output-dir /tmp/tiny-clip   # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from hf_prompt_clip.synthetic import tiny_clip_path
from hf_prompt_clip.synthetic.captions import COLOUR_TEMPLATE, ZERO_SHOT_TEMPLATE
from hf_prompt_clip.synthetic.pretrain import PretrainSettings, pretrain, save_clip, zero_shot_accuracy
from hf_prompt_clip.synthetic.render import VARIANTS

EVAL_PER_CLASS = 10


def parse_args() -> argparse.Namespace:
    defaults = PretrainSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimisation steps")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="images (and captions) per step"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="peak AdamW learning rate"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of model, tokenizer and data")
    parser.add_argument(
        "--output-dir", type=Path, default=Path(tiny_clip_path()), help="where to save the model"
    )
    parser.add_argument(
        "--style-agnostic",
        action="store_true",
        help="ignore the style words of captions in the contrastive targets (the old recipe)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--eval-per-class", type=int, default=EVAL_PER_CLASS, help="test images per class")
    return parser.parse_args()


#: The prompt that names each drawing style (the captions' style words, see `STYLE_TEMPLATES`).
STYLE_PROMPTS = {
    "clean": "a photo of a {}.",
    "outline": "a drawing of a {}.",
    "noisy": "a blurry photo of a {}.",
    "small": "a photo of a small {}.",
}


def evaluate(folder: Path, per_class: int) -> dict[str, float]:
    """Zero-shot top-1 accuracy on every synthetic test set (benchmark template, one prompt per class;
    for the shifted styles also with the prompt naming the style, `colour_shape_<variant>_styled`)."""
    results = {"colour_shape": zero_shot_accuracy(folder, "colour_shape", per_class=per_class)}
    for variant in VARIANTS[1:]:
        results[f"colour_shape_{variant}"] = zero_shot_accuracy(
            folder, "colour_shape", per_class=per_class, variant=variant
        )
        results[f"colour_shape_{variant}_styled"] = zero_shot_accuracy(
            folder, "colour_shape", per_class=per_class, variant=variant, template=STYLE_PROMPTS[variant]
        )
    results["shapes"] = zero_shot_accuracy(folder, "shapes", per_class=5 * per_class)
    results["colours"] = zero_shot_accuracy(folder, "colours", per_class=5 * per_class)
    return results


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    settings = PretrainSettings(
        seed=args.seed,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        style_aware=not args.style_agnostic,
    )
    start = time.time()
    model, tokenizer = pretrain(settings)
    minutes = (time.time() - start) / 60
    save_clip(model, tokenizer, args.output_dir, settings.image_size)
    record = {
        "settings": asdict(settings),
        "threads": args.threads,
        "training_minutes": round(minutes, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "zero_shot_top1": evaluate(args.output_dir, args.eval_per_class),
        "zero_shot_style_templates": STYLE_PROMPTS,
        "zero_shot_templates": {
            "colour_shape": ZERO_SHOT_TEMPLATE,
            "shapes": ZERO_SHOT_TEMPLATE,
            "colours": COLOUR_TEMPLATE,
        },
        "test_images_per_class": {
            "colour_shape": args.eval_per_class,
            "shapes": 5 * args.eval_per_class,
            "colours": 5 * args.eval_per_class,
        },
        "chance": {"colour_shape": 1 / 80, "shapes": 1 / 10, "colours": 1 / 8},
    }
    text = json.dumps(record, indent=2)
    (args.output_dir / "pretraining.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
