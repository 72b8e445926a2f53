"""Shared fixtures: everything is built here, offline, in well under a second per model."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import shutil
import socket
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import hf_prompt_clip  # noqa: F401  (registers the Auto classes)
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_image, save_tiny_clip, tiny_clip

# Tiny models gain nothing from a second thread, and spinning threads stall on a busy machine.
torch.set_num_threads(1)

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_environment(home: Path) -> dict[str, str]:
    """The environment of a subprocess that runs Accelerate on CPU, offline, one thread each.

    A fresh one: Accelerator objects of earlier tests export ACCELERATE_* settings, and a user's
    default accelerate config (under HF_HOME, here `home`) must not change the launch.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", ACCELERATE_USE_CPU="true", HF_HOME=str(home))
    return env


def accelerate_launch(num_processes: int = 2) -> list[str]:
    """`accelerate launch` of `num_processes` CPU processes (gloo) on a free port; append the script."""
    accelerate = Path(sys.executable).parent / "accelerate"
    launch = [str(accelerate), "launch", "--multi_gpu", "--num_processes", str(num_processes)]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*launch, "--main_process_port", str(free_port())]


@pytest.fixture
def clip_parts():
    """(CLIPModel, tokenizer, image processor): a fresh random tiny CLIP."""
    return tiny_clip(seed=0)


@pytest.fixture(scope="session")
def tiny_clip_folder(tmp_path_factory) -> str:
    """A tiny CLIP saved like a Hub repository (weights, config, tokenizer, image processor)."""
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), seed=0)


@pytest.fixture(scope="session")
def hub_cache(tiny_clip_folder, tmp_path_factory) -> tuple[str, str, str]:
    """An offline Hub cache holding the tiny CLIP as repo `test-org/tiny-clip` at a fixed commit.

    Returns (cache_dir, repo_id, commit): `from_pretrained(repo_id, revision=commit,
    cache_dir=cache_dir)` resolves through huggingface_hub's real cache logic with no network.
    """
    cache = tmp_path_factory.mktemp("hub-cache")
    repo_id = "test-org/tiny-clip"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(tiny_clip_folder, repo / "snapshots" / FAKE_COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(FAKE_COMMIT)
    return str(cache), repo_id, FAKE_COMMIT


PATTERN_NAMES = list(PATTERN_CLASSES)


def pattern_images() -> list[Image.Image]:
    """One clean generated image per pattern class; a random tiny CLIP embeds them in different directions."""
    return [pattern_image(name) for name in PATTERN_NAMES]


def fit_to_patterns(model, steps: int = 100) -> None:
    """Make `model` certain of the pattern classes by fitting its adapter to the images."""
    pixel_values = model.image_processor(pattern_images(), return_tensors="pt").pixel_values
    labels = torch.arange(len(PATTERN_NAMES))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    for _ in range(steps):
        loss = model(pixel_values, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def assert_pipelines_score_like_the_model(model, folder, hypothesis_template: str = "{}") -> None:
    """Both image pipelines on the saved `folder` give `model`'s own class probabilities on every
    generated pattern image (the zero-shot one with the classes reordered as candidate labels, filled
    into `hypothesis_template`: `"{}"` for a learned prompt, the model's template for a hand-written one)."""
    import pytest
    from transformers import pipeline

    classifier = pipeline("image-classification", model=str(folder))
    zero_shot = pipeline("zero-shot-image-classification", model=str(folder))
    reordered = PATTERN_NAMES[::-1]
    for image in pattern_images():
        pixel_values = model.image_processor(image, return_tensors="pt").pixel_values
        with torch.no_grad():
            probs = model(pixel_values).logits.softmax(-1)[0]
            with model.using_class_names(reordered):
                reordered_probs = model(pixel_values).logits.softmax(-1)[0]
        assert probs.max() - probs.min() > 0.01  # distinct scores, so a label mix-up would show
        scores = {r["label"]: r["score"] for r in classifier(image, top_k=len(PATTERN_NAMES))}
        for k, name in enumerate(PATTERN_NAMES):
            assert scores[name] == pytest.approx(probs[k].item(), abs=1e-5)
        result = zero_shot(image, candidate_labels=reordered, hypothesis_template=hypothesis_template)
        scores = {r["label"]: r["score"] for r in result}
        for k, name in enumerate(reordered):
            assert scores[name] == pytest.approx(reordered_probs[k].item(), abs=1e-5)


def compare_on_sketches(output_dir, protocol: str, methods: list[str], epochs: int = 10, **config) -> dict:
    """Mean metrics per method of one run of `methods` side by side on the synthetic sketches
    (`synthetic_shapes_outline`, the shipped tiny CLIP), 16 shots, seed 1, AdamW lr 0.01, batch 32: the
    learning tests' setting (tests/test_learning.py, docs/synthetic.md)."""
    from hf_prompt_clip.runner import ExperimentConfig, run_comparison
    from hf_prompt_clip.synthetic import TINY_CLIP_ID
    from hf_prompt_clip.train import TrainingConfig

    config = ExperimentConfig(
        base_model=TINY_CLIP_ID,
        dataset="synthetic_shapes_outline",
        shots=16,
        seeds=[1],
        protocol=protocol,
        output_dir=str(output_dir),
        training=TrainingConfig(epochs=epochs, batch_size=32, learning_rate=0.01, optimizer="adamw"),
        **config,
    )
    return {r["method"]: r["mean"] for r in run_comparison(config, methods)}


class Interrupt(Exception):
    """Raised by `stop_at_forward` in place of a forward call: a kill at a chosen training step."""


def stop_at_forward(model, stop_at: int | None = None, record=lambda *args, **kwargs: True) -> list:
    """Wrap `model.forward`: each call appends `record(*args, **kwargs)` to the returned list, and call number
    `stop_at` raises `Interrupt` instead of running (the crash-safety and resume tests' kill)."""
    calls = []
    original = model.forward

    def forward(*args, **kwargs):
        calls.append(record(*args, **kwargs))
        if len(calls) == stop_at:
            raise Interrupt
        return original(*args, **kwargs)

    model.forward = forward
    return calls
