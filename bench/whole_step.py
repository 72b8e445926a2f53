"""Benchmark: the whole training step of every method, fast text engine against the straightforward path.

A user waits for whole steps, not for the text side alone. For every registered method and each of its
gradient training stages, one step is what `PromptTrainer` runs: the model's forward on a batch of images
(the image tower included) with its loss, `backward`, and an SGD step over the stage's parameters. It is
measured with the exact fast text engine (`fast=True`, the default) and with the straightforward path
(`fast=False`: every prompt over all 77 positions with transformers' modules), on the same inputs:
CLIP ViT-B/16 dimensions with random weights (speed does not depend on the values), Flowers102 class names
tokenised with the real CLIP tokenizer.

Each measurement runs in a fresh subprocess (one warm-up step, then `--reps` steps; before them the memory
the allocator kept from the warm-up goes back to the system, `malloc_trim`, so the peak resident set shows
the steps' own peak). Fast and reference subprocesses are interleaved in rounds (A B, B A, A B, ...), and
medians and ranges over the rounds are reported, with process CPU time beside wall time. Each step is split
into parts, measured inside the step with wrappers that add no synchronisation on a CPU:

- image tower: the image encoder's forward (`modeling/vision.py`, `get_image_features`), in the step;
- text: the text encoder's forward (`modeling/text_engine.py`, `modeling/text.py`);
- Sinkhorn: the optimal-transport solves (`methods/plot/optimal_transport.py`; PLOT, PLOT++);
- backward, optimizer: `loss.backward()` and `optimizer.step()`;
- other: the rest of the forward (losses, adapters, similarity);
- data: decoding and transforming one batch of JPEG images with the training transform (once per run).

The bound is the unavoidable work: the image tower's forward plus the straightforward path's text work
(text forward + backward) scaled to the token bound (positions each prefix needs once plus every suffix
without padding, against the reference's 77 per prompt). For a stage whose backward crosses the image tower
(PLOT++'s visual prompts, MP-FGVC's fine-tuned layers) the reference's backward includes that, so the bound
is then an underestimate of the image side and an overestimate of the text side.

    python bench/whole_step.py --tokenizer ../shared/clip-tokenizer                # every method, CPU
    python bench/whole_step.py --methods coop cocoop --rounds 3 --classes 26
    python bench/whole_step.py --device cuda --dtype bfloat16 --classes 102
"""

from __future__ import annotations

import functools
import io
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    bench_parser,
    class_names,
    device_name,
    peak_memory,
    random_vit_b16,
    reset_peak_memory,
    token_counts,
    write_results,
)

PARTS = ("image", "text", "sinkhorn", "backward", "optimizer", "other")
#: images per step: the papers' batch sizes are 32 (CoOp) and 1 (CoCoOp); smaller here to fit a CPU
DEFAULT_IMAGES = {"cocoop": 2}
#: the modules whose functions are timed as each part (outermost call only)
PART_MODULES = {
    "image": ("hf_prompt_clip.modeling.vision",),
    "text": ("hf_prompt_clip.modeling.text_engine", "hf_prompt_clip.modeling.text"),
    "sinkhorn": ("hf_prompt_clip.methods.plot.optimal_transport",),
}
TEXT_SKIP = {"tokenize_texts", "fill_template", "prompt_layout", "embed_tokens", "assemble_prompt_embeddings"}


def replace_in_package(replacements: dict[int, tuple[object, object]]) -> None:
    """Wherever a loaded `hf_prompt_clip` module holds a replaced object (`{id(old): (old, new)}`), put `new`
    there instead (methods import the timed functions by name, so each importing module holds its own
    reference)."""
    for module in list(sys.modules.values()):
        if module is None or not getattr(module, "__name__", "").startswith("hf_prompt_clip"):
            continue
        for attribute, value in list(vars(module).items()):
            if id(value) in replacements and replacements[id(value)][0] is value:
                setattr(module, attribute, replacements[id(value)][1])


