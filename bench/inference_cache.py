"""Benchmark: inference with cached class features runs at plain-CLIP speed, with or without `no_grad`.

CLIP ViT-B/16 at its published dimensions (random weights), a CoOp adapter over K classes (ImageNet's
first K names, the real CLIP tokenizer), a batch of B images. In one process, interleaved in rounds
(A/B/C, A/B/C, ...; median and range over the rounds, wall and process CPU time), it times:

- plain CLIP: the vision tower's pooled output through `visual_projection` + the similarity to fixed text features, under `no_grad`;
- the adapter in eval mode under `no_grad`;
- the adapter in eval mode without `no_grad` (what a user who forgets it runs; before the fix the
  text tower ran with autograd on every batch: 0.42x plain CLIP's speed).

    python bench/inference_cache.py --tokenizer ../shared/clip-tokenizer --classes 100 --images 8
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_parser, class_names, device_name, random_vit_b16, timed, write_results


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from hf_prompt_clip import CoOpConfig, CoOpModel

    tokenizer, clip = random_vit_b16(args.tokenizer, args.device)
    labels, prompts = class_names("imagenet")
    config = CoOpConfig(
        clip_config=clip.config.to_dict(),
        class_names=labels[: args.classes],
        prompt_names=prompts[: args.classes],
    )
    model = CoOpModel(config, clip_model=clip, tokenizer=tokenizer).to(args.device).eval()
    pixels = torch.randn(args.images, 3, 224, 224, device=args.device)
    with torch.no_grad():
        text = model.class_text_features().clone()

    def plain():
        with torch.no_grad():
            pooled = clip.vision_model(pixel_values=pixels).pooler_output
            features = torch.nn.functional.normalize(clip.visual_projection(pooled), dim=-1)
            return features @ text.T

    def adapter_no_grad():
        with torch.no_grad():
            return model(pixel_values=pixels).logits

    def adapter_grad_on():
        return model(pixel_values=pixels).logits

    variants = {"plain CLIP (no_grad)": plain, "adapter, eval, no_grad": adapter_no_grad}
    variants["adapter, eval, grad on"] = adapter_grad_on
    for function in variants.values():  # warm-up, and the class features cached
        function()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, function in variants.items():
            times[name].append(timed(function))
    base = statistics.median(w for w, _ in times["plain CLIP (no_grad)"])
    rows = []
    for name, values in times.items():
        walls = [w for w, _ in values]
        rows.append(
            {
                "variant": name,
                "wall_s": round(statistics.median(walls), 3),
                "wall_range": [round(min(walls), 3), round(max(walls), 3)],
                "cpu_s": round(statistics.median(c for _, c in values), 3),
                "speed_vs_plain": round(base / statistics.median(walls), 2),
            }
        )
    header = (
        f"Device: {device_name(args.device)}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"ViT-B/16 dimensions, random weights; CoOp over K={args.classes} ImageNet classes, B={args.images}; "
        f"{args.rounds} interleaved rounds, medians (range)."
    )
    write_results(
        f"inference_cache_{args.device}",
        header,
        rows,
        ["variant", "wall s (range)", "process CPU s", "speed vs plain CLIP"],
        lambda r: [
            r["variant"],
            f"{r['wall_s']} ({r['wall_range'][0]}-{r['wall_range'][1]})",
            str(r["cpu_s"]),
            f"{r['speed_vs_plain']}x",
        ],
    )


if __name__ == "__main__":
    main()
