"""Check: the fast text engine equals the straightforward path on this device, and a step's host syncs.

For CoOp, CoCoOp, PLOT and KgCoOp (the methods on the fast text engine), one training step's loss, logits
and gradients with `fast=True` against `fast=False` on the same weights and inputs (ViT-B/16 dimensions,
random weights, Flowers102 class names with the real CLIP tokenizer), in float32 and under bfloat16
autocast (trainable tensors float32, as `--mixed-precision bf16` trains). On a GPU it also counts the
host syncs of one fast training step (`torch.cuda.set_sync_debug_mode("warn")`: every synchronising CUDA
call warns once per call site and call). The test suite checks exactness on a CPU; this is the same check
on the device (issue 17).

    python bench/cuda_exactness.py --device cuda                    # on a GPU machine
    python bench/cuda_exactness.py --device cpu --classes 4 --images 2   # the script itself, on a CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_parser, device_name, write_results
from whole_step import build

METHODS = ("coop", "cocoop", "plot", "kgcoop")


def step(model, pixels, labels, autocast) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, logits, gradients by parameter name) of one training step (no optimiser update)."""
    model.zero_grad(set_to_none=True)
    with autocast():
        output = model(pixel_values=pixels, labels=labels)
    output.loss.float().backward()
    grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}
    return output.loss.detach().float(), output.logits.detach().float(), grads


def autocast_for(device: str, dtype: str):
    """A factory of the step's autocast context: bfloat16 autocast, or none for float32."""
    return lambda: torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 when both are zero)."""
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / scale if scale else (a - b).abs().max().item()


def count_syncs(model, pixels, labels, autocast) -> int | None:
    """Synchronising CUDA calls during one fast training step (None off CUDA)."""
    if pixels.device.type != "cuda":
        return None
    step(model, pixels, labels, autocast)  # warm-up: first-call work (class prompts, layouts) is not a step's
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(model, pixels, labels, autocast)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def check(args, method: str) -> list[dict]:
    """The float32 and the bfloat16 row of `method`."""
    namespace = argparse.Namespace(
        method=method, classes=args.classes, tokenizer=args.tokenizer, device=args.device, dtype="float32"
    )
    models = {}
    for path in ("fast", "reference"):
        namespace.path = path
        models[path], _clip, _ = build(namespace)
    models["reference"].load_adapter_state_dict(models["fast"].adapter_state_dict())
    for model in models.values():
        stage = next(s for s in model.training_stages() if s.kind == "gradient")
        model.set_training_stage(stage)
        model.train()
    generator = torch.Generator().manual_seed(1)
    images = 2 if method == "cocoop" else args.images
    pixels = torch.randn(images, 3, 224, 224, generator=generator).to(args.device)
    labels = (torch.arange(images) % args.classes).to(args.device)

    def runs(dtype: str) -> dict:
        autocast = autocast_for(args.device, dtype)
        return {path: step(model, pixels, labels, autocast) for path, model in models.items()}

    exact = runs("float32")
    rows = []
    for dtype in ("float32", "bfloat16"):
        measured = exact if dtype == "float32" else runs(dtype)
        (fast_loss, fast_logits, fast_grads), (ref_loss, ref_logits, ref_grads) = measured.values()
        _, exact_logits, exact_grads = exact["reference"]
        rows.append(
            {
                "method": method,
                "dtype": dtype,
                "images": images,
                "loss_fast": fast_loss.item(),
                "loss_reference": ref_loss.item(),
                "logits_max_abs_diff": (fast_logits - ref_logits).abs().max().item(),
                "grad_max_rel_diff": max(relative(fast_grads[n], ref_grads[n]) for n in ref_grads),
                # how far each path is from the float32 straightforward result (bf16 rounds both)
                "fast_vs_float32": [
                    (fast_logits - exact_logits).abs().max().item(),
                    max(relative(fast_grads[n], exact_grads[n]) for n in exact_grads),
                ],
                "reference_vs_float32": [
                    (ref_logits - exact_logits).abs().max().item(),
                    max(relative(ref_grads[n], exact_grads[n]) for n in exact_grads),
                ],
            }
        )
    for row in rows:
        autocast = autocast_for(args.device, row["dtype"])
        row["host_syncs_per_fast_step"] = count_syncs(models["fast"], pixels, labels, autocast)
    return rows


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--classes", type=int, default=102, help="Flowers102 classes")
    parser.add_argument("--images", type=int, default=8, help="images per step (CoCoOp: 2)")
    parser.add_argument("--output", default=None, help="results name (default cuda_exactness_<device>)")
    args = parser.parse_args()
    rows = [row for method in args.methods for row in check(args, method)]
    header = (
        f"Fast text engine vs the straightforward path, one training step, on {device_name(args.device)} "
        f"(torch {torch.__version__}, CUDA {torch.version.cuda}); ViT-B/16 dimensions, random weights, "
        f"{args.classes} Flowers102 classes; bfloat16 = autocast with float32 trainable tensors; in bfloat16 both "
        "paths round, so each is also compared with the float32 straightforward result. Host syncs: "
        "synchronising CUDA calls in one fast training step after a warm-up (GPU only)."
    )
    columns = [
        "method", "dtype", "B", "loss fast / reference", "fast vs reference: max abs logit diff, max rel. grad diff",
        "vs the float32 reference, fast / reference: logits; grads", "host syncs",
    ]  # fmt: skip
    write_results(
        args.output or f"cuda_exactness_{args.device}",
        header,
        rows,
        columns,
        lambda r: [
            r["method"], r["dtype"], str(r["images"]), f"{r['loss_fast']:.6f} / {r['loss_reference']:.6f}",
            f"{r['logits_max_abs_diff']:.2e}, {r['grad_max_rel_diff']:.2e}",
            f"{r['fast_vs_float32'][0]:.2e} / {r['reference_vs_float32'][0]:.2e}; "
            f"{r['fast_vs_float32'][1]:.2e} / {r['reference_vs_float32'][1]:.2e}",
            "-" if r["host_syncs_per_fast_step"] is None else str(r["host_syncs_per_fast_step"]),
        ],
    )  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
