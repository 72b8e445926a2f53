"""Linear probe CLIP: scikit-learn's L-BFGS logistic regression, CoOp's C search, features encoded once."""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, pipeline

from hf_prompt_clip import LinearProbeConfig, LinearProbeModel, ZeroShotCLIPConfig, ZeroShotCLIPModel
from hf_prompt_clip.data import collate_fn, eval_transform, train_transform, with_image_transform
from hf_prompt_clip.methods.linear_probe.logistic import (
    REFERENCE_C_GRID,
    fit_logistic_regression,
    search_inverse_l2,
)
from hf_prompt_clip.modeling.fitting import FitData
from hf_prompt_clip.runner import ProtocolNotSupportedError, check_method_protocol
from hf_prompt_clip.synthetic import TINY_CLIP_ID, build_benchmark
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, pattern_image, tiny_clip
from hf_prompt_clip.train import PromptTrainer, TrainingConfig

NAMES = list(PATTERN_CLASSES)


def clusters(per_class=20, classes=4, dim=8, seed=0):
    """L2-normalised Gaussian clusters, overlapping enough that no C separates them perfectly."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=generator, dtype=torch.float64)
    x = means.repeat_interleave(per_class, 0) + 0.9 * torch.randn(
        per_class * classes, dim, generator=generator, dtype=torch.float64
    )
    return F.normalize(x, dim=-1), torch.arange(classes).repeat_interleave(per_class)


@pytest.mark.parametrize("C", [0.1, 1.0, 10.0])
def test_lbfgs_equals_scikit_learn_logistic_regression(C):
    x, y = clusters()
    weight, bias = fit_logistic_regression(x, y, 4, C, tolerance=1e-10, max_iter=5000)
    reference = LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=20000).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(weight.numpy(), reference.coef_, atol=1e-5, rtol=1e-5)
    probabilities = torch.softmax(x @ weight.T + bias, dim=-1).numpy()
    np.testing.assert_allclose(probabilities, reference.predict_proba(x.numpy()), atol=1e-6)
    # at both libraries' default stopping rule the predictions agree
    weight, bias = fit_logistic_regression(x, y, 4, C)
    default = LogisticRegression(C=C, solver="lbfgs", max_iter=1000).fit(x.numpy(), y.numpy())
    assert ((x @ weight.T + bias).argmax(-1).numpy() == default.predict(x.numpy())).mean() >= 0.98


def test_a_center_pulls_the_weights_towards_it():
    x, y = clusters()
    center = torch.randn(4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    weight, _ = fit_logistic_regression(x, y, 4, 1e-9, center=center, tolerance=1e-12)
    torch.testing.assert_close(weight, center, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="positive finite"):
        fit_logistic_regression(x, y, 4, 0.0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        fit_logistic_regression(x, y, 3, 1.0)


def reference_search(score, steps=8, grid=REFERENCE_C_GRID):
    """CoOp's `lpclip/linear_probe.py` loop, as written there (log10 round trips and all)."""
    accuracies = [score(c) for c in grid]
    c_peak = grid[int(np.argmax(accuracies))]
    c_left, c_right = 1e-1 * c_peak, 1e1 * c_peak
    c_final = c_peak
    for _ in range(steps):
        acc_left, acc_right = score(c_left), score(c_right)
        if acc_left < acc_right:
            c_final = c_right
            c_left = 0.5 * (np.log10(c_right) + np.log10(c_left))
            c_right = np.log10(c_right)
        else:
            c_final = c_left
            c_right = 0.5 * (np.log10(c_right) + np.log10(c_left))
            c_left = np.log10(c_left)
        c_left, c_right = np.power(10, c_left), np.power(10, c_right)
    return c_final


# seeds 33, 45, 58: lpclip's log10 round trips move a kept end by an ulp, and so the answer
@pytest.mark.parametrize("seed", [*range(6), 33, 45, 58])
def test_the_c_search_follows_coops_sweep_and_binary_search(seed):
    rng = random.Random(seed)
    peak, width = rng.uniform(-5, 5), rng.uniform(0.3, 3)

    def score(c):  # a bumpy validation accuracy: rounded, so ties happen
        return round(50 + 40 * math.exp(-((math.log10(c) - peak) ** 2) / width) + rng.choice([0, 0, 2.5]), 0)

    memo = {}

    def remembered(c):  # the same C scores the same (a fit is deterministic)
        key = round(math.log10(c), 9)
        return memo.setdefault(key, score(c))

    chosen, history = search_inverse_l2(remembered)
    assert chosen == reference_search(remembered)  # lpclip's C to the bit (its log10 round trips too)
    assert [c for c, _ in history[:7]] == list(REFERENCE_C_GRID)
    assert len({c for c, _ in history}) == len(history)  # each C scored once


