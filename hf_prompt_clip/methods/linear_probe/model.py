"""Linear probe CLIP: a logistic-regression head on frozen image features, fitted by L-BFGS.

Room: `methods/`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...modeling.fitting import FitData, top1_accuracy
from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.stages import TrainingStage
from ...modeling.text_engine import template_text_features
from ...modeling.vision import clip_vision_tower, encode_image_tokens
from .config import LinearProbeConfig
from .logistic import fit_logistic_regression, search_inverse_l2, sklearn_head, sklearn_logistic_regression


class LinearProbeModel(PromptCLIPPreTrainedModel):
    """Linear probe CLIP: `logits = W normalize(f(x)) + b` on the frozen image features `f(x)`.

    The CLIP paper's protocol (Radford et al., 2021, appendix A.3) as CoOp's `lpclip` runs it for few-shot
    learning: the image tower runs once per image (test transform, no augmentation), an L-BFGS logistic
    regression is fitted on the training features, and C is chosen on the validation features by a
    log-spaced sweep refined by a binary search (`search_inverse_l2`). `config.solver` picks the
    regression: `"torch"` (`fit_logistic_regression`: scikit-learn's objective in torch, on any device,
    equal to it within tolerance for one fit, but L-BFGS stops elsewhere, so a search can pick another C)
    or `"sklearn"` (`sklearn_logistic_regression`: scikit-learn itself, lpclip's call, so the C and the
    predictions are lpclip's). Training is one `"fit"` stage: no optimiser, no epochs.

    Trainable and saved: `head` (`K x E` weights and `K` biases). The classes are fixed: the zero-shot
    pipeline and the protocols that change classes are refused.

    Example:
        ```python
        from hf_prompt_clip import LinearProbeModel
        model = LinearProbeModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])
        model.fit(FitData(train=train_examples, validation=val_examples, collate_fn=collate_fn))
        model.config.selected_C          # the C chosen on validation
        ```
    """

    config_class = LinearProbeConfig

    def __init__(self, config: LinearProbeConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        if not config.class_names:
            raise ValueError(
                "A linear probe learns one weight vector per class, so class_names must be given."
            )
        clip_config = self.clip.config
        width = (
            clip_config.projection_dim
            if config.feature_space == "projection"
            else clip_config.vision_config.hidden_size
        )
        self.head = nn.Linear(width, len(config.class_names)).to(self.text_device)
        nn.init.zeros_(self.head.weight)  # an unfitted probe scores every class alike
        nn.init.zeros_(self.head.bias)

    def training_stages(self) -> list[TrainingStage]:
        return [TrainingStage("fit", ("head.",), kind="fit")]

    def _check_class_names(self, class_names: list[str]) -> None:
        if len(class_names) != self.head.out_features:
            raise ValueError(
                f"This linear probe learned a classifier for {self.head.out_features} classes; it cannot classify "
                f"a list of {len(class_names)} classes. Fit a probe on the new classes instead."
            )

    def _build_class_prompts(self, texts: list[str]) -> None:
        self._prompt_texts = texts  # only the zero-shot head reads them

    # ------------------------------------------------------------------ features and logits

    def frozen_image_encoder(self) -> tuple[str, Any]:
        if self.config.feature_space == "projection":
            return super().frozen_image_encoder()
        return f"pooled|{self.image_tower_digest()}", self.encode_pooled

    def encode_pooled(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The pooled CLS output `(B, W)` before `visual_projection` (the CLIP paper's ViT probe features),
        through the shared image-tower path, without autograd."""
        tower = dataclasses.replace(clip_vision_tower(self.clip), projection=nn.Identity())
        with torch.no_grad():
            return self.image_output(encode_image_tokens(tower, pixel_values).pooled)

    def probe_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """What the classifier reads: the features, L2-normalised with `normalize_features`."""
        return F.normalize(features, dim=-1) if self.config.normalize_features else features

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.logits_from_image_features(self.frozen_image_encoder()[1](pixel_values))

    def logits_from_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """`W normalize(f) + b`: `(B, E) -> (B, K)`."""
        weight = self.head.weight
        return self.head(self.probe_inputs(image_features.to(weight.device, weight.dtype)))

    def zero_shot_weight(self) -> torch.Tensor:
        """The zero-shot classifier as probe weights: `logit_scale * T`, `(K, E)` (T: the class text
        features of `templates`), so that `W normalize(f)` are zero-shot CLIP's logits."""
        self._ensure_class_prompts()
        text = self.cached_text(
            "zero_shot_text_features",
            (self.class_version, self.config.fast, tuple(self.config.templates)),
            lambda: template_text_features(
                self.clip, self.tokenizer, self._prompt_texts, self.config.templates,
                fast=self.config.fast, chunk_tokens=self.config.text_chunk_tokens,
            ),
        )  # fmt: skip
        return self.clip.logit_scale.exp().float() * text

    # ------------------------------------------------------------------ fitting

    def fit(self, data: FitData) -> dict[str, Any]:
        """Fit the head on `data.train` features; search C on `data.validation` unless `config.C` is set.

        Every image is encoded once (`FitData.image_features`, cached); each candidate C is one fit by
        `config.solver` on the same features, scored by its validation predictions (scikit-learn's
        `predict` with `solver="sklearn"`). Writes `config.selected_C` (and `validation_accuracy` when
        searched).
        """
        config = self.config
        train, train_labels = data.image_features(self, "train")
        train = self.probe_inputs(train).double()
        classes = self.head.out_features
        center = self.zero_shot_weight().double().to(train.device) if config.zero_shot_head else None
        fits: dict[float, Any] = {}

        def solve(c: float) -> Any:
            """The fit with C = c: `(weight, bias)` (torch) or a fitted `LogisticRegression` (sklearn)."""
            if c not in fits:
                if config.solver == "sklearn":
                    fits[c] = sklearn_logistic_regression(
                        train, train_labels, classes, c, max_iter=config.max_iter, tolerance=config.tolerance
                    )
                else:
                    fits[c] = fit_logistic_regression(
                        train, train_labels, classes, c, center=center, max_iter=config.max_iter,
                        tolerance=config.tolerance,
                    )  # fmt: skip
            return fits[c]

        record: dict[str, Any] = {"train_examples": len(train_labels), "solver": config.solver}
        if config.C is not None:
            chosen, history, val_accuracy = config.C, [], None
        else:
            val, val_labels = data.image_features(self, "validation")
            val = self.probe_inputs(val).double()

            def score(c: float) -> float:
                fit = solve(c)
                if config.solver == "sklearn":
                    predicted = torch.from_numpy(fit.predict(val.cpu().numpy())).to(val_labels.device)
                    return 100.0 * int((predicted == val_labels).sum()) / max(len(val_labels), 1)
                weight, bias = fit
                return top1_accuracy(val @ weight.T + bias, val_labels)

            chosen, history = search_inverse_l2(score, config.search_grid, config.search_steps)
            val_accuracy = score(chosen)
            record.update(validation_examples=len(val_labels), searched=history)
        weight, bias = sklearn_head(solve(chosen), classes) if config.solver == "sklearn" else solve(chosen)
        with torch.no_grad():
            self.head.weight.copy_(weight.to(self.head.weight))
            self.head.bias.copy_(bias.to(self.head.bias))
        config.selected_C = float(chosen)
        config.validation_accuracy = val_accuracy
        record.update(C=float(chosen), validation_accuracy=val_accuracy)
        return record
