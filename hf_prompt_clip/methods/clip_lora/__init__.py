"""The `clip_lora` method folder: registers CLIP-LoRA (its config, model and what cards and reports say of it,
`MethodInfo`) with the registry and the transformers Auto classes.

Room: `methods/`.
"""

from ...core.registry import MethodInfo, PublishedAdapter, register_method
from .config import CLIPLoRAConfig
from .model import CLIPLoRAModel
from .paper import PAPER_RESULTS
from .recipe import RECIPE

register_method(
    "clip_lora",
    CLIPLoRAConfig,
    CLIPLoRAModel,
    MethodInfo(
        "CLIP-LoRA",
        "Zanella & Ben Ayed, CVPRW 2024",
        "CLIP-LoRA learns low-rank updates W + (alpha / sqrt(r)) B A of the query, key and value projections of "
        "every attention layer of both towers (rank 2, applied with peft), and classifies against the text "
        "features of 'a photo of a {}.' through the tuned text tower.",
        """@inproceedings{zanella2024low,
  title     = {Low-Rank Few-Shot Adaptation of Vision-Language Models},
  author    = {Zanella, Maxime and Ben Ayed, Ismail},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition Workshops (CVPRW)},
  pages     = {1593--1603},
  year      = {2024}
}""",
        kind="low-rank adapter for CLIP",
        recipe=RECIPE,
        paper_results=PAPER_RESULTS,
        published=(
            # the paper's few-shot setting: 16 shots of all ImageNet classes, the reference's default LoRA
            PublishedAdapter("clip-lora-vitb16-imagenet", "imagenet", "few_shot", 16),
        ),
    ),
)

__all__ = ["CLIPLoRAConfig", "CLIPLoRAModel"]
