"""Benchmark: the exact fast text engine (and PLOT's Sinkhorn) against the straightforward reference path.

Builds CLIP ViT-B/16 at its published dimensions (random weights: speed does not depend on the
values), uses real class names from the package registry (ImageNet 1000, Flowers102, Pets)
tokenised with the real CLIP tokenizer, and measures in one run, on the same inputs:

- train steps (text side forward + backward, from given image features) of CoOp, CoCoOp, PLOT and
  PLOT++ (PLOT: N = 4 contexts of 16 tokens against 196 patch features; PLOT++: 4 phrase-started
  contexts against 4 prompted CLS features; the reference path runs every prompt over 77 positions
  and the authors' Sinkhorn loop, which waits for the host every iteration);
- evaluation of CoCoOp over 1000 classes (images/s), CoOp's and PLOT's class-feature encoding, and
  PLOT's per-batch transport over 1000 classes with cached text features;
- for PLOT, the share of the step spent in Sinkhorn and its iteration count;
- peak memory (CUDA max allocated on GPU; on CPU the peak resident set of a fresh subprocess
  above its level after building the model);
- the token-count lower bound: positions that must be encoded (each prefix once + every suffix
  without padding) against the reference's 77 positions per prompt, and the ideal speed-up.

Every measurement runs in its own subprocess; before the timed repetitions the memory the allocator
kept from the warm-up is given back (`malloc_trim`, `common.release_free_memory`), so the peak read after
them is the measurement's own; the
two paths are interleaved in rounds (`--rounds`, default 3: reference then fast, fast then reference, ...),
so that neither always runs first or while the machine is quiet; the table gives the median speed-up of the
rounds with its range, in wall time and in process CPU time (which other jobs on the cores inflate less).
Where the reference path does not fit this
machine (CoOp K=1000 training needs ~37 GB of fp32 activations), it runs on a smaller problem
(fewer classes or images) and the fast path is measured on that same problem too, so the ratio
is always measured on identical inputs; the full-size fast result is reported beside it and the
reference time at full size is extrapolated linearly (its cost is exactly linear in K and B),
marked as such. Rows of cases not run keep their earlier values in the results file.

    python bench/text_engine.py --tokenizer path/to/clip-tokenizer             # CPU, a local copy
    python bench/text_engine.py --cases plot_train_flowers plot_infer_imagenet  # some cases only
    python bench/text_engine.py --device cuda --dtype bfloat16 --full-reference  # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
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
    token_counts,
)


@dataclass(frozen=True)
class Case:
    """One benchmark case: a method on a class list, `images` per step, and the size at which the
    reference path runs on a CPU (`(K, B)`)."""

    method: str
    source: str
    images: int
    mode: str  # "train": text side forward + backward; "eval": class features once; "infer": logits
    reference_size: tuple[int, int]
    options: tuple[tuple[str, object], ...] = ()


PLOTPP_FLOWERS = (
    "a photo of a flower",
    "one picture of a flower",
    "this is flower picture of",
    "one picture of a flower",
)
CASES = {
    "coop_train_imagenet": Case(
        "coop", "imagenet", 32, "train", (250, 32), (("n_ctx", 16), ("ctx_init", None))
    ),
    "cocoop_train_flowers": Case("cocoop", "oxford_flowers", 8, "train", (102, 2)),
    "cocoop_train_pets": Case("cocoop", "oxford_pets", 8, "train", (37, 4)),
    "cocoop_eval_imagenet": Case("cocoop", "imagenet", 8, "eval", (1000, 1)),
    "coop_eval_imagenet": Case("coop", "imagenet", 0, "eval", (1000, 0), (("n_ctx", 16), ("ctx_init", None))),
    "plot_train_flowers": Case("plot", "oxford_flowers", 32, "train", (26, 32)),
    "plot_train_flowers_fixed100": Case(
        "plot", "oxford_flowers", 32, "train", (26, 32), (("sinkhorn_stop", "fixed"),)
    ),
    "plotpp_train_flowers": Case(
        "plotpp", "oxford_flowers", 32, "train", (26, 32), (("ctx_inits", PLOTPP_FLOWERS),)
    ),
    "plot_eval_imagenet": Case("plot", "imagenet", 0, "eval", (250, 0)),
    "plot_infer_imagenet": Case("plot", "imagenet", 8, "infer", (1000, 8)),
}
#: Local features per image of the PLOT cases: ViT-B/16 patch tokens (PLOT), prompted CLS features (PLOT++).
LOCAL_FEATURES = {"plot": 196, "plotpp": 4}


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
    sinkhorn_s: float = 0.0  # median time in Sinkhorn per repetition (PLOT)
    sinkhorn_iterations: int = 0
    cpu_seconds: list[float] | None = None  # process CPU time of each repetition (all threads)
    median_cpu_s: float | None = None


def model_token_counts(model, prefixes: int) -> tuple[int, int]:
    """`token_counts` over a model's prompt layouts (PLOT: one per context length)."""
    if hasattr(model, "solve_transport"):  # PLOT: N contexts, one layout per context length
        counts = [
            token_counts(model.prompt_layout(length), len(sets)) for length, sets in model._length_groups()
        ]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)
    return token_counts(model.prompt_layout, prefixes)


