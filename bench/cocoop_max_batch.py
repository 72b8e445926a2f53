"""Benchmark: the largest CoCoOp training batch that fits on the device, fast engine vs straightforward path.

CoCoOp trains with batch size 1 in the authors' code, and users report that batch 1 runs out of memory on
16 GB GPUs for ImageNet's 500 base classes: every image has its own prompts, K x 77 positions each. Here
one CoCoOp training step (forward with the frozen image tower, loss, backward) on ImageNet's first
`--classes` names (500: the base classes), ViT-B/16 dimensions with random weights, the real CLIP tokenizer,
is tried at batch 1, 2, 4, ... (doubling, then bisecting between the last batch that fitted and the first
that did not), up to `--max-batch`, once with the fast engine and once with `fast=False`, each path in its
own fresh process. Each row: the largest batch that fitted, its step time and peak memory, and the first
batch that did not fit.

    python bench/cocoop_max_batch.py --device cuda --dtype bfloat16            # on a GPU
    python bench/cocoop_max_batch.py --device cpu --classes 4 --max-batch 4    # the script itself, on a CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_parser, device_name, peak_memory, reset_peak_memory, write_results
from whole_step import build


def out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def try_batch(model, batch: int, args) -> dict | None:
    """One training step at `batch`: its wall time and peak memory, or None when it does not fit."""
    pixels = labels = loss = None
    try:
        pixels = torch.randn(batch, 3, 224, 224, device=args.device)
        labels = torch.arange(batch, device=args.device) % args.classes
        baseline = reset_peak_memory(args.device)
        start = time.perf_counter()
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16"):
            loss = model(pixel_values=pixels, labels=labels).loss
        loss.float().backward()
        if args.device == "cuda":
            torch.cuda.synchronize()
        return {"seconds": time.perf_counter() - start, "peak_mb": peak_memory(args.device) - baseline}
    except (RuntimeError, torch.OutOfMemoryError) as error:
        if not out_of_memory(error):
            raise
        return None
    finally:
        del pixels, labels, loss
        model.zero_grad(set_to_none=True)
        gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()


def run_one(args) -> dict:
    namespace = argparse.Namespace(
        method="cocoop", classes=args.classes, tokenizer=args.tokenizer, device=args.device, dtype="float32",
        path=args.path, source="imagenet",
    )  # fmt: skip
    model, _clip, _ = build(namespace)
    model.set_training_stage(next(s for s in model.training_stages() if s.kind == "gradient"))
    model.train()
    fits, fitted, failed = {}, 0, None
    batch = 1
    while batch <= args.max_batch and failed is None:  # doubling
        result = try_batch(model, batch, args)
        if result is None:
            failed = batch
        else:
            fits[batch], fitted = result, batch
            batch *= 2
    if failed is not None:  # bisect between the last fit and the first failure
        low, high = fitted, failed
        while high - low > 1:
            middle = (low + high) // 2
            result = try_batch(model, middle, args)
            if result is None:
                high = middle
            else:
                fits[middle], low = result, middle
        fitted, failed = low, high
    best = fits.get(fitted, {})
    return {"largest_batch": fitted, "first_failure": failed, **best}


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--classes", type=int, default=500, help="ImageNet classes (500: the base classes)")
    parser.add_argument("--max-batch", type=int, default=256, help="largest batch tried")
    parser.add_argument("--run-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="fast", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(args)))
        return
    rows = []
    for path in ("fast", "reference"):
        command = [
            sys.executable, __file__, "--run-one", "--path", path, "--classes", str(args.classes),
            "--max-batch", str(args.max_batch), "--tokenizer", args.tokenizer, "--device", args.device,
            "--dtype", args.dtype,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"cocoop_max_batch/{path} failed:\n{done.stderr[-3000:]}")
        rows.append({"path": path, **json.loads(done.stdout.strip().splitlines()[-1])})
        print(rows[-1])
    header = (
        f"The largest CoCoOp training batch (forward + backward) that fits, K={args.classes} ImageNet classes, "
        f"ViT-B/16 dimensions, random weights, {args.dtype}, on {device_name(args.device)} (torch "
        f"{torch.__version__}); batches tried up to {args.max_batch}; each path in a fresh process."
    )
    write_results(
        f"cocoop_max_batch_{args.device}",
        header,
        rows,
        ["path", "largest batch", "first batch that did not fit", "step s at the largest", "peak MB"],
        lambda r: [
            r["path"], str(r["largest_batch"]), "-" if r["first_failure"] is None else str(r["first_failure"]),
            f"{r.get('seconds', float('nan')):.2f}", f"{r.get('peak_mb', float('nan')):.0f}",
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
