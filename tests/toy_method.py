"""A toy method, "feature_shift", defined entirely in the tests: the proof that a method is one folder.

It is laid out as a method folder would be (`hf_prompt_clip/methods/<name>/{config,model,__init__}.py`, here
one module) and uses only the public hooks the real methods use: a config with one `option(...)`, its
`capabilities` and `benchmark_defaults`, a model holding the shared `TemplatePrompts` component and
overriding `_build_class_prompts`, `class_text_features`, `training_stages`, `logits_from_image_features` and
`zero_shot_logits`. Nothing in generic code names it: `register()` makes it a method like any other
(`tests/test_toy_method.py` trains, evaluates, saves and reports it), `unregister()` removes it again.

The method: a learned vector `s` `(E,)`, zero at the start, is added to the L2-normalised image feature, which
is then classified against zero-shot CLIP's hand-written template text features:
`logits = logit_scale * cos(normalize(f) + s, t_k)`. At `s = 0` it is zero-shot CLIP exactly.
docs/adding-a-method.md walks through it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn

from hf_prompt_clip.core.capabilities import Capabilities
from hf_prompt_clip.core.options import option
from hf_prompt_clip.core.registry import MethodInfo, register_method, unregister_method
from hf_prompt_clip.modeling import (
    PromptCLIPPreTrainedModel,
    TemplatePromptConfig,
    TemplatePrompts,
    TrainingStage,
)
from hf_prompt_clip.modeling.prompts import free_text_features

#: The method's key: `--method feature_shift`, results, reports, adapter folders.
NAME = "feature_shift"

# ------------------------------------------------------------------ config (a method folder's config.py)


@strict
class FeatureShiftConfig(TemplatePromptConfig):
    r"""Feature shift: a learned vector added to the normalised image feature; zero-shot CLIP's text side.

    The template options (`templates`, `ensemble`) are those of `TemplatePromptConfig`.

    Args:
        shift_init_std (`float`, *optional*, defaults to 0.0):
            Standard deviation of the shift's initialisation, N(0, std^2) per entry; 0 starts at zero, where
            the model is zero-shot CLIP.
    """

    model_type = "prompt_clip_feature_shift"

    shift_init_std: float = option(
        0.0, minimum=0, why="the standard deviation of the shift's initialisation; 0 starts at zero-shot CLIP"
    )

    @property
    def capabilities(self) -> Capabilities:
        """The shift trains; it is the same for every class, so any class list can be classified."""
        return Capabilities()

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The benchmark's own hand-written template(s), or its reference ensemble with `ensemble=True`."""
        return {"templates": self.benchmark_templates(benchmark)}


# ------------------------------------------------------------------ model (a method folder's model.py)


class FeatureShiftModel(PromptCLIPPreTrainedModel):
    """`logits = logit_scale * cos(normalize(f) + shift, t_k)`: `f` the frozen image feature, `t_k` zero-shot
    CLIP's template text feature of class k (cached: nothing on the text side trains).

    Trainable: `shift`, `(E,)` (16 values on the tiny test CLIP, 512 on ViT-B/16).

    Example:
        ```python
        model = FeatureShiftModel.from_clip(TINY_CLIP_ID, ["red star", "blue circle"])
        loss = model(pixel_values, labels=labels).loss     # only model.shift trains
        ```
    """

    config_class = FeatureShiftConfig

    def __init__(self, config: FeatureShiftConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        embed_dim = self.clip.config.projection_dim
        device = self.clip.visual_projection.weight.device
        self.shift = nn.Parameter((torch.randn(embed_dim) * config.shift_init_std).to(device))
        self.template_prompts = TemplatePrompts()

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.template_prompts.build(texts)  # tokenised when the features are computed, cached per class list

    def class_text_features(self) -> torch.Tensor:
        """Zero-shot CLIP's text features `(K, E)` of `templates` (frozen, cached per class list)."""
        return self.template_prompts.text_features(self, self.config.templates)

    def training_stages(self) -> list[TrainingStage]:
        return self.stages_from_config({"shift": ("shift",)})

    def shifted_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """`normalize(f) + shift`, `(B, E)` float32, from projected image features `(B, E)`."""
        return F.normalize(image_features.float(), dim=-1) + self.shift

    def logits_from_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.similarity_logits(self.shifted_image_features(image_features), self.class_text_features())

    def zero_shot_logits(self, pixel_values, input_ids, attention_mask=None):
        """The shifted image features against free texts taken as whole prompts, as zero-shot CLIP takes them."""
        image_features = self.shifted_image_features(self.encode_images(pixel_values))
        return self.similarity_logits(
            image_features, free_text_features(self.clip, input_ids, attention_mask)
        )


# ------------------------------------------------------------------ registration (a method folder's __init__.py)

INFO = MethodInfo(
    "Feature shift",
    "a toy of hf_prompt_clip's tests",
    "Feature shift learns one vector added to the normalised image feature; the classes are zero-shot "
    "CLIP's hand-written prompts.",
    kind="feature adapter for CLIP",
)


def register() -> None:
    """Register the toy method under `NAME` (a real method's `__init__.py` does this on import).

    Example:
        >>> register(); "feature_shift" in METHODS
        True
    """
    register_method(NAME, FeatureShiftConfig, FeatureShiftModel, INFO)


def unregister() -> None:
    """Remove the toy method from the registry and the Auto classes (`unregister_method`)."""
    unregister_method(NAME)
