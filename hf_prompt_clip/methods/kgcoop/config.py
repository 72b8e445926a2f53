from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from ...core.configuration import option
from ...core.text import fill_template
from ..coop.config import CoOpConfig

#: The forms of the knowledge-guided distance (`knowledge_guided_distance`).
KG_DISTANCES = ("cosine", "squared_l2")
DEFAULT_KG_TEMPLATE = "a photo of a {}."
#: Where the authors' hand-crafted template (`CUSTOM_TEMPLATES` of `trainers/kgcoop.py`) differs from the
#: benchmark's zero-shot template; every other benchmark takes its own.
KGCOOP_TEMPLATES: dict[str, str] = {"dtd": "a photo of a {}, a type of texture."}


@strict
class KgCoOpConfig(CoOpConfig):
    r"""KgCoOp (Yao et al., CVPR 2023): CoOp plus a pull of the learned class text features towards the
    hand-crafted ones.

    All CoOp options apply (`n_ctx`, `ctx_init`, `class_specific_context`, `class_token_position`,
    `ctx_init_std`). Defaults follow the paper's base-to-new setting: 4 context vectors from "a photo of a".

    Args:
        kg_weight (`float`, *optional*, defaults to 8.0):
            lambda in `loss = cross-entropy + lambda * L_kg` (the authors' `TRAINER.COOP.W`); 0 is CoOp.
        kg_templates (`list[str]`, *optional*, defaults to `["a photo of a {}."]`):
            The hand-crafted prompts whose frozen CLIP features anchor the learned ones (several are
            averaged as zero-shot CLIP's ensemble). Trained through the experiment runner: the authors'
            template of the benchmark (`benchmark_defaults`).
        kg_distance (`str`, *optional*, defaults to `"cosine"`):
            `"cosine"`: `L_kg = 1 - mean_k cos(w_k, w_k^clip)`, what the authors' code computes and tuned
            lambda = 8 with; `"squared_l2"`: `mean_k ||w_k - w_k^clip||^2` of the normalised features, the
            paper's equation (twice the cosine form, so lambda = 4 gives the same loss).
    """

    model_type = "prompt_clip_kgcoop"

    n_ctx: int = 4
    ctx_init: str | None = "a photo of a"
    kg_weight: float = option(
        8.0,
        minimum=0,
        why="it weighs the pull towards the hand-crafted prompts; 8.0 in the paper, 0 trains plain CoOp",
    )
    kg_templates: list[str] | None = None
    kg_distance: str = option("cosine", choices=KG_DISTANCES)

    def __post_init__(self, **kwargs):
        self.kg_templates = list(self.kg_templates) if self.kg_templates else [DEFAULT_KG_TEMPLATE]
        for template in self.kg_templates:
            fill_template(template, "x")
        super().__post_init__(**kwargs)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The authors' hand-crafted template of the benchmark (its own zero-shot one but on DTD)."""
        return {"kg_templates": [KGCOOP_TEMPLATES.get(benchmark.key, benchmark.template)]}
