"""Benchmark: a methods x seeds base-to-new sweep's evaluation time, with and without the run's
image-feature cache (`hf_prompt_clip.caching.feature_cache`), on the synthetic world with the shipped tiny CLIP.

In one process the same sweep (`run_comparison`, e.g. zero-shot CLIP, CoOp, CLIP-Adapter x seeds 1 2 3,
base-to-new) runs twice, alternately uncached (every `evaluate_protocol` call without the cache: each
method and seed encodes the test set again) and cached (one cache for the run: each test image encoded
once), for `--repeats` pairs. It times the evaluation calls only (the training is the same in both) and
counts the test images that go through the image tower.

    python bench/eval_feature_cache.py --dataset synthetic_shapes --methods zeroshot coop clip_adapter
    python bench/eval_feature_cache.py --vit-b16 --dataset synthetic_colours --threads 1   # ViT-B/16 tower

With `--vit-b16` the base model is a CLIP at ViT-B/16's published dimensions with random weights (saved to a
temporary folder laid out like `openai/clip-vit-base-patch16`; 224-pixel inputs), so the image tower costs
what it costs with the real weights; the results then go to `eval_feature_cache_vit_b16_cpu`.
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
from common import device_name, save_random_vit_b16, write_results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="synthetic_shapes")
    parser.add_argument("--methods", nargs="+", default=["zeroshot", "coop", "clip_adapter"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="pairs of (uncached, cached) sweeps")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--vit-b16",
        action="store_true",
        help="a random CLIP at ViT-B/16's dimensions instead of the tiny CLIP",
    )
    parser.add_argument(
        "--tokenizer", default="../shared/clip-tokenizer", help="with --vit-b16: CLIP's tokenizer"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import hf_prompt_clip.modeling.model as modeling
    import hf_prompt_clip.runner as runner
    from hf_prompt_clip.data import get_benchmark, load_benchmark
    from hf_prompt_clip.synthetic import TINY_CLIP_ID
    from hf_prompt_clip.train import TrainingConfig

    evaluate = runner.evaluate_protocol
    state = {"cached": True, "seconds": 0.0, "images": 0}

    def timed_evaluation(*positional, feature_cache=None, **keywords):
        started = time.perf_counter()
        try:
            return evaluate(*positional, feature_cache=feature_cache if state["cached"] else None, **keywords)
        finally:
            state["seconds"] += time.perf_counter() - started

    encode = modeling.encode_image_tokens

    def counting(model, pixel_values, *positional, **keywords):
        if state.get("evaluating"):
            state["images"] += len(pixel_values)
        return encode(model, pixel_values, *positional, **keywords)

    def evaluation_flag(*positional, **keywords):
        state["evaluating"] = True
        try:
            return timed_evaluation(*positional, **keywords)
        finally:
            state["evaluating"] = False

    runner.evaluate_protocol = evaluation_flag
    modeling.encode_image_tokens = counting
    test_images = len(load_benchmark(get_benchmark(args.dataset), "test"))
    times = {"uncached": [], "cached": []}
    encoded, accuracies = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        base_model = (
            save_random_vit_b16(f"{folder}/vit-b16", args.tokenizer) if args.vit_b16 else TINY_CLIP_ID
        )
        for repeat in range(args.repeats):
            for variant in ("uncached", "cached"):
                state.update(cached=variant == "cached", seconds=0.0, images=0)
                config = runner.ExperimentConfig(
                    base_model=base_model, dataset=args.dataset, shots=args.shots, seeds=tuple(args.seeds),
                    protocol="base2new", output_dir=f"{folder}/{variant}{repeat}",
                    training=TrainingConfig(epochs=args.epochs, batch_size=32, optimizer="adamw", learning_rate=0.01),
                )  # fmt: skip
                results = runner.run_comparison(config, args.methods)
                times[variant].append(state["seconds"])
                encoded[variant] = state["images"]
                accuracies[variant] = [
                    run["metrics_full_precision"] for entry in results for run in entry["runs"]
                ]
    assert accuracies["cached"] == accuracies["uncached"], "cached and uncached accuracies differ"
    evaluations = len(args.methods) * len(args.seeds)
    rows = [
        {
            "variant": variant,
            "evaluation_s": round(statistics.median(values), 2),
            "range": [round(min(values), 2), round(max(values), 2)],
            "test_images_encoded": encoded[variant],
            "per_evaluation_s": round(statistics.median(values) / evaluations, 3),
        }
        for variant, values in times.items()
    ]
    speedup = statistics.median(times["uncached"]) / statistics.median(times["cached"])
    header = (
        f"Device: {device_name('cpu')}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"{'CLIP at ViT-B/16 dimensions, random weights, 224 px' if args.vit_b16 else 'shipped tiny CLIP'}; "
        f"{args.dataset} base-to-new ({test_images} test images: base and new halves); methods "
        f"{', '.join(args.methods)} x seeds {' '.join(map(str, args.seeds))} ({evaluations} evaluations); "
        f"{args.shots} shot(s), {args.epochs} epoch(s); {args.repeats} alternating (uncached, cached) pairs in one "
        f"process, medians (range) of the summed evaluate_protocol time. Cached is {speedup:.2f}x faster; "
        "accuracies equal."
    )
    write_results(
        "eval_feature_cache_vit_b16_cpu" if args.vit_b16 else "eval_feature_cache_cpu",
        header,
        rows,
        ["evaluation", "sweep evaluation s (range)", "per evaluation s", "test images encoded"],
        lambda r: [
            r["variant"],
            f"{r['evaluation_s']} ({r['range'][0]}-{r['range'][1]})",
            str(r["per_evaluation_s"]),
            f"{r['test_images_encoded']:,}",
        ],
    )


if __name__ == "__main__":
    main()
