"""Benchmark: the exact fast text engine against the straightforward reference path.

Builds CLIP ViT-B/16 at its published dimensions (random weights: speed does not depend on the
values), uses real class names from the package registry (ImageNet 1000, Flowers102, Pets)
tokenised with the real CLIP tokenizer, and measures in one run, on the same inputs:

- train steps (text side forward + backward, from given image features) of CoOp and CoCoOp;
- evaluation of CoCoOp over 1000 classes (images/s) and CoOp's class-feature encoding;
- peak memory (CUDA max allocated on GPU; on CPU the peak resident set of a fresh subprocess
  above its level after building the model);
- the token-count lower bound: positions that must be encoded (each prefix once + every suffix
  without padding) against the reference's 77 positions per prompt, and the ideal speed-up.

Every measurement runs in its own subprocess. Where the reference path does not fit this
machine (CoOp K=1000 training needs ~37 GB of fp32 activations), it runs on a smaller problem
(fewer classes or images) and the fast path is measured on that same problem too, so the ratio
is always measured on identical inputs; the full-size fast result is reported beside it and the
reference time at full size is extrapolated linearly (its cost is exactly linear in K and B),
marked as such.

    python bench/text_engine.py --tokenizer path/to/clip-tokenizer             # CPU, a local copy
    python bench/text_engine.py --device cuda --dtype bfloat16 --full-reference  # GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

# (name, method, class list, n_ctx, images per step, mode, reference size on CPU as (K, B))
CASES = {
    "coop_train_imagenet": ("coop", "imagenet", 16, 32, "train", (250, 32)),
    "cocoop_train_flowers": ("cocoop", "oxford_flowers", 4, 8, "train", (102, 2)),
    "cocoop_train_pets": ("cocoop", "oxford_pets", 4, 8, "train", (37, 4)),
    "cocoop_eval_imagenet": ("cocoop", "imagenet", 4, 8, "eval", (1000, 1)),
    "coop_eval_imagenet": ("coop", "imagenet", 16, 0, "eval", (1000, 0)),
}


@dataclass
class Measurement:
    case: str
    path: str  # "fast" or "reference"
    classes: int
    images: int
    seconds: list[float]
    median_s: float
    peak_memory_mb: float
    encoded_tokens: int
    reference_tokens: int


def class_names(source: str) -> tuple[list[str], list[str]]:
    """(unique labels, prompt texts) of a registry class list; OpenAI's ImageNet names repeat twice."""
    from hf_prompt_clip.data.classnames import (
        imagenet_class_names,
        oxford_flowers_class_names,
        oxford_pets_class_names,
    )

    prompts = list(
        {
            "imagenet": imagenet_class_names,
            "oxford_flowers": oxford_flowers_class_names,
            "oxford_pets": oxford_pets_class_names,
        }[source]()
    )
    labels = [name if prompts.index(name) == i else f"{name} ({i})" for i, name in enumerate(prompts)]
    return labels, prompts


