"""CoCoOp: definition, parameters, saving, Auto classes and pipelines."""

import pytest
import torch
from conftest import PATTERN_NAMES, assert_pipelines_score_like_the_model
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForZeroShotImageClassification, CLIPConfig, CLIPModel

from hf_prompt_clip import CoCoOpConfig, CoCoOpModel, CoOpConfig, CoOpModel
from hf_prompt_clip.testing import tiny_clip_tokenizer

NAMES = ["red star", "blue circle", "green ring"]


def pixels(batch=3):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def make_cocoop(clip_parts, **kwargs):
    clip, tokenizer, processor = clip_parts
    config = CoCoOpConfig(clip_config=clip.config.to_dict(), class_names=NAMES, **kwargs)
    return CoCoOpModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def test_each_image_is_classified_by_coop_with_its_shifted_context(clip_parts):
    """Definition check: CoCoOp on image i == CoOp whose context is v + meta_net(f_i)."""
    torch.manual_seed(0)
    cocoop = make_cocoop(clip_parts)
    clip, tokenizer, processor = clip_parts
    coop_config = CoOpConfig(clip_config=clip.config.to_dict(), class_names=NAMES, ctx_init="a photo of a")
    coop = CoOpModel(coop_config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)
    with torch.no_grad():
        logits = cocoop(pixels()).logits
        features = torch.nn.functional.normalize(cocoop.encode_images(pixels()), dim=-1)
        for i in range(3):
            coop.context.copy_(cocoop.context + cocoop.meta_net(features[i]))
            torch.testing.assert_close(logits[i], coop(pixels()[i : i + 1]).logits[0], atol=1e-4, rtol=0)


def test_paper_defaults_and_meta_net_size_on_vit_b16_widths():
    """M = 4 from "a photo of a", Meta-Net 512 -> 32 -> 512: 35,360 trainable numbers."""
    tokenizer = tiny_clip_tokenizer()
    text = {
        "hidden_size": 512,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 8,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 16,
    }
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512))
    config = CoCoOpConfig(clip_config=clip.config.to_dict(), class_names=NAMES, ctx_init="a b c d")
    model = CoCoOpModel(config, clip_model=clip, tokenizer=tokenizer)
    assert model.config.n_ctx == 4
    assert tuple(model.meta_net.linear1.weight.shape) == (32, 512)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 35_360


def test_only_context_and_meta_net_train(clip_parts):
    model = make_cocoop(clip_parts)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model(pixels(), labels=torch.tensor([0, 1, 2])).loss.backward()
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {
        "context",
        "meta_net.linear1.weight",
        "meta_net.linear1.bias",
        "meta_net.linear2.weight",
        "meta_net.linear2.bias",
    }


def test_cocoop_adapter_round_trips_through_auto_classes(tiny_clip_folder, tmp_path):
    torch.manual_seed(0)
    model = CoCoOpModel.from_clip(tiny_clip_folder, NAMES)
    with torch.no_grad():
        model.meta_net.linear2.weight.add_(0.3)
        expected = model(pixels()).logits
    model.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == {
        "context",
        "meta_net.linear1.weight",
        "meta_net.linear1.bias",
        "meta_net.linear2.weight",
        "meta_net.linear2.bias",
    }
    for auto_class in (AutoModel, AutoModelForZeroShotImageClassification):
        loaded = auto_class.from_pretrained(tmp_path)
        assert isinstance(loaded, CoCoOpModel)
        with torch.no_grad():
            assert torch.equal(loaded(pixels()).logits, expected)


def test_cocoop_in_both_pipelines(tiny_clip_folder, tmp_path):
    """Pipeline scores equal the model's own class probabilities on every generated image."""
    torch.manual_seed(0)
    model = CoCoOpModel.from_clip(tiny_clip_folder, PATTERN_NAMES, n_ctx=4, ctx_init=None)
    with torch.no_grad():
        model.meta_net.linear2.weight.normal_(std=0.5)
    model.save_pretrained(tmp_path)
    assert_pipelines_score_like_the_model(model, tmp_path)


def test_class_specific_context_is_refused():
    """CoCoOp's config has no class_specific_context (it took CoOp's and refused it): naming CoOp instead."""
    with pytest.raises(ValueError, match=r"CoCoOpConfig has no option class_specific_context.*use CoOp"):
        CoCoOpConfig(class_names=NAMES, class_specific_context=True)
