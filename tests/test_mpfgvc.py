"""MP-FGVC: SsVP, DaTP, VLFM, the two stages, saving (also in bf16), the ViT option, pipelines."""

import os

import pytest
import torch
import torch.nn.functional as F
from conftest import PATTERN_NAMES, pattern_images
from safetensors.torch import load_file
from transformers import AutoModel, ViTImageProcessor, pipeline

from hf_prompt_clip import CoOpConfig, MPFGVCConfig, MPFGVCModel
from hf_prompt_clip.runner import ProtocolNotSupportedError, check_method_protocol
from hf_prompt_clip.testing import tiny_vit

NAMES = ["red star", "a blue circle of another length", "ring"]


def pixels(batch=3):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(4))


def make(clip_parts, names=NAMES, **kwargs):
    clip, tokenizer, processor = clip_parts
    count = {} if "ssvp_fraction" in kwargs else {"ssvp_top_k": 5}  # the two are never given together
    options = {"super_category": "shape", **count, **kwargs}
    config = MPFGVCConfig(clip_config=clip.config.to_dict(), class_names=names, **options)
    torch.manual_seed(0)
    return MPFGVCModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def perturb(model):
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not name.startswith("clip."):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return model


# ---------------------------------------------------------------------------------------- SsVP


def test_the_last_layer_sees_cls_and_k_patches(clip_parts):
    clip, _, _ = clip_parts
    model = make(clip_parts, ssvp_top_k=5)
    seen = []
    hook = clip.vision_model.encoder.layers[-1].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape)
    )
    with torch.no_grad():
        model.image_features(pixels())
    hook.remove()
    assert seen == [torch.Size([3, 1 + 5, 32])]  # which 5: tests/test_vision_tower.py (eager attention)


def test_keeping_every_patch_is_the_plain_image_tower(clip_parts):
    clip, _, _ = clip_parts
    model = make(clip_parts, ssvp_top_k=None)
    everything = make(clip_parts, ssvp_fraction=1.0)
    with torch.no_grad():
        plain = clip.get_image_features(pixel_values=pixels()).pooler_output
        assert torch.equal(model.image_features(pixels()), plain)
        assert torch.equal(everything.image_features(pixels()), plain)
        assert not torch.allclose(make(clip_parts, ssvp_top_k=3).image_features(pixels()), plain)


def test_ssvp_fraction_sets_k_from_the_patch_count():
    config = MPFGVCConfig(ssvp_fraction=12 / 196)
    assert config.patches_kept(196) == 12 and config.patches_kept(16) == 1
    assert MPFGVCConfig().patches_kept(196) == 12 and MPFGVCConfig().patches_kept(8) == 8


# ---------------------------------------------------------------------------------------- DaTP and VLFM


def test_datp_prompts_hold_the_super_category_never_the_names(clip_parts):
    _, tokenizer, _ = clip_parts
    model = make(clip_parts)
    layout = model.prompt_layout
    assert (layout.input_ids == layout.input_ids[0]).all()  # identical tokens for every class
    text = tokenizer.decode(layout.input_ids[0, : int(layout.eos_positions[0]) + 1], skip_special_tokens=True)
    assert "shape." in text.replace(" ", "") and "star" not in text
    assert (layout.context_index[0] >= 0).sum() == model.config.n_ctx


def test_datp_text_features_fast_equal_the_77_position_path(clip_parts):
    fast = perturb(make(clip_parts, fast=True))
    reference = make(clip_parts, fast=False)
    reference.load_adapter_state_dict(fast.adapter_state_dict())
    ours, theirs = fast.class_text_features(), reference.class_text_features()
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=0)
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(fast.context.grad, reference.context.grad, atol=1e-5, rtol=1e-3)


def test_fusion_follows_its_definition(clip_parts):
    """E'_V = sum_i softmax_i(Q_0 K_i / sqrt(D)) V_i over the image (i = 0) and the C texts, then the
    translation layer; the classifier reads it."""
    model = perturb(make(clip_parts))
    fusion = model.fusion
    with torch.no_grad():
        visual = F.normalize(model.image_features(pixels()), dim=-1)
        text = F.normalize(model.class_text_features(), dim=-1)
        for b in range(3):
            keys = torch.stack([fusion.visual_key(visual[b])] + [fusion.text_key(t) for t in text])
            values = torch.stack([fusion.visual_value(visual[b])] + [fusion.text_value(t) for t in text])
            weights = torch.softmax(keys @ fusion.query(visual[b]) / visual.shape[-1] ** 0.5, dim=0)
            fused = fusion.translation((weights[:, None] * values).sum(0))
            torch.testing.assert_close(model(pixels()).logits[b], model.classifier(fused), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------- stages


def changed_after_a_step(model, stage):
    model.set_training_stage(stage)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model(pixels(), labels=torch.tensor([0, 1, 2])).loss.backward()
    optimizer.step()
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    return {
        name.split(".")[0] if not name.startswith("clip.") else ".".join(name.split(".")[:2])
        for name in changed
    }


def test_stage_one_tunes_the_image_tower_prompts_and_head_then_stage_two_the_fusion(clip_parts):
    model = make(clip_parts)
    visual, fusion = model.training_stages()
    assert changed_after_a_step(model, visual) == {
        "clip.vision_model",
        "clip.visual_projection",
        "context",
        "visual_head",
    }
    assert changed_after_a_step(model, fusion) == {"fusion", "classifier"}
    assert dict(visual.learning_rate_scales)["clip.vision_model"] == model.config.image_tower_lr_scale


def test_stage_one_gradients_reach_every_tower_tensor_and_the_prompts_through_the_frozen_text_tower(
    clip_parts,
):
    model = make(clip_parts, visual_loss_weight=0.0)  # the contrastive loss alone
    model.set_training_stage("visual")
    model(pixels(), labels=torch.tensor([0, 1, 2])).loss.backward()
    tower = {
        n: p
        for n, p in model.named_parameters()
        if n.startswith(("clip.vision_model", "clip.visual_projection"))
    }
    assert tower and all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.values())
    assert model.context.grad.abs().sum() > 0  # through the text tower, which gets no gradient itself
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("clip.text_model"))


