"""Evaluation under several processes counts every test image once, streamed or map-style.

`gather_for_metrics` on streamed (`IterableDataset`) sets can return padding as predictions
(huggingface/accelerate#3013); ImageNet-V2/-Sketch/-A/-R are streamed, so two processes must give
exactly one process's predictions on a set whose size divides neither by the batch size nor by
processes x batch size.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import accelerate_launch, launch_environment
from datasets import Dataset

from hf_prompt_clip.synthetic.datasets import features, render_example

SCRIPT = Path(__file__).parent / "scripts" / "streamed_eval.py"
SIZE = 23  # batches of 4 on 2 processes: 8 + 8 + 7


def write_test_repositories(root: Path) -> list[int]:
    """Hub-like repositories of the same 23 `synthetic_shapes` test images in one parquet shard
    (`one-shard`, also read map-style) and in three (`three-shards`: 8 + 8 + 7, so a
    process reading whole shards would hold 16 or 7 images). Returns the labels in order."""
    labels = np.random.default_rng(0).permutation(80)[:SIZE].tolist()  # distinct, shuffled classes
    rows = Dataset.from_dict(
        {"image": [render_example("colour_shape", "test", label, 0) for label in labels], "label": labels},
        features=features("colour_shape"),
    )
    for name, parts in (("one-shard", 1), ("three-shards", 3)):
        (root / name / "data").mkdir(parents=True)
        for index, part in enumerate(np.array_split(np.arange(SIZE), parts)):
            path = root / name / "data" / f"test-{index:05d}-of-{parts:05d}.parquet"
            rows.select(part.tolist()).to_parquet(path)
    return labels


def run(command: list[str], tmp_path: Path, name: str) -> dict:
    output = tmp_path / f"{name}.json"
    done = subprocess.run(
        [*command, str(SCRIPT), str(tmp_path / "data"), str(output)],
        env=launch_environment(tmp_path / "hf-home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = "\n".join(line for line in done.stderr.splitlines() if "it/s" not in line)
    assert done.returncode == 0, errors[-4000:]
    return json.loads(output.read_text())


@pytest.mark.skipif(sys.platform != "linux", reason="gloo multi-process test")
def test_two_processes_predict_exactly_what_one_process_does_on_streamed_and_map_style_sets(tmp_path):
    labels = write_test_repositories(tmp_path / "data")
    one = run([sys.executable], tmp_path, "one")
    two = run(accelerate_launch(2), tmp_path, "two")
    assert (one["num_processes"], two["num_processes"]) == (1, 2)
    reference = one["results"]["default"]["one-shard-map"]
    assert reference["count"] == SIZE and reference["labels"] == labels  # every image once, in order
    assert 0 < reference["correct"] < SIZE  # right and wrong predictions: a shifted list would show
    assert reference["accuracy"] == 100.0 * reference["correct"] / SIZE
    sets = {"one-shard-map", "one-shard-stream", "three-shards-stream"}
    for results in (one, two):
        for setting in ("default", "no_dispatch", "uneven"):
            assert set(results["results"][setting]) == sets
            for name, result in results["results"][setting].items():
                # same images, same order, same predictions, so the same count, hits and accuracy
                assert result == {**reference, "evaluate_accuracy": result["evaluate_accuracy"]}, (
                    results["num_processes"], setting, name,
                )  # fmt: skip
                assert result["evaluate_accuracy"] == reference["accuracy"]
        # from the image-feature cache: one process's predictions; each process encoded its shard only
        cached = results["results"]["cached"]
        assert {key: cached[key] for key in ("count", "correct", "accuracy", "predicted", "labels")} == {
            key: reference[key] for key in ("count", "correct", "accuracy", "predicted", "labels")
        }
        assert cached["encoded_here"] == -(-SIZE // results["num_processes"])  # 23, or 12 of 23
        assert cached["encoded_again"] == 0
