"""The learning test of the suite: prompt learning beats zero-shot CLIP on the base classes.

The embedded world's sketch benchmark (`synthetic_shapes_outline`): the shipped tiny CLIP was
pretrained with "a photo of a" meaning a clean photo, so its zero-shot prompt fits sketches
badly; 16 shots per base class let CoOp and CoCoOp learn a better context (docs/synthetic.md).
"""

import pytest

from hf_prompt_clip.runner import ExperimentConfig, run_comparison
from hf_prompt_clip.synthetic import TINY_CLIP_ID
from hf_prompt_clip.train import TrainingConfig

MARGIN = 5.0  # accuracy points; measured gains are about 11-12 (docs/synthetic.md)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    config = ExperimentConfig(
        method="coop",
        method_options={"n_ctx": 4, "ctx_init": "a photo of a"},
        base_model=TINY_CLIP_ID,
        dataset="synthetic_shapes_outline",
        shots=16,
        seeds=[1],
        protocol="base2new",
        output_dir=str(tmp_path_factory.mktemp("learning")),
        training=TrainingConfig(epochs=10, batch_size=32, learning_rate=0.01, optimizer="adamw"),
    )
    return {r["method"]: r["mean"] for r in run_comparison(config, ["zeroshot", "coop", "cocoop"])}


@pytest.mark.parametrize("method", ["coop", "cocoop"])
def test_prompt_learning_beats_zero_shot_on_base_classes(results, method):
    assert results[method]["base"] >= results["zeroshot"]["base"] + MARGIN, results
