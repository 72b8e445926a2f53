"""Every method under `torch.compile` (what `accelerate launch --dynamo_backend ...` does to the model):
the compiled model's loss and gradients are the eager model's.

The `aot_eager` backend traces the model with dynamo and AOT autograd (graph breaks, functionalisation,
aliasing: where compiling goes wrong) without generating kernels, so it takes seconds; inductor's kernels
would differ from eager by float rounding only. Two methods run in the default suite (CLIP-Adapter: the
frozen image tower, once refused by compiling under `torch.inference_mode`; PLOT: Sinkhorn's host reads
split the graph around a permuted einsum view), the rest with `pytest -m slow`.
"""

import pytest
import torch

from hf_prompt_clip.core.registry import get_method, method_capabilities, method_order
from hf_prompt_clip.testing import PATTERN_CLASSES, tiny_clip

OPTIONS = {"mpfgvc": {"super_category": "pattern"}}
DEFAULT_SUITE = {"clip_adapter", "plot"}


def gradient_methods():
    for method in method_order():
        if method_capabilities(method).learns_parameters:
            marks = () if method in DEFAULT_SUITE else (pytest.mark.slow,)
            yield pytest.param(method, marks=marks, id=method)


@pytest.mark.parametrize("method", list(gradient_methods()))
def test_a_compiled_model_trains_and_predicts_as_the_eager_model(method):
    clip, tokenizer, processor = tiny_clip(seed=0)
    torch.manual_seed(0)
    model = get_method(method)[1].from_clip(
        clip, list(PATTERN_CLASSES), tokenizer=tokenizer, image_processor=processor, **OPTIONS.get(method, {})
    )
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(4) % len(PATTERN_CLASSES)
    compiled = torch.compile(model, backend="aot_eager")
    try:
        for stage in (s for s in model.training_stages() if s.kind == "gradient"):
            names = set(model.set_training_stage(stage))
            parameters = [p for n, p in model.named_parameters() if n in names]
            model.train()
            results = []
            for run in (model, compiled):
                torch.manual_seed(2)  # the same dropout, if a method has any
                loss = run(pixel_values=pixels, labels=labels).loss
                loss.backward()
                results.append((loss.detach(), [p.grad.clone() for p in parameters]))
                for parameter in parameters:
                    parameter.grad = None
            (eager_loss, eager_grads), (compiled_loss, compiled_grads) = results
            torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
            for got, expected in zip(compiled_grads, eager_grads, strict=True):
                torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(
                compiled(pixel_values=pixels).logits, model(pixel_values=pixels).logits, rtol=1e-5, atol=1e-5
            )
    finally:
        torch._dynamo.reset()
