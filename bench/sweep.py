"""Benchmark: a whole sweep, as a user runs it: `--all-methods`, 3 seeds, base-to-new evaluation.

Runs `hf_prompt_clip.cli.main(["train", "--all-methods", "--seed", "1", "2", "3", ...])` on the package's
synthetic world with its shipped tiny CLIP (the README's demo, offline), once with the exact fast text
engine (the default) and once with the straightforward path (`--option fast=false`), each in a fresh
subprocess, interleaved over `--rounds`. Beside the wall and CPU time of the whole sweep it reports where
the time went, per phase (training, evaluation) and part, measured with `bench/whole_step.py`'s
wrappers: the image tower, the text encoder, Sinkhorn, backward, the optimiser step and data loading
(the DataLoader handing out batches: decoding and transforming images), the rest in "other".

Beside each phase stands its bound, the unavoidable work as `bench/whole_step.py` defines it: the image
tower's forward (the fast run's) plus the straightforward path's text work (its text forward, and in
training its backward) scaled to the token bound. The token bound is counted at every text-encoder call
of the fast run (`TokenCounter`): the positions that must be encoded at the least (a shared prefix once
per context, every prompt up to its EOS, no padding) against the positions the straightforward path
encodes for the same prompts (all 77 per prompt); the reference run's own count of those positions must
agree. As in the whole-step rows, the reference's backward also holds work that is not text (adapters,
PLOT++'s visual prompts, MP-FGVC's image layers), so the bound overstates the text side there.

    python bench/sweep.py                       # the demo's sweep, base-to-new, seeds 1 2 3
    python bench/sweep.py --rounds 2 --train-args "--epochs 2"
    python bench/sweep.py --methods coop cocoop --train-args "--epochs 1"   # a quick check
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_parser, device_name, write_results
from whole_step import PartTimer, replace_in_package

PARTS = ("image", "text", "sinkhorn", "backward", "optimizer", "data", "other")
PHASES = ("training", "evaluation")


class TokenCounter:
    """Text positions per phase at every text-encoder call: `bound` (what the fast engine must encode at
    the least: a shared prefix once per context, each prompt up to its EOS) and `reference` (what the
    straightforward path encodes for the same prompts: every position of every prompt).

    The fast engine's entry points (`encode_truncated`, `encode_with_shared_prefix`) give both counts;
    the straightforward path (`encode_text_embeddings`) gives its own `reference` count, which must equal
    the fast run's for the same sweep.
    """

    FUNCTIONS = ("encode_truncated", "encode_with_shared_prefix", "encode_text_embeddings")

    def __init__(self, timer: SweepTimer):
        self.timer = timer
        self.counts = {phase: {"bound": 0, "reference": 0} for phase in (*PHASES, "other")}

    @staticmethod
    def _ints(values, host=None) -> list[int]:
        return list(host) if host is not None else [int(v) for v in values.reshape(-1).tolist()]

    def positions(self, name: str, clip, *args, **kwargs) -> tuple[int | None, int]:
        """(bound positions or None, reference positions) of one call of the function `name`."""
        length = clip.config.text_config.max_position_embeddings
        if name == "encode_text_embeddings":  # (clip, token_embeds (N, L, D), eos_positions)
            embeds = args[0]
            return None, embeds.shape[0] * embeds.shape[1]
        if name == "encode_truncated":  # (clip, token_embeds (N, L, D), eos_positions, chunk, host_eos)
            eos = self._ints(args[1], kwargs.get("host_eos", args[3] if len(args) > 3 else None))
            return sum(e + 1 for e in eos), len(eos) * length
        # encode_with_shared_prefix: (clip, prefix (B, P, D), suffixes, suffix_eos (K,), chunk, host_eos)
        prefix = args[0]
        eos = self._ints(args[2], kwargs.get("host_eos", args[4] if len(args) > 4 else None))
        batch, shared = prefix.shape[:2]
        return batch * (shared + sum(e + 1 for e in eos)), batch * len(eos) * length

    def wrap(self, name: str, function):
        @functools.wraps(function)
        def counted(clip, *args, **kwargs):
            bound, reference = self.positions(name, clip, *args, **kwargs)
            counts = self.counts[self.timer.phase]
            counts["reference"] += reference
            if bound is not None:
                counts["bound"] += bound
            return function(clip, *args, **kwargs)

        return counted

    def install(self) -> None:
        """Replace the counted functions in every package module that holds them (before the timer's
        wrappers, which then time the counting wrappers: counting costs no text time of note)."""
        import hf_prompt_clip.modeling.text as text
        import hf_prompt_clip.modeling.text_engine as text_engine

        originals = {}
        for module in (text, text_engine):
            for name in self.FUNCTIONS:
                if hasattr(module, name) and getattr(module, name).__module__ == module.__name__:
                    value = getattr(module, name)
                    originals[id(value)] = (value, self.wrap(name, value))
        replace_in_package(originals)


class SweepTimer(PartTimer):
    """`PartTimer` per phase: parts are added to the phase that is running (training or evaluation)."""

    def __init__(self, device: str):
        super().__init__(device)
        self.phase = "other"
        self.by_phase = {phase: dict.fromkeys(PARTS, 0.0) for phase in (*PHASES, "other")}
        self.phase_seconds = dict.fromkeys((*PHASES, "other"), 0.0)

    def wrap(self, part: str, function):
        inner = super().wrap(part, function)

        def timed(*args, **kwargs):
            before = self.seconds.get(part, 0.0)
            try:
                return inner(*args, **kwargs)
            finally:
                self.by_phase[self.phase][part] += self.seconds.get(part, 0.0) - before

        return timed

    def wrap_phase(self, phase: str, function):
        def timed(*args, **kwargs):
            outer, self.phase = self.phase, phase
            start = self.clock()
            try:
                return function(*args, **kwargs)
            finally:
                self.phase_seconds[phase] += self.clock() - start
                self.phase = outer

        return timed


def run_one(args) -> dict:
    import accelerate.optimizer
    import torch.utils.data.dataloader as dataloader

    import hf_prompt_clip.runner as runner
    import hf_prompt_clip.train.trainer as trainer
    from hf_prompt_clip.cli import main

    timer = SweepTimer("cpu")
    timer.seconds = dict.fromkeys(PARTS, 0.0)
    tokens = TokenCounter(timer)
    tokens.install()
    timer.install(_NoClip())
    torch.Tensor.backward = timer.wrap("backward", torch.Tensor.backward)
    accelerate.optimizer.AcceleratedOptimizer.step = timer.wrap(
        "optimizer", accelerate.optimizer.AcceleratedOptimizer.step
    )
    dataloader._BaseDataLoaderIter.__next__ = timer.wrap("data", dataloader._BaseDataLoaderIter.__next__)
    trainer.PromptTrainer.train = timer.wrap_phase("training", trainer.PromptTrainer.train)
    runner.evaluate_protocol = timer.wrap_phase("evaluation", runner.evaluate_protocol)

    with tempfile.TemporaryDirectory() as output:
        methods = ["--method", *args.methods] if args.methods else ["--all-methods"]
        command = ["train", *methods, "--seed", "1", "2", "3", "--output-dir", output, *args.extra]
        if args.path == "reference":
            command += ["--option", "fast=false"]
        wall, cpu = time.perf_counter(), time.process_time()
        main(command)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        results = json.loads((Path(output) / "results.json").read_text())
    for phase in PHASES:
        timer.by_phase[phase]["other"] = max(
            timer.phase_seconds[phase] - sum(v for k, v in timer.by_phase[phase].items() if k != "other"), 0.0
        )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_s": wall,
        "cpu_s": cpu + children.ru_utime + children.ru_stime,
        "phases": timer.phase_seconds,
        "parts": timer.by_phase,
        "tokens": tokens.counts,
        "accuracies": {f"{r['method']}/{r['dataset']}": r.get("metrics") for r in results},
    }


class _NoClip:
    """`PartTimer.install` also wraps a CLIP's `get_image_features`; the sweep builds its own models."""

    def get_image_features(self, *args, **kwargs):  # pragma: no cover - never called
        raise NotImplementedError


