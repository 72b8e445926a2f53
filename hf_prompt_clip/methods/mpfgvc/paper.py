"""MP-FGVC's top-1 accuracies, trained on the full training sets (`shots=None`; ViT-B/16; `core/reference.py`).

Room: `methods/`.
"""

from ...core.reference import few_shot_results

SOURCE = "MP-FGVC (Jiang et al., AAAI 2024), full training sets"

PAPER_RESULTS = few_shot_results(
    {"cub200": (91.8,), "nabirds": (91.0,), "stanford_dogs": (91.0,)}, (None,), SOURCE
)