def test_stage_two_runs_the_image_tower_without_autograd(clip_parts):
    model = make(clip_parts)
    model.set_training_stage("fusion")
    assert model.image_features(pixels()).grad_fn is None
    model.set_training_stage("visual")
    assert model.image_features(pixels()).grad_fn is not None


def test_a_model_saved_after_stage_one_scores_with_its_head(tiny_clip_folder, tmp_path):
    torch.manual_seed(0)
    model = perturb(MPFGVCModel.from_clip(tiny_clip_folder, NAMES, super_category="shape"))
    model.set_training_stage("visual")
    with torch.no_grad():
        head = model.visual_head(model.image_features(pixels()))
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(AutoModel.from_pretrained(tmp_path)(pixels()).logits, head, atol=0, rtol=0)


def test_a_bf16_clip_trains_a_float32_tower(tiny_clip_folder):
    model = MPFGVCModel.from_clip(tiny_clip_folder, NAMES, super_category="shape", dtype=torch.bfloat16)
    assert model.clip.text_model.dtype == torch.bfloat16  # the frozen text tower as loaded
    assert {value.dtype for value in model.adapter_state_dict().values()} == {torch.float32}  # tower included
    model.set_training_stage("visual")
    model(pixels(), labels=torch.tensor([0, 1, 2])).loss.backward()
    assert (
        model.context.grad is not None
        and model.clip.vision_model.embeddings.patch_embedding.weight.grad is not None
    )


def test_stage_one_loss_is_head_cross_entropy_plus_contrastive(clip_parts):
    model = perturb(make(clip_parts, visual_loss_weight=0.5, contrastive_loss_weight=2.0))
    model.set_training_stage("visual")
    labels = torch.tensor([2, 0, 1])
    with torch.no_grad():
        output = model(pixels(), labels=labels)
        features = model.image_features(pixels())
        head = model.visual_head(features)
        similarity = F.normalize(features, dim=-1) @ F.normalize(model.class_text_features(), dim=-1).T
        expected = 0.5 * F.cross_entropy(head, labels) + 2.0 * F.cross_entropy(similarity / 0.07, labels)
    torch.testing.assert_close(output.logits, head)
    torch.testing.assert_close(output.loss, expected)


# ---------------------------------------------------------------------------------------- saving


@pytest.mark.parametrize("save_dtype", ["float32", "bfloat16"])
def test_adapter_round_trip_holds_the_tuned_tower(tiny_clip_folder, tmp_path, save_dtype):
    torch.manual_seed(0)
    model = perturb(
        MPFGVCModel.from_clip(tiny_clip_folder, NAMES, super_category="shape", save_dtype=save_dtype)
    )
    with torch.no_grad():
        model.clip.vision_model.encoder.layers[0].mlp.fc1.weight.add_(0.1)  # a fine-tuned tower
        expected = model.eval()(pixels()).logits
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert any(key.startswith("clip.vision_model.") for key in tensors)
    assert not any(key.startswith("clip.text_model.") for key in tensors)  # the text tower stays frozen
    assert tensors["clip.vision_model.encoder.layers.0.mlp.fc1.weight"].dtype == getattr(torch, save_dtype)
    assert tensors["context"].dtype == torch.float32
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is MPFGVCModel
    with torch.no_grad():
        logits = loaded(pixels()).logits
    if save_dtype == "float32":
        torch.testing.assert_close(logits, expected, atol=0, rtol=0)
    else:
        torch.testing.assert_close(logits, expected, atol=0.05, rtol=0.05)
        assert (logits.argmax(-1) == expected.argmax(-1)).all()


def test_bf16_saving_halves_the_tower(tiny_clip_folder, tmp_path):
    sizes, tower = {}, {}
    for dtype in ("float32", "bfloat16"):
        model = MPFGVCModel.from_clip(tiny_clip_folder, NAMES, super_category="shape", save_dtype=dtype)
        model.save_pretrained(tmp_path / dtype)
        sizes[dtype] = os.path.getsize(tmp_path / dtype / "model.safetensors")
        tensors = load_file(tmp_path / dtype / "model.safetensors")
        tower[dtype] = sum(t.nbytes for k, t in tensors.items() if k.startswith("clip."))
    assert tower["bfloat16"] * 2 == tower["float32"]
    assert sizes["float32"] - sizes["bfloat16"] == pytest.approx(tower["bfloat16"], rel=0.01)


