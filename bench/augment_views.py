"""Benchmark: gradient training with `--augment-views V` (V cached augmented views per image) beside the
default (a fresh augmentation every epoch), on the synthetic world with the shipped tiny CLIP.

For each method (default CoOp and CLIP-Adapter), `run_experiment` runs the few-shot protocol for E epochs,
alternately without and with `augment_views=V` (V < E), for `--rounds` rounds in one process (a fresh
feature cache each run, so the V views are encoded inside the timed training). It times the training call
(`PromptTrainer.train`: process CPU time and wall time; evaluation is the same for both and not timed),
counts the training images that go through the image tower, and reports the test accuracies beside: they
differ, because the augmentation changes (views repeat every V epochs).

    python bench/augment_views.py --threads 1 --epochs 10 --views 2 --shots 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, write_results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="synthetic_shapes_outline")
    parser.add_argument("--methods", nargs="+", default=["coop", "clip_adapter"])
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--views", type=int, default=2, help="V of --augment-views (V < epochs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved (default, augment-views) pairs")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.views >= args.epochs:
        parser.error(f"--views {args.views} must be below --epochs {args.epochs}: else both train the same")
    if args.threads:
        torch.set_num_threads(args.threads)
    import hf_prompt_clip.modeling.model as modeling
    import hf_prompt_clip.runner as runner
    from hf_prompt_clip.synthetic import TINY_CLIP_ID
    from hf_prompt_clip.train import PromptTrainer, TrainingConfig

    state = {"training": False, "cpu": 0.0, "wall": 0.0, "images": 0}
    train = PromptTrainer.train

    def timed_train(self):
        state["training"] = True
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return train(self)
        finally:
            state["cpu"] += time.process_time() - cpu
            state["wall"] += time.perf_counter() - wall
            state["training"] = False

    encode = modeling.encode_image_tokens

    def counting(model, pixel_values, *positional, **keywords):
        if state["training"]:
            state["images"] += len(pixel_values)
        return encode(model, pixel_values, *positional, **keywords)

    PromptTrainer.train = timed_train
    modeling.encode_image_tokens = counting
    variants = {"default": None, f"--augment-views {args.views}": args.views}
    measured = {(m, v): {"cpu": [], "wall": [], "accuracy": []} for m in args.methods for v in variants}
    images = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for method in args.methods:
                for variant, views in variants.items():
                    state.update(cpu=0.0, wall=0.0, images=0)
                    config = runner.ExperimentConfig(
                        method=method, base_model=TINY_CLIP_ID, dataset=args.dataset, shots=args.shots,
                        seeds=(1,), protocol="few_shot", output_dir=f"{folder}/{method}-{views}-{round_}",
                        augment_views=views,
                        training=TrainingConfig(
                            epochs=args.epochs, batch_size=args.batch_size, optimizer="sgd", learning_rate=0.002,
                        ),
                    )  # fmt: skip
                    results = runner.run_experiment(config, write_results=False)
                    entry = measured[(method, variant)]
                    entry["cpu"].append(state["cpu"])
                    entry["wall"].append(state["wall"])
                    entry["accuracy"].append(results["runs"][0]["metrics_full_precision"]["accuracy"])
                    images[(method, variant)] = state["images"]
    rows = []
    for (method, variant), entry in measured.items():
        default = measured[(method, "default")]
        rows.append(
            {
                "method": method,
                "variant": variant,
                "cpu_s": round(statistics.median(entry["cpu"]), 2),
                "cpu_range": [round(min(entry["cpu"]), 2), round(max(entry["cpu"]), 2)],
                "wall_s": round(statistics.median(entry["wall"]), 2),
                "speedup_cpu": round(statistics.median(default["cpu"]) / statistics.median(entry["cpu"]), 2),
                "training_images_encoded": images[(method, variant)],
                "accuracy": round(statistics.median(entry["accuracy"]), 2),
                "accuracies": sorted({round(a, 2) for a in entry["accuracy"]}),
            }
        )
    header = (
        f"Device: {device_name('cpu')}; torch {torch.__version__}; threads {torch.get_num_threads()}; shipped tiny "
        f"CLIP; {args.dataset} few-shot, {args.shots} shots, seed 1; {args.epochs} epochs, batch {args.batch_size}, "
        f"SGD lr 0.002 (reference schedule); default (a fresh augmentation every epoch) vs --augment-views "
        f"{args.views}; {args.rounds} interleaved rounds in one process, medians (range) of the process CPU time "
        "of PromptTrainer.train (the views are encoded inside it; a fresh feature cache per run); test accuracy "
        "(%) beside."
    )
    write_results(
        "augment_views_cpu",
        header,
        rows,
        [
            "method",
            "training",
            "process CPU s (range)",
            "wall s",
            "CPU time vs default",
            "training images encoded",
            "test accuracy %",
        ],
        lambda r: [
            r["method"],
            r["variant"],
            f"{r['cpu_s']} ({r['cpu_range'][0]}-{r['cpu_range'][1]})",
            f"{r['wall_s']}",
            f"{r['speedup_cpu']}x",
            f"{r['training_images_encoded']:,}",
            f"{r['accuracy']}",
        ],
    )


if __name__ == "__main__":
    main()
