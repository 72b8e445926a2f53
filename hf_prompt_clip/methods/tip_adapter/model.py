"""Tip-Adapter and Tip-Adapter-F: zero-shot CLIP plus a key-value cache of few-shot training features.

Room: `methods/`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...modeling.fitting import FitData, top1_accuracy
from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.stages import TrainingStage
from ...modeling.text_engine import template_text_features
from .cache_model import search_alpha_beta, search_grid, tip_adapter_logits
from .config import TipAdapterConfig, TipAdapterFConfig


class TipAdapterModel(PromptCLIPPreTrainedModel):
    """Tip-Adapter (Zhang et al., ECCV 2022): `logits = zero_shot + alpha * exp(-beta (1 - f K^T)) V`.

    The cache holds one key per few-shot training image, its image feature averaged over
    `augment_views` augmented views and L2-normalised (`K`, `N x E`), and its one-hot label (`V`,
    `N x C`, stored as the labels `(N,)`). `f` is the test image's normalised feature and the zero-shot
    logits are CLIP's with `templates`. Training is one `"fit"` stage: build the cache from the augmented
    views (each encoded once, through the shared feature cache), then search alpha and beta on the
    validation features as the authors do (`search_alpha_beta`). Nothing is trained by gradient.

    Saved: `cache_keys` and `cache_labels` (the adapter grows with the training set: N x E floats); alpha
    and beta live in the config. The classes are fixed (the cache's values are per class).

    Example:
        ```python
        from hf_prompt_clip import TipAdapterModel
        model = TipAdapterModel.from_clip("openai/clip-vit-base-patch16", names)
        model.fit(FitData(train=..., train_views=..., validation=..., collate_fn=collate_fn))
        model.config.alpha, model.config.beta       # chosen on validation
        ```
    """

    config_class = TipAdapterConfig

    def __init__(self, config: TipAdapterConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        if not config.class_names:
            raise ValueError(
                "Tip-Adapter's cache votes for its training classes, so class_names must be given."
            )
        self._set_cache(
            torch.zeros(config.cache_size, self.clip.config.projection_dim),
            torch.zeros(config.cache_size, dtype=torch.long),
        )

    def _set_cache(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Replace the cache with `keys` `(N, E)` and `labels` `(N,)` (sizes may change: a fit sets N)."""
        device = self.text_device
        self.cache_keys = nn.Parameter(keys.detach().float().to(device).clone(), requires_grad=False)
        self.register_buffer("cache_labels", labels.detach().long().to(device).clone())
        self.config.cache_size = int(keys.shape[0])

    def _prepare_for_adapter(self, state_dict: dict[str, torch.Tensor]) -> None:
        saved = state_dict.get("cache_keys")
        if saved is not None and self.config.cache_size == 0 and saved.shape[0] > 0:  # an unfitted model
            self._set_cache(torch.zeros_like(saved), torch.zeros(saved.shape[0], dtype=torch.long))

    def training_stages(self) -> list[TrainingStage]:
        return [TrainingStage("fit", ("cache_keys",), kind="fit")]

    def training_crop_scale(self, benchmark_scale: tuple[float, float]) -> tuple[float, float]:
        return tuple(self.config.augment_crop_scale)

    def _check_class_names(self, class_names: list[str]) -> None:
        if len(class_names) != len(self.config.class_names or class_names):
            raise ValueError(
                f"This Tip-Adapter caches features of {len(self.config.class_names)} classes; it cannot classify a "
                f"list of {len(class_names)} classes. Build a cache of the new classes instead."
            )

    def _build_class_prompts(self, texts: list[str]) -> None:
        self._prompt_texts = texts

    # ------------------------------------------------------------------ logits

    def class_text_features(self) -> torch.Tensor:
        """The zero-shot classifier's text features `(C, E)` (`templates`), computed once per class list."""
        self._ensure_class_prompts()
        return self.cached_text(
            "class_text_features",
            (self.class_version, self.config.fast, tuple(self.config.templates)),
            lambda: template_text_features(
                self.clip, self.tokenizer, self._prompt_texts, self.config.templates,
                fast=self.config.fast, chunk_tokens=self.config.text_chunk_tokens,
            ),
        )  # fmt: skip

    @property
    def cache_values(self) -> torch.Tensor:
        """The cache's values `V` `(N, C)`: the one-hot labels of the keys."""
        return F.one_hot(self.cache_labels, len(self.config.class_names)).float()

    @property
    def alpha(self) -> float:
        return self.config.init_alpha if self.config.alpha is None else self.config.alpha

    @property
    def beta(self) -> float:
        return self.config.init_beta if self.config.beta is None else self.config.beta

    def zero_shot_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Zero-shot CLIP's logits `(B, C)` from normalised image features `(B, E)`."""
        with torch.no_grad():
            text = self.class_text_features()
        return self.clip.logit_scale.exp().float() * features @ text.to(features).T

    def logits_from_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        features = F.normalize(image_features.float(), dim=-1)
        return tip_adapter_logits(
            self.zero_shot_from_features(features),
            features,
            self.cache_keys,
            self.cache_values,
            self.alpha,
            self.beta,
        )

    # ------------------------------------------------------------------ fitting

    def fit(self, data: FitData) -> dict[str, Any]:
        """Build the cache from `augment_views` augmented views of every training image (keys: their mean
        feature, L2-normalised), let a subclass refine it (`_refine_cache`), then search alpha and beta on
        the validation features unless `search=False`. Writes `config.alpha`, `beta`, `validation_accuracy`."""
        config = self.config
        views, labels = data.image_features(self, "train_views", views=range(config.augment_views))
        self._set_cache(F.normalize(views.mean(dim=0), dim=-1), labels)  # the authors average, then normalise
        record: dict[str, Any] = {"cache_size": config.cache_size, "views": config.augment_views}
        record.update(self._refine_cache(F.normalize(views, dim=-1), labels, data))
        if config.search:
            val, val_labels = data.image_features(self, "validation")
            val = F.normalize(val.float(), dim=-1)
            with torch.no_grad():
                beta, alpha, accuracy = search_alpha_beta(
                    self.zero_shot_from_features(val),
                    val @ self.cache_keys.detach().T,
                    self.cache_values,
                    val_labels,
                    search_grid(config.search_scale[0], config.search_steps[0]),
                    search_grid(config.search_scale[1], config.search_steps[1]),
                )
            config.alpha, config.beta, config.validation_accuracy = alpha, beta, accuracy
            record.update(
                alpha=alpha, beta=beta, validation_accuracy=accuracy, validation_examples=len(val_labels)
            )
        return record

    def _refine_cache(self, views: torch.Tensor, labels: torch.Tensor, data: FitData) -> dict[str, Any]:
        """Hook between building the cache and the search (Tip-Adapter-F fine-tunes the keys); returns what
        to record. `views`: `(V, N, E)` normalised features of the augmented views."""
        return {}


class TipAdapterFModel(TipAdapterModel):
    """Tip-Adapter-F: Tip-Adapter whose cache keys are fine-tuned; values, text features and CLIP stay frozen.

    After the cache is built, the keys train for `finetune_epochs` with the cross-entropy of Tip-Adapter's
    logits at `init_alpha` and `init_beta`: AdamW (lr `finetune_lr`, eps 1e-4, weight decay
    `finetune_weight_decay`), a cosine schedule over all steps, batches of `finetune_batch_size` training
    features in a seeded shuffled order; then alpha and beta are searched as for Tip-Adapter. Epoch `e`
    reads augmented view `e mod augment_views` of every image from the feature cache (the views the keys
    were built from), so the image tower never runs during fine-tuning; the authors draw fresh crops every
    epoch instead. The keys are not re-normalised after training (as in the authors' code). The last epoch's
    keys are kept, or with `keep_epoch="best_validation"` those of the epoch whose logits at `init_alpha`,
    `init_beta` score best on the validation features (the authors pick that epoch on the test set).
    """

    config_class = TipAdapterFConfig

    def _epoch_scorer(self, data: FitData) -> Any:
        """`keys -> validation accuracy (percent)` of Tip-Adapter's logits at `init_alpha`, `init_beta`
        (`keep_epoch="best_validation"`), or `None` (`"last"`: nothing to score)."""
        if self.config.keep_epoch != "best_validation":
            return None
        val, val_labels = data.image_features(self, "validation")
        val = F.normalize(val.float(), dim=-1)
        with torch.no_grad():
            zero_shot = self.zero_shot_from_features(val)
        values = self.cache_values

        def score(keys: torch.Tensor) -> float:
            with torch.no_grad():
                logits = tip_adapter_logits(
                    zero_shot, val, keys.detach(), values, self.config.init_alpha, self.config.init_beta
                )
            return top1_accuracy(logits, val_labels)

        return score

    def _refine_cache(self, views: torch.Tensor, labels: torch.Tensor, data: FitData) -> dict[str, Any]:
        config = self.config
        count = views.shape[1]
        keys = self.cache_keys
        keys.requires_grad_(True)
        values = self.cache_values
        with torch.no_grad():
            text = self.class_text_features().to(views)
        scale = self.clip.logit_scale.exp().float().detach()
        optimizer = torch.optim.AdamW(
            [keys], lr=config.finetune_lr, eps=1e-4, weight_decay=config.finetune_weight_decay
        )
        steps_per_epoch = math.ceil(count / config.finetune_batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, config.finetune_epochs * steps_per_epoch
        )
        generator = torch.Generator().manual_seed(data.seed)
        losses = []
        score = self._epoch_scorer(data)
        accuracies: list[float] = []
        best_keys = None
        with torch.enable_grad():
            for epoch in range(config.finetune_epochs):
                features = views[epoch % views.shape[0]]
                order = torch.randperm(count, generator=generator).to(features.device)
                total = 0.0
                for start in range(0, count, config.finetune_batch_size):
                    rows = order[start : start + config.finetune_batch_size]
                    batch = features[rows]
                    logits = tip_adapter_logits(
                        scale * batch @ text.T, batch, keys, values, config.init_alpha, config.init_beta
                    )
                    loss = F.cross_entropy(logits, labels[rows])
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"Tip-Adapter-F's fine-tuning loss became {loss.item()} in epoch {epoch} (lr "
                            f"{schedule.get_last_lr()[0]:.3g}); lower finetune_lr or init_beta and fit again."
                        )
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    total += loss.item() * len(rows)
                losses.append(total / count)
                if score is not None:
                    accuracies.append(score(keys))
                    if accuracies[-1] > max(accuracies[:-1], default=-1.0):  # the first best epoch wins
                        best_keys = keys.detach().clone()
        keys.requires_grad_(False)
        record = {"finetune_epochs": config.finetune_epochs, "first_loss": losses[0], "last_loss": losses[-1]}
        config.kept_epoch = config.finetune_epochs - 1
        if best_keys is not None:
            config.kept_epoch = accuracies.index(max(accuracies))
            with torch.no_grad():
                keys.copy_(best_keys)
            record["epoch_validation_accuracy"] = accuracies
        record["kept_epoch"] = config.kept_epoch
        return record