def test_a_transformers_vit_can_replace_clips_image_tower(tiny_clip_folder, tmp_path):
    vit_folder = tmp_path / "vit"
    vit, processor = tiny_vit(seed=1, width=24)
    vit.save_pretrained(vit_folder)
    processor.save_pretrained(vit_folder)
    model = MPFGVCModel.from_clip(
        tiny_clip_folder, NAMES, super_category="shape", image_tower=str(vit_folder), ssvp_top_k=None
    )
    assert isinstance(model.image_processor, ViTImageProcessor)
    assert model.adapter_clip_modules == ()
    with torch.no_grad():
        cls = vit(pixel_values=pixels()).last_hidden_state[:, 0]
        torch.testing.assert_close(
            model.image_features(pixels()), model.image_projection(cls), atol=1e-5, rtol=0
        )
        expected = perturb(model).eval()(pixels()).logits
    visual, _ = model.training_stages()
    assert visual.trainable[:2] == ("image_tower", "image_projection")
    assert (
        visual.learning_rate_scale("image_tower.layers.0.mlp.fc1.weight") == model.config.image_tower_lr_scale
    )
    assert visual.learning_rate_scale("image_projection.weight") == 1.0  # new: learns at the full rate
    model.save_pretrained(tmp_path / "adapter")
    tensors = load_file(tmp_path / "adapter" / "model.safetensors")
    assert any(key.startswith("image_tower.") for key in tensors) and not any(
        k.startswith("clip.") for k in tensors
    )
    vit_folder.rename(tmp_path / "gone")  # loading needs no copy of the ViT: its weights are in the adapter
    loaded = AutoModel.from_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels()).logits, expected, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------- classes and pipelines


def test_the_image_classification_pipeline_serves_it_and_the_zero_shot_one_refuses(
    tiny_clip_folder, tmp_path
):
    torch.manual_seed(0)
    model = perturb(MPFGVCModel.from_clip(tiny_clip_folder, PATTERN_NAMES, super_category="pattern")).eval()
    model.save_pretrained(tmp_path)
    classifier = pipeline("image-classification", model=str(tmp_path))
    image = pattern_images()[1]
    with torch.no_grad():
        probs = model(model.image_processor(image, return_tensors="pt").pixel_values).logits.softmax(-1)[0]
    scores = {r["label"]: r["score"] for r in classifier(image, top_k=len(PATTERN_NAMES))}
    for k, name in enumerate(PATTERN_NAMES):
        assert scores[name] == pytest.approx(probs[k].item(), abs=1e-5)
    zero_shot = pipeline("zero-shot-image-classification", model=str(tmp_path))
    with pytest.raises(ValueError, match="not free texts: use the image-classification pipeline"):
        zero_shot(image, candidate_labels=["red", "blue"])


def test_other_class_lists_and_protocols_are_refused(clip_parts):
    model = make(clip_parts)
    with pytest.raises(ValueError, match="cannot classify a list of 2 classes"):
        model.set_class_names(["a", "b"])
    assert model.config.class_names == NAMES
    assert not model.capabilities.classes_can_change
    with pytest.raises(ProtocolNotSupportedError, match="use protocol='few_shot'"):
        check_method_protocol("mpfgvc", {}, "base2new")
    with pytest.raises(ProtocolNotSupportedError):
        check_method_protocol("coop", {"class_specific_context": True}, "cross_dataset")
    check_method_protocol("coop", {}, "base2new")
    assert CoOpConfig().capabilities.classes_can_change
    assert not CoOpConfig(class_specific_context=True).capabilities.classes_can_change


def test_a_missing_super_category_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="--option super_category=bird"):
        MPFGVCConfig(class_names=NAMES)


def test_the_card_says_what_is_stored_and_offers_no_zero_shot_use(tiny_clip_folder, tmp_path):
    from hf_prompt_clip.hub import save_model_card

    model = MPFGVCModel.from_clip(tiny_clip_folder, NAMES, super_category="shape")
    model.save_pretrained(tmp_path)
    text = save_model_card(tmp_path).read_text()
    size = os.path.getsize(tmp_path / "model.safetensors") / 1e3
    assert f"| adapter file | {size:.1f} KB |" in text
    assert "**not** a tiny adapter" in text and "zero-shot-image-classification pipeline refuses it" in text
    assert 'pipeline("zero-shot-image-classification"' not in text


def test_frozen_parts_stay_in_eval_mode_while_training(clip_parts):
    model = make(clip_parts)
    model.set_training_stage("fusion")
    model.train()
    assert model.fusion.training and model.classifier.training
    assert not model.clip.vision_model.training and not model.clip.text_model.training
    model.set_training_stage("visual")
    model.train()
    assert model.clip.vision_model.training and not model.clip.text_model.training
