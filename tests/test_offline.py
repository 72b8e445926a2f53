"""Nothing reaches the network unless asked: importing the package, loading a local adapter and the
pipelines, in a fresh process whose sockets refuse every connection (and without HF_HUB_OFFLINE)."""

import json
import os
import subprocess
import sys
import textwrap

from hf_prompt_clip import CoOpModel
from hf_prompt_clip.shipped import TINY_CLIP_ID

# Every connection and name lookup is refused and recorded; loopback is allowed (nothing of ours
# needs it either, but tools may open local sockets).
GUARD = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []

    def _refuse(what, target):
        attempts.append(f"{what} {target!r}")
        raise OSError(f"network blocked by the test: {what} {target!r}")

    _connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host in ("127.0.0.1", "::1", "localhost") or self.family == socket.AF_UNIX:
            return _connect(self, address)
        _refuse("connect", address)

    def getaddrinfo(host, *args, **kwargs):
        _refuse("getaddrinfo", host)

    socket.socket.connect = connect
    socket.getaddrinfo = getaddrinfo
    socket.create_connection = lambda address, *a, **k: _refuse("create_connection", address)
    """
)

SCRIPT = textwrap.dedent(
    """
    import hf_prompt_clip
    from PIL import Image
    from transformers import AutoModel, pipeline

    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder)
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    labels = [result["label"] for result in pipeline("image-classification", model=folder)(image)]
    zero_shot = pipeline("zero-shot-image-classification", model=folder)
    scores = zero_shot(image, candidate_labels=["red", "blue"], hypothesis_template="{}")
    ours = list(attempts)
    try:  # the control: a Hub call does try to connect, so the guard sees connections
        from huggingface_hub import HfApi
        HfApi().model_info("openai/clip-vit-base-patch16", timeout=1)
    except Exception:
        pass
    print(json.dumps({"attempts": ours, "control": attempts[len(ours):], "labels": labels, "zero_shot": len(scores)}))
    """
)


def test_import_loading_and_pipelines_make_no_connection_attempt(tmp_path):
    CoOpModel.from_clip(TINY_CLIP_ID, ["red", "blue"], n_ctx=2).save_pretrained(tmp_path / "adapter")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(
        HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="0"
    )  # an empty cache, telemetry on
    done = subprocess.run(
        [sys.executable, "-c", GUARD + SCRIPT, str(tmp_path / "adapter")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == [] and report["control"], report  # nothing of ours; the guard works
    assert sorted(report["labels"]) == ["blue", "red"] and report["zero_shot"] == 2


def test_an_unreachable_hub_is_named_with_its_timeouts_and_the_offline_switch(tmp_path):
    """Without a network (every connection refused) and without HF_HUB_OFFLINE, `from_clip` of a Hub id
    says the Hub could not be reached, which timeouts apply and that HF_HUB_OFFLINE=1 uses the cache."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_HOME=str(tmp_path / "hf-home"))
    script = textwrap.dedent(
        """
        from hf_prompt_clip import AdapterLoadError, CoOpModel
        try:
            CoOpModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])
        except AdapterLoadError as error:
            print(json.dumps({"error": str(error), "attempts": len(attempts)}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", GUARD + script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] > 0  # it did try the Hub
    error = report["error"]
    assert (
        "could not load the CLIP 'openai/clip-vit-base-patch16'" in error and "could not be reached" in error
    )
    assert "HF_HUB_ETAG_TIMEOUT=10 s" in error and "HF_HUB_OFFLINE=1" in error
