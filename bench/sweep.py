"""Benchmark: a whole sweep, as a user runs it: `--all-methods`, 3 seeds, base-to-new evaluation.

Runs `hf_prompt_clip.cli.main(["train", "--all-methods", "--seed", "1", "2", "3", ...])` on the package's
synthetic world with its shipped tiny CLIP (the README's demo, offline), once with the exact fast text
engine (the default) and once with the straightforward path (`--option fast=false`), each in a fresh
subprocess, interleaved over `--rounds`. Beside the wall and CPU time of the whole sweep it reports where
the time went, per phase (training, evaluation) and part, measured with `bench/whole_step.py`'s
wrappers: the image tower, the text encoder, Sinkhorn, backward, the optimiser step and data loading
(the DataLoader handing out batches: decoding and transforming images), the rest in "other".

    python bench/sweep.py                       # the demo's sweep, base-to-new, seeds 1 2 3
    python bench/sweep.py --rounds 2 --train-args "--epochs 2"
"""

from __future__ import annotations

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
from whole_step import PartTimer

PARTS = ("image", "text", "sinkhorn", "backward", "optimizer", "data", "other")
PHASES = ("training", "evaluation")


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
    timer.install(_NoClip())
    torch.Tensor.backward = timer.wrap("backward", torch.Tensor.backward)
    accelerate.optimizer.AcceleratedOptimizer.step = timer.wrap(
        "optimizer", accelerate.optimizer.AcceleratedOptimizer.step
    )
    dataloader._BaseDataLoaderIter.__next__ = timer.wrap("data", dataloader._BaseDataLoaderIter.__next__)
    trainer.PromptTrainer.train = timer.wrap_phase("training", trainer.PromptTrainer.train)
    runner.evaluate_protocol = timer.wrap_phase("evaluation", runner.evaluate_protocol)

    with tempfile.TemporaryDirectory() as output:
        command = ["train", "--all-methods", "--seed", "1", "2", "3", "--output-dir", output, *args.extra]
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
        "accuracies": {f"{r['method']}/{r['dataset']}": r.get("metrics") for r in results},
    }


class _NoClip:
    """`PartTimer.install` also wraps a CLIP's `get_image_features`; the sweep builds its own models."""

    def get_image_features(self, *args, **kwargs):  # pragma: no cover - never called
        raise NotImplementedError


def spawn(args, path: str) -> dict:
    command = [sys.executable, __file__, "--run-one", "--path", path, "--train-args", args.train_args]
    print(f"  sweep {path:9s} ...", end="", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"sweep/{path} failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f" {measured['wall_s']:7.1f} s wall, {measured['cpu_s']:7.1f} s CPU")
    return measured


def cells(row: dict) -> list[str]:
    measured = row["measured"]
    parts = measured["parts"]
    return [
        row["path"],
        f"{measured['wall_s']:.1f}",
        f"{measured['cpu_s']:.1f}",
        *(f"{measured['phases'][phase]:.1f}" for phase in PHASES),
        *(" / ".join(f"{parts[phase][part]:.1f}" for part in PARTS) for phase in PHASES),
    ]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of fast and reference")
    parser.add_argument(
        "--train-args", default="", help='more arguments for `hf-prompt-clip train`, e.g. "--epochs 2"'
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
    fast = [r["measured"]["wall_s"] for r in rows if r["path"] == "fast"]
    reference = [r["measured"]["wall_s"] for r in rows if r["path"] == "reference"]
    header = (
        f"A whole sweep: `hf-prompt-clip train --all-methods --seed 1 2 3 {' '.join(args.extra)}` (synthetic "
        f"world, shipped tiny CLIP, base-to-new), fast text engine vs `--option fast=false`, each in a fresh "
        f"process, {args.rounds} interleaved round(s); {device_name('cpu')}, torch {torch.__version__}. "
        f"Phase and part times are process CPU seconds (parts: image / text / Sinkhorn / backward / optimizer / "
        f"data / other). Whole sweep: reference / fast = {statistics.median(reference) / statistics.median(fast):.2f}x "
        f"(wall); accuracies {'identical' if same else 'DIFFERENT'} between the runs. Measured "
        f"{time.strftime('%Y-%m-%d')}."
    )
    columns = [
        "path", "wall s", "CPU s", "training s", "evaluation s",
        "training: parts s", "evaluation: parts s",
    ]  # fmt: skip
    write_results("sweep_cpu", header, rows, columns, cells)


if __name__ == "__main__":
    main()
