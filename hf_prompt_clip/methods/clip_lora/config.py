"""`CLIPLoRAConfig`: the options of CLIP-LoRA (low-rank updates of CLIP's attention projections, applied with
`peft`), each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.options import option
from ...modeling.prompts import TemplatePromptConfig
from ...utils.settings import SettingError

#: The towers that take LoRA (the reference's `--encoder`).
ENCODERS = ("text", "vision", "both")
#: Which layers of a tower take LoRA (the reference's `--position`, `loralib/utils.py`).
POSITIONS = ("all", "bottom", "mid", "up", "half-up", "half-bottom", "top3")
#: The attention projections that take LoRA (the reference's `--params`): query, key, value, output.
PARAMS = ("q", "k", "v", "o")
#: The reference's default projections.
DEFAULT_PARAMS = ("q", "k", "v")


def lora_layer_indices(position: str, layers: int) -> list[int]:
    """The indices of the layers of a tower with `layers` layers that `position` gives LoRA.

    For 12 layers these are the reference's `INDEX_POSITIONS_TEXT` / `INDEX_POSITIONS_VISION['ViT-B/16']`
    (`loralib/utils.py`): bottom 0-3, mid 4-7, up 8-11, half-up 6-11, half-bottom 0-5, top3 9-11, all. Other
    depths take the same fractions (thirds, halves, the last three; at least one layer a third): for the 24
    layers of ViT-L/14's image tower half-up is 12-23 and half-bottom 0-11, as the reference's table says.

    Example:
        >>> lora_layer_indices("mid", 12), lora_layer_indices("half-up", 24)[:2]
        ([4, 5, 6, 7], [12, 13])
    """
    third, half = max(1, layers // 3), layers // 2
    spans = {
        "all": range(layers),
        "bottom": range(0, min(third, layers)),
        "mid": range(min(third, layers - 1), min(2 * third, layers)),
        "up": range(max(0, layers - third), layers),
        "half-up": range(layers - half, layers),
        "half-bottom": range(0, max(half, 1)),
        "top3": range(max(0, layers - 3), layers),
    }
    if position not in spans:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}.")
    return list(spans[position])


@strict
class CLIPLoRAConfig(TemplatePromptConfig):
    r"""CLIP-LoRA (Zanella & Ben Ayed, CVPRW 2024): low-rank updates `W + (alpha / sqrt(r)) B A` of the
    attention projections of a frozen CLIP, in one or both towers, applied with `peft`
    (`LoraConfig(use_rslora=True)`); classes are read through the hand-written template (`templates`,
    default `"a photo of a {}."`, the dataset's first template in the reference).

    The defaults are the reference's (`MaxZanella/CLIP-LoRA` `run_utils.py`): both towers, every layer,
    q k v, r = 2, alpha = 1, dropout 0.25 on the LoRA input. Its training recipe (AdamW lr 2e-4, weight decay
    1e-2, cosine to 1e-6 over 500 x shots iterations, batch 32) is in docs/methods.md, not the default here.

    Args:
        encoder: `"text"`, `"vision"` or `"both"`: the towers whose attention takes LoRA.
        position: which layers: `"all"`, `"bottom"`, `"mid"`, `"up"`, `"half-up"`, `"half-bottom"`, `"top3"`
            (`lora_layer_indices`).
        params: the projections: any of `"q"`, `"k"`, `"v"`, `"o"` (transformers' `q_proj`, `k_proj`,
            `v_proj`, `out_proj`); default `["q", "k", "v"]`.
        r: the rank of each update.
        alpha: the scale's numerator: updates are scaled by `alpha / sqrt(r)` (rank-stabilised LoRA).
        dropout_rate: dropout on the LoRA branch's input while training (off in evaluation).
    """

    model_type = "prompt_clip_clip_lora"

    encoder: str = option("both", choices=ENCODERS, why="the towers whose attention takes LoRA")
    position: str = option("all", choices=POSITIONS, why="the layers of each tower that take LoRA")
    params: list[str] | None = option(
        None, choices=PARAMS, why="the attention projections (query, key, value, output) that take LoRA"
    )
    r: int = option(2, minimum=1, why="the rank of each low-rank update")
    alpha: float = option(1.0, above=0, why="updates are scaled by alpha / sqrt(r)")
    dropout_rate: float = option(0.25, minimum=0, below=1, why="dropout on the LoRA input while training")

    def __post_init__(self, **kwargs):
        self.params = list(DEFAULT_PARAMS if self.params is None else self.params)
        if not self.params or len(set(self.params)) != len(self.params):
            raise SettingError(
                f"{type(self).__name__}: params must name each attention projection at most once and at least "
                f"one, got params={self.params!r}: give e.g. params=['q', 'k', 'v']."
            )
        super().__post_init__(**kwargs)

    @property
    def tuned_towers(self) -> tuple[str, ...]:
        """`("text",)`, `("vision",)` or both: the towers that take LoRA."""
        return ("text", "vision") if self.encoder == "both" else (self.encoder,)

    @property
    def capabilities(self) -> Capabilities:
        """LoRA in the image tower changes its features with training; the text side is a template, so the
        classes can change."""
        return Capabilities(trains_image_tower="vision" in self.tuned_towers)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The benchmark's template (the reference uses the dataset's first)."""
        return {"templates": self.benchmark_templates(benchmark)}
