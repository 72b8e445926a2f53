from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from ...core.capabilities import Capabilities
from ...core.configuration import PromptCLIPConfig
from ...core.text import fill_template

DEFAULT_TEMPLATE = "a photo of a {}."


@strict
class ZeroShotCLIPConfig(PromptCLIPConfig):
    r"""Zero-shot CLIP with hand-written prompt templates.

    Args:
        templates (`list[str]`, *optional*, defaults to `["a photo of a {}."]`):
            Templates with one `{}` for the class name. With several, the text features of every
            template are L2-normalised, averaged and re-normalised (CLIP's prompt ensemble).
        ensemble (`bool`, *optional*, defaults to `False`):
            Built for a benchmark (the runner, `--option ensemble=True`): take its reference ensemble
            (`BenchmarkSpec.ensemble_templates`, CoOp's `ZeroshotCLIP2`: the 7 ImageNet-select
            templates plus the benchmark's own) instead of its single template. Recorded with the
            templates it chose.
    """

    model_type = "prompt_clip_zeroshot"

    templates: list[str] | None = None
    ensemble: bool = False

    def __post_init__(self, **kwargs):
        self.templates = list(self.templates) if self.templates else [DEFAULT_TEMPLATE]
        for template in self.templates:
            fill_template(template, "x")
        super().__post_init__(**kwargs)

    @property
    def capabilities(self) -> Capabilities:
        """Nothing is trained: templates and the frozen CLIP make the classifier."""
        return Capabilities(learns_parameters=False)

    def benchmark_defaults(self, benchmark: Any) -> dict[str, Any]:
        """The benchmark's own hand-written template(s), or its reference ensemble with `ensemble=True`."""
        return {"templates": list(benchmark.ensemble_templates if self.ensemble else benchmark.templates)}