def test_the_c_search_picks_the_best_validation_c():
    # the sweep alone takes the first best C of the grid; refinement converges on a unimodal peak
    scores = dict(zip(REFERENCE_C_GRID, [50, 60, 70, 70, 40, 30, 20]))
    assert search_inverse_l2(scores.__getitem__, steps=0) == (1e2, list(scores.items()))
    best, _ = search_inverse_l2(lambda c: -abs(math.log10(c) - 2.7), steps=12)
    assert math.isclose(math.log10(best), 2.7, abs_tol=0.01)


@pytest.fixture(scope="module")
def parts():
    return tiny_clip(seed=0)


def make_probe(parts, **options):
    clip, tokenizer, processor = parts
    config = LinearProbeConfig(clip_config=clip.config.to_dict(), class_names=NAMES, **options)
    return LinearProbeModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


@pytest.fixture(scope="module")
def splits(parts):
    plain = eval_transform(parts[2])
    return {
        "train": with_image_transform(pattern_benchmark(6, seed=0), plain),
        "validation": with_image_transform(pattern_benchmark(4, seed=1), plain),
        "train_views": with_image_transform(
            pattern_benchmark(6, seed=0), train_transform(parts[2], (0.5, 1.0))
        ),
    }


def fit_data(splits, **kwargs):
    return FitData(**splits, collate_fn=collate_fn, batch_size=8, **kwargs)


def test_the_probe_picks_the_grid_c_with_the_best_validation_accuracy():
    """On the shipped tiny CLIP and noisy synthetic shapes (validation accuracy peaks at one C of the grid),
    each C's validation accuracy is scikit-learn's, and the probe takes the best."""
    data = build_benchmark("shapes", per_class={"train": 6, "validation": 4}, variant="noisy")
    model = LinearProbeModel.from_clip(
        TINY_CLIP_ID, data["train"].features["label"].names, search_steps=0, tolerance=1e-10, max_iter=5000
    )
    plain = eval_transform(model.image_processor)
    splits = {
        split: with_image_transform(data[key], plain)
        for split, key in (("train", "train"), ("validation", "validation"))
    }
    record = model.fit(fit_data(splits))
    features = {}
    for split, examples in splits.items():
        batch = collate_fn(list(examples))
        with torch.no_grad():
            encoded = F.normalize(model.encode_images(batch["pixel_values"]).double(), dim=-1)
        features[split] = (encoded.numpy(), batch["labels"].numpy())
    accuracies = []
    for c in REFERENCE_C_GRID:
        reference = LogisticRegression(C=c, solver="lbfgs", tol=1e-12, max_iter=20000).fit(*features["train"])
        accuracies.append(
            100 * (reference.predict(features["validation"][0]) == features["validation"][1]).mean()
        )
    assert [accuracy for _, accuracy in record["searched"]] == pytest.approx(accuracies)
    assert accuracies.count(max(accuracies)) == 1  # one best C: the test tells right from wrong
    assert model.config.selected_C == REFERENCE_C_GRID[int(np.argmax(accuracies))]
    assert model.config.validation_accuracy == pytest.approx(max(accuracies))


def test_the_image_tower_runs_once_per_image_whatever_the_search(parts, splits, monkeypatch):
    model = make_probe(parts, search_steps=3)
    seen = []
    original = model.encode_images
    monkeypatch.setattr(model, "encode_images", lambda pixels: seen.append(len(pixels)) or original(pixels))
    record = model.fit(fit_data(splits))
    assert len(record["searched"]) >= 10  # many fits...
    assert sum(seen) == len(splits["train"]) + len(splits["validation"])  # ...one pass over the images


