"""The linear probe's solver="sklearn" reproduces CoOp's `lpclip/linear_probe.py` exactly.

The oracle is lpclip's loop written out below with scikit-learn (its sweep, its binary search with
its log10 round trips, `LogisticRegression(solver="lbfgs", max_iter=1000, C=c)`): on small separable
few-shot features the probe must choose the same C, try the same Cs, and predict the same classes.
"""

import math
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel

from hf_prompt_clip import LinearProbeConfig, LinearProbeModel
from hf_prompt_clip.modeling.fitting import FitData
from hf_prompt_clip.testing import PATTERN_CLASSES, tiny_clip

NAMES = list(PATTERN_CLASSES)


def lpclip(train, val, steps=8):
    """CoOp's lpclip search for one draw, as written there: returns (C, classifier, Cs fitted in order)."""
    (train_x, train_y), (val_x, val_y) = train, val
    fitted = []

    def fit(c):
        fitted.append(float(c))
        return LogisticRegression(solver="lbfgs", max_iter=1000, C=c).fit(train_x, train_y)

    search_list = [1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6]
    acc_list = []
    for c_weight in search_list:
        pred = fit(c_weight).predict(val_x)
        acc_list.append(sum(pred == val_y) / len(val_y))
    c_peak = search_list[np.argmax(acc_list)]
    c_left, c_right = 1e-1 * c_peak, 1e1 * c_peak
    for _ in range(steps):
        clf_left = fit(c_left)
        acc_left = sum(clf_left.predict(val_x) == val_y) / len(val_y)
        clf_right = fit(c_right)
        acc_right = sum(clf_right.predict(val_x) == val_y) / len(val_y)
        if acc_left < acc_right:
            c_final, clf_final = c_right, clf_right
            c_left = 0.5 * (np.log10(c_right) + np.log10(c_left))
            c_right = np.log10(c_right)
        else:
            c_final, clf_final = c_left, clf_left
            c_right = 0.5 * (np.log10(c_right) + np.log10(c_left))
            c_left = np.log10(c_left)
        c_left, c_right = np.power(10, c_left), np.power(10, c_right)
    return c_final, clf_final, fitted


def draw(seed, noise, classes=4, dim=16, shots=3, val=4, test=25):
    """L2-normalised float32 features around random class means: 3 shots of 4 classes in 16 dimensions
    are linearly separable (the regime where L-BFGS stopping points matter)."""
    generator = torch.Generator().manual_seed(seed)
    means = F.normalize(torch.randn(classes, dim, generator=generator), dim=-1)

    def split(per_class):
        noisy = means.repeat_interleave(per_class, 0) + noise / math.sqrt(dim) * torch.randn(
            per_class * classes, dim, generator=generator
        )
        return F.normalize(noisy, dim=-1), torch.arange(classes).repeat_interleave(per_class)

    return {"train": split(shots), "validation": split(val), "test": split(test)}


@dataclass
class GivenFeatures(FitData):
    """FitData whose image features are given (the probe reads features through `image_features`)."""

    given: dict = field(default_factory=dict)

    def image_features(self, model, split, views=None):
        return self.given[split]


@pytest.fixture(scope="module")
def parts():
    return tiny_clip(seed=0)  # projection_dim 16


def make_probe(parts, names=NAMES, **options):
    clip, tokenizer, processor = parts
    # lpclip feeds its features as they are: the draws are normalised already, so no second normalisation
    config = LinearProbeConfig(
        clip_config=clip.config.to_dict(), class_names=names, normalize_features=False, **options
    )
    return LinearProbeModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def as_numpy(split):
    """Features as lpclip holds them: float64 (its feature extractor saves `feature.tolist()`)."""
    features, labels = split
    return features.double().numpy(), labels.numpy()


