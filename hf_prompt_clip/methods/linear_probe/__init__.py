"""The `linear_probe` method folder: registers the linear probe (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import CLIP_CITATION, MethodInfo, PublishedAdapter, register_method
from .config import LinearProbeConfig
from .model import LinearProbeModel
from .recipe import RECIPE

register_method(
    "linear_probe",
    LinearProbeConfig,
    LinearProbeModel,
    MethodInfo(
        "Linear probe CLIP",
        "Radford et al., ICML 2021",
        "A logistic-regression classifier (one weight vector and bias per class) on the frozen, L2-normalised "
        "image features, fitted by L-BFGS with its L2 strength chosen on the validation split (CoOp's few-shot "
        "protocol of the CLIP paper's linear probe); nothing of CLIP changes.",
        CLIP_CITATION,
        kind="classifier on CLIP's frozen image features",
        recipe=RECIPE,
        # CoOp's few-shot linear-probe baseline on ImageNet (its val split is the test set, as in CoOp)
        published=(PublishedAdapter("linear-probe-vitb16-imagenet", "imagenet", "few_shot", 16),),
    ),
)

__all__ = ["LinearProbeConfig", "LinearProbeModel"]
