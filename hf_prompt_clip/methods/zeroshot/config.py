"""`ZeroShotCLIPConfig`: the options of zero-shot CLIP, each validated where it is declared, and its capabilities.

Room: `methods/`.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...modeling.prompts import DEFAULT_TEMPLATE, TemplatePromptConfig

__all__ = ["DEFAULT_TEMPLATE", "ZeroShotCLIPConfig"]


@strict
class ZeroShotCLIPConfig(TemplatePromptConfig):
    r"""Zero-shot CLIP with hand-written prompt templates.

    The template options (`templates`, `ensemble`) are those of `TemplatePromptConfig` (`modeling/prompts.py`),
    shared with CLIP-Adapter.
    """

    model_type = "prompt_clip_zeroshot"

    @property
    def capabilities(self) -> Capabilities:
        """Nothing is trained: templates and the frozen CLIP make the classifier."""
        return Capabilities(learns_parameters=False)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The benchmark's own hand-written template(s), or its reference ensemble with `ensemble=True`."""
        return {"templates": self.benchmark_templates(benchmark)}
