"""Benchmark: the frozen image tower in float32 vs bfloat16 (`--image-dtype bf16`).

CLIP ViT-B/16 at its published dimensions (random weights; speed does not depend on the values), a batch
of B images through `model.encode_images` (the shared image-tower path, without autograd) of two CoOp
models on copies of the same CLIP: one as loaded (float32), one after `set_image_dtype("bf16")` (only the
vision tower and visual projection cast; features back in float32). In one process, interleaved in rounds
(fp32/bf16, fp32/bf16, ...), it reports the median and range of wall and process CPU time over the rounds,
and the cosine similarity of the two features.

    python bench/image_dtype.py --tokenizer ../shared/clip-tokenizer --images 8 --rounds 5
"""

from __future__ import annotations

import copy
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_parser, device_name, random_vit_b16, timed, write_results


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from hf_prompt_clip import CoOpConfig, CoOpModel

    tokenizer, clip = random_vit_b16(args.tokenizer)
    config = CoOpConfig(clip_config=clip.config.to_dict(), class_names=["a", "b"])
    models = {}
    for name, dtype in (("float32", None), ("bfloat16", "bf16")):
        model = CoOpModel(copy.deepcopy(config), clip_model=copy.deepcopy(clip), tokenizer=tokenizer)
        if dtype:
            model.set_image_dtype(dtype)
        models[name] = model.to(args.device).eval()
    del clip
    pixels = torch.randn(args.images, 3, 224, 224, device=args.device)
    with torch.no_grad():
        features = {name: model.encode_images(pixels) for name, model in models.items()}  # warm-up
    cosine = torch.nn.functional.cosine_similarity(features["float32"], features["bfloat16"], dim=-1)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            with torch.no_grad():
                times[name].append(timed(lambda model=model: model.encode_images(pixels)))
    base = statistics.median(c for _, c in times["float32"])
    rows = []
    for name, values in times.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        rows.append(
            {
                "image_dtype": name,
                "wall_s": round(statistics.median(walls), 3),
                "wall_range": [round(min(walls), 3), round(max(walls), 3)],
                "cpu_s": round(statistics.median(cpus), 3),
                "cpu_range": [round(min(cpus), 3), round(max(cpus), 3)],
                "cpu_speed_vs_fp32": round(base / statistics.median(cpus), 2),
                "features_dtype": str(features[name].dtype).removeprefix("torch."),
            }
        )
    header = (
        f"Device: {device_name(args.device)}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"ViT-B/16 image tower at its published dimensions, random weights; B={args.images} images 224 px "
        f"through model.encode_images (no autograd); {args.rounds} interleaved rounds after a warm-up, medians "
        f"(range). Cosine of bf16 to fp32 features: min {cosine.min().item():.5f}, mean {cosine.mean().item():.5f}."
    )
    write_results(
        f"image_dtype_{args.device}",
        header,
        rows,
        ["image dtype", "wall s (range)", "process CPU s (range)", "CPU time vs fp32", "features"],
        lambda r: [
            r["image_dtype"],
            f"{r['wall_s']} ({r['wall_range'][0]}-{r['wall_range'][1]})",
            f"{r['cpu_s']} ({r['cpu_range'][0]}-{r['cpu_range'][1]})",
            f"{r['cpu_speed_vs_fp32']}x faster" if r["image_dtype"] != "float32" else "1x",
            r["features_dtype"],
        ],
    )


if __name__ == "__main__":
    main()