# (seed, noise): the draws choose C on the grid's refinement (3162.3, 10, 0.56) and at one of lpclip's
# log10 round trips (9.999999999999999e-06 for 1e-5); on the first two the torch solver chooses 1e5
@pytest.mark.parametrize("seed, noise", [(0, 1.0), (5, 1.0), (0, 1.5), (4, 2.0)])
def test_the_sklearn_solver_chooses_lpclips_c_and_predicts_as_lpclip(parts, seed, noise):
    splits = draw(seed, noise)
    c_final, clf_final, fitted = lpclip(as_numpy(splits["train"]), as_numpy(splits["validation"]))
    model = make_probe(parts, solver="sklearn")
    record = model.fit(GivenFeatures(train=None, given=splits))
    assert model.config.selected_C == c_final  # to the bit
    assert [c for c, _ in record["searched"]] == list(dict.fromkeys(fitted))  # the same Cs, in order
    val_x, val_y = as_numpy(splits["validation"])
    assert model.config.validation_accuracy == 100.0 * int((clf_final.predict(val_x) == val_y).sum()) / len(
        val_y
    )
    # the head is lpclip's classifier: its coefficients, and its predictions on the test features
    assert torch.equal(model.head.weight, torch.from_numpy(clf_final.coef_).float())
    assert torch.equal(model.head.bias, torch.from_numpy(clf_final.intercept_).float())
    test_x, _ = splits["test"]
    with torch.no_grad():
        predicted = model.logits_from_image_features(test_x).argmax(-1).numpy()
    np.testing.assert_array_equal(predicted, clf_final.predict(test_x.double().numpy()))


def test_two_classes_give_scikit_learns_binary_classifier_as_a_two_row_head(parts):
    splits = draw(1, 1.5, classes=2)
    c_final, clf_final, _ = lpclip(as_numpy(splits["train"]), as_numpy(splits["validation"]))
    model = make_probe(parts, names=NAMES[:2], solver="sklearn")
    model.fit(GivenFeatures(train=None, given=splits))
    assert model.config.selected_C == c_final and model.head.weight.shape == (2, 16)
    test_x, _ = splits["test"]
    with torch.no_grad():
        probabilities = model.logits_from_image_features(test_x).softmax(-1).double().numpy()
    np.testing.assert_allclose(probabilities, clf_final.predict_proba(test_x.double().numpy()), atol=1e-6)
    np.testing.assert_array_equal(probabilities.argmax(-1), clf_final.predict(test_x.double().numpy()))


def test_a_given_c_is_one_scikit_learn_fit_and_the_adapter_loads_unchanged(tiny_clip_folder, tmp_path):
    splits = draw(2, 1.0)
    model = LinearProbeModel.from_clip(
        tiny_clip_folder, NAMES, solver="sklearn", C=100.0, normalize_features=False
    )
    record = model.fit(GivenFeatures(train=None, given=splits))
    reference = LogisticRegression(solver="lbfgs", max_iter=1000, C=100.0).fit(*as_numpy(splits["train"]))
    assert record["solver"] == "sklearn" and model.config.selected_C == 100.0
    assert torch.equal(model.head.weight, torch.from_numpy(reference.coef_).float())
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config.solver == "sklearn"
    test_x, _ = splits["test"]
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.logits_from_image_features(test_x),
            model.logits_from_image_features(test_x),
            atol=0,
            rtol=0,
        )


def test_without_scikit_learn_the_fit_says_how_to_install_it_and_changes_nothing(parts, monkeypatch):
    model = make_probe(parts, solver="sklearn")
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)  # `import` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "hf-prompt-clip\[sklearn\]".*solver=.torch.'):
        model.fit(GivenFeatures(train=None, given=draw(0, 1.0)))
    assert not model.head.weight.any() and model.config.selected_C is None


def test_the_solver_is_checked_and_refused_with_a_zero_shot_head(parts):
    with pytest.raises(ValueError, match=r"solver must be one of \('torch', 'sklearn'\), got 'lbfgs'"):
        make_probe(parts, solver="lbfgs")
    with pytest.raises(ValueError, match=r"zero_shot_head=True .* use solver='torch'"):
        make_probe(parts, solver="sklearn", zero_shot_head=True)
    assert make_probe(parts).config.solver == "torch"  # the default


def test_every_class_must_have_training_examples_for_scikit_learn(parts):
    splits = draw(0, 1.0)
    features, labels = splits["train"]
    keep = labels != 3
    splits["train"] = (features[keep], labels[keep])
    with pytest.raises(ValueError, match=r"every class 0\.\.3, got classes \[0, 1, 2\]"):
        make_probe(parts, solver="sklearn", C=1.0).fit(GivenFeatures(train=None, given=splits))
