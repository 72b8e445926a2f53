"""`KgCoOpConfig`: the options of KgCoOp, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.options import option
from ...modeling.prompts import ContextPromptConfig, template_list

#: The forms of the knowledge-guided distance (`knowledge_guided_distance`).
KG_DISTANCES = ("cosine", "squared_l2")
#: Where the authors' hand-crafted template (`CUSTOM_TEMPLATES` of `trainers/kgcoop.py`) differs from the
#: benchmark's zero-shot template; every other benchmark takes its own.
KGCOOP_TEMPLATES: dict[str, str] = {"dtd": "a photo of a {}, a type of texture."}


@strict
class KgCoOpConfig(ContextPromptConfig):
    r"""KgCoOp (Yao et al., CVPR 2023): CoOp plus a pull of the learned class text features towards the
    hand-crafted ones.

    The context options (`n_ctx`, `ctx_init`, `class_token_position`, `ctx_init_std`) are those of
    `ContextPromptConfig` (`modeling/prompts.py`), shared with CoOp and CoCoOp; `class_specific_context` is
    CoOp's. Defaults follow the paper's base-to-new setting: 4 context vectors from "a photo of a".

    Args:
        class_specific_context (`bool`, *optional*, defaults to `False`):
            One context per class (`K x M x D`, as CoOp's CSC) instead of one shared `M x D` context; the
            hand-crafted anchors are per class either way.
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
    class_specific_context: bool = False
    kg_weight: float = option(
        8.0,
        minimum=0,
        why="it weighs the pull towards the hand-crafted prompts; 8.0 in the paper, 0 trains plain CoOp",
    )
    kg_templates: list[str] | None = None
    kg_distance: str = option("cosine", choices=KG_DISTANCES)

    def __post_init__(self, **kwargs):
        self.kg_templates = template_list(self.kg_templates)
        super().__post_init__(**kwargs)

    @property
    def capabilities(self) -> Capabilities:
        """A class-specific context is learned per training class: it classifies only those classes."""
        return Capabilities(classes_can_change=not self.class_specific_context)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The authors' hand-crafted template of the benchmark (its own zero-shot one but on DTD)."""
        return {"kg_templates": [KGCOOP_TEMPLATES.get(benchmark.key, benchmark.template)]}
