"""Classify an image with a prompt-learned CLIP adapter, in the browser (Gradio).

Load an adapter (Hub id or local folder), upload an image, edit the class list if the adapter can
classify other classes than its own (CoOp with a unified context, CoCoOp, PLOT, PLOT++, zero-shot
CLIP; not class-specific CoOp or MP-FGVC), and see the class probabilities.

Run locally (then open http://127.0.0.1:7860):

    pip install "hf-prompt-clip[app]"
    python examples/app.py --model outputs/run/coop/seed1/adapter
    HF_HUB_OFFLINE=1 python examples/app.py --model outputs/run/coop/seed1/adapter --port 8080

As a Hugging Face Space (SDK: Gradio): copy this file to the Space as `app.py`, add a
`requirements.txt` with the line `hf-prompt-clip[app]`, and set the Space variable
`HF_PROMPT_CLIP_MODEL` to the adapter's Hub id (or type it into the page; a private adapter also
needs the secret `HF_TOKEN`). Host and port are left to Gradio (`GRADIO_SERVER_NAME`,
`GRADIO_SERVER_PORT`), which Spaces set.

The classifier is also an API endpoint, `/classify` (image, class list) -> {label: probability}:

    from gradio_client import Client, handle_file
    Client("http://127.0.0.1:7860/").predict(handle_file("cat.jpg"), "cat, dog", api_name="/classify")
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import threading

import gradio as gr
import torch
from transformers import AutoModel

import hf_prompt_clip  # noqa: F401  (registers the model types with the Auto classes)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
_LOCK = threading.Lock()  # a class-list change lasts for one call: one call at a time per model


@functools.lru_cache(maxsize=4)
def load_model(source: str):
    """The adapter at `source` (Hub id or folder), loaded once and kept for later calls."""
    return AutoModel.from_pretrained(source).to(DEVICE).eval()


def classes_editable(model) -> bool:
    """Whether `model` classifies class lists other than its own."""
    return model.capabilities.free_texts


def parse_classes(text: str) -> list[str]:
    """One class per line, or comma-separated on one line."""
    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    return [part.strip() for part in parts if part.strip()]


def format_classes(names: list[str]) -> str:
    return "\n".join(names) if any("," in name for name in names) else ", ".join(names)


def _describe(source: str | None) -> tuple[str | None, str, bool, str]:
    """(source, class list text, whether it is editable, status line) of the adapter at `source`."""
    source = (source or "").strip()
    if not source:
        raise gr.Error("Type an adapter's Hub id or local folder first.")
    try:
        model = load_model(source)
    except Exception as error:
        raise gr.Error(f"Could not load {source!r}: {error}") from error
    editable = classes_editable(model)
    note = "editable" if editable else "fixed: this adapter learned parameters per class"
    status = f"Loaded **{type(model).__name__}** ({len(model.class_names)} classes, {note})."
    return source, format_classes(model.class_names), editable, status


def _load(source: str | None):
    source, classes, editable, status = _describe(source)
    return source, gr.Textbox(value=classes, interactive=editable), status


def classify(source: str | None, image, classes: str) -> dict[str, float]:
    """Class probabilities of `image` among the classes in `classes` (text)."""
    if not source:
        raise gr.Error("No model loaded: type an adapter's Hub id or folder and press Load.")
    if image is None:
        raise gr.Error("Upload an image first.")
    names = parse_classes(classes or "")
    if not names:
        raise gr.Error("The class list is empty: give at least one class name.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise gr.Error(f"Class names must be unique; repeated: {', '.join(repeated)}.")
    model = load_model(source)
    own = list(model.class_names)
    if not classes_editable(model):  # per-class parameters: only its own classes, in its own order
        if sorted(names) != sorted(own):
            raise gr.Error(
                f"This {type(model).__name__} learned parameters per class, so its classes are fixed: "
                f"{format_classes(own)}."
            )
        names = own
    pixel_values = model.image_processor(images=image.convert("RGB"), return_tensors="pt").pixel_values
    with _LOCK, torch.no_grad():
        try:
            with contextlib.nullcontext() if names == own else model.using_class_names(names):
                probs = model(pixel_values.to(DEVICE)).logits.float().softmax(-1)[0]
        except ValueError as error:  # e.g. a name too long for the text encoder
            raise gr.Error(str(error)) from error
    return {name: float(p) for name, p in zip(names, probs.tolist())}


def _classify_endpoint(source: str | None, image, classes: str):
    """Class probabilities {label: probability} of the image among the classes (comma-separated,
    or one per line)."""
    probabilities = classify(source, image, classes)
    return probabilities, probabilities


def _show(probabilities: dict[str, float]):
    return probabilities, max(probabilities, key=probabilities.get)


def build_app(model: str | None = None) -> gr.Blocks:
    """The demo page, with the adapter `model` (Hub id or folder) loaded if given."""
    source, classes, editable, status = _describe(model) if model else (None, "", True, "No model loaded.")
    with gr.Blocks(title="hf-prompt-clip") as app:
        gr.Markdown("# Prompt-learned CLIP\nClassify an image with a CoOp / CoCoOp / PLOT adapter.")
        state = gr.State(source)
        with gr.Row():
            model_box = gr.Textbox(value=model or "", label="Adapter (Hub id or local folder)", scale=4)
            load_button = gr.Button("Load", scale=1)
        status_box = gr.Markdown(status, label="Status")
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="pil", label="Image")
                class_box = gr.Textbox(
                    value=classes,
                    interactive=editable,
                    lines=3,
                    label="Classes (comma-separated, or one per line)",
                )
                classify_button = gr.Button("Classify", variant="primary")
            with gr.Column():
                top = gr.Textbox(label="Top class", interactive=False)
                chart = gr.Label(num_top_classes=10, label="Class probabilities")
        result = gr.JSON(visible=False)  # what the API endpoint returns: {label: probability}
        kept = gr.State()  # the same, kept server-side for the chart (result is not in the page)
        loading = [load_button.click, model_box.submit]
        gr.on(loading, _load, model_box, [state, class_box, status_box], api_name="load")
        classify_button.click(
            _classify_endpoint, [state, image, class_box], [result, kept], api_name="classify"
        ).success(_show, kept, [chart, top], api_visibility="private")
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        metavar="ID_OR_FOLDER",
        default=os.environ.get("HF_PROMPT_CLIP_MODEL"),
        help="adapter to load",
    )
    parser.add_argument("--host", default=None, help="default: $GRADIO_SERVER_NAME or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $GRADIO_SERVER_PORT or 7860")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    args = parser.parse_args(argv)
    build_app(args.model).launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
