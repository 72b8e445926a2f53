"""The zero-shot image pipeline on this package's models: candidate labels it cannot use, refused clearly.

Room: `modeling/`.

transformers' `zero-shot-image-classification` pipeline tokenizes `candidate_labels` before any model
code runs: an empty list fails inside the tokenizer (`IndexError: list index out of range`), no labels
with `TypeError: 'NoneType' object is not iterable`, and a single string is classified letter by letter.
`register_zero_shot_pipeline` (run when the package is imported) puts `PromptCLIPZeroShotPipeline` in the
task's place: for this package's models it refuses those naming `candidate_labels` and the fix; for every
other model it is transformers' own class, unchanged.
"""

from __future__ import annotations

from typing import Any

from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.zero_shot_image_classification import ZeroShotImageClassificationPipeline

from .model import PromptCLIPPreTrainedModel

TASK = "zero-shot-image-classification"


def candidate_labels_problem(candidate_labels: Any) -> str | None:
    """Why the zero-shot pipeline cannot classify among `candidate_labels` (none, an empty list, a single
    string), with the fix; `None` when they are a non-empty list of texts.

    Example:
        >>> candidate_labels_problem(["cat", "dog"]) is None
        True
        >>> candidate_labels_problem([])
        'candidate_labels is empty: the zero-shot pipeline scores the image against the texts you give ...'
    """
    if candidate_labels is None:
        found = "no candidate_labels were given"
    elif isinstance(candidate_labels, str):
        found = f"candidate_labels is one string ({candidate_labels!r}), which would be read letter by letter"
    elif len(candidate_labels) == 0:
        found = "candidate_labels is empty"
    else:
        return None
    return (
        f"{found}: the zero-shot pipeline scores the image against the texts you give, so it needs a list of "
        "at least one (two or more to choose between), e.g. classifier(image, candidate_labels=['cat', 'dog'], "
        "hypothesis_template='{}'). For the adapter's own classes use the image-classification pipeline."
    )


class PromptCLIPZeroShotPipeline(ZeroShotImageClassificationPipeline):
    """transformers' zero-shot image pipeline, refusing unusable `candidate_labels` for this package's
    models (`candidate_labels_problem`) before the tokenizer fails on them; unchanged for other models."""

    def preprocess(self, image, candidate_labels=None, *args, **kwargs):
        if isinstance(self.model, PromptCLIPPreTrainedModel):
            problem = candidate_labels_problem(candidate_labels)
            if problem is not None:
                raise ValueError(problem)
        return super().preprocess(image, candidate_labels, *args, **kwargs)


def register_zero_shot_pipeline() -> None:
    """Make `pipeline("zero-shot-image-classification", ...)` build `PromptCLIPZeroShotPipeline`, unless
    something else already replaced transformers' own class there (it is then left alone)."""
    entry = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if entry is None:
        return
    impl = entry.get("impl")
    own = f"{ZeroShotImageClassificationPipeline.__module__}.{ZeroShotImageClassificationPipeline.__name__}"
    if impl is ZeroShotImageClassificationPipeline or impl == own:
        entry["impl"] = PromptCLIPZeroShotPipeline