def spawn(args, path: str) -> dict:
    command = [sys.executable, __file__, "--run-one", "--path", path, "--train-args", args.train_args]
    command += ["--methods", *args.methods] if args.methods else []
    print(f"  sweep {path:9s} ...", end="", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"sweep/{path} failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f" {measured['wall_s']:7.1f} s wall, {measured['cpu_s']:7.1f} s CPU")
    return measured


def cells(row: dict) -> list[str]:
    if row["path"] == "bound":
        bound = row["bound"]
        return [
            "bound",
            "",
            "",
            *(f"{bound[phase]['seconds']:.1f}" for phase in PHASES),
            *(
                f"image {bound[phase]['image_s']:.1f} + text {bound[phase]['text_s']:.1f} "
                f"(token bound 1/{bound[phase]['token_ratio']:.1f})"
                for phase in PHASES
            ),
        ]
    measured = row["measured"]
    parts = measured["parts"]
    return [
        row["path"],
        f"{measured['wall_s']:.1f}",
        f"{measured['cpu_s']:.1f}",
        *(f"{measured['phases'][phase]:.1f}" for phase in PHASES),
        *(" / ".join(f"{parts[phase][part]:.1f}" for part in PARTS) for phase in PHASES),
    ]


def sweep_bound(rows: list[dict]) -> dict:
    """Per phase: the fast run's image tower + the reference's text work (text forward, and backward in
    training) scaled by the token bound (medians over the rounds); the token counts of the fast and the
    reference runs must agree on the positions the straightforward path encodes."""

    def median(path: str, phase: str, part: str) -> float:
        return statistics.median(r["measured"]["parts"][phase][part] for r in rows if r["path"] == path)

    fast_tokens = next(r for r in rows if r["path"] == "fast")["measured"]["tokens"]
    reference_tokens = next(r for r in rows if r["path"] == "reference")["measured"]["tokens"]
    bound = {}
    for phase in PHASES:
        fast, reference = fast_tokens[phase], reference_tokens[phase]
        if fast["reference"] != reference["reference"]:
            raise RuntimeError(
                f"{phase}: the fast run's prompts stand for {fast['reference']:,} positions of the "
                f"straightforward path, the reference run encoded {reference['reference']:,}; the two runs did "
                "not encode the same prompts, so the token bound cannot be applied to the reference's time."
            )
        ratio = fast["bound"] / fast["reference"] if fast["reference"] else 0.0
        text = median("reference", phase, "text") + (
            median("reference", phase, "backward") if phase == "training" else 0.0
        )
        image = median("fast", phase, "image")
        bound[phase] = {
            "seconds": image + text * ratio,
            "image_s": image,
            "text_s": text * ratio,
            "token_ratio": 1 / ratio if ratio else float("inf"),
            "bound_positions": fast["bound"],
            "reference_positions": fast["reference"],
        }
    return bound


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of fast and reference")
    parser.add_argument(
        "--train-args", default="", help='more arguments for `hf-prompt-clip train`, e.g. "--epochs 2"'
    )
    parser.add_argument(
        "--methods", nargs="+", default=None, help="these methods instead of --all-methods (a quick check)"
    )
    parser.add_argument("--run-one", action="store_true", help="(internal) one sweep in this process")
    parser.add_argument("--path", default="fast", help="(internal) fast or reference")
    args = parser.parse_args()
    args.extra = shlex.split(args.train_args)
    if args.run_one:
        print(json.dumps(run_one(args)))
        return
    rows = []
    for index in range(args.rounds):
        for path in ("fast", "reference") if index % 2 == 0 else ("reference", "fast"):
            rows.append({"round": index, "path": path, "measured": spawn(args, path)})
    same = all(
        row["measured"]["accuracies"] == rows[0]["measured"]["accuracies"] for row in rows
    )  # the fast engine is exact: the same accuracies
    bound = sweep_bound(rows)
    methods = f"--method {' '.join(args.methods)}" if args.methods else "--all-methods"
    fast_phases = {
        phase: statistics.median(r["measured"]["phases"][phase] for r in rows if r["path"] == "fast")
        for phase in PHASES
    }
    fast = [r["measured"]["wall_s"] for r in rows if r["path"] == "fast"]
    reference = [r["measured"]["wall_s"] for r in rows if r["path"] == "reference"]
    header = (
        f"A whole sweep: `hf-prompt-clip train {methods} --seed 1 2 3 {' '.join(args.extra)}` (synthetic "
        f"world, shipped tiny CLIP, base-to-new), fast text engine vs `--option fast=false`, each in a fresh "
        f"process, {args.rounds} interleaved round(s); {device_name('cpu')}, torch {torch.__version__}. "
        f"Phase and part times are process CPU seconds (parts: image / text / Sinkhorn / backward / optimizer / "
        f"data / other). Whole sweep: reference / fast = {statistics.median(reference) / statistics.median(fast):.2f}x "
        f"(wall); accuracies {'identical' if same else 'DIFFERENT'} between the runs. Bound (row `bound`) = the "
        f"fast run's image tower + the reference's text work (text forward, and backward in training) at the "
        f"token bound; the fast run is "
        + ", ".join(f"{fast_phases[p] / bound[p]['seconds']:.2f}x its bound in {p}" for p in PHASES)
        + f". Measured {time.strftime('%Y-%m-%d')}."
    )
    rows.append({"path": "bound", "bound": bound})
    columns = [
        "path", "wall s", "CPU s", "training s", "evaluation s",
        "training: parts s", "evaluation: parts s",
    ]  # fmt: skip
    name = "sweep_cpu" if not args.methods else "sweep_cpu_" + "_".join(args.methods)
    write_results(name, header, rows, columns, cells)


if __name__ == "__main__":
    main()
