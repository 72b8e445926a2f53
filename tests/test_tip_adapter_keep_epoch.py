"""Tip-Adapter-F's `keep_epoch`: the last epoch's keys, or those of the best validation epoch.

The oracle: the keys after every fine-tuning epoch, recorded from the optimiser's steps, each scored on
the validation features with Tip-Adapter's formula written out here at `init_alpha`, `init_beta`.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from hf_prompt_clip import TipAdapterFConfig, TipAdapterFModel
from hf_prompt_clip.data import collate_fn, eval_transform, train_transform, with_image_transform
from hf_prompt_clip.modeling.fitting import FitData
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, tiny_clip

NAMES = list(PATTERN_CLASSES)
EPOCHS, BATCH = 8, 4


@pytest.fixture(scope="module")
def parts():
    return tiny_clip(seed=0)


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


def make(parts, finetune_lr=0.05, **options):
    clip, tokenizer, processor = parts
    config = TipAdapterFConfig(
        clip_config=clip.config.to_dict(), class_names=NAMES, templates=["a photo of a {}."], augment_views=2,
        finetune_epochs=EPOCHS, finetune_lr=finetune_lr, finetune_batch_size=BATCH, search=False, **options,
    )  # fmt: skip
    return TipAdapterFModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def fit_recording_epochs(model, splits, monkeypatch):
    """Fit, recording the keys after every optimiser step; returns (record, keys after each epoch, data)."""
    steps = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        steps.append(model.cache_keys.detach().clone())
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    data = FitData(**splits, collate_fn=collate_fn, batch_size=8, seed=1)
    record = model.fit(data)
    monkeypatch.undo()
    per_epoch = math.ceil(model.config.cache_size / BATCH)
    assert len(steps) == EPOCHS * per_epoch
    return record, steps[per_epoch - 1 :: per_epoch], data


def validation_accuracy(model, data, keys):
    """Tip-Adapter's accuracy at (init_alpha, init_beta), written out: zero-shot + alpha exp(-beta(1 - fK^T)) V."""
    features, labels = data.image_features(model, "validation")
    features = F.normalize(features.float(), dim=-1)
    with torch.no_grad():
        zero_shot = model.clip.logit_scale.exp() * features @ model.class_text_features().T
    values = F.one_hot(model.cache_labels, len(NAMES)).float()
    alpha, beta = model.config.init_alpha, model.config.init_beta
    logits = zero_shot + alpha * torch.exp(-beta * (1 - features @ keys.T)) @ values
    return 100.0 * (logits.argmax(-1) == labels).float().mean().item()


# (lr, (init_alpha, init_beta)) and how the last epoch compares with the best: below it (accuracy per epoch
# 17, 0, 33, 50, 50, 50, 42, 42: epoch 3 kept), or tied with it (50, 33, 75, 50, 75, 75, 75, 75: epoch 2)
@pytest.mark.parametrize("lr, init, last_is_tied", [(0.05, (1.17, 1.0), False), (0.02, (5.0, 5.0), True)])
def test_best_validation_keeps_the_keys_of_the_first_best_epoch(
    parts, splits, monkeypatch, lr, init, last_is_tied
):
    model = make(parts, lr, keep_epoch="best_validation", init_alpha=init[0], init_beta=init[1])
    record, epoch_keys, data = fit_recording_epochs(model, splits, monkeypatch)
    history = [validation_accuracy(model, data, keys) for keys in epoch_keys]
    assert record["epoch_validation_accuracy"] == pytest.approx(history)
    best = history.index(max(history))  # the first best epoch
    assert best < EPOCHS - 1 and (history[-1] == history[best]) == last_is_tied  # the cases are what they say
    assert model.config.kept_epoch == best == record["kept_epoch"]
    assert torch.equal(model.cache_keys, epoch_keys[best])
    assert not torch.equal(model.cache_keys, epoch_keys[-1])


def test_last_keeps_the_last_epochs_keys_as_before(parts, splits, monkeypatch):
    model = make(parts, init_alpha=1.17, init_beta=1.0)
    assert model.config.keep_epoch == "last"  # the default
    record, epoch_keys, _ = fit_recording_epochs(model, splits, monkeypatch)
    assert torch.equal(model.cache_keys, epoch_keys[-1])
    assert model.config.kept_epoch == EPOCHS - 1 and "epoch_validation_accuracy" not in record
    # without a search, "last" reads no validation split; "best_validation" does
    assert not TipAdapterFConfig(search=False).capabilities.uses_validation
    assert TipAdapterFConfig(search=False, keep_epoch="best_validation").capabilities.uses_validation
    no_validation = FitData(
        train=splits["train"], train_views=splits["train_views"], collate_fn=collate_fn, seed=1
    )
    again = make(parts, init_alpha=1.17, init_beta=1.0)
    again.fit(no_validation)
    assert torch.equal(again.cache_keys, model.cache_keys)


def test_an_unknown_keep_epoch_is_refused(parts):
    with pytest.raises(
        ValueError, match=r"keep_epoch must be one of \('last', 'best_validation'\), got 'best_test'"
    ):
        make(parts, keep_epoch="best_test")