def vit_b16_config(tokenizer):
    from transformers import CLIPConfig

    text = {
        "vocab_size": 49408,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
    }
    return CLIPConfig(
        text_config=text, vision_config=vision, projection_dim=512, logit_scale_init_value=4.6052
    )


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_memory(device: str) -> float:
    """Reset the peak-memory counter; returns the current level in MB."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    with contextlib.suppress(OSError):  # resets VmHWM, the peak resident set
        Path("/proc/self/clear_refs").write_text("5")
    return rss_mb("VmRSS")


def peak_memory(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return rss_mb("VmHWM")


def token_counts(layout, prefixes: int) -> tuple[int, int]:
    """(positions the fast engine must encode at the least, positions the reference encodes)."""
    shared = layout.shared_prefix_length
    suffix = int((layout.eos_positions + 1 - shared).sum())
    return prefixes * (shared + suffix), prefixes * layout.num_prompts * layout.input_ids.shape[1]


def run_one(args) -> Measurement:
    from transformers import AutoTokenizer, CLIPModel

    from hf_prompt_clip import CoCoOpConfig, CoCoOpModel, CoOpConfig, CoOpModel

    if args.threads:
        torch.set_num_threads(args.threads)
    method, source, n_ctx, _, mode, _ = CASES[args.case]
    device, dtype = args.device, getattr(torch, args.dtype)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    clip = CLIPModel(vit_b16_config(tokenizer)).to(device=device, dtype=dtype).eval()
    labels, prompts = class_names(source)
    names, prompt_names = labels[: args.classes], prompts[: args.classes]
    config_class, model_class = (CoOpConfig, CoOpModel) if method == "coop" else (CoCoOpConfig, CoCoOpModel)
    options = {"n_ctx": n_ctx, "ctx_init": None} if method == "coop" else {"ctx_init": "a photo of a"}
    config = config_class(
        clip_config=clip.config.to_dict(),
        class_names=names,
        prompt_names=prompt_names,
        fast=args.path == "fast",
        **options,
    )
    model = model_class(config, clip_model=clip, tokenizer=tokenizer).to(device)
    features = torch.nn.functional.normalize(torch.randn(max(args.images, 1), 512, device=device), dim=-1)
    labels = torch.arange(args.images, device=device) % len(names)
    autocast = torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32)

    def step():
        if mode == "train":
            model.zero_grad(set_to_none=True)
            with autocast:
                logits = model.logits_from_image_features(features)
            torch.nn.functional.cross_entropy(logits.float(), labels % logits.shape[1]).backward()
        elif method == "coop":
            with torch.no_grad(), autocast:
                model._compute_class_text_features()
        else:
            with torch.no_grad(), autocast:
                model.logits_from_image_features(features)
        if device == "cuda":
            torch.cuda.synchronize()

    if args.path == "reference" and device == "cpu":
        # warm the kernels on a small problem: one minutes-long repetition must not pay first-call costs
        with model.using_class_names(names[:8], prompt_names[:8]):
            step()
    else:
        for _ in range(args.warmup):
            step()
    baseline = reset_peak_memory(device)
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    prefixes = args.images if method == "cocoop" else 1
    encoded, reference = token_counts(model.prompt_layout, prefixes)
    return Measurement(
        case=args.case,
        path=args.path,
        classes=len(names),
        images=args.images,
        seconds=times,
        median_s=statistics.median(times),
        peak_memory_mb=peak_memory(device) - baseline,
        encoded_tokens=encoded,
        reference_tokens=reference,
    )


def spawn(args, case: str, path: str, classes: int, images: int, reps: int) -> Measurement:
    command = [
        sys.executable,
        __file__,
        "--run-one",
        "--case",
        case,
        "--path",
        path,
        "--classes",
        str(classes),
        "--images",
        str(images),
        "--reps",
        str(reps),
        "--warmup",
        str(args.warmup),
        "--tokenizer",
        args.tokenizer,
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        *(["--threads", str(args.threads)] if args.threads else []),
    ]
    print(f"  {case:22s} {path:9s} K={classes:<5d} B={images:<3d} ...", end="", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{case}/{path} failed:\n{result.stderr[-3000:]}")
    measurement = Measurement(**json.loads(result.stdout.strip().splitlines()[-1]))
    print(f" {measurement.median_s:8.3f} s  peak +{measurement.peak_memory_mb:8.1f} MB")
    return measurement


def flops_per_token(layers: int = 12, width: int = 512) -> float:
    """Forward FLOPs per text token of the ViT-B/16 text tower (weights only)."""
    return 2 * layers * 12 * width * width


def report(rows: list[dict], args) -> str:
    lines = [
        f"Device: {args.device_name}; dtype {args.dtype}; torch {torch.__version__}; "
        f"threads {args.threads or torch.get_num_threads()}; tokenizer {args.tokenizer}.",
        "",
        "| case | K | B | reference s | fast s | speed-up (same inputs) | ideal (tokens) | "
        "fast at full size s | speed-up at full size | peak MB ref / fast |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        full = row["full_fast"]
        extrapolated = "" if row["reference_full_size"] else " (ref. extrapolated)"
        lines.append(
            f"| {row['case']} | {row['reference']['classes']} | {row['reference']['images']} | "
            f"{row['reference']['median_s']:.2f} | {row['fast']['median_s']:.3f} | "
            f"**{row['speedup']:.1f}x** | {row['ideal_speedup']:.1f}x | "
            f"{full['median_s']:.3f} (K={full['classes']}, B={full['images']}) | "
            f"{row['speedup_full']:.1f}x{extrapolated} | "
            f"{row['reference']['peak_memory_mb']:.0f} / {row['fast']['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokenizer", default="openai/clip-vit-base-patch16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the fast path")
    parser.add_argument("--reference-reps", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per measurement")
    parser.add_argument("--full-reference", action="store_true", help="run the reference at full size")
    parser.add_argument(
        "--output", default=None, help="JSON path (default bench/results/text_engine_<device>.json)"
    )
    # internal: one measurement in a subprocess
    parser.add_argument("--run-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--classes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_one:
        print(json.dumps(asdict(run_one(args))))
        return

    args.device_name = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    )
    print(f"Benchmarking on {args.device_name}, dtype {args.dtype}")
    rows = []
    for case in args.cases:
        _, source, _, images, mode, (reference_classes, reference_images) = CASES[case]
        classes = len(class_names(source)[0])
        if args.full_reference:
            reference_classes, reference_images = classes, images
        reference = spawn(args, case, "reference", reference_classes, reference_images, args.reference_reps)
        fast = spawn(args, case, "fast", reference_classes, reference_images, args.reps)
        at_full_size = (reference_classes, reference_images) == (classes, images)
        full = fast if at_full_size else spawn(args, case, "fast", classes, images, args.reps)
        scale = (classes / reference_classes) * (max(images, 1) / max(reference_images, 1))
        passes = 3 if mode == "train" else 1
        rows.append(
            {
                "case": case,
                "mode": mode,
                "reference": asdict(reference),
                "fast": asdict(fast),
                "full_fast": asdict(full),
                "reference_full_size": at_full_size,
                "speedup": reference.median_s / fast.median_s,
                "speedup_full": reference.median_s * scale / full.median_s,
                "ideal_speedup": fast.reference_tokens / fast.encoded_tokens,
                "fast_lower_bound_gflop": full.encoded_tokens * flops_per_token() * passes / 1e9,
                "reference_gflop": full.reference_tokens * flops_per_token() * passes / 1e9,
                "fast_achieved_tflops": full.encoded_tokens
                * flops_per_token()
                * passes
                / full.median_s
                / 1e12,
            }
        )
    table = report(rows, args)
    print("\n" + table)
    output = Path(args.output or f"bench/results/text_engine_{args.device}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "device": args.device_name,
        "dtype": args.dtype,
        "torch": torch.__version__,
        "tokenizer": args.tokenizer,
    }
    output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    output.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {output} and {output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
