"""Evaluation protocols of the papers: few-shot accuracy, base-to-new, cross-dataset, domain shift.

Predictions are gathered across processes with `accelerator.gather_for_metrics` (which drops
the samples a distributed sampler duplicates to even out the last batch), and metrics are
computed in torch, so numbers are the same on one CPU or many GPUs.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..core.modeling import PromptCLIPPreTrainedModel
from ..data.fewshot import select_classes
from ..data.registry import BenchmarkSpec


@dataclass
class Predictions:
    """Predicted and true labels of a test set (in dataset order)."""

    predicted: torch.Tensor
    labels: torch.Tensor

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy in percent, from the integer count of hits (float64: 89 of 200 is 44.5)."""
        return 100.0 * int((self.predicted == self.labels).sum()) / max(len(self.labels), 1)

    def per_class_accuracy(self, num_classes: int) -> list[float]:
        """Accuracy in percent of every class (NaN for a class without test images)."""
        result = []
        for k in range(num_classes):
            mask = self.labels == k
            result.append(
                100.0 * (self.predicted[mask] == k).float().mean().item() if mask.any() else float("nan")
            )
        return result


def harmonic_mean(base: float, new: float) -> float:
    """H = 2BN / (B + N), the base-to-new summary."""
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


@torch.no_grad()
def predict(
    model: PromptCLIPPreTrainedModel,
    dataset: Dataset,
    collate_fn: Callable,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
    description: str = "evaluating",
) -> Predictions:
    """Top-1 predictions of `model` on a dataset of `{"pixel_values", "labels"}` batches."""
    accelerator = accelerator or Accelerator()
    loader = accelerator.prepare_data_loader(
        DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    )
    model.eval()
    model.to(accelerator.device)
    predicted, labels = [], []
    for batch in tqdm(loader, desc=description, disable=not accelerator.is_local_main_process, leave=False):
        with accelerator.autocast():
            logits = model(pixel_values=batch["pixel_values"]).logits
        guess, truth = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"]))
        predicted.append(guess.cpu())
        labels.append(truth.cpu())
    return Predictions(torch.cat(predicted), torch.cat(labels))


def class_lists(dataset: Dataset, spec: BenchmarkSpec | None) -> tuple[list[str], list[str] | None]:
    """The dataset's label names and, when the benchmark has them, their prompt texts."""
    names = list(dataset.features["label"].names)
    prompts = spec.prompt_names_for(names) if spec is not None else None
    return names, (prompts if prompts != names else None)


def evaluate_accuracy(
    model: PromptCLIPPreTrainedModel,
    dataset: Dataset,
    collate_fn: Callable,
    spec: BenchmarkSpec | None = None,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
) -> float:
    """Accuracy (%) of `model` on `dataset`, classifying among the dataset's own classes."""
    names, prompts = class_lists(dataset, spec)
    with model.using_class_names(names, prompts):
        return predict(model, dataset, collate_fn, batch_size, accelerator).accuracy


def evaluate_base_to_new(
    model: PromptCLIPPreTrainedModel,
    test_dataset: Dataset,
    collate_fn: Callable,
    spec: BenchmarkSpec | None = None,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
) -> dict[str, float]:
    """CoCoOp's protocol on a test set with all classes: base = first ceil(K/2) classes.

    "base" is the accuracy on base-class images among the base classes, "new" on new-class
    images among the new classes only (a K_new-way problem), "hm" their harmonic mean.
    """
    base = evaluate_accuracy(
        model, select_classes(test_dataset, "base"), collate_fn, spec, batch_size, accelerator
    )
    new = evaluate_accuracy(
        model, select_classes(test_dataset, "new"), collate_fn, spec, batch_size, accelerator
    )
    return {"base": base, "new": new, "hm": harmonic_mean(base, new)}


def evaluate_targets(
    model: PromptCLIPPreTrainedModel,
    targets: dict[str, tuple[Dataset, BenchmarkSpec | None]],
    collate_fn: Callable,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
) -> dict[str, float]:
    """One adapter on several test sets (cross-dataset transfer, domain generalisation)."""
    return {
        name: evaluate_accuracy(model, dataset, collate_fn, spec, batch_size, accelerator)
        for name, (dataset, spec) in targets.items()
    }


def summarize_runs(runs: Sequence[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and (sample) standard deviation of each metric over runs `[{"seed", "metrics"}]`."""
    keys = runs[0]["metrics"].keys()
    mean = {k: statistics.fmean(run["metrics"][k] for run in runs) for k in keys}
    std = {k: statistics.stdev(run["metrics"][k] for run in runs) if len(runs) > 1 else 0.0 for k in keys}
    if "hm" in mean:  # H of the mean base and new accuracies, as the papers average it
        mean["hm"] = harmonic_mean(mean["base"], mean["new"])
    return mean, std