class SinkhornTimer:
    """Wraps `model.solve_transport` (PLOT) to time it, synchronising on CUDA, and read its iterations."""

    def __init__(self, model, device: str):
        self.seconds, self.iterations = 0.0, 0
        solve = model.solve_transport

        def timed(similarity):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            result = solve(similarity)
            if device == "cuda":
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - start
            self.iterations = result.iterations
            return result

        model.solve_transport = timed


def run_one(args) -> Measurement:

    from hf_prompt_clip.core.registry import get_method

    if args.threads:
        torch.set_num_threads(args.threads)
    case = CASES[args.case]
    device, dtype = args.device, getattr(torch, args.dtype)
    tokenizer, clip = random_vit_b16(args.tokenizer, device, dtype)
    labels, prompts = class_names(case.source)
    names, prompt_names = labels[: args.classes], prompts[: args.classes]
    config_class, model_class = get_method(case.method)
    options = {"ctx_init": "a photo of a"} if case.method == "cocoop" else {}
    options.update({key: list(value) if isinstance(value, tuple) else value for key, value in case.options})
    config = config_class(
        clip_config=clip.config.to_dict(),
        class_names=names,
        prompt_names=prompt_names,
        fast=args.path == "fast",
        **options,
    )
    model = model_class(config, clip_model=clip, tokenizer=tokenizer).to(device)
    plot = hasattr(model, "solve_transport")
    timer = SinkhornTimer(model, device) if plot else None
    if plot:
        model.set_training_stage(model.training_stages()[-1])  # PLOT++: the joint stage (text learns)
    batch = max(args.images, 1)
    features = torch.nn.functional.normalize(torch.randn(batch, 512, device=device), dim=-1)
    local = torch.randn(batch, LOCAL_FEATURES.get(case.method, 1), 512, device=device)
    labels = torch.arange(args.images, device=device) % len(names)
    autocast = torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32)

    # inference measures the per-batch transport only: class text features are given, as the cache does
    given_text = torch.randn(config.n_prompts, len(names), 512, device=device) if plot else None

    def logits():
        if plot:
            text = given_text if case.mode == "infer" else model.prompt_text_features()
            return model.logits_from_features(features, local, text)
        return model.logits_from_image_features(features)

    def step():
        if case.mode == "train":
            model.zero_grad(set_to_none=True)
            with autocast:
                scores = logits()
            torch.nn.functional.cross_entropy(scores.float(), labels % scores.shape[1]).backward()
        elif case.mode == "eval" and plot:
            with torch.no_grad(), autocast:
                model.encode_prompts(model.context)
        elif case.mode == "eval" and case.method == "coop":
            with torch.no_grad(), autocast:
                model._compute_class_text_features()
        else:  # CoCoOp evaluation, PLOT inference
            with torch.no_grad(), autocast:
                logits()
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
    times, cpu_times, sinkhorn_times = [], [], []
    for _ in range(args.reps):
        if timer:
            timer.seconds = 0.0
        start, cpu = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
        sinkhorn_times.append(timer.seconds if timer else 0.0)
    prefixes = args.images if case.method == "cocoop" else 1
    encoded, reference = model_token_counts(model, prefixes)
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
        sinkhorn_s=statistics.median(sinkhorn_times),
        sinkhorn_iterations=timer.iterations if timer else 0,
        cpu_seconds=cpu_times,
        median_cpu_s=statistics.median(cpu_times),
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
    print(
        f" {measurement.median_s:8.3f} s ({measurement.median_cpu_s:8.3f} s CPU)  peak +{measurement.peak_memory_mb:8.1f} MB"
    )
    return measurement


def flops_per_token(layers: int = 12, width: int = 512) -> float:
    """Forward FLOPs per text token of the ViT-B/16 text tower (weights only)."""
    return 2 * layers * 12 * width * width


def _ideal(row: dict) -> str:
    """The token-count bound on the speed-up (inference rows encode no text: none)."""
    return "—" if row["mode"] == "infer" else f"{row['ideal_speedup']:.1f}x"


def _range(row: dict, key: str) -> str:
    """` (min-max)` of a row's per-round values (rows measured before rounds: nothing)."""
    values = row.get(key)
    return f" ({min(values):.1f}-{max(values):.1f}, n={len(values)})" if values and len(values) > 1 else ""


