"""`LinearProbeConfig`: the options of the linear probe, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.configuration import PromptCLIPConfig
from ...core.options import option
from ...modeling.text import fill_template
from .logistic import REFERENCE_C_GRID, SOLVERS

FEATURE_SPACES = ("projection", "pooled")


@strict
class LinearProbeConfig(PromptCLIPConfig):
    r"""Linear probe CLIP (Radford et al., ICML 2021; the few-shot protocol of CoOp's `lpclip`): a
    logistic-regression classifier on frozen image features, fitted by L-BFGS.

    Args:
        solver (`str`, *optional*, defaults to `"torch"`):
            `"torch"`: the built-in L-BFGS in float64 on the model's device (scikit-learn's objective; one
            fit equals scikit-learn's within tolerance, but it stops at other points, so at large C on
            separable few-shot features the search can choose another C than lpclip). `"sklearn"`:
            scikit-learn's `LogisticRegression` itself, lpclip's call, which reproduces lpclip's chosen
            C and predictions exactly; needs scikit-learn (`pip install "hf-prompt-clip[sklearn]"`), runs
            on the CPU, and cannot fit a zero-shot head.
        C (`float`, *optional*):
            Inverse L2 strength (scikit-learn's `C`). `None` (default): chosen on the validation split by
            CoOp's search (`search_grid`, then `search_steps` rounds of a binary search in log10(C)).
        search_grid (`list[float]`, *optional*, defaults to `[1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6]`):
            The sweep of C, in tie-breaking order (the first best wins).
        search_steps (`int`, *optional*, defaults to 8):
            Rounds of the binary search after the sweep (0: the sweep alone).
        max_iter (`int`, *optional*, defaults to 1000):
            Most L-BFGS iterations per fit (the CLIP paper's and CoOp's 1,000; scikit-learn's `max_iter`).
        tolerance (`float`, *optional*, defaults to 1e-4):
            Stop when the largest gradient entry of the objective is at most this (scikit-learn's `tol`).
        normalize_features (`bool`, *optional*, defaults to `True`):
            L2-normalise the image features before the classifier. (CoOp's `lpclip` feeds them
            unnormalised; normalised features make C comparable across backbones and let a zero-shot
            head reproduce CLIP's cosine logits.)
        feature_space (`str`, *optional*, defaults to `"projection"`):
            `"projection"`: `get_image_features` (after `visual_projection`, as CoOp's `lpclip` reads
            `clip_model.visual`); `"pooled"`: the pooled output before the projection, which the CLIP paper
            used for its ViT linear probes.
        zero_shot_head (`bool`, *optional*, defaults to `False`):
            ZS-LP (as CLAP, Silva-Rodriguez et al., CVPR 2024): the weights start from the zero-shot
            classifier `logit_scale * T` (T: the class text features of `templates`) and the L2 penalty
            pulls them towards it instead of towards zero, so a small C keeps zero-shot CLIP and a large one
            the plain probe. Needs `feature_space="projection"`.
        templates (`list[str]`, *optional*):
            Templates of the zero-shot head (default `["a photo of a {}."]`; the runner gives the
            benchmark's own).
        selected_C (`float`, *optional*):
            Written by the fit: the C the classifier was fitted with.
        validation_accuracy (`float`, *optional*):
            Written by the fit: its accuracy on the validation examples, in percent (when searched).
    """

    model_type = "prompt_clip_linear_probe"
    recorded_fields: ClassVar[tuple[str, ...]] = ()

    solver: str = option("torch", choices=SOLVERS)
    C: float | None = option(above=0, why="the inverse L2 strength")
    search_grid: list[float] | None = option(above=0, why="inverse L2 strengths")
    search_steps: int = option(8, minimum=0, why="0: the sweep alone")
    max_iter: int = option(1000, minimum=1)
    tolerance: float = option(1e-4, above=0)
    normalize_features: bool = True
    feature_space: str = option("projection", choices=FEATURE_SPACES)
    zero_shot_head: bool = False
    templates: list[str] | None = None
    selected_C: float | None = option(above=0)
    validation_accuracy: float | None = option(minimum=0, maximum=100, why="a percentage")

    def __post_init__(self, **kwargs):
        self.search_grid = (
            [float(c) for c in self.search_grid] if self.search_grid else list(REFERENCE_C_GRID)
        )
        if self.solver == "sklearn" and self.zero_shot_head:
            raise ValueError(
                "zero_shot_head=True (ZS-LP) pulls the weights towards the zero-shot classifier, which "
                "scikit-learn's LogisticRegression cannot do (its penalty pulls towards zero): use "
                "solver='torch' with it, or zero_shot_head=False with solver='sklearn'."
            )
        if self.zero_shot_head and self.feature_space != "projection":
            raise ValueError(
                "zero_shot_head=True starts from the zero-shot classifier, which lives in the joint image-text "
                "space: use feature_space='projection' with it."
            )
        self.templates = list(self.templates) if self.templates else ["a photo of a {}."]
        for template in self.templates:
            fill_template(template, "x")
        super().__post_init__(**kwargs)

    @property
    def capabilities(self) -> Capabilities:
        """A weight vector per training class (fixed classes, no free texts); C is searched on validation
        unless given."""
        return Capabilities(classes_can_change=False, classifies_texts=False, uses_validation=self.C is None)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The benchmark's own template for a zero-shot head."""
        return {"templates": list(benchmark.templates)} if self.zero_shot_head else {}
