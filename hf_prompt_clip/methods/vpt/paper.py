"""VPT-deep's numbers as the MaPLe authors report them for CLIP (ViT-B/16, base-to-new, 16 shots, averages of
the 11 datasets; docs/deep-prompts.md has the sources line by line).

Room: `methods/`.
"""

from ...core.reference import AVERAGE, base_to_new_results

SOURCE = (
    "Deep Vision Prompting, muzairkhattak/multimodal-prompt-learning README (8 tokens, depth 12, 5 epochs)"
)

PAPER_RESULTS = base_to_new_results({AVERAGE: (80.24, 73.43)}, SOURCE)
