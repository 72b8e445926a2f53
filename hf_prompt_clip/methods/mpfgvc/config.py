"""`MPFGVCConfig`: the options of MP-FGVC, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.configuration import PromptCLIPConfig
from ...core.options import option

#: Dtypes the fine-tuned image tower can be saved in.
SAVE_DTYPES: tuple[str, ...] = ("float32", "bfloat16")


@strict
class MPFGVCConfig(PromptCLIPConfig):
    r"""MP-FGVC (Jiang et al., AAAI 2024): multimodal prompting for fine-grained classification.

    No public code exists; every choice the paper leaves open is a field here, with the default
    and the reason in docs/mpfgvc.md.

    Args:
        super_category (`str`):
            The word every subcategory prompt ends with (`"bird"` for CUB-200); the subcategory's
            own name never appears in its prompt. Required with `class_names`.
        n_ctx (`int`, *optional*, defaults to 16):
            Learned tokens J per subcategory in its prompt `[X_1 .. X_J] <super_category>.` (DaTP).
        ctx_init_std (`float`, *optional*, defaults to 0.02):
            Standard deviation of the DaTP tokens' initialisation N(0, std^2).
        prompt_suffix (`str`, *optional*, defaults to `"."`):
            Text after the super-category word, as CoOp puts "." after the class name.
        ssvp_top_k (`int`, *optional*, defaults to 12):
            SsVP: the last layer of the image tower sees the CLS token and the `ssvp_top_k`
            patches with the largest CLS attention (summed over heads) in the penultimate layer
            (12 of ViT-B/16's 196 patches). `None`: every patch (no selection).
        ssvp_fraction (`float`, *optional*):
            The number of kept patches as a fraction of all patches (rounded, at least 1), instead of
            `ssvp_top_k` (giving both is refused; given alone, it replaces the default count).
        fusion_expansion (`int`, *optional*, defaults to 4):
            Hidden width of VLFM's translation layer, in multiples of the feature width.
        fusion_residual (`bool`, *optional*, defaults to `False`):
            Add the fused feature to the translation layer's output (the paper draws none).
        fusion_shared_projections (`bool`, *optional*, defaults to `False`):
            Use the visual key/value projections for the text features too (separate by default).
        fusion_normalize_inputs (`bool`, *optional*, defaults to `True`):
            L2-normalise the image and text features before VLFM (CLIP compares them by cosine).
        contrastive_temperature (`float`, *optional*, defaults to 0.07):
            tau of stage 1's image-to-text contrastive loss against the DaTP text features.
        visual_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of stage 1's cross-entropy on the linear head over the image feature.
        contrastive_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of stage 1's image-to-text contrastive loss.
        image_tower_lr_scale (`float`, *optional*, defaults to 0.01):
            The image tower's learning rate in stage `visual`, as a fraction of the stage's (the
            prompt tokens and head learn from scratch; the tower is fine-tuned from pretrained weights).
        image_tower (`str`, *optional*):
            Hub id or folder of a transformers ViT to use as the image tower (e.g. the paper's
            `"google/vit-base-patch16-224-in21k"`), with a learned projection into CLIP's text
            space. `None`: CLIP's own image tower.
        image_tower_revision (`str`, *optional*):
            Revision of `image_tower` on the Hub.
        image_tower_config (`dict`, *optional*):
            The ViT's config, recorded when the model is built (loading needs no network: the
            fine-tuned weights are in the adapter).
        save_dtype (`str`, *optional*, defaults to `"float32"`):
            Dtype of the fine-tuned image tower in saved adapters: `"bfloat16"` halves the file;
            loading casts back to the model's dtype (checkpoints always keep full precision).
    """

    model_type = "prompt_clip_mpfgvc"
    recorded_fields: ClassVar[tuple[str, ...]] = ("image_tower_config",)

    super_category: str | None = None
    n_ctx: int = option(16, minimum=1)
    ctx_init_std: float = option(0.02, above=0)
    prompt_suffix: str = "."
    ssvp_top_k: int | None = option(12, minimum=1, why="None: every patch, no selection")
    ssvp_fraction: float | None = option(above=0, maximum=1)
    fusion_expansion: int = option(4, minimum=1)
    fusion_residual: bool = False
    fusion_shared_projections: bool = False
    fusion_normalize_inputs: bool = True
    contrastive_temperature: float = option(0.07, above=0)
    visual_loss_weight: float = option(1.0, minimum=0)
    contrastive_loss_weight: float = option(1.0, minimum=0)
    image_tower_lr_scale: float = option(0.01, above=0)
    image_tower: str | None = None
    image_tower_revision: str | None = None
    image_tower_config: dict | None = None
    save_dtype: str = option("float32", choices=SAVE_DTYPES)

    def __post_init__(self, **kwargs):
        if self.ssvp_fraction is not None and self.ssvp_top_k is not None:
            if self.given("ssvp_top_k") and not self.read_from_saved():
                raise ValueError(
                    f"ssvp_top_k={self.ssvp_top_k} and ssvp_fraction={self.ssvp_fraction} both set how many patches "
                    "SsVP keeps; keep one: ssvp_top_k alone for a fixed count (12 of ViT-B/16's 196 patches in "
                    "the paper), or ssvp_fraction alone for a share of the patches."
                )
            # the fraction alone was given (or an adapter saved before the pair was refused, whose fraction
            # decided): it replaces the default count, so the saved config says what decides
            self.ssvp_top_k = None
        if self.class_names and not (self.super_category or "").strip():
            raise ValueError(
                "MP-FGVC's prompts end with the classes' super-category word (e.g. 'bird' for CUB-200), "
                "but super_category is empty: pass super_category='bird' (--option super_category=bird)."
            )
        super().__post_init__(**kwargs)

    @property
    def capabilities(self) -> Capabilities:
        """Prompt tokens, head and classifier per training subcategory (fixed classes, no free texts); stage
        `visual` fine-tunes the image tower (CLIP's or the separate ViT)."""
        return Capabilities(classes_can_change=False, classifies_texts=False, trains_image_tower=True)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The benchmark's super-category word (`"bird"` for CUB-200)."""
        return {"super_category": benchmark.super_category} if benchmark.super_category else {}

    def patches_kept(self, patches: int) -> int | None:
        """How many of `patches` patches SsVP keeps (`None`: all)."""
        if self.ssvp_fraction is not None:
            return max(1, round(self.ssvp_fraction * patches))
        return None if self.ssvp_top_k is None else min(self.ssvp_top_k, patches)
