"""The `tip_adapter` method folder: registers Tip-Adapter and Tip-Adapter-F (its config, model and what cards and reports say
of it, `MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import TipAdapterConfig, TipAdapterFConfig
from .model import TipAdapterFModel, TipAdapterModel
from .paper import TIP_ADAPTER_F_RESULTS, TIP_ADAPTER_RESULTS
from .recipe import RECIPE, RECIPE_F

_CITATION = """@inproceedings{zhang2022tip,
  title     = {Tip-Adapter: Training-free Adaption of CLIP for Few-shot Classification},
  author    = {Zhang, Renrui and Zhang, Wei and Fang, Rongyao and Gao, Peng and Li, Kunchang and Dai, Jifeng and
               Qiao, Yu and Li, Hongsheng},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2022}
}"""

register_method(
    "tip_adapter",
    TipAdapterConfig,
    TipAdapterModel,
    MethodInfo(
        "Tip-Adapter",
        "Zhang et al., ECCV 2022",
        "Tip-Adapter trains nothing: it caches the few-shot training images' features (averaged over augmented "
        "views) with their labels and adds the cache's affinity-weighted vote to zero-shot CLIP, with its two "
        "weights (alpha, beta) chosen on the validation split. The adapter holds the cache (one feature per "
        "training image).",
        _CITATION,
        kind="training-free cache adapter for CLIP",
        recipe=RECIPE,
        paper_results=TIP_ADAPTER_RESULTS,
        published=(PublishedAdapter("tip-adapter-vitb16-imagenet", "imagenet", "few_shot", 16),),
    ),
)
register_method(
    "tip_adapter_f",
    TipAdapterFConfig,
    TipAdapterFModel,
    MethodInfo(
        "Tip-Adapter-F",
        "Zhang et al., ECCV 2022",
        "Tip-Adapter-F fine-tunes the keys of Tip-Adapter's cache of few-shot training features (their labels, "
        "the zero-shot classifier and CLIP stay frozen), then chooses alpha and beta on the validation split. "
        "The adapter holds the cache (one feature per training image).",
        _CITATION,
        kind="cache adapter for CLIP",
        recipe=RECIPE_F,
        paper_results=TIP_ADAPTER_F_RESULTS,
        published=(PublishedAdapter("tip-adapter-f-vitb16-imagenet", "imagenet", "few_shot", 16),),
    ),
)

__all__ = ["TipAdapterConfig", "TipAdapterFConfig", "TipAdapterFModel", "TipAdapterModel"]
