from __future__ import annotations

from typing import ClassVar

from huggingface_hub.dataclasses import strict

from ...core.configuration import PromptCLIPConfig
from ...core.text import fill_template


@strict
class TipAdapterConfig(PromptCLIPConfig):
    r"""Tip-Adapter (Zhang et al., ECCV 2022): a key-value cache of the few-shot training features added to
    zero-shot CLIP, `logits = zero_shot + alpha * exp(-beta (1 - f K^T)) V`. Nothing is trained by gradient.

    Defaults are the authors' ImageNet settings (`configs/imagenet.yaml`); through the runner the 11 CoOp
    datasets take their own (`methods/tip_adapter/settings.py`).

    Args:
        templates (`list[str]`, *optional*):
            Templates of the zero-shot classifier (default `["a photo of a {}."]`; the runner gives the
            benchmark's own, and ImageNet's 7 CLIP-selected templates on ImageNet, as the authors do).
        augment_views (`int`, *optional*, defaults to 10):
            Augmented views of each training image averaged into its key (the authors' `augment_epoch`).
        augment_crop_scale (`list[float]`, *optional*, defaults to `[0.5, 1.0]`):
            Area range of the random resized crop of those views: the authors' training transform (CoOp's
            prompt learners crop (0.08, 1) on the real benchmarks); horizontal flips as everywhere.
        init_alpha (`float`, *optional*, defaults to 1.17), init_beta (`float`, *optional*, defaults to 1.0):
            alpha and beta without a search, and while Tip-Adapter-F fine-tunes its keys.
        search (`bool`, *optional*, defaults to `True`):
            Search alpha and beta on the validation split (the authors' `search_hp`).
        search_scale (`list[float]`, *optional*, defaults to `[7.0, 3.0]`):
            Upper ends of the beta and alpha grids (`search_grid`: from 0.1 up to, not including, them).
        search_steps (`list[int]`, *optional*, defaults to `[200, 20]`):
            Grid sizes of beta and alpha.
        alpha (`float`, *optional*), beta (`float`, *optional*):
            What the logits use; written by the search (`None`: `init_alpha`, `init_beta`). Set `alpha=0` for
            zero-shot CLIP.
        validation_accuracy (`float`, *optional*):
            Written by the search: the validation accuracy of the chosen pair, in percent.
        cache_size (`int`, *optional*, defaults to 0):
            Written by the fit: the number N of cached training features (recorded for loading).
    """

    model_type = "prompt_clip_tip_adapter"
    recorded_fields: ClassVar[tuple[str, ...]] = ("cache_size",)

    templates: list[str] | None = None
    augment_views: int = 10
    augment_crop_scale: list[float] | None = None
    init_alpha: float = 1.17
    init_beta: float = 1.0
    search: bool = True
    search_scale: list[float] | None = None
    search_steps: list[int] | None = None
    alpha: float | None = None
    beta: float | None = None
    validation_accuracy: float | None = None
    cache_size: int = 0

    def __post_init__(self, **kwargs):
        self.templates = list(self.templates) if self.templates else ["a photo of a {}."]
        for template in self.templates:
            fill_template(template, "x")
        self.search_scale = [float(v) for v in self.search_scale] if self.search_scale else [7.0, 3.0]
        self.search_steps = list(self.search_steps) if self.search_steps else [200, 20]
        if len(self.search_scale) != 2 or len(self.search_steps) != 2 or min(self.search_steps) < 1:
            raise ValueError(
                "search_scale and search_steps give (beta, alpha): two upper ends and two positive grid sizes, "
                f"got search_scale={self.search_scale} and search_steps={self.search_steps}; e.g. [7, 3] and [200, 20]."
            )
        scale = list(self.augment_crop_scale) if self.augment_crop_scale else [0.5, 1.0]
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(
                f"augment_crop_scale must be [low, high] with 0 < low <= high <= 1, got {self.augment_crop_scale}."
            )
        self.augment_crop_scale = [float(v) for v in scale]
        if self.cache_size < 0:
            raise ValueError(f"cache_size cannot be negative, got {self.cache_size}.")
        super().__post_init__(**kwargs)


#: Which fine-tuned keys Tip-Adapter-F keeps (`TipAdapterFConfig.keep_epoch`).
KEEP_EPOCH: tuple[str, ...] = ("last", "best_validation")


@strict
class TipAdapterFConfig(TipAdapterConfig):
    r"""Tip-Adapter-F: Tip-Adapter whose cache keys are fine-tuned (the values and CLIP stay frozen), with
    the authors' recipe: AdamW (eps 1e-4), cosine schedule per step, then alpha and beta searched.

    Args:
        finetune_epochs (`int`, *optional*, defaults to 20):
            Epochs of fine-tuning (the authors' `train_epoch`; 100 on EuroSAT).
        finetune_lr (`float`, *optional*, defaults to 0.001):
            AdamW learning rate.
        finetune_batch_size (`int`, *optional*, defaults to 256):
            Training features per step.
        finetune_weight_decay (`float`, *optional*, defaults to 0.01):
            AdamW weight decay (torch's default, which the authors keep).
        keep_epoch (`str`, *optional*, defaults to `"last"`):
            Which fine-tuned keys to keep: `"last"`, the last epoch's; `"best_validation"`, those of the epoch
            whose Tip-Adapter logits (at `init_alpha`, `init_beta`) score best on the validation features (the
            first such epoch on a tie). The authors keep the epoch with the best *test* accuracy.
        kept_epoch (`int`, *optional*):
            Written by the fit: the epoch (0-based) whose keys were kept.
        (and every option of `TipAdapterConfig`)
    """

    model_type = "prompt_clip_tip_adapter_f"

    finetune_epochs: int = 20
    finetune_lr: float = 0.001
    finetune_batch_size: int = 256
    finetune_weight_decay: float = 0.01
    keep_epoch: str = "last"
    kept_epoch: int | None = None

    def __post_init__(self, **kwargs):
        if self.finetune_lr <= 0 or self.finetune_weight_decay < 0:
            raise ValueError(
                f"finetune_lr must be positive and finetune_weight_decay not negative, got {self.finetune_lr} and "
                f"{self.finetune_weight_decay}."
            )
        if self.keep_epoch not in KEEP_EPOCH:
            raise ValueError(
                f"keep_epoch must be one of {KEEP_EPOCH}, got {self.keep_epoch!r}: 'last' keeps the last "
                "fine-tuning epoch's keys, 'best_validation' those of the epoch with the best validation accuracy."
            )
        super().__post_init__(**kwargs)
