"""CLIP-Adapter: the residual blend, equivalence with zero-shot CLIP, what trains, saving, pipelines, learning."""

import pytest
import torch
import torch.nn.functional as F
from conftest import PATTERN_NAMES, assert_pipelines_score_like_the_model, compare_on_sketches
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForZeroShotImageClassification

from hf_prompt_clip import CLIPAdapterConfig, CLIPAdapterModel, ZeroShotCLIPModel
from hf_prompt_clip.core.registry import method_info
from hf_prompt_clip.methods.clip_adapter.model import blend_residual

NAMES = ["red star", "blue_circle", "green ring"]
TEMPLATES = ["a photo of a {}."]


def make_adapter(clip_parts, names=NAMES, **kwargs):
    clip, tokenizer, processor = clip_parts
    config = CLIPAdapterConfig(
        clip_config=clip.config.to_dict(), class_names=names, templates=TEMPLATES, **kwargs
    )
    return CLIPAdapterModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def pixels(batch=4, seed=0):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def perturb(model, seed=1, std=0.5):
    """Adapter weights far from their initialisation, so that a mix-up would show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.adapter.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


def reference_logits(clip, tokenizer, images, names, templates, adapter=None, ratio=0.0):
    """Straightforward CLIP-Adapter: CLIP's own feature functions, the MLP written out by hand."""
    with torch.no_grad():
        image = clip.get_image_features(pixel_values=images).pooler_output
        if adapter is not None:
            hidden = torch.relu(image @ adapter.fc1.weight.T)
            image = ratio * torch.relu(hidden @ adapter.fc2.weight.T) + (1 - ratio) * image
        texts = [t.format(name.replace("_", " ")) for name in names for t in templates]
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        text = F.normalize(clip.get_text_features(**batch).pooler_output, dim=-1)
        text = F.normalize(text.view(len(names), len(templates), -1).mean(1), dim=-1)
        return clip.logit_scale.exp() * F.normalize(image, dim=-1) @ text.T


def test_residual_ratio_zero_equals_zero_shot_clip(clip_parts):
    """alpha = 0 keeps the frozen image feature: the logits are zero-shot CLIP's, whatever the adapter."""
    clip, tokenizer, processor = clip_parts
    model = make_adapter(clip_parts, residual_ratio=0.0)
    perturb(model)
    with torch.no_grad():
        logits = model(pixels()).logits
    torch.testing.assert_close(
        logits, reference_logits(clip, tokenizer, pixels(), NAMES, TEMPLATES), atol=1e-4, rtol=0
    )
    zero_shot = ZeroShotCLIPModel.from_clip(
        clip, NAMES, templates=TEMPLATES, tokenizer=tokenizer, image_processor=processor
    )
    with torch.no_grad():
        torch.testing.assert_close(logits, zero_shot(pixels()).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("ratio", [0.2, 0.6, 1.0])
def test_logits_equal_the_written_out_residual_adapter(clip_parts, ratio):
    clip, tokenizer, _ = clip_parts
    model = make_adapter(clip_parts, residual_ratio=ratio)
    perturb(model)
    expected = reference_logits(clip, tokenizer, pixels(), NAMES, TEMPLATES, model.adapter, ratio)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels()).logits, expected, atol=1e-4, rtol=0)


def test_blend_residual_mixes_adapted_and_original():
    adapted, original = torch.full((2, 3), 5.0), torch.ones(2, 3)
    torch.testing.assert_close(blend_residual(adapted, original, 0.2), torch.full((2, 3), 1.8))
    assert torch.equal(blend_residual(adapted, original, 0.0), original)


