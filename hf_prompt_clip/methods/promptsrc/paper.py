"""PromptSRC's numbers as its authors' repository reports them (ViT-B/16, base-to-new, 16 shots, averages of the
11 datasets; docs/deep-prompts.md section 3 has the sources line by line).

Room: `methods/`.
"""

from ...core.reference import AVERAGE, base_to_new_results

SOURCE = "PromptSRC, muzairkhattak/PromptSRC README (4 + 4 tokens, depth 9, 20 epochs, GPA)"

PAPER_RESULTS = base_to_new_results({AVERAGE: (84.26, 76.10)}, SOURCE)