class PartTimer:
    """Accumulates the time spent in the outermost call of each part's functions."""

    def __init__(self, device: str):
        self.device = device
        # on a CPU the process's CPU time (other jobs on the cores do not inflate it); on a GPU wall time
        self.clock = time.perf_counter if device == "cuda" else time.process_time
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self._active: set[str] = set()

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def wrap(self, part: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            if self._active:  # inside another timed part (the text tower inside a vision helper: none)
                return function(*args, **kwargs)
            self._active.add(part)
            self._sync()
            start = self.clock()
            try:
                return function(*args, **kwargs)
            finally:
                self._sync()
                self.seconds[part] += self.clock() - start
                self._active.discard(part)

        return timed

    def install(self, clip) -> None:
        """Replace the part functions everywhere they were imported (methods import them by name), and
        CLIP's own `get_image_features` (the straightforward image path)."""
        originals = {}
        for part, modules in PART_MODULES.items():
            for name in modules:
                module = sys.modules[name]
                for attribute, value in vars(module).items():
                    if callable(value) and getattr(value, "__module__", None) == name and attribute[0] != "_":
                        if isinstance(value, type) or attribute in TEXT_SKIP:
                            continue
                        originals[id(value)] = (value, self.wrap(part, value))
        replace_in_package(originals)
        clip.get_image_features = self.wrap("image", clip.get_image_features)


def jpeg_batch(images: int, seed: int = 0) -> list:
    """`images` random 500 x 375 JPEG images (an ImageNet-like size), as decoded-on-demand PIL images."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    encoded = []
    for _ in range(images):
        pixels = (torch.rand(375, 500, 3, generator=generator) * 255).to(torch.uint8).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def data_seconds(processor, images: int, reps: int = 3) -> float:
    """Median time to decode and transform one batch of JPEG images with the training transform."""
    from PIL import Image

    from hf_prompt_clip.data.transforms import train_transform

    transform = train_transform(processor, (0.08, 1.0))
    encoded = jpeg_batch(images)
    times = []
    for _ in range(reps + 1):  # the first is a warm-up
        start = time.perf_counter()
        torch.stack([transform(Image.open(io.BytesIO(data)).convert("RGB")) for data in encoded])
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def build(args):
    from transformers import CLIPImageProcessor

    from hf_prompt_clip.core.registry import get_method
    from hf_prompt_clip.data import get_benchmark

    tokenizer, clip = random_vit_b16(args.tokenizer, args.device, getattr(torch, args.dtype))
    source = getattr(args, "source", "oxford_flowers")  # a registry class list (bench/common.py)
    labels, prompts = class_names(source)
    config_class, model_class = get_method(args.method)
    # what the runner gives a method trained on that benchmark (templates, PLOT++'s phrases, MP-FGVC's "flower")
    options = config_class().benchmark_defaults(get_benchmark(source))
    config = config_class(
        clip_config=clip.config.to_dict(),
        class_names=labels[: args.classes],
        prompt_names=prompts[: args.classes],
        fast=args.path == "fast",
        **options,
    )
    model = model_class(config, clip_model=clip, tokenizer=tokenizer).to(args.device)
    return model, clip, CLIPImageProcessor(crop_size=224, size=224)


def bound_tokens(model, images: int) -> tuple[int, int]:
    """(positions the fast engine must encode at the least, positions the reference encodes) per step."""
    layouts = []
    if hasattr(model, "_length_groups"):  # several context lengths: one layout each
        layouts = [(model.prompt_layout(length), len(sets)) for length, sets in model._length_groups()]
    elif getattr(model, "prompt_layout", None) is not None:
        layout = model.prompt_layout
        per_image = getattr(model, "meta_net", None) is not None  # one context per image
        layouts = [(layout, images if per_image else 1)]
    counts = [token_counts(layout, prefixes) for layout, prefixes in layouts]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def run_one(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    model, clip, _processor = build(args)
    stage = next(s for s in model.training_stages() if s.name == args.stage)
    names = model.set_training_stage(stage)
    model.train()
    parameters = [p for n, p in model.named_parameters() if n in set(names)]
    optimizer = torch.optim.SGD(parameters, lr=1e-3, momentum=0.9, weight_decay=5e-4)
    timer = PartTimer(args.device)
    timer.install(clip)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(args.images, 3, 224, 224, generator=generator).to(args.device, clip.dtype)
    labels = torch.arange(args.images, device=args.device) % len(model.class_names)
    autocast = torch.autocast(device_type=args.device, dtype=clip.dtype, enabled=clip.dtype != torch.float32)

    def step() -> dict:
        timer.seconds = dict.fromkeys(PARTS, 0.0)
        wall, cpu = time.perf_counter(), time.process_time()
        start = timer.clock()
        with autocast:
            loss = model(pixel_values=pixels, labels=labels).loss
        forward = timer.clock() - start
        start = timer.clock()
        loss.float().backward()
        timer._sync()
        timer.seconds["backward"] = timer.clock() - start
        start = timer.clock()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timer._sync()
        timer.seconds["optimizer"] = timer.clock() - start
        measured = {part: timer.seconds[part] for part in ("image", "text", "sinkhorn")}
        timer.seconds["other"] = max(forward - sum(measured.values()), 0.0)
        return {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
            **{f"{part}_s": timer.seconds[part] for part in PARTS},
        }

    step()  # warm-up: first-call costs, the class prompts' frozen parts
    baseline = reset_peak_memory(args.device)
    steps = [step() for _ in range(args.reps)]
    encoded, reference = bound_tokens(model, args.images)
    result = {key: statistics.median(s[key] for s in steps) for key in steps[0]}
    result.update(
        peak_mb=peak_memory(args.device) - baseline,
        encoded_tokens=encoded,
        reference_tokens=reference,
        trainable=sum(p.numel() for p in parameters),
    )
    return result


def spawn(args, method: str, stage: str, path: str, images: int) -> dict:
    command = [
        sys.executable, __file__, "--run-one", "--method", method, "--stage", stage, "--path", path,
        "--images", str(images), "--classes", str(args.classes), "--reps", str(args.reps),
        "--tokenizer", args.tokenizer, "--device", args.device, "--dtype", args.dtype,
        *(["--threads", str(args.threads)] if args.threads else []),
    ]  # fmt: skip
    print(f"  {method:13s} {stage:10s} {path:9s} B={images:<3d} ...", end="", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{method}/{stage}/{path} failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f" {measured['wall_s']:7.3f} s wall, {measured['cpu_s']:7.3f} s CPU, peak +{measured['peak_mb']:7.1f} MB"
    )
    return measured


def gradient_stages(method: str, args) -> list[str]:
    """The method's gradient training stages (fits and methods that learn nothing have no step)."""
    from hf_prompt_clip.core.registry import method_capabilities

    if not method_capabilities(method).learns_parameters:
        return []
    probe = argparse_namespace(method=method, path="fast", classes=2, tokenizer=args.tokenizer, device="cpu",
                               dtype="float32")  # fmt: skip
    model, _, _ = build(probe)
    return [stage.name for stage in model.training_stages() if stage.kind == "gradient"]


def argparse_namespace(**values):
    import argparse

    return argparse.Namespace(**values)


def spread(values: list[float]) -> str:
    """`median (min-max)`."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def summarise(method: str, stage: str, images: int, rounds: list[dict], data_s: float) -> dict:
    fast = [r["fast"] for r in rounds]
    reference = [r["reference"] for r in rounds]

    def median(rows, key):
        return statistics.median(row[key] for row in rows)

    encoded, total = fast[0]["encoded_tokens"], fast[0]["reference_tokens"]
    reference_text = median(reference, "text_s") + median(reference, "backward_s")
    bound = median(fast, "image_s") + (reference_text * encoded / total if total else 0.0)
    return {
        "method": method,
        "stage": stage,
        "images": images,
        "rounds": len(rounds),
        "fast": fast,
        "reference": reference,
        "speedup_wall": [r["reference"]["wall_s"] / r["fast"]["wall_s"] for r in rounds],
        "speedup_cpu": [r["reference"]["cpu_s"] / r["fast"]["cpu_s"] for r in rounds],
        "bound_s": bound,
        "data_s": data_s,
        "token_bound": total / encoded if encoded else None,
        "measured": time.strftime("%Y-%m-%d"),
    }


def cells(row: dict) -> list[str]:
    fast, reference = row["fast"], row["reference"]

    def parts(rows):
        return " / ".join(f"{statistics.median(r[f'{part}_s'] for r in rows):.2f}" for part in PARTS)

    return [
        f"{row['method']} ({row['stage']})",
        str(row["images"]),
        spread([r["wall_s"] for r in reference]),
        spread([r["wall_s"] for r in fast]),
        f"**{statistics.median(row['speedup_wall']):.1f}x** ({min(row['speedup_wall']):.1f}-"
        f"{max(row['speedup_wall']):.1f})",
        f"{statistics.median(row['speedup_cpu']):.1f}x",
        parts(reference),
        parts(fast),
        f"{row['bound_s']:.2f}",
        f"{row['data_s']:.2f}",
        f"{statistics.median(r['peak_mb'] for r in reference):.0f} / {statistics.median(r['peak_mb'] for r in fast):.0f}",
        f"{row['measured']}, threads {row['threads']}, {row['rounds']} rounds",
    ]


COLUMNS = [
    "method (stage)",
    "B",
    "reference step s",
    "fast step s",
    "speed-up (wall)",
    "speed-up (CPU)",
    "reference: image / text / Sinkhorn / backward / optimizer / other s",
    "fast: image / text / Sinkhorn / backward / optimizer / other s",
    "bound s",
    "data s",
    "peak MB ref / fast",
    "measured",
]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--methods", nargs="+", default=None, help="registered methods (default: all)")
    parser.add_argument("--classes", type=int, default=26, help="Flowers102 classes per step")
    parser.add_argument("--images", type=int, default=8, help="images per step (CoCoOp: 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of fast and reference")
    parser.add_argument("--reps", type=int, default=2, help="steps per measurement after one warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per measurement")
    parser.add_argument("--output", default=None, help="results name (default whole_step_<device>)")
    parser.add_argument("--run-one", action="store_true", help=argparse_suppress())
    parser.add_argument("--method", help=argparse_suppress())
    parser.add_argument("--stage", help=argparse_suppress())
    parser.add_argument("--path", help=argparse_suppress())
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(args)))
        return

    import hf_prompt_clip  # noqa: F401  (registers the methods)
    from hf_prompt_clip.core.registry import method_order

    methods = args.methods or list(method_order())
    print(f"Whole training steps on {device_name(args.device)}, dtype {args.dtype}, K={args.classes}")
    _model, _, processor = build(argparse_namespace(method=methods[0], path="fast", classes=2,
                                                   tokenizer=args.tokenizer, device="cpu", dtype="float32"))  # fmt: skip
    rows, skipped = [], []
    for method in methods:
        stages = gradient_stages(method, args)
        if not stages:
            skipped.append(method)
            continue
        images = DEFAULT_IMAGES.get(method, args.images)
        data_s = data_seconds(processor, images)
        for stage in stages:
            rounds = []
            for index in range(args.rounds):
                order = ("fast", "reference") if index % 2 == 0 else ("reference", "fast")
                rounds.append({path: spawn(args, method, stage, path, images) for path in order})
            rows.append({**summarise(method, stage, images, rounds, data_s), "threads": threads_used(args)})
            write(args, earlier_rows(args, methods) + rows, skipped)  # a crash later keeps what was measured


def earlier_rows(args, methods: list[str]) -> list[dict]:
    """Rows of the results file for methods not measured in this run (kept, so one table holds all)."""
    path = Path(__file__).resolve().parent / "results" / f"{args.output or f'whole_step_{args.device}'}.json"
    if not path.is_file():
        return []
    return [row for row in json.loads(path.read_text())["rows"] if row["method"] not in methods]


def write(args, rows: list[dict], skipped: list[str]) -> None:
    from hf_prompt_clip.core.registry import method_order

    order = list(method_order())
    rows = sorted(rows, key=lambda row: order.index(row["method"]) if row["method"] in order else len(order))
    header = (
        f"Whole training steps (forward with the image tower, loss, backward, SGD step), fast text engine vs "
        f"the straightforward path (`fast=False`), same inputs. {device_name(args.device)}, {args.dtype}, torch "
        f"{torch.__version__}; ViT-B/16 dimensions, random weights, {args.classes} Flowers102 classes, real CLIP "
        f"tokenizer; fresh subprocess per measurement (1 warm-up + {args.reps} steps, median), interleaved "
        f"rounds: median (min-max) of the rounds; each row says when it was measured, with how many torch threads "
        f"and rounds (rows of methods a run did not measure are kept from earlier runs). Parts (process CPU time on a CPU, wall time on a GPU) are medians of the rounds' medians; bound = image forward + the reference's text work "
        f"at the token bound; data = decoding + transforming one batch of 500x375 JPEGs (not in the step). "
        f"Methods without a gradient step (trained by a fit, or nothing to train): {', '.join(skipped) or 'none'}. "
        f"Measured {time.strftime('%Y-%m-%d')}."
    )
    write_results(args.output or f"whole_step_{args.device}", header, rows, COLUMNS, cells)


def threads_used(args) -> int:
    """The torch threads of each measurement (`--threads`, else torch's default on this machine)."""
    return args.threads or torch.get_num_threads()


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
