"""`PromptSRCConfig`: the options of PromptSRC (IVLP's deep prompts, self-regularised towards the frozen CLIP,
and Gaussian prompt aggregation), each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.options import option
from ...modeling.deep_prompts import DeepPromptConfig


@strict
class PromptSRCConfig(DeepPromptConfig):
    r"""PromptSRC (Khattak et al., ICCV 2023): IVLP's deep prompts in both towers, trained with
    `loss = CE + text_loss_weight * L1(text, frozen text) + image_loss_weight * L1(image, frozen image)
    + logits_loss_weight * KL(frozen logits || logits)`, and whose result is the Gaussian-weighted average of
    the prompts over the training epochs (GPA).

    The prompt options (`n_ctx`, `ctx_init`, `text_depth`, `n_ctx_vision`, `vision_depth`, the init stds) are
    `DeepPromptConfig`'s (`modeling/deep_prompts.py`). The defaults are the authors' base-to-new configuration
    (`configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml`: 4 + 4 tokens, depth 9 in both towers,
    "a photo of a", weights 25 / 10, GPA mean 15 and std 1 for their 20 epochs); their cross-dataset setting is
    `text_depth=3, vision_depth=3, gpa_mean=6, gpa_std=10`.

    Args:
        text_loss_weight (`float`, *optional*, defaults to 25.0):
            Weight of the L1 distance (mean over the `K x E` entries) between the normalised prompted class text
            features and the normalised frozen ones (the raw frozen features of the 60 ImageNet templates,
            averaged); the authors' `TEXT_LOSS_WEIGHT`.
        image_loss_weight (`float`, *optional*, defaults to 10.0):
            Weight of the L1 distance (mean over the `B x E` entries) between the normalised prompted image
            features and the normalised frozen tower's features of the same images; `IMAGE_LOSS_WEIGHT`.
        logits_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of `KL(p_frozen || p_prompted)` at temperature 1, summed and divided by `B x K` (the authors'
            fixed 1, no config key there).
        gpa (`bool`, *optional*, defaults to `True`):
            Gaussian prompt aggregation: the trained prompts are the average of each epoch's prompts with
            weights from a Gaussian over the epochs (`gpa_mean`, `gpa_std`); `False`: the last epoch's.
        gpa_mean (`float`, *optional*, defaults to 15.0):
            The epoch (counted from 1) where the aggregation weights peak.
        gpa_std (`float`, *optional*, defaults to 1.0):
            The spread of the aggregation weights, in epochs.
    """

    model_type = "prompt_clip_promptsrc"

    n_ctx: int = option(4, minimum=1)
    text_depth: int = option(9, minimum=1)
    n_ctx_vision: int = option(4, minimum=1, why="PromptSRC learns visual prompts")
    vision_depth: int = option(9, minimum=1, why="PromptSRC learns visual prompts")
    text_loss_weight: float = option(
        25.0,
        minimum=0,
        why="it weighs the L1 pull of the text features to the frozen CLIP's; 25 in the paper",
    )
    image_loss_weight: float = option(
        10.0,
        minimum=0,
        why="it weighs the L1 pull of the image features to the frozen CLIP's; 10 in the paper",
    )
    logits_loss_weight: float = option(
        1.0, minimum=0, why="it weighs the KL divergence of the frozen CLIP's logits from the prompted ones"
    )
    gpa: bool = True
    gpa_mean: float = option(15.0, minimum=0, why="the epoch (counted from 1) where the GPA weights peak")
    gpa_std: float = option(1.0, above=0, why="the spread of the GPA weights, in epochs")

    @property
    def capabilities(self) -> Capabilities:
        """Visual prompts are read by the image tower, so its features change with training."""
        return Capabilities(trains_image_tower=True)
