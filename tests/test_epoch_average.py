"""A training stage whose result is a weighted average of its epochs (`TrainingStage.epoch_average`, PromptSRC's
Gaussian prompt aggregation): the weights, the stage's description in a run's settings, and the running sum's
checkpoint format. The loop itself (the average of per-epoch snapshots, an exact resume) is tested on PromptSRC
in tests/test_promptsrc.py."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from hf_prompt_clip.modeling.stages import EpochAverage, TrainingStage, gaussian_epoch_weights
from hf_prompt_clip.train import EpochSum, TrainingConfig, settings_used
from hf_prompt_clip.train.epoch_average import EPOCH_SUM_FILE
from hf_prompt_clip.train.fingerprint import stage_settings


@pytest.mark.parametrize(
    ("epochs", "mean", "std"),
    [(20, 15, 1), (20, 6, 10), (50, 30, 30), (50, 45, 5), (5, 15, 1), (1, 15, 1), (7, 2.5, 0.4)],
)
def test_gaussian_weights_are_the_normalised_density_at_each_epoch(epochs, mean, std):
    """The authors' formula (`trainers/promptsrc.py:265-270`, `:358-360`): pdf(e; mean, std) for e = 1 .. N,
    divided by its sum; written out here and by scipy."""
    ours = np.array(gaussian_epoch_weights(epochs, mean, std))
    e = np.arange(1, epochs + 1)
    written = np.exp(-0.5 * ((e - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(ours, written / written.sum(), rtol=1e-12, atol=0)
    density = norm.pdf(e, loc=mean, scale=std)
    np.testing.assert_allclose(ours, density / density.sum(), rtol=1e-12, atol=0)
    assert math.isclose(math.fsum(ours), 1.0, rel_tol=1e-15)


def test_the_base_to_new_weights_and_no_underflow_far_from_the_mean():
    weights = gaussian_epoch_weights(20, 15, 1)
    assert [round(w, 3) for w in weights[12:17]] == [0.054, 0.242, 0.399, 0.242, 0.054]  # epochs 13 .. 17
    assert max(weights[:10]) < 2e-6 and weights[10] > 1e-4  # epoch 10 is 5 std away, 11 four
    # every density underflows to 0 in float64 (the written formula gives 0 / 0); the weights do not
    density = norm.pdf(np.arange(1, 6), 100, 1)
    with np.errstate(invalid="ignore"):
        assert np.isnan(density / density.sum()).all()
    far = gaussian_epoch_weights(5, 100, 1)
    assert far[-1] == 1.0 and far[:-1] == sorted(far[:-1]) and sum(far) == 1.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, 15, 1), "at least 1 epoch"),
        ((5, 15, 0), "positive finite std"),
        ((5, math.nan, 1), "finite mean"),
    ],
)
def test_bad_weight_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        gaussian_epoch_weights(*arguments)


def test_a_stage_describes_its_average_and_only_gradient_stages_take_one():
    average = EpochAverage(mean=2, std=1)
    stage = TrainingStage("prompt", ("prompts.",), epoch_average=average)
    assert stage.epoch_weights(3) == tuple(gaussian_epoch_weights(3, 2, 1))
    assert TrainingStage("prompt", ("prompts.",)).epoch_weights(3) is None
    with pytest.raises(ValueError, match="a 'fit' stage has none"):
        TrainingStage("fit", (), kind="fit", epoch_average=average)
    with pytest.raises(ValueError, match="kind must be one of"):
        EpochAverage("uniform")
    with pytest.raises(ValueError, match="positive finite std"):
        EpochAverage(mean=2, std=0)


def test_the_run_records_the_average_and_plain_stages_keep_their_fingerprint_settings():
    plain = TrainingStage("prompt", ("prompts.",))
    averaged = TrainingStage("prompt", ("prompts.",), epoch_average=EpochAverage(mean=15, std=1))
    assert "epoch_average" not in stage_settings(plain)  # the settings (and fingerprints) earlier runs wrote
    assert stage_settings(averaged)["epoch_average"] == {"kind": "gaussian", "mean": 15, "std": 1}
    assert "stages" not in settings_used(TrainingConfig(epochs=20), [plain])
    assert settings_used(TrainingConfig(epochs=20), [averaged])["stages"] == [
        "prompt: 20 epochs at learning rate 0.002; result: Gaussian average of the epochs (mean 15, std 1)"
    ]


def test_the_running_sum_adds_weighted_epochs_and_resumes_from_its_file(tmp_path):
    weights = gaussian_epoch_weights(3, 2, 1)
    snapshots = [torch.randn(2, 3, generator=torch.Generator().manual_seed(e)) for e in range(3)]
    parameter = torch.nn.Parameter(torch.zeros(2, 3))
    total = EpochSum(weights)
    total.save(tmp_path)  # nothing before the first epoch ends
    assert not (tmp_path / EPOCH_SUM_FILE).exists()
    for epoch, snapshot in enumerate(snapshots):
        parameter.data.copy_(snapshot)
        total.add([("p", parameter)])
        if epoch == 1:  # a checkpoint after two epochs, resumed into a new sum
            total.save(tmp_path)
            resumed = EpochSum(weights)
            resumed.load(tmp_path, 2, "cpu")
            assert resumed.epochs_added == 2 and torch.equal(resumed.total["p"], total.total["p"])
            with pytest.raises(RuntimeError, match="after 1 epoch"):
                EpochSum(weights).load(tmp_path, 1, "cpu")
            with pytest.raises(RuntimeError, match="weights"):
                EpochSum(gaussian_epoch_weights(3, 1, 1)).load(tmp_path, 2, "cpu")
            with pytest.raises(RuntimeError, match="needs all 3 epochs"):
                total.load_into([("p", parameter)])
    total.load_into([("p", parameter)])
    expected = sum(w * s.double() for w, s in zip(weights, snapshots))
    torch.testing.assert_close(parameter.data, expected.float(), atol=1e-7, rtol=0)
    with pytest.raises(RuntimeError, match="added already"):
        total.add([("p", parameter)])
    with pytest.raises(RuntimeError, match="0 epoch"):  # a checkpoint without the file, after an epoch
        EpochSum(weights).load(tmp_path / "missing", 1, "cpu")
