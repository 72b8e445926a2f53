"""IVLP's numbers as its authors' repositories report them (ViT-B/16, base-to-new, 16 shots, averages of the
11 datasets; docs/deep-prompts.md has the sources line by line).

Room: `methods/`.
"""

from ...core.reference import AVERAGE, base_to_new_results

SOURCE = "Independent V-L Prompting, muzairkhattak/multimodal-prompt-learning README (2 + 2 tokens, depth 12, 5 epochs)"

PAPER_RESULTS = base_to_new_results({AVERAGE: (82.15, 74.07)}, SOURCE)