def _cpu_speedup(row: dict) -> str:
    values = row.get("cpu_speedups")
    if not values:
        return "—"
    return f"{statistics.median(values):.1f}x{_range(row, 'cpu_speedups')}"


def _when(row: dict) -> str:
    """The row's date, and whether it was measured in interleaved rounds or in one earlier run."""
    when = row.get("measured") or "earlier"
    return when if row.get("speedups") else f"{when}, one run (not interleaved)"


def _sinkhorn_share(measurement: dict) -> str:
    if not measurement.get("sinkhorn_iterations"):
        return "—"
    share = 100 * measurement["sinkhorn_s"] / measurement["median_s"]
    return f"{share:.0f}% ({measurement['sinkhorn_iterations']} it.)"


def report(rows: list[dict], args) -> str:
    lines = [
        f"Device: {args.device_name}; dtype {args.dtype}; torch {torch.__version__}; "
        f"threads {args.threads or torch.get_num_threads()}; tokenizer {args.tokenizer}.",
        "",
        "| case | K | B | reference s | fast s | speed-up (same inputs) | CPU-time speed-up | ideal (tokens) | "
        "fast at full size s | speed-up at full size | peak MB ref / fast | Sinkhorn share ref / fast | measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        full = row["full_fast"]
        extrapolated = "" if row["reference_full_size"] else " (ref. extrapolated)"
        lines.append(
            f"| {row['case']} | {row['reference']['classes']} | {row['reference']['images']} | "
            f"{row['reference']['median_s']:.2f} | {row['fast']['median_s']:.3f} | "
            f"**{row['speedup']:.1f}x**{_range(row, 'speedups')} | {_cpu_speedup(row)} | {_ideal(row)} | "
            f"{full['median_s']:.3f} (K={full['classes']}, B={full['images']}) | "
            f"{row['speedup_full']:.1f}x{extrapolated} | "
            f"{row['reference']['peak_memory_mb']:.0f} / {row['fast']['peak_memory_mb']:.0f} | "
            f"{_sinkhorn_share(row['reference'])} / {_sinkhorn_share(full)} | {_when(row)} |"
        )
    return "\n".join(lines)


def _earlier_rows(output: Path, measured: list[str]) -> list[dict]:
    """Rows of the results file for cases not measured in this run (kept, so one table holds all)."""
    if not output.is_file():
        return []
    return [row for row in json.loads(output.read_text())["rows"] if row["case"] not in measured]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the fast path")
    parser.add_argument("--reference-reps", type=int, default=1)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (reference, fast / fast, reference, ...)"
    )
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

    args.device_name = device_name(args.device)
    print(f"Benchmarking on {args.device_name}, dtype {args.dtype}")
    rows = []
    for case in args.cases:
        spec = CASES[case]
        images, mode = spec.images, spec.mode
        reference_classes, reference_images = spec.reference_size
        classes = len(class_names(spec.source)[0])
        if args.full_reference:
            reference_classes, reference_images = classes, images
        rounds = []
        for index in range(args.rounds):  # interleaved: neither path always runs first or on a quiet machine
            pair = {}
            for path in ("reference", "fast") if index % 2 == 0 else ("fast", "reference"):
                reps = args.reference_reps if path == "reference" else args.reps
                pair[path] = spawn(args, case, path, reference_classes, reference_images, reps)
            rounds.append(pair)
        speedups = [pair["reference"].median_s / pair["fast"].median_s for pair in rounds]
        cpu_speedups = [pair["reference"].median_cpu_s / pair["fast"].median_cpu_s for pair in rounds]
        # the round with the median speed-up stands for the case in the table's other columns
        middle = sorted(range(len(rounds)), key=lambda i: speedups[i])[len(rounds) // 2]
        reference, fast = rounds[middle]["reference"], rounds[middle]["fast"]
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
                "speedup": statistics.median(speedups),
                "speedups": speedups,
                "cpu_speedups": cpu_speedups,
                "rounds": [{path: asdict(m) for path, m in pair.items()} for pair in rounds],
                "speedup_full": reference.median_s * scale / full.median_s,
                "ideal_speedup": fast.reference_tokens / fast.encoded_tokens,
                "fast_lower_bound_gflop": full.encoded_tokens * flops_per_token() * passes / 1e9,
                "reference_gflop": full.reference_tokens * flops_per_token() * passes / 1e9,
                "fast_achieved_tflops": full.encoded_tokens
                * flops_per_token()
                * passes
                / full.median_s
                / 1e12,
                "measured": time.strftime("%Y-%m-%d"),
            }
        )
    output = Path(args.output or f"bench/results/text_engine_{args.device}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(
        _earlier_rows(output, args.cases) + rows,
        key=lambda row: list(CASES).index(row["case"]) if row["case"] in CASES else len(CASES),
    )
    table = report(rows, args)
    print("\n" + table)
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
