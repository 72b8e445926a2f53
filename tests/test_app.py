"""The Gradio demo (`examples/app.py`), served on 127.0.0.1 and called through `gradio_client`."""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no telemetry, no version check
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import importlib.util
import ipaddress
import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModel

from hf_prompt_clip import CoOpModel
from hf_prompt_clip.synthetic import TINY_CLIP_ID, class_names, render

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")  # a dependency of gradio
AppError = gradio_client.exceptions.AppError

APP_PATH = Path(__file__).resolve().parents[1] / "examples" / "app.py"
CLASSES = class_names("colour_shape")[:6]  # red circle, red square, ...


def _load_app_module():
    spec = importlib.util.spec_from_file_location("hf_prompt_clip_demo_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_local(host) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="module")
def outside_attempts():
    """Refuse and record every connection or name lookup beyond this machine while the module runs."""
    attempts = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock, address):
        if isinstance(address, tuple) and not _is_local(address[0]):
            attempts.append(address)
            raise OSError(f"test_app: no network ({address})")
        return connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _is_local(host.decode() if isinstance(host, bytes) else host):
            attempts.append(host)
            raise socket.gaierror(f"test_app: no network ({host})")
        return getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        yield attempts


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """(unified CoOp folder, class-specific CoOp folder), both on the shipped tiny CLIP."""
    root = tmp_path_factory.mktemp("app-adapters")
    torch.manual_seed(0)
    CoOpModel.from_clip(TINY_CLIP_ID, CLASSES, ctx_init="a photo of a").save_pretrained(root / "coop")
    CoOpModel.from_clip(TINY_CLIP_ID, CLASSES, n_ctx=2, class_specific_context=True).save_pretrained(
        root / "fixed"
    )
    return str(root / "coop"), str(root / "fixed")


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("app-image") / "red-square.png"
    render("square", "red", seed=3).save(path)
    return str(path)


def _serve(app):
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def served(outside_attempts, adapters):
    """(module, app, url) of the demo serving the unified CoOp adapter; closed, and checked offline, at the end."""
    module = _load_app_module()
    app = module.build_app(adapters[0])
    url = _serve(app)
    yield module, app, url
    app.close()
    assert outside_attempts == []


def _client(url):
    # gradio_client's analytics default ignores GRADIO_ANALYTICS_ENABLED=False: turn it off here
    return gradio_client.Client(url, verbose=False, analytics_enabled=False, download_files=False)


def _reference(folder, image_path, names=None) -> dict[str, float]:
    """The model's own probabilities for the image, computed without the app."""
    model = AutoModel.from_pretrained(folder).eval()
    pixel_values = model.image_processor(
        Image.open(image_path).convert("RGB"), return_tensors="pt"
    ).pixel_values
    with torch.no_grad():
        if names:
            model.set_class_names(names)
        probs = model(pixel_values).logits.softmax(-1)[0]
    return dict(zip(model.class_names, probs.tolist()))


def test_classify_endpoint_returns_the_models_probabilities(served, adapters, image_path):
    _, _, url = served
    client = _client(url)
    try:
        result = client.predict(
            gradio_client.handle_file(image_path), ", ".join(CLASSES), api_name="/classify"
        )
        assert set(result) == set(CLASSES)
        assert sum(result.values()) == pytest.approx(1.0, abs=1e-5)
        reference = _reference(adapters[0], image_path)
        assert max(result, key=result.get) == max(reference, key=reference.get)
        assert result == pytest.approx(reference, abs=1e-5)

        edited = ["blue star", "green square", "red square"]  # one per line also works
        result = client.predict(
            gradio_client.handle_file(image_path), "\n".join(edited), api_name="/classify"
        )
        assert set(result) == set(edited)
        assert sum(result.values()) == pytest.approx(1.0, abs=1e-5)
        assert result == pytest.approx(_reference(adapters[0], image_path, edited), abs=1e-5)
    finally:
        client.close()


def test_errors_are_shown_not_raised(served, adapters, image_path):
    module, _, url = served
    client = _client(url)
    image = gradio_client.handle_file(image_path)
    try:
        with pytest.raises(AppError, match="class list is empty"):
            client.predict(image, " , \n", api_name="/classify")
        with pytest.raises(AppError, match="unique; repeated: red square"):
            client.predict(image, "red square, blue star, red square", api_name="/classify")
        # this session loads the class-specific adapter: its classes are fixed, in any order
        update, status = client.predict(adapters[1], api_name="/load")  # a Textbox update comes as a dict
        assert module.parse_classes(update["value"]) == CLASSES and "fixed" in status
        assert update["interactive"] is False  # the class list is shown read-only
        with pytest.raises(AppError, match="classes are fixed"):
            client.predict(image, "red square, blue star", api_name="/classify")
        result = client.predict(image, ", ".join(CLASSES[::-1]), api_name="/classify")
        assert result == pytest.approx(_reference(adapters[1], image_path), abs=1e-5)
    finally:
        client.close()
    assert not module.classes_editable(module.load_model(adapters[1]))
    assert module.classes_editable(module.load_model(adapters[0]))


def test_the_page_chart_gets_the_classified_probabilities(served, image_path):
    """What the page's Classify button runs after /classify: the bar chart and the top class, for the
    same session (called as the page does, through the queue; the step has no public API)."""
    _, app, url = served
    dependencies = app.config["dependencies"]
    classify = next(i for i, d in enumerate(dependencies) if d["api_name"] == "classify")
    show = next(i for i, d in enumerate(dependencies) if d.get("trigger_after") == classify)
    client = _client(url)
    try:
        result = client.predict(
            gradio_client.handle_file(image_path), ", ".join(CLASSES), api_name="/classify"
        )
        session = {"session_hash": client.session_hash}
        joined = httpx.post(f"{url}gradio_api/queue/join", json={"data": [None], "fn_index": show, **session})
        joined.raise_for_status()
        with httpx.stream("GET", f"{url}gradio_api/queue/data", params=session, timeout=10) as stream:
            messages = (json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:"))
            done = next(m for m in messages if m.get("msg") == "process_completed")
    finally:
        client.close()
    chart, top = done["output"]["data"]
    assert top == chart["label"] == max(result, key=result.get)
    shown = {c["label"]: c["confidence"] for c in chart["confidences"]}
    assert shown == pytest.approx(result)


def test_no_model_loaded(served, image_path):
    module, _, _ = served
    app = module.build_app()
    url = _serve(app)
    client = _client(url)
    try:
        with pytest.raises(AppError, match="No model loaded"):
            client.predict(gradio_client.handle_file(image_path), "red square", api_name="/classify")
    finally:
        client.close()
        app.close()


def test_class_list_parsing(served):
    module, _, _ = served
    assert module.parse_classes("cat, dog ,\n") == ["cat", "dog"]
    assert module.parse_classes("cock, rooster\nhen\n") == ["cock, rooster", "hen"]
    assert module.format_classes(["cock, rooster", "hen"]) == "cock, rooster\nhen"


BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome installed")
def test_page_renders_in_a_headless_browser(served, tmp_path):
    _, _, url = served
    png = tmp_path / "page.png"
    command = [BROWSER, "--headless", f"--screenshot={png}", "--window-size=1200,900"]
    command += ["--no-first-run", "--disable-background-networking", "--virtual-time-budget=5000"]
    command.append("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")  # offline too
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    done = subprocess.run([*command, url], timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000
