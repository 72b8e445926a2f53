"""`TipAdapterConfig` and `TipAdapterFConfig`: the options of Tip-Adapter and Tip-Adapter-F, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.configuration import PromptCLIPConfig
from ...core.options import option
from ...modeling.text import fill_template
from .settings import AUTHOR_SETTINGS


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
    augment_views: int = option(10, minimum=1)
    augment_crop_scale: list[float] | None = option(above=0, maximum=1, why="areas of the image")
    init_alpha: float = option(1.17, minimum=0, why="0: zero-shot CLIP")
    init_beta: float = option(1.0, minimum=0)
    search: bool = True
    search_scale: list[float] | None = option(above=0)
    search_steps: list[int] | None = option(minimum=1)
    alpha: float | None = option(minimum=0, why="0: zero-shot CLIP")
    beta: float | None = option(minimum=0)
    validation_accuracy: float | None = option(minimum=0, maximum=100, why="a percentage")
    cache_size: int = option(0, minimum=0)

    def __post_init__(self, **kwargs):
        self.templates = list(self.templates) if self.templates else ["a photo of a {}."]
        for template in self.templates:
            fill_template(template, "x")
        self.search_scale = [float(v) for v in self.search_scale] if self.search_scale else [7.0, 3.0]
        self.search_steps = list(self.search_steps) if self.search_steps else [200, 20]
        if len(self.search_scale) != 2 or len(self.search_steps) != 2:
            raise ValueError(
                "search_scale and search_steps give (beta, alpha): two upper ends and two positive grid sizes, "
                f"got search_scale={self.search_scale} and search_steps={self.search_steps}; e.g. [7, 3] and [200, 20]."
            )
        scale = list(self.augment_crop_scale) if self.augment_crop_scale else [0.5, 1.0]
        if len(scale) != 2 or not scale[0] <= scale[1]:
            raise ValueError(
                f"augment_crop_scale must be [low, high] with 0 < low <= high <= 1, got {self.augment_crop_scale}."
            )
        self.augment_crop_scale = [float(v) for v in scale]
        super().__post_init__(**kwargs)

    @property
    def capabilities(self) -> Capabilities:
        """The cache's one-hot values vote for the training classes (fixed classes, no free texts); alpha and
        beta are searched on validation unless `search=False`."""
        return Capabilities(classes_can_change=False, classifies_texts=False, uses_validation=self.search)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The authors' templates (ImageNet's 7 CLIP-selected ones on ImageNet, else the benchmark's own) and
        their settings for the 11 CoOp datasets (`settings.py`)."""
        found = {
            "templates": list(
                benchmark.ensemble_templates if benchmark.key == "imagenet" else benchmark.templates
            )
        }
        if benchmark.key in AUTHOR_SETTINGS:
            alpha, beta, scale, _ = AUTHOR_SETTINGS[benchmark.key]
            found.update(init_alpha=alpha, init_beta=beta, search_scale=list(scale))
        return found


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

    finetune_epochs: int = option(20, minimum=1)
    finetune_lr: float = option(0.001, above=0)
    finetune_batch_size: int = option(256, minimum=1)
    finetune_weight_decay: float = option(0.01, minimum=0)
    keep_epoch: str = option("last", choices=KEEP_EPOCH)
    kept_epoch: int | None = option(minimum=0, why="an epoch index, written by the fit")

    @property
    def capabilities(self) -> Capabilities:
        """Tip-Adapter's, and choosing the kept epoch on validation reads the validation split too."""
        found = super().capabilities
        return dataclasses.replace(
            found, uses_validation=found.uses_validation or self.keep_epoch == "best_validation"
        )

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """Tip-Adapter's, and the authors' fine-tuning epochs of the benchmark."""
        found = super().benchmark_defaults(benchmark)
        if benchmark.key in AUTHOR_SETTINGS:
            found["finetune_epochs"] = AUTHOR_SETTINGS[benchmark.key][3]
        return found
