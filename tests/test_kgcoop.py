"""KgCoOp: CoOp plus the knowledge-guided distance to the hand-crafted prompts' features."""

import pytest
import torch
import torch.nn.functional as F
from conftest import PATTERN_NAMES, assert_pipelines_score_like_the_model, compare_on_sketches
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForZeroShotImageClassification

from hf_prompt_clip import CoOpConfig, CoOpModel, KgCoOpConfig, KgCoOpModel
from hf_prompt_clip.core.registry import method_info
from hf_prompt_clip.data import get_benchmark
from hf_prompt_clip.methods.kgcoop.model import knowledge_guided_distance

NAMES = ["red star", "blue_circle", "a very long class name with many words (and brackets)"]
TEMPLATES = ["a photo of a {}."]
LABELS = torch.tensor([0, 1, 2, 0])


def build(config_class, model_class, clip_parts, names=NAMES, **kwargs):
    clip, tokenizer, processor = clip_parts
    config = config_class(clip_config=clip.config.to_dict(), class_names=names, **kwargs)
    return model_class(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def make_kgcoop(clip_parts, **kwargs):
    kwargs.setdefault("kg_templates", TEMPLATES)
    return build(KgCoOpConfig, KgCoOpModel, clip_parts, **kwargs)


def pixels(batch=4, seed=0):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def handcrafted_reference(clip, tokenizer, names, templates):
    """The hand-crafted class features computed plainly: CLIP's own text features of the filled templates."""
    with torch.no_grad():
        texts = [t.format(name.replace("_", " ")) for name in names for t in templates]
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        features = F.normalize(clip.get_text_features(**batch).pooler_output, dim=-1)
        return F.normalize(features.view(len(names), len(templates), -1).mean(1), dim=-1)


def loss_and_context_gradient(model, labels=LABELS):
    model.train()
    model.zero_grad()
    loss = model(pixels(), labels=labels).loss
    loss.backward()
    return loss.detach(), model.context.grad.clone()


def test_weight_zero_gives_coops_loss_and_gradient(clip_parts):
    """kg_weight = 0 is CoOp: same initialisation for a seed, same loss, same gradient of the context."""
    torch.manual_seed(3)
    kgcoop = make_kgcoop(clip_parts, kg_weight=0.0, n_ctx=4, ctx_init=None)
    torch.manual_seed(3)
    coop = build(CoOpConfig, CoOpModel, clip_parts, n_ctx=4, ctx_init=None)
    assert torch.equal(kgcoop.context, coop.context)
    loss, gradient = loss_and_context_gradient(kgcoop)
    coop_loss, coop_gradient = loss_and_context_gradient(coop)
    assert torch.equal(loss, coop_loss)
    assert torch.equal(gradient, coop_gradient)
    assert gradient.abs().sum() > 0


@pytest.mark.parametrize(
    ("form", "templates"), [("cosine", TEMPLATES), ("squared_l2", ["{}", "art of the {}."])]
)
def test_loss_is_cross_entropy_plus_weighted_distance_to_the_handcrafted_features(
    clip_parts, form, templates
):
    """The loss and its gradient equal a plain computation: CoOp's cross-entropy plus lambda times the
    authors' `1 - mean(cos)` (or the paper's mean squared distance) to CLIP's own template features."""
    clip, tokenizer, _ = clip_parts
    torch.manual_seed(5)
    kgcoop = make_kgcoop(clip_parts, kg_weight=8.0, kg_distance=form, kg_templates=templates, ctx_init=None)
    torch.manual_seed(5)
    coop = build(CoOpConfig, CoOpModel, clip_parts, n_ctx=4, ctx_init=None, fast=False)
    loss, gradient = loss_and_context_gradient(kgcoop)

    coop.train()
    learned = coop.class_text_features()  # straightforward path: all 77 positions, transformers' modules
    logits = coop.similarity_logits(coop.encode_images(pixels()), learned)
    learned = F.normalize(learned, dim=-1)
    anchor = handcrafted_reference(clip, tokenizer, NAMES, templates)
    if form == "cosine":  # the authors' expression (trainers/kgcoop.py)
        distance = 1.0 - torch.nn.CosineSimilarity(dim=1, eps=1e-07)(learned, anchor).mean()
    else:
        distance = sum(((learned[k] - anchor[k]) ** 2).sum() for k in range(len(NAMES))) / len(NAMES)
    expected = F.cross_entropy(logits, LABELS) + 8.0 * distance
    expected.backward()
    assert distance > 1e-3  # a random context is far from the hand-written prompt
    torch.testing.assert_close(loss, expected.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gradient, coop.context.grad, atol=1e-4, rtol=1e-3)  # fast vs full path
    torch.testing.assert_close(
        kgcoop.knowledge_guided_loss().detach(), distance.detach(), atol=1e-6, rtol=1e-5
    )


def test_handcrafted_features_are_clips_template_features_cached_per_class_list(clip_parts):
    clip, tokenizer, _ = clip_parts
    model = make_kgcoop(clip_parts)
    features = model.handcrafted_text_features()
    torch.testing.assert_close(
        features, handcrafted_reference(clip, tokenizer, NAMES, TEMPLATES), atol=1e-5, rtol=0
    )
    assert model.handcrafted_text_features() is features  # computed once
    assert not features.requires_grad
    model.set_class_names(["pink heart", "cyan cross"])
    torch.testing.assert_close(
        model.handcrafted_text_features(),
        handcrafted_reference(clip, tokenizer, ["pink heart", "cyan cross"], TEMPLATES),
        atol=1e-5,
        rtol=0,
    )
    assert "handcrafted" not in " ".join(model.state_dict())  # never saved: recomputed from the templates


def test_the_distance_is_zero_where_the_context_spells_the_template(clip_parts):
    """Initialised from "a photo of a", the learned prompt is the hand-written one: L_kg = 0."""
    model = make_kgcoop(clip_parts, ctx_init="a photo of a")
    assert model.knowledge_guided_loss().abs() < 1e-5


def test_knowledge_guided_distance_forms():
    learned = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    handcrafted = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # class 0 agrees (cos 1), class 1 is orthogonal (cos 0, squared distance 2)
    torch.testing.assert_close(knowledge_guided_distance(learned, handcrafted), torch.tensor(0.5))
    torch.testing.assert_close(
        knowledge_guided_distance(learned, handcrafted, "squared_l2"), torch.tensor(1.0)
    )
    with pytest.raises(ValueError, match="form must be"):
        knowledge_guided_distance(learned, handcrafted, "l1")


def test_inference_is_coops(clip_parts):
    torch.manual_seed(0)
    kgcoop = make_kgcoop(clip_parts, n_ctx=4, ctx_init=None)
    coop = build(CoOpConfig, CoOpModel, clip_parts, n_ctx=4, ctx_init=None)
    coop.context.data.copy_(kgcoop.context.data)
    with torch.no_grad():
        assert torch.equal(kgcoop(pixels()).logits, coop(pixels()).logits)
    (stage,) = kgcoop.training_stages()
    assert kgcoop.set_training_stage(stage) == ["context"]


def test_defaults_are_the_papers():
    config = KgCoOpConfig(class_names=NAMES)
    assert (config.kg_weight, config.n_ctx, config.ctx_init) == (8.0, 4, "a photo of a")
    assert config.kg_templates == ["a photo of a {}."] and config.kg_distance == "cosine"
    assert KgCoOpConfig().benchmark_defaults(get_benchmark("dtd")) == {
        "kg_templates": ["a photo of a {}, a type of texture."]  # the authors' DTD template
    }
    assert KgCoOpConfig().benchmark_defaults(get_benchmark("eurosat")) == {
        "kg_templates": ["a centered satellite photo of {}."]
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kg_weight": -1.0}, "kg_weight must be at least 0"),
        ({"kg_distance": "l1"}, "kg_distance must be one of"),
        ({"kg_templates": ["no slot"]}, "must contain exactly one"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        KgCoOpConfig(class_names=NAMES, **options)


def test_adapter_round_trips_and_serves_both_pipelines(tiny_clip_folder, tmp_path):
    torch.manual_seed(0)
    model = KgCoOpModel.from_clip(tiny_clip_folder, PATTERN_NAMES, n_ctx=4, ctx_init=None, kg_weight=2.0)
    with torch.no_grad():
        model.context.normal_(std=0.5)
        expected = model.eval()(pixels()).logits
    model.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == {"context"}
    for auto_class in (AutoModel, AutoModelForZeroShotImageClassification):
        loaded = auto_class.from_pretrained(tmp_path)
        assert isinstance(loaded, KgCoOpModel) and loaded.config.kg_weight == 2.0
        with torch.no_grad():
            assert torch.equal(loaded(pixels()).logits, expected)
        torch.testing.assert_close(loaded.handcrafted_text_features(), model.handcrafted_text_features())
    assert_pipelines_score_like_the_model(model, tmp_path)


def test_registered_with_its_paper():
    info = method_info("kgcoop")
    assert info.title == "KgCoOp" and "Yao" in info.paper and "yao2023kgcoop" in info.citation


def test_kgcoop_beats_zero_shot_on_base_classes(tmp_path):
    """The learning test (tests/test_learning.py's setting): 4 vectors from "a photo of a", 4 epochs
    (a short run, about 12 s; docs/synthetic.md has the 10-epoch numbers)."""
    results = compare_on_sketches(tmp_path, "base2new", ["zeroshot", "kgcoop"], method="kgcoop", epochs=4)
    assert results["kgcoop"]["base"] >= results["zeroshot"]["base"] + 5.0, results
