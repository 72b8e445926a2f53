"""The transformers image pipelines run on saved adapter folders."""

import pytest
import torch
from conftest import PATTERN_NAMES, fit_to_patterns, pattern_images
from transformers import CLIPModel, pipeline

from hf_prompt_clip import CoOpModel, ZeroShotCLIPModel


@pytest.fixture
def certain_coop_folder(tiny_clip_folder, tmp_path):
    """A CoOp adapter fitted so that each generated pattern image is its own class, saved to disk."""
    torch.manual_seed(0)
    model = CoOpModel.from_clip(tiny_clip_folder, PATTERN_NAMES, n_ctx=4, class_specific_context=True)
    fit_to_patterns(model)
    model.save_pretrained(tmp_path)
    return tmp_path


def test_image_classification_pipeline_returns_the_right_label(certain_coop_folder):
    classifier = pipeline("image-classification", model=str(certain_coop_folder))
    for image, name in zip(pattern_images(), PATTERN_NAMES):
        top = classifier(image)[0]
        assert top["label"] == name
        assert top["score"] > 0.9


def test_zero_shot_pipeline_treats_candidate_labels_as_class_names(certain_coop_folder):
    classifier = pipeline("zero-shot-image-classification", model=str(certain_coop_folder))
    model = classifier.model
    for image, name in zip(pattern_images(), PATTERN_NAMES):
        result = classifier(image, candidate_labels=PATTERN_NAMES, hypothesis_template="{}")
        assert result[0]["label"] == name
        assert result[0]["score"] > 0.9
    # the model's own classes are restored after the call
    assert model.config.class_names == PATTERN_NAMES


def test_zero_shot_pipeline_scores_equal_set_class_names(tiny_clip_folder, tmp_path):
    """With a unified context, candidate labels in any order classify like set_class_names."""
    torch.manual_seed(0)
    model = CoOpModel.from_clip(tiny_clip_folder, PATTERN_NAMES, n_ctx=4)
    model.save_pretrained(tmp_path)
    classifier = pipeline("zero-shot-image-classification", model=str(tmp_path))
    labels = ["stripes", "red", "green ring"]
    image = pattern_images()[3]
    result = classifier(image, candidate_labels=labels, hypothesis_template="{}")
    model.set_class_names(labels)
    pixel_values = model.image_processor(image, return_tensors="pt").pixel_values
    with torch.no_grad():
        probs = model(pixel_values).logits.softmax(-1)[0]
    scores = {entry["label"]: entry["score"] for entry in result}
    for k, label in enumerate(labels):  # relative: the small probabilities must match too
        assert scores[label] == pytest.approx(probs[k].item(), rel=1e-3)


def test_zero_shot_model_in_the_pipeline_equals_plain_clip(tiny_clip_folder, tmp_path):
    ZeroShotCLIPModel.from_clip(tiny_clip_folder, ["cat", "dog"]).save_pretrained(tmp_path)
    classifier = pipeline("zero-shot-image-classification", model=str(tmp_path))
    ours = classifier(pattern_images()[0], candidate_labels=["red", "blue", "a stripe"])
    reference = pipeline(
        "zero-shot-image-classification",
        model=CLIPModel.from_pretrained(tiny_clip_folder),
        tokenizer=tiny_clip_folder,
        image_processor=tiny_clip_folder,
    )
    theirs = reference(pattern_images()[0], candidate_labels=["red", "blue", "a stripe"])
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    for a, b in zip(ours, theirs):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
