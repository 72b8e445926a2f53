"""`--image-dtype` (issue 16, item 5): only the frozen image tower runs in bf16; features come back in
float32, close to fp32's; the setting is recorded in results and card, never saved into the adapter, and
refused for methods that train through their image tower."""

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

from hf_prompt_clip.core.registry import get_method
from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform
from hf_prompt_clip.evaluate.protocols import predict
from hf_prompt_clip.modeling.image_dtype import dtype_name, resolve_image_dtype
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, tiny_clip


def build(method="coop", **options):
    clip, tokenizer, processor = tiny_clip(seed=0)
    return (
        get_method(method)[1]
        .from_clip(clip, list(PATTERN_CLASSES), tokenizer=tokenizer, image_processor=processor, **options)
        .eval()
    )


def test_bf16_image_tower_gives_float32_features_close_to_fp32():
    model = build()
    data = with_image_transform(pattern_benchmark(3), eval_transform(model.image_processor))
    pixels = collate_fn([data[i] for i in range(len(data))])["pixel_values"]
    with torch.no_grad():
        reference = model.encode_images(pixels)
        model.set_image_dtype("bf16")
        features = model.encode_images(pixels)
        logits = model(pixels).logits
    assert model.clip.vision_model.embeddings.patch_embedding.weight.dtype == torch.bfloat16
    assert model.clip.visual_projection.weight.dtype == torch.bfloat16
    assert model.clip.text_projection.weight.dtype == torch.float32  # only the image tower
    assert features.dtype == torch.float32 and logits.dtype == torch.float32
    assert F.cosine_similarity(features, reference, dim=-1).min() >= 0.999
    assert torch.isfinite(logits).all()
    predict(model, data, collate_fn, batch_size=4)  # evaluation runs as before


def test_image_dtype_names():
    assert resolve_image_dtype("bf16") is resolve_image_dtype("bfloat16") is torch.bfloat16
    assert dtype_name("fp16") == "float16" and dtype_name(None) == "float32"
    with pytest.raises(ValueError, match="image_dtype must be one of"):
        resolve_image_dtype("int8")


@pytest.mark.parametrize("method, options", [("plotpp", {}), ("mpfgvc", {"super_category": "pattern"})])
def test_image_dtype_is_refused_for_methods_that_train_through_the_image_tower(method, options):
    model = build(method, **options)
    with pytest.raises(
        ValueError, match=r"trains through its image tower.*keep image_dtype='float32'"
    ) as refused:
        model.set_image_dtype("bf16")
    from hf_prompt_clip.cli import one_line

    assert "keep --image-dtype float32" in one_line(refused.value)  # the command line spells its flag
    model.set_image_dtype("float32")  # the default is no change


def test_image_dtype_refused_before_anything_runs(tmp_path):
    from hf_prompt_clip.runner import ExperimentConfig, ImageDtypeNotSupportedError, run_experiment
    from hf_prompt_clip.synthetic import TINY_CLIP_ID

    config = ExperimentConfig(
        method="plotpp", base_model=TINY_CLIP_ID, dataset="synthetic_colours", protocol="few_shot",
        output_dir=str(tmp_path / "run"), image_dtype="bf16",
    )  # fmt: skip
    with pytest.raises(ImageDtypeNotSupportedError, match="plotpp trains through its image tower"):
        run_experiment(config)
    assert not (tmp_path / "run").exists()


def test_image_dtype_reaches_results_and_card_and_the_adapter_keeps_no_bf16_base(tmp_path):
    from hf_prompt_clip.runner import ExperimentConfig, run_experiment
    from hf_prompt_clip.synthetic import TINY_CLIP_ID
    from hf_prompt_clip.train import TrainingConfig

    config = ExperimentConfig(
        method="coop", base_model=TINY_CLIP_ID, dataset="synthetic_colours", shots=1, seeds=(1,),
        protocol="few_shot", output_dir=str(tmp_path / "run"), image_dtype="bf16",
        training=TrainingConfig(epochs=1, batch_size=8),
    )  # fmt: skip
    results = run_experiment(config)
    assert results["image_dtype"] == "bfloat16"
    assert json.loads((tmp_path / "run" / "results.json").read_text())[0]["image_dtype"] == "bfloat16"
    adapter = tmp_path / "run" / "seed1" / "adapter"
    assert json.loads((adapter / "training_args.json").read_text())["image_dtype"] == "bfloat16"
    assert (
        "image_dtype" in (adapter / "README.md").read_text()
        and "bfloat16" in (adapter / "README.md").read_text()
    )
    from safetensors import safe_open

    with safe_open(adapter / "model.safetensors", framework="pt") as handle:
        assert not any(key.startswith("clip.") for key in handle.keys())  # noqa: SIM118  # adapter tensors only
    loaded = AutoModel.from_pretrained(adapter)
    assert loaded.clip.vision_model.embeddings.patch_embedding.weight.dtype == torch.float32
    assert loaded.image_dtype is None and "image_dtype" not in loaded.config.to_dict()
