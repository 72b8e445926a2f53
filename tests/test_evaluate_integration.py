"""Our adapters work with `evaluate.evaluator("image-classification")` through the pipeline."""

import datasets
import evaluate
import pytest
import torch
from conftest import PATTERN_NAMES, fit_to_patterns
from transformers import pipeline

from hf_prompt_clip import CoOpModel
from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform
from hf_prompt_clip.evaluate import predict
from hf_prompt_clip.evaluate.compat import enable_evaluate_evaluator
from hf_prompt_clip.testing import pattern_benchmark


class LocalAccuracy(evaluate.Metric):
    """Accuracy defined here: `evaluate.load("accuracy")` would fetch code from the Hub."""

    def _info(self):
        features = datasets.Features(
            {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
        )
        return evaluate.MetricInfo(
            description="accuracy", citation="", inputs_description="", features=features
        )

    def _compute(self, predictions, references):
        return {"accuracy": sum(p == r for p, r in zip(predictions, references)) / len(references)}


def test_evaluator_accuracy_equals_ours(tiny_clip_folder, tmp_path):
    enable_evaluate_evaluator()
    torch.manual_seed(0)
    model = CoOpModel.from_clip(tiny_clip_folder, PATTERN_NAMES, n_ctx=4, class_specific_context=True)
    fit_to_patterns(model)
    model.save_pretrained(tmp_path)
    data = pattern_benchmark(3, seed=1)
    classifier = pipeline("image-classification", model=str(tmp_path))
    result = evaluate.evaluator("image-classification").compute(
        model_or_pipeline=classifier,
        data=data,
        metric=LocalAccuracy(),
        input_column="image",
        label_column="label",
        label_mapping=model.config.label2id,
    )
    ours = predict(model, with_image_transform(data, eval_transform(model.image_processor)), collate_fn)
    assert result["accuracy"] * 100 == pytest.approx(ours.accuracy)
    assert ours.accuracy > 50
