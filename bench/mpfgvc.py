"""Benchmark: MP-FGVC's two training steps, fast vs straightforward text path, and the text tower's share.

Builds CLIP ViT-B/16 at its published dimensions (random weights: speed does not depend on the
values) with the real CLIP tokenizer, and an MP-FGVC model over C subcategories (CUB-200: 200) with
J = 16 DaTP tokens, super-category "bird", SsVP keeping 12 of 196 patches. It measures, each in its
own subprocess (so peak memory is that of one measurement):

- stage `visual`: image tower forward + backward (fine-tuned, B images, SsVP), DaTP text features
  forward + backward for the C prompts, linear head + contrastive loss, optimiser step;
- stage `fusion`: frozen image tower forward, cached text features, VLFM + classifier forward +
  backward, optimiser step;
- for both, the same step with the text features given (precomputed, constant), so the difference
  is the text tower's forward + backward: its share of the step;
- the text path: `fast` (EOS truncation; DaTP contexts are class-specific, so there is no shared
  prefix to cache) against the straightforward 77-position path (`fast=False`).

    python bench/mpfgvc.py --tokenizer path/to/clip-tokenizer --images 4          # CPU
    python bench/mpfgvc.py --device cuda --dtype bfloat16 --images 32              # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, device_name, peak_memory, random_vit_b16, reset_peak_memory

CASES = ("visual", "fusion")


def run_one(args) -> dict:

    from hf_prompt_clip import MPFGVCConfig, MPFGVCModel

    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = args.device, getattr(torch, args.dtype)
    tokenizer, clip = random_vit_b16(args.tokenizer, device, dtype)
    names = [f"subcategory {k}" for k in range(args.classes)]
    config = MPFGVCConfig(
        clip_config=clip.config.to_dict(),
        class_names=names,
        super_category="bird",
        fast=args.path == "fast",
    )
    model = MPFGVCModel(config, clip_model=clip, tokenizer=tokenizer).to(device)
    model.set_training_stage(args.stage)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=1e-3, momentum=0.9)
    pixels = torch.randn(args.images, 3, 224, 224, device=device)
    labels = torch.arange(args.images, device=device) % args.classes
    autocast = torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32)
    if args.given_text:  # the text tower's work removed: constant text features
        with torch.no_grad():
            fixed = model.class_text_features().detach()
        model.class_text_features = lambda: fixed

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model(pixel_values=pixels, labels=labels).loss
        loss.float().backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    baseline = reset_peak_memory(device)
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    layout = model.prompt_layout
    return {
        "stage": args.stage,
        "path": args.path,
        "given_text": args.given_text,
        "seconds": times,
        "median_s": statistics.median(times),
        "peak_memory_mb": peak_memory(device) - baseline,
        "text_tokens": int((layout.eos_positions + 1).sum())
        if args.path == "fast"
        else layout.input_ids.numel(),
    }


def spawn(args, stage: str, path: str, given_text: bool) -> dict:
    command = [
        sys.executable, __file__, "--run-one", "--stage", stage, "--path", path,
        "--classes", str(args.classes), "--images", str(args.images), "--reps", str(args.reps),
        "--warmup", str(args.warmup), "--tokenizer", args.tokenizer, "--device", args.device,
        "--dtype", args.dtype, *(["--given-text"] if given_text else []),
        *(["--threads", str(args.threads)] if args.threads else []),
    ]  # fmt: skip
    label = f"{stage:6s} {path:9s} {'text given' if given_text else 'with text':10s}"
    print(f"  {label} ...", end="", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{result.stderr[-3000:]}")
    measurement = json.loads(result.stdout.strip().splitlines()[-1])
    print(f" {measurement['median_s']:8.3f} s  peak +{measurement['peak_memory_mb']:8.1f} MB")
    return measurement


def report(rows: list[dict], args) -> str:
    lines = [
        f"Device: {args.device_name}; dtype {args.dtype}; torch {torch.__version__}; threads "
        f"{args.threads or torch.get_num_threads()}; C={args.classes} subcategories, B={args.images} images, "
        "ViT-B/16, J=16, SsVP 12 of 196 patches.",
        "",
        "| stage | text path | step s | step with text given s | text tower share | text positions | peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        share = 1 - row["given"]["median_s"] / row["full"]["median_s"]
        lines.append(
            f"| {row['stage']} | {row['path']} | {row['full']['median_s']:.3f} | {row['given']['median_s']:.3f} | "
            f"{100 * share:.0f}% | {row['full']['text_tokens']} | {row['full']['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--classes", type=int, default=200, help="subcategories (CUB-200: 200)")
    parser.add_argument("--images", type=int, default=4, help="images per step")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--output", default=None, help="JSON path (default bench/results/mpfgvc_<device>.json)"
    )
    parser.add_argument("--run-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--given-text", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(args)))
        return
    args.device_name = device_name(args.device)
    print(f"Benchmarking MP-FGVC on {args.device_name}, dtype {args.dtype}")
    rows = []
    for stage in CASES:
        for path in ("fast", "reference") if stage == "visual" else ("fast",):  # stage 2 caches the text
            full = spawn(args, stage, path, given_text=False)
            given = spawn(args, stage, path, given_text=True)
            rows.append({"stage": stage, "path": path, "full": full, "given": given})
    table = report(rows, args)
    print("\n" + table)
    output = Path(args.output or f"bench/results/mpfgvc_{args.device}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "device": args.device_name,
        "dtype": args.dtype,
        "torch": torch.__version__,
        "measured": time.strftime("%Y-%m-%d"),
    }
    output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    output.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {output} and {output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
