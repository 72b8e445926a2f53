"""`PLOTConfig` and `PLOTPPConfig`: the options of PLOT and PLOT++, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.configuration import PromptCLIPConfig
from ...core.options import option
from ...modeling.text import CLASS_TOKEN_POSITIONS
from .optimal_transport import SINKHORN_STOPPING_RULES
from .templates import initial_phrases

#: Where PLOT's local visual features come from.
LOCAL_FEATURES: tuple[str, ...] = ("patch", "visual_prompts")


@strict
class PLOTConfig(PromptCLIPConfig):
    r"""PLOT (Chen et al., ICLR 2023): N prompts per class matched to local visual features by optimal transport.

    For every image and class, the cosine similarities `S` (`M_v x N`) between the image's `M_v`
    local features and the class's N prompt features give a transport plan `T` (Sinkhorn, without
    gradient); the class score is `logit_scale * sum(T * S)`.

    Args:
        n_prompts (`int`, *optional*, defaults to 4):
            Number of prompt contexts N, shared across classes.
        n_ctx (`int`, *optional*, defaults to 16):
            Context vectors per prompt M. With `ctx_inits`, each context is as long as its phrase
            in BPE tokens and `n_ctx` becomes the longest.
        ctx_inits (`list[str]`, *optional*):
            Phrases whose token embeddings initialise the first contexts, one per context (PLOT++
            starts from N hand-written phrases); the other contexts start random, N(0,
            `ctx_init_std`^2) with `n_ctx` tokens, each drawn independently.
        context_lengths (`list[int]`, *optional*):
            Tokens of each context, recorded from `ctx_inits` when the model is built (derived;
            all `n_ctx` without `ctx_inits`).
        ctx_init_std (`float`, *optional*, defaults to 0.02):
            Standard deviation of the random context initialisation.
        class_token_position (`str`, *optional*, defaults to `"end"`):
            Where the class name goes in each prompt: `"end"`, `"middle"` or `"front"` (as CoOp).
        local_features (`str`, *optional*, defaults to `"patch"`):
            `"patch"`: the last layer's patch tokens through `post_layernorm` and
            `visual_projection` (196 for ViT-B/16 at 224 px), the global feature is CLS.
            `"visual_prompts"` (PLOT++): `n_visual_prompt_sets` sets of learned tokens appended to
            the image tokens; the image tower runs once per set and the sets' CLS features are
            the local features, their mean the global one.
        n_visual_prompt_sets (`int`, *optional*, defaults to 4):
            Sets of visual prompts `M_v` (`"visual_prompts"` only).
        n_visual_prompt_tokens (`int`, *optional*, defaults to 2):
            Tokens per visual prompt set, of the image tower's width (`"visual_prompts"` only).
        visual_prompt_std (`float`, *optional*, defaults to 0.02):
            Standard deviation of the visual prompts' initialisation.
        add_global_logits (`bool`, *optional*, defaults to `False`):
            Add the global logits `logit_scale * cos(global image feature, mean prompt feature)`
            to the transport logits (the reference does on ImageNet; PLOT++ always does in its
            first training stage).
        sinkhorn_eps (`float`, *optional*, defaults to 0.1):
            Entropic regularisation of the transport problem.
        sinkhorn_max_iter (`int`, *optional*, defaults to 100):
            Most Sinkhorn iterations.
        sinkhorn_stop (`str`, *optional*, defaults to `"reference"`):
            `"reference"`: stop once the mean absolute change of the row scaling over the whole
            batch falls below `sinkhorn_threshold` (the authors' rule; results then depend
            slightly on what else is in the batch). `"fixed"`: always `sinkhorn_max_iter`
            iterations, no wait for the host, each image independent of its batch.
        sinkhorn_threshold (`float`, *optional*, defaults to 0.01):
            Threshold of the reference stopping rule.
        sinkhorn_check_every (`int`, *optional*):
            Iterations between host checks of the reference stopping rule. The result is the same
            for any value: larger means fewer waits for the device, more iterations computed past
            the stopping point. `None`: every iteration on the CPU, every 5 on accelerators.

    Each training stage's epochs and learning rate can be set with `stage_epochs` and
    `stage_learning_rates` (shared options; the paper trains PLOT++ 50 epochs per stage).
    """

    model_type = "prompt_clip_plot"

    n_prompts: int = option(4, minimum=1)
    n_ctx: int = option(16, minimum=1)
    ctx_inits: list[str] | None = None
    context_lengths: list[int] | None = option(minimum=1)
    ctx_init_std: float = option(0.02, above=0, why="with 0 the random contexts would all be equal")
    class_token_position: str = option("end", choices=CLASS_TOKEN_POSITIONS)
    local_features: str = option("patch", choices=LOCAL_FEATURES)
    n_visual_prompt_sets: int = option(4, minimum=1)
    n_visual_prompt_tokens: int = option(2, minimum=1)
    visual_prompt_std: float = option(0.02, above=0)
    add_global_logits: bool = False
    sinkhorn_eps: float = option(0.1, above=0)
    sinkhorn_max_iter: int = option(100, minimum=1)
    sinkhorn_stop: str = option("reference", choices=SINKHORN_STOPPING_RULES)
    sinkhorn_threshold: float = option(0.01, above=0)
    sinkhorn_check_every: int | None = option(minimum=1)

    def __post_init__(self, **kwargs):
        if self.ctx_inits is not None:
            self.ctx_inits = list(self.ctx_inits)
            if len(self.ctx_inits) > self.n_prompts:
                raise ValueError(
                    f"ctx_inits has {len(self.ctx_inits)} phrases for n_prompts={self.n_prompts} prompts; "
                    "give at most one phrase per prompt (or raise n_prompts)."
                )
            blank = [index for index, phrase in enumerate(self.ctx_inits) if not phrase.strip()]
            if blank:
                raise ValueError(f"ctx_inits {blank} are empty; give words to start each context from.")
        if self.context_lengths is not None:
            self.context_lengths = list(self.context_lengths)
            if len(self.context_lengths) != self.n_prompts:
                raise ValueError(
                    f"context_lengths must give a positive length for each of the {self.n_prompts} "
                    f"prompts, got {self.context_lengths}."
                )
        super().__post_init__(**kwargs)
        for name in ("stage_epochs", "stage_learning_rates"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.stage_names):
                raise ValueError(
                    f"{name} must give a value for each of the {len(self.stage_names)} training stages "
                    f"{self.stage_names}, got {values}."
                )

    @property
    def capabilities(self) -> Capabilities:
        """PLOT++'s visual prompts learn through the image tower (PLOT's patch features are frozen); the
        transport matches local image features, which a cached pooled feature does not hold."""
        return Capabilities(
            trains_image_tower=self.local_features != "patch",
            features_training_problem=(
                f"it matches local image features ({self.local_features!r}) by optimal transport, and the pooled "
                "image feature the cache holds does not contain them"
            ),
        )

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """Global logits added to the transport logits where the reference adds them (ImageNet) and on
        the synthetic world, whose tiny CLIP's patch tokens carry no text-aligned signal (docs/methods.md)."""
        return {"add_global_logits": True} if benchmark.key == "imagenet" or benchmark.synthetic else {}

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The training stages: `("prompt",)` for PLOT; `("visual", "joint")` with visual prompts."""
        return ("visual", "joint") if self.local_features == "visual_prompts" else ("prompt",)


@strict
class PLOTPPConfig(PLOTConfig):
    r"""PLOT++: PLOT on ViT image towers, with learned visual prompts and two training stages.

    All PLOT options apply; the defaults follow the authors' PLOT++ code: visual-prompt local
    features (4 sets of 2 tokens), 4 text contexts started from 4 hand-written phrases (the
    benchmark's own list when trained through the experiment runner), no global logits after
    the first stage. Stage `"visual"` trains the visual prompts only, with the text contexts
    frozen at their phrases and logits = global + transport; stage `"joint"` trains both, with
    transport logits only. Without `ctx_inits`, the contexts start from the reference's generic
    phrases ("a photo of a", "this is a photo", "this is picture of", "one picture of a").
    """

    model_type = "prompt_clip_plotpp"

    n_ctx: int = 4
    local_features: str = "visual_prompts"

    def __post_init__(self, **kwargs):
        if self.ctx_inits is None:
            self.ctx_inits = initial_phrases("", (), self.n_prompts)
        super().__post_init__(**kwargs)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The authors' phrases for the benchmark, or phrases from its templates (`templates.py`), one per
        prompt."""
        templates = [benchmark.template, *benchmark.ensemble_templates]
        return {"ctx_inits": initial_phrases(benchmark.key, templates, self.n_prompts)}
