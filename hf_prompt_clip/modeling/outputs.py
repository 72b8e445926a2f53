"""Output dataclasses of the prompt-learning models.

Room: `modeling/`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import ImageClassifierOutput


@dataclass
class PromptCLIPOutput(ImageClassifierOutput):
    """`ImageClassifierOutput` with CLIP-style fields, so both image pipelines can read it.

    Args:
        loss: cross-entropy of `logits` against `labels`, when labels are given.
        logits: `(B, K)` class scores (scaled cosine similarities).
        logits_per_image: `(B, K)`, the same scores under the name the zero-shot pipeline reads.
        logits_per_text: `(K, B)`, the transpose.
    """

    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
