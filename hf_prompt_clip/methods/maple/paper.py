"""MaPLe's numbers as its authors' repository reports them (ViT-B/16, base-to-new, 16 shots, averages of the
11 datasets; docs/deep-prompts.md has the sources line by line).

Room: `methods/`.
"""

from ...core.reference import AVERAGE, base_to_new_results

SOURCE = "MaPLe, muzairkhattak/multimodal-prompt-learning README (2 tokens, depth 9, 5 epochs)"

PAPER_RESULTS = base_to_new_results({AVERAGE: (82.28, 75.14)}, SOURCE)