def test_a_zero_shot_head_with_a_tiny_c_keeps_zero_shot_clip(parts, splits):
    clip, tokenizer, processor = parts
    probe = make_probe(parts, zero_shot_head=True, C=1e-9, templates=["a photo of a {}."])
    record = probe.fit(fit_data(splits))
    assert record["C"] == 1e-9 and probe.config.validation_accuracy is None
    config = ZeroShotCLIPConfig(
        clip_config=clip.config.to_dict(), class_names=NAMES, templates=["a photo of a {}."]
    )
    zero_shot = ZeroShotCLIPModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)
    pixels = collate_fn(list(splits["validation"]))["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(
            probe(pixels).logits - probe.head.bias, zero_shot(pixels).logits, atol=1e-4, rtol=0
        )
    with pytest.raises(ValueError, match="feature_space='projection'"):
        make_probe(parts, zero_shot_head=True, feature_space="pooled")


def test_pooled_features_are_the_tower_output_before_the_projection(parts, splits):
    model = make_probe(parts, feature_space="pooled", C=1.0)
    model.fit(fit_data(splits))
    assert model.head.in_features == parts[0].config.vision_config.hidden_size
    pixels = collate_fn(list(splits["validation"]))["pixel_values"]
    with torch.no_grad():
        pooled = parts[0].vision_model(pixel_values=pixels).pooler_output
        torch.testing.assert_close(
            model(pixels).logits, model.head(F.normalize(pooled, dim=-1)), atol=1e-5, rtol=0
        )


def test_the_probe_saves_loads_and_serves_the_image_pipeline_only(tiny_clip_folder, splits, tmp_path):
    model = LinearProbeModel.from_clip(tiny_clip_folder, NAMES, C=10.0)
    model.fit(fit_data(splits))
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, LinearProbeModel) and loaded.config.selected_C == 10.0
    image = pattern_image("stripes")
    pixels = model.image_processor(image, return_tensors="pt").pixel_values
    with torch.no_grad():
        probs = model(pixels).logits.softmax(-1)[0]
        torch.testing.assert_close(loaded(pixels).logits.softmax(-1)[0], probs)
    scores = {
        r["label"]: r["score"] for r in pipeline("image-classification", model=str(tmp_path))(image, top_k=4)
    }
    assert [scores[name] for name in NAMES] == pytest.approx(probs.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="not free texts"):
        pipeline("zero-shot-image-classification", model=str(tmp_path))(image, candidate_labels=["a", "b"])
    assert not model.capabilities.classes_can_change
    with pytest.raises(ValueError, match="cannot classify a list of 2 classes"):
        model.set_class_names(["a", "b"])
    with pytest.raises(ProtocolNotSupportedError, match="few_shot"):
        check_method_protocol("linear_probe", {}, "base2new")
    assert LinearProbeConfig().capabilities.uses_validation
    assert not LinearProbeConfig(C=1.0).capabilities.uses_validation


def test_the_trainer_runs_the_fit_stage_checkpoints_it_and_resumes_without_fitting(
    parts, splits, tmp_path, monkeypatch
):
    def train(model, resume=None):
        config = TrainingConfig(output_dir=str(tmp_path), batch_size=8, resume_from_checkpoint=resume)
        trainer = PromptTrainer(
            model, splits["train_views"], config, collate_fn=collate_fn,
            train_eval_dataset=splits["train"], validation_dataset=splits["validation"],
        )  # fmt: skip
        trainer.train()
        return trainer

    model = make_probe(parts, search_steps=2)
    trainer = train(model)
    assert model.config.selected_C is not None and model.config.training_stage == "fit"
    [entry] = trainer.state.log
    assert (
        entry["fit"]["C"] == model.config.selected_C
        and entry["config"]["selected_C"] == model.config.selected_C
    )
    assert [p.name for p in trainer.list_checkpoints()] == ["checkpoint-0"]

    monkeypatch.setattr(
        LinearProbeModel, "fit", lambda self, data: pytest.fail("fitted again instead of resuming")
    )
    resumed = make_probe(parts, search_steps=2)
    train(resumed, resume="latest")
    assert torch.equal(resumed.head.weight, model.head.weight) and torch.equal(
        resumed.head.bias, model.head.bias
    )
    assert resumed.config.selected_C == model.config.selected_C
    assert resumed.config.validation_accuracy == model.config.validation_accuracy
