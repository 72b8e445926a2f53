"""One contract for a method: generic code asks `config.capabilities` (or `model.capabilities`), a record
computed from a config instance, instead of classmethods over raw option dicts and their instance twins."""

import pytest
import torch

from hf_prompt_clip import CoOpConfig, CoOpModel
from hf_prompt_clip.core.capabilities import Capabilities
from hf_prompt_clip.core.registry import METHODS, method_capabilities, method_config
from hf_prompt_clip.modeling.model import PromptCLIPPreTrainedModel

NAMES = ["red circle", "blue square"]


def test_the_old_predicates_and_their_twins_are_gone():
    for name in (
        "can_change_classes",
        "learns_parameters",
        "uses_validation",
        "trains_image_tower",
        "image_feature_training_problem",
        "benchmark_options",
        "classes_can_change",
        "image_tower_trains",
        "classifies_free_texts",
    ):
        assert not hasattr(PromptCLIPPreTrainedModel, name), name
        for config_class, model_class in METHODS.values():
            assert not hasattr(model_class, name) and not hasattr(config_class, name), (model_class, name)


@pytest.mark.parametrize("method", list(METHODS))
def test_a_built_model_states_what_its_config_states(method, clip_parts):
    """The config's facts (asked before anything is built) hold for the built model: a model whose adapter
    holds image-tower weights trains its tower; a model serving free texts classifies another class list."""
    clip, tokenizer, processor = clip_parts
    config_class, model_class = METHODS[method]
    options = {"super_category": "shape"} if "super_category" in config_class.__dataclass_fields__ else {}
    before = method_capabilities(method, options)
    config = config_class(clip_config=clip.config.to_dict(), class_names=NAMES, **options)
    model = model_class(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)
    assert model.capabilities == before
    holds_tower = any(name.startswith("vision") for name in model.adapter_clip_modules)
    assert before.trains_image_tower or not holds_tower
    if before.trains_image_tower:
        assert before.cached_features_problem is not None
    if before.free_texts:
        model.set_class_names(["green star", "yellow ring", "purple dot"])  # any other list works
    elif not before.classes_can_change:
        with pytest.raises(ValueError):
            model.set_class_names(["green star", "yellow ring", "purple dot"])


def test_capabilities_follow_the_config_fields():
    assert method_capabilities("coop").classes_can_change
    assert not method_capabilities("coop", {"class_specific_context": True}).classes_can_change
    assert not method_capabilities("zeroshot").learns_parameters
    assert method_capabilities("plot").cached_features_problem is not None
    assert not method_capabilities("plot").trains_image_tower
    assert method_capabilities("plotpp").trains_image_tower
    assert method_config("linear_probe").capabilities.uses_validation
    assert not method_config("linear_probe", {"C": 1.0}).capabilities.uses_validation
    assert Capabilities(classes_can_change=False).pipelines == ("image-classification",)
    assert not Capabilities(classes_can_change=False).free_texts


def test_a_training_loss_without_a_features_variant_cannot_train_from_cached_features(clip_parts):
    """The model class adds what its config cannot know: a loss override without the features variant."""

    class ExtraLoss(CoOpModel):
        def logits_and_loss(self, pixel_values, labels=None):
            logits, loss = super().logits_and_loss(pixel_values, labels)
            return logits, None if loss is None else loss + self.context.square().mean()

    config = CoOpConfig(n_ctx=2)
    assert CoOpModel.capabilities_of(config).cached_features_problem is None
    problem = ExtraLoss.capabilities_of(config).cached_features_problem
    assert "ExtraLoss.logits_and_loss" in problem and "logits_and_loss_from_image_features" in problem
    clip, tokenizer, processor = clip_parts
    model = ExtraLoss(
        CoOpConfig(n_ctx=2, clip_config=clip.config.to_dict(), class_names=NAMES),
        clip_model=clip,
        tokenizer=tokenizer,
        image_processor=processor,
    )
    with pytest.raises(Exception, match="cannot train from cached image features"):
        model.training_image_encoder()
    assert torch.isfinite(model(torch.zeros(1, 3, 32, 32), labels=torch.tensor([0])).loss)
