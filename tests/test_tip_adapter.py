"""Tip-Adapter and Tip-Adapter-F: the cache model, the alpha/beta search, what -F changes."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import AutoModel, pipeline

from hf_prompt_clip import (
    TipAdapterConfig,
    TipAdapterFConfig,
    TipAdapterFModel,
    TipAdapterModel,
    ZeroShotCLIPConfig,
    ZeroShotCLIPModel,
)
from hf_prompt_clip.data import (
    collate_fn,
    eval_transform,
    get_benchmark,
    train_transform,
    with_image_transform,
)
from hf_prompt_clip.methods.tip_adapter.cache_model import (
    cache_logits,
    search_alpha_beta,
    search_grid,
    tip_adapter_logits,
)
from hf_prompt_clip.modeling.fitting import FitData
from hf_prompt_clip.runner import ProtocolNotSupportedError, check_method_protocol
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, pattern_image, tiny_clip
from hf_prompt_clip.train.trainer import EpochSeededDataset

NAMES = list(PATTERN_CLASSES)
TEMPLATES = ["a photo of a {}.", "art of the {}."]


@pytest.fixture(scope="module")
def parts():
    return tiny_clip(seed=0)


def make(parts, model_class=TipAdapterModel, config_class=TipAdapterConfig, **options):
    clip, tokenizer, processor = parts
    config = config_class(
        clip_config=clip.config.to_dict(), class_names=NAMES, templates=TEMPLATES, **options
    )
    return model_class(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


@pytest.fixture(scope="module")
def splits(parts):
    processor = parts[2]
    return {
        "train": with_image_transform(pattern_benchmark(4, seed=0), eval_transform(processor)),
        "train_views": with_image_transform(
            pattern_benchmark(4, seed=0), train_transform(processor, (0.5, 1.0))
        ),
        "validation": with_image_transform(pattern_benchmark(3, seed=1), eval_transform(processor)),
    }


def fit_data(splits, **kwargs):
    return FitData(**splits, collate_fn=collate_fn, batch_size=8, seed=1, **kwargs)


def pixels(splits, split="validation"):
    return collate_fn(list(splits[split]))["pixel_values"]


def test_cache_logits_follow_the_formula():
    generator = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(5, 8, generator=generator), dim=-1)
    keys = F.normalize(torch.randn(6, 8, generator=generator), dim=-1)
    values = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float()
    zero_shot = torch.randn(5, 3, generator=generator)
    expected = zero_shot + 1.5 * torch.exp(-4.0 * (1 - features @ keys.T)) @ values
    torch.testing.assert_close(tip_adapter_logits(zero_shot, features, keys, values, 1.5, 4.0), expected)
    assert torch.equal(tip_adapter_logits(zero_shot, features, keys, values, 0.0, 4.0), zero_shot)
    torch.testing.assert_close(cache_logits(features, keys, values, 4.0), (expected - zero_shot) / 1.5)
    assert search_grid(7, 200)[:2] == [0.1, 0.1 + 6.9 / 200] and len(search_grid(7, 200)) == 200
    with pytest.raises(ValueError, match="at least one step"):
        search_grid(3, 0)


def test_the_search_takes_the_first_best_pair_as_the_authors_loop_does():
    generator = torch.Generator().manual_seed(3)
    features = F.normalize(torch.randn(30, 8, generator=generator), dim=-1)
    keys = F.normalize(torch.randn(12, 8, generator=generator), dim=-1)
    values = F.one_hot(torch.arange(12) % 4, 4).float()
    zero_shot = 2 * torch.randn(30, 4, generator=generator)
    labels = torch.randint(0, 4, (30,), generator=generator)
    betas, alphas = search_grid(7, 15), search_grid(3, 10)
    best, best_pair = 0.0, (0.0, 0.0)  # the authors' search_hp, literally
    for beta in betas:
        for alpha in alphas:
            logits = zero_shot + alpha * torch.exp(-(beta - beta * (features @ keys.T))) @ values
            accuracy = 100 * (logits.argmax(-1) == labels).float().mean().item()
            if accuracy > best:
                best, best_pair = accuracy, (beta, alpha)
    beta, alpha, accuracy = search_alpha_beta(zero_shot, features @ keys.T, values, labels, betas, alphas)
    assert (beta, alpha) == pytest.approx(best_pair) and accuracy == pytest.approx(best)


def test_alpha_zero_is_zero_shot_clip(parts, splits):
    clip, tokenizer, processor = parts
    model = make(parts, alpha=0.0, search=False, augment_views=2)
    model.fit(fit_data(splits))
    assert model.config.cache_size == len(splits["train"])  # a real cache, switched off by alpha = 0
    config = ZeroShotCLIPConfig(clip_config=clip.config.to_dict(), class_names=NAMES, templates=TEMPLATES)
    zero_shot = ZeroShotCLIPModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels(splits)).logits, zero_shot(pixels(splits)).logits)


def test_the_cache_keys_are_the_normalised_mean_features_of_the_augmented_views(parts, splits):
    model = make(parts, search=False, augment_views=3)
    record = model.fit(fit_data(splits))
    assert record["cache_size"] == len(splits["train"]) and record["views"] == 3
    epochs, views = EpochSeededDataset(splits["train_views"], seed=1), []
    for view in range(3):  # recomputed: what the trainer would show in epochs 0, 1, 2
        epochs.set_epoch(view)
        batch = next(iter(DataLoader(epochs, batch_size=len(epochs), collate_fn=collate_fn)))
        with torch.no_grad():
            views.append(model.clip.get_image_features(pixel_values=batch["pixel_values"]).pooler_output)
    torch.testing.assert_close(
        model.cache_keys, F.normalize(torch.stack(views).mean(0), dim=-1), atol=1e-6, rtol=0
    )
    assert torch.equal(model.cache_labels, batch["labels"])
    assert torch.equal(model.cache_values, F.one_hot(batch["labels"], len(NAMES)).float())


def test_the_search_writes_alpha_and_beta_and_beats_the_initial_pair_on_validation(parts, splits):
    model = make(parts, augment_views=2, search_steps=[20, 10])
    record = model.fit(fit_data(splits))
    assert model.config.alpha == record["alpha"] and model.config.beta == record["beta"]
    assert 0.1 <= model.config.beta < 7 and 0.1 <= model.config.alpha < 3
    labels = collate_fn(list(splits["validation"]))["labels"]
    with torch.no_grad():
        searched = (model(pixels(splits)).logits.argmax(-1) == labels).float().mean().item() * 100
        model.config.alpha, model.config.beta = None, None  # back to init_alpha, init_beta
        initial = (model(pixels(splits)).logits.argmax(-1) == labels).float().mean().item() * 100
    assert searched == pytest.approx(record["validation_accuracy"]) and searched >= initial


def test_tip_adapter_f_changes_only_the_keys(parts, splits):
    data = fit_data(splits)  # one feature cache for both: the same views
    plain = make(parts, search=False, augment_views=2)
    plain.fit(data)
    tuned = make(
        parts,
        TipAdapterFModel,
        TipAdapterFConfig,
        search=False,
        augment_views=2,
        finetune_epochs=3,
        finetune_batch_size=5,
    )
    record = tuned.fit(data)
    assert data.cache.hits >= 2  # the fine-tuning read the views the cache was built from
    assert record["last_loss"] < record["first_loss"]
    before, after = plain.state_dict(), tuned.state_dict()
    assert before.keys() == after.keys()
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert changed == ["cache_keys"]
    with torch.no_grad():
        torch.testing.assert_close(tuned.class_text_features(), plain.class_text_features())


def test_the_authors_settings_come_with_the_benchmark():
    options = TipAdapterFConfig().benchmark_defaults(get_benchmark("eurosat"))
    assert (
        options["init_alpha"] == 2.0
        and options["search_scale"] == [12.0, 10.0]
        and options["finetune_epochs"] == 100
    )
    imagenet = TipAdapterConfig().benchmark_defaults(get_benchmark("imagenet"))
    assert len(imagenet["templates"]) == 7 and "finetune_epochs" not in imagenet
    assert TipAdapterConfig().benchmark_defaults(get_benchmark("synthetic_shapes")) == {
        "templates": ["a photo of a {}."]
    }


def test_an_adapter_round_trips_and_serves_the_image_pipeline_only(tiny_clip_folder, splits, tmp_path):
    model = TipAdapterFModel.from_clip(
        tiny_clip_folder, NAMES, augment_views=2, finetune_epochs=2, search_steps=[10, 5]
    )
    model.fit(fit_data(splits))
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, TipAdapterFModel) and loaded.config.cache_size == len(splits["train"])
    assert (loaded.config.alpha, loaded.config.beta) == (model.config.alpha, model.config.beta)
    image = pattern_image("checkerboard")
    inputs = model.image_processor(image, return_tensors="pt").pixel_values
    with torch.no_grad():
        probs = model(inputs).logits.softmax(-1)[0]
        torch.testing.assert_close(loaded(inputs).logits.softmax(-1)[0], probs)
    scores = {
        r["label"]: r["score"] for r in pipeline("image-classification", model=str(tmp_path))(image, top_k=4)
    }
    assert [scores[name] for name in NAMES] == pytest.approx(probs.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="not free texts"):
        pipeline("zero-shot-image-classification", model=str(tmp_path))(image, candidate_labels=["a", "b"])
    with pytest.raises(ValueError, match="cannot classify a list of 2 classes"):
        model.set_class_names(["a", "b"])
    for method in ("tip_adapter", "tip_adapter_f"):
        with pytest.raises(ProtocolNotSupportedError, match="few_shot"):
            check_method_protocol(method, {}, "base2new")
    assert TipAdapterConfig().capabilities.uses_validation
    assert not TipAdapterConfig(search=False).capabilities.uses_validation