def test_the_adapter_is_the_papers_bias_free_bottleneck(clip_parts):
    model = make_adapter(clip_parts)
    embed = model.clip.config.projection_dim
    assert [type(m).__name__ for m in model.adapter] == ["Linear", "ReLU", "Linear", "ReLU"]
    assert model.adapter.fc1.weight.shape == (embed // 4, embed)
    assert model.adapter.fc2.weight.shape == (embed, embed // 4)
    assert model.adapter.fc1.bias is None and model.adapter.fc2.bias is None
    assert set(model.adapter_state_dict()) == {"adapter.fc1.weight", "adapter.fc2.weight"}


def test_only_the_adapter_trains(clip_parts):
    model = make_adapter(clip_parts)
    (stage,) = model.training_stages()
    assert stage.name == "adapter"
    assert model.set_training_stage(stage) == ["adapter.fc1.weight", "adapter.fc2.weight"]
    capabilities = CLIPAdapterConfig().capabilities
    assert capabilities.learns_parameters and capabilities.classes_can_change
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model.train()
    model(pixels(), labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    optimizer.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(before[k], v)]
    assert sorted(changed) == ["adapter.fc1.weight", "adapter.fc2.weight"]


def test_set_class_names_keeps_the_adapter(clip_parts):
    clip, tokenizer, _ = clip_parts
    model = make_adapter(clip_parts)
    perturb(model)
    model.set_class_names(["pink heart", "cyan cross"])
    expected = reference_logits(
        clip, tokenizer, pixels(), ["pink heart", "cyan cross"], TEMPLATES, model.adapter, 0.2
    )
    with torch.no_grad():
        torch.testing.assert_close(model(pixels()).logits, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"residual_ratio": 1.5}, r"residual_ratio must lie in \[0, 1\]"),
        ({"residual_ratio": -0.1}, r"residual_ratio must lie in \[0, 1\]"),
        ({"adapter_reduction": 0}, "adapter_reduction must be at least 1"),
    ],
)
def test_options_out_of_range_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        CLIPAdapterConfig(class_names=NAMES, **options)


def test_adapter_round_trips_with_equal_logits(tiny_clip_folder, tmp_path):
    torch.manual_seed(0)
    model = CLIPAdapterModel.from_clip(tiny_clip_folder, NAMES, templates=TEMPLATES)
    perturb(model)
    with torch.no_grad():
        expected = model.eval()(pixels()).logits
    model.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == {"adapter.fc1.weight", "adapter.fc2.weight"}
    for auto_class in (AutoModel, AutoModelForZeroShotImageClassification):
        loaded = auto_class.from_pretrained(tmp_path)
        assert isinstance(loaded, CLIPAdapterModel)
        assert loaded.config.residual_ratio == 0.2 and loaded.config.templates == TEMPLATES
        with torch.no_grad():
            assert torch.equal(loaded(pixels()).logits, expected)


def test_clip_adapter_in_both_pipelines(tiny_clip_folder, tmp_path):
    """Pipeline scores equal the model's own class probabilities on every generated image. The zero-shot
    pipeline fills its hypothesis template with each candidate label, as for zero-shot CLIP: with the
    model's own template it scores the candidates as the model scores them as classes."""
    torch.manual_seed(0)
    model = CLIPAdapterModel.from_clip(tiny_clip_folder, PATTERN_NAMES, residual_ratio=0.5)
    perturb(model, std=0.3)
    model.save_pretrained(tmp_path)
    assert_pipelines_score_like_the_model(model, tmp_path, hypothesis_template=model.config.templates[0])


def test_registered_with_its_paper():
    info = method_info("clip_adapter")
    assert info.title == "CLIP-Adapter" and "Gao" in info.paper and "gao2023clipadapter" in info.citation


def test_clip_adapter_beats_zero_shot_on_base_classes(tmp_path):
    """The learning test (tests/test_learning.py's setting): the benchmark's template, 4 epochs
    (a short run, about 12 s; docs/synthetic.md has the 10-epoch numbers)."""
    results = compare_on_sketches(
        tmp_path, "base2new", ["zeroshot", "clip_adapter"], method="clip_adapter", epochs=4
    )
    assert results["clip_adapter"]["base"] >= results["zeroshot"]["base"] + 5.0, results
