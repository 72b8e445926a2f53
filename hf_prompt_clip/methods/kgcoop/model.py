"""KgCoOp: CoOp whose class text features are kept near those of the hand-crafted prompts.

Room: `methods/`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.prompts import ContextPrompts, TemplatePrompts
from ...modeling.text import PromptLayout
from .config import KgCoOpConfig


def knowledge_guided_distance(
    learned: torch.Tensor, handcrafted: torch.Tensor, form: str = "cosine"
) -> torch.Tensor:
    """KgCoOp's L_kg between learned and hand-crafted class text features, averaged over the classes.

    Both are L2-normalised first (in float32). `"cosine"`: `1 - mean_k cos(w_k, w_k^clip)` (the authors'
    code); `"squared_l2"`: `mean_k ||w_k - w_k^clip||^2` (the paper's equation), which is twice the cosine
    form for unit vectors.

    Args:
        learned: `(K, E)` text features of the learned prompts (with autograd).
        handcrafted: `(K, E)` text features of the hand-crafted prompts (frozen).
        form: `"cosine"` or `"squared_l2"`.

    Returns:
        A scalar, 0 when the two sets agree.

    Example:
        >>> w = torch.eye(2)
        >>> knowledge_guided_distance(w, w), knowledge_guided_distance(w, w.flip(0), "squared_l2")
        (tensor(0.), tensor(2.))
    """
    learned = F.normalize(learned.float(), dim=-1)
    handcrafted = F.normalize(handcrafted.float(), dim=-1).to(learned.device)
    if form == "cosine":
        return 1.0 - (learned * handcrafted).sum(dim=-1).mean()
    if form == "squared_l2":
        return (learned - handcrafted).pow(2).sum(dim=-1).mean()
    raise ValueError(f"form must be 'cosine' or 'squared_l2', got {form!r}.")


class KgCoOpModel(PromptCLIPPreTrainedModel):
    """Knowledge-guided Context Optimization: CoOp's prompts `[SOS] v_1 .. v_M name . [EOS]`, trained with

    `loss = cross-entropy(logits) + kg_weight * L_kg(w, w^clip)`,

    where `w` are the class text features of the learned prompts and `w^clip` those of the hand-crafted
    templates (`kg_templates`) by the frozen CLIP (`knowledge_guided_distance`). Inference is CoOp's.

    The hand-crafted features are computed once per class list (without autograd, when a loss first
    needs them) and cached; they are never saved: they follow from the templates, the class names and
    the frozen CLIP, so a loaded or re-classed model recomputes them. The adapter file holds `context`
    only, as CoOp's.

    The learned prompts are the shared `ContextPrompts` component (`modeling/prompts.py`, as CoOp's), held as
    `prompts`; the hand-crafted ones the shared `TemplatePrompts` (zero-shot CLIP's), held as
    `handcrafted_prompts`.

    Example:
        ```python
        from hf_prompt_clip import KgCoOpModel
        model = KgCoOpModel.from_clip("openai/clip-vit-base-patch16", base_class_names,
                                      kg_templates=["a photo of a {}."])  # 4 vectors from "a photo of a"
        loss = model(pixel_values, labels=labels).loss     # cross-entropy + 8.0 * L_kg
        ```
    """

    config_class = KgCoOpConfig

    def __init__(self, config: KgCoOpConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        self.prompts = ContextPrompts(config, tokenizer, class_specific=config.class_specific_context)
        self.context = self.prompts.new_context(self.clip)
        self.handcrafted_prompts = TemplatePrompts("handcrafted_text_features")

    def _check_class_names(self, class_names: list[str]) -> None:
        self.prompts.check_class_names(class_names, self.context, "KgCoOp model")

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.prompts.build(self.clip, self.tokenizer, texts)
        self.handcrafted_prompts.build(texts)

    @property
    def prompt_layout(self) -> PromptLayout:
        """Token ids, context slots and EOS positions of the current class prompts."""
        self._ensure_class_prompts()
        return self.prompts.layout

    def encode_prompts(self, context: torch.Tensor) -> torch.Tensor:
        """Text features of the class prompts with `context` spliced in (`(M, D)` or class-specific
        `(K, M, D)` -> `(K, E)`), as CoOp's."""
        self._ensure_class_prompts()
        return self.prompts.encode(self.clip, context)

    def _compute_class_text_features(self) -> torch.Tensor:
        return self.encode_prompts(self.context)

    def class_text_features(self) -> torch.Tensor:
        return self.context_text_features(
            "class_text_features", self.context, self._compute_class_text_features
        )

    def handcrafted_text_features(self) -> torch.Tensor:
        """Normalised text features `(K, E)` of `kg_templates` filled with the class names (frozen, cached
        per class list)."""
        return self.handcrafted_prompts.text_features(self, self.config.kg_templates)

    def knowledge_guided_loss(self, text_features: torch.Tensor | None = None) -> torch.Tensor:
        """L_kg of the current context (or of the given learned class text features `(K, E)`)."""
        if text_features is None:
            text_features = self.class_text_features()
        return knowledge_guided_distance(
            text_features, self.handcrafted_text_features(), self.config.kg_distance
        )

    def logits_and_loss(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """CoOp's logits; with labels, cross-entropy plus `kg_weight * L_kg` (CoOp's loss for weight 0)."""
        return self.logits_and_loss_from_image_features(self.encode_images(pixel_values), labels)

    def logits_and_loss_from_image_features(
        self, image_features: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`logits_and_loss` from frozen image features `(B, E)` (cached views): CoOp's logits and, with
        labels, cross-entropy plus `kg_weight * L_kg`; the pixel path computes exactly this."""
        if labels is None or self.config.kg_weight == 0:  # CoOp's logits and loss
            return super().logits_and_loss_from_image_features(image_features, labels)
        text_features = self.class_text_features()  # once: for the logits and for L_kg
        logits = self.similarity_logits(image_features, text_features)
        loss = self.classification_loss(logits, labels)
        return logits, loss + self.config.kg_weight * self.knowledge_guided_loss(text_features)
