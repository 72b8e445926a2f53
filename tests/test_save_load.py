"""Adapter-only saving and loading through the Auto classes, with the base by path or Hub id."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForZeroShotImageClassification,
    CLIPModel,
)

from hf_prompt_clip import AdapterLoadError, CoOpModel, ZeroShotCLIPModel


def pixels(batch=3):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def trained_coop(tiny_clip_folder):
    torch.manual_seed(0)
    model = CoOpModel.from_clip(tiny_clip_folder, ["red star", "blue circle", "green ring"], n_ctx=4)
    with torch.no_grad():
        model.context.add_(torch.randn_like(model.context))  # anything but the initial values
    return model


def test_saved_file_holds_exactly_the_adapter(trained_coop, tmp_path):
    trained_coop.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert set(tensors) == {"context"}
    assert torch.equal(tensors["context"], trained_coop.context.detach())
    context_bytes = trained_coop.context.numel() * 4
    assert os.path.getsize(tmp_path / "model.safetensors") < context_bytes + 1024
    files = set(os.listdir(tmp_path))
    assert {"config.json", "tokenizer_config.json", "preprocessor_config.json"} <= files
    assert "adapter_config.json" not in files  # would reroute AutoModel into PEFT
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "prompt_clip_coop"
    assert config["class_names"] == ["red star", "blue circle", "green ring"]


@pytest.mark.parametrize(
    "auto_class", [AutoModel, AutoModelForImageClassification, AutoModelForZeroShotImageClassification]
)
def test_auto_classes_reproduce_logits_with_base_from_local_folder(trained_coop, tmp_path, auto_class):
    with torch.no_grad():
        expected = trained_coop.eval()(pixels()).logits
    trained_coop.save_pretrained(tmp_path)
    loaded = auto_class.from_pretrained(tmp_path)
    assert isinstance(loaded, CoOpModel)
    assert loaded.config.id2label == trained_coop.config.id2label
    with torch.no_grad():
        assert torch.equal(loaded(pixels()).logits, expected)


def test_base_given_as_a_model_object_and_adapter_in_a_subfolder(trained_coop, tiny_clip_folder, tmp_path):
    with torch.no_grad():
        expected = trained_coop.eval()(pixels()).logits
    trained_coop.save_pretrained(tmp_path / "adapters" / "coop")
    base = CLIPModel.from_pretrained(tiny_clip_folder)
    loaded = AutoModel.from_pretrained(tmp_path / "adapters", subfolder="coop", base_model=base)
    assert loaded.clip is base  # wrapped, not copied
    with torch.no_grad():
        assert torch.equal(loaded(pixels()).logits, expected)


def test_base_loads_by_hub_id_and_revision_from_the_offline_cache(hub_cache, tmp_path):
    cache_dir, repo_id, commit = hub_cache
    model = CoOpModel.from_clip(repo_id, ["cat", "dog"], revision=commit, cache_dir=cache_dir, n_ctx=4)
    assert model.config.base_model_name_or_path == repo_id
    assert model.config.base_model_revision == commit
    with torch.no_grad():
        model.context.add_(1.0)
        expected = model(pixels()).logits
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path, cache_dir=cache_dir)
    with torch.no_grad():
        assert torch.equal(loaded(pixels()).logits, expected)
    assert loaded.clip.name_or_path == repo_id
    # the recorded revision is honoured: another one is not in the cache and cannot be loaded
    with pytest.raises(AdapterLoadError, match=r"revision f{40}"):
        AutoModel.from_pretrained(tmp_path, cache_dir=cache_dir, base_model_revision="f" * 40)


def test_zero_shot_model_round_trips_with_an_empty_adapter(tiny_clip_folder, tmp_path):
    model = ZeroShotCLIPModel.from_clip(
        tiny_clip_folder, ["cat", "dog"], templates=["a photo of a {}.", "art of the {}."]
    )
    with torch.no_grad():
        expected = model(pixels()).logits
    model.save_pretrained(tmp_path)
    assert load_file(tmp_path / "model.safetensors") == {}
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert isinstance(loaded, ZeroShotCLIPModel)
    assert loaded.config.templates == ["a photo of a {}.", "art of the {}."]
    with torch.no_grad():
        assert torch.equal(loaded(pixels()).logits, expected)


def test_config_registers_with_auto_config(trained_coop, tmp_path):
    trained_coop.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config).__name__ == "CoOpConfig"
    assert config.n_ctx == 4 and config.clip_config["text_config"]["hidden_size"] == 32


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_loading_in_half_precision_keeps_the_adapter_in_float32_and_classifies(trained_coop, tmp_path, dtype):
    trained_coop.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path, dtype=dtype)
    assert loaded.clip.dtype == dtype
    assert loaded.context.dtype == torch.float32
    assert torch.equal(loaded.context, trained_coop.context.detach())
    pixel_values = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        half, full = loaded(pixel_values).logits, trained_coop(pixel_values).logits
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    torch.testing.assert_close(half, full, atol=2.0, rtol=0)  # logit scale 100: a few half-precision ulps


def test_adapter_without_processor_files_takes_them_from_the_base(hub_cache, tmp_path):
    cache_dir, repo_id, commit = hub_cache
    model = CoOpModel.from_clip(repo_id, ["cat", "dog"], revision=commit, cache_dir=cache_dir, n_ctx=2)
    model.save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        (tmp_path / name).unlink()
    loaded = AutoModel.from_pretrained(tmp_path, cache_dir=cache_dir)
    assert loaded.tokenizer("a cat").input_ids == model.tokenizer("a cat").input_ids
    assert loaded.image_processor.crop_size == model.image_processor.crop_size


LOAD_WITHOUT_IMPORT = """
import sys
from PIL import Image
from transformers import AutoModel, pipeline
folder = sys.argv[1]
try:
    AutoModel.from_pretrained(folder)
except ValueError as error:
    print("refused:", "trust_remote_code" in str(error))
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
print(type(model).__name__, model.config.class_names)
scores = pipeline("image-classification", model=folder, trust_remote_code=True)(Image.new("RGB", (32, 32)))
print(sorted(entry["label"] for entry in scores))
"""

NOT_INSTALLED = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "hf_prompt_clip":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Missing())
from transformers import AutoModel
try:
    AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
except ImportError as error:
    print(error)
"""


def test_a_saved_adapter_loads_with_trust_remote_code_in_a_process_that_never_imported_the_package(
    clip_parts, tmp_path
):
    import subprocess
    import sys

    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, ["cat", "dog"], tokenizer=tokenizer, image_processor=processor, n_ctx=2)
    base = tmp_path / "base"
    clip.save_pretrained(base)
    tokenizer.save_pretrained(base)
    processor.save_pretrained(base)
    model.config.base_model_name_or_path = str(base)
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "hf_prompt_clip_loader.py").is_file()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    run = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_IMPORT, str(tmp_path / "adapter")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()  # (transformers also prints why it asks for trust_remote_code)
    assert lines[-3].endswith("refused: True") and lines[-2:] == [
        "CoOpModel ['cat', 'dog']",
        "['cat', 'dog']",
    ]
    run = subprocess.run(
        [sys.executable, "-c", NOT_INSTALLED, str(tmp_path / "adapter")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert "pip install hf_prompt_clip" in run.stdout, (run.stdout, run.stderr)


def test_the_base_commit_the_hub_resolved_is_recorded(hub_cache, tiny_clip_folder, tmp_path):
    cache_dir, repo_id, commit = hub_cache
    model = CoOpModel.from_clip(repo_id, ["cat", "dog"], cache_dir=cache_dir, n_ctx=2)  # no revision: main
    assert model.config.base_model_revision == commit  # main's commit, not a branch that can move
    model.save_pretrained(tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    config["base_model_revision"] = None  # an adapter saved before the commit was recorded
    (tmp_path / "a" / "config.json").write_text(json.dumps(config))
    assert AutoModel.from_pretrained(tmp_path / "a", cache_dir=cache_dir).config.base_model_revision == commit
    local = CoOpModel.from_clip(tiny_clip_folder, ["cat", "dog"], n_ctx=2)
    assert local.config.base_model_revision is None  # a local folder has no commit


# ------------------------------------------------------------------------------- other releases


def _saved_coop(folder):
    from hf_prompt_clip import CoOpModel
    from hf_prompt_clip.shipped import TINY_CLIP_ID

    CoOpModel.from_clip(TINY_CLIP_ID, ["red", "blue"], n_ctx=2).save_pretrained(folder)
    return folder / "config.json"


def _edit_config(path, **changes):
    saved = json.loads(path.read_text())
    saved.update(changes)
    path.write_text(json.dumps(saved))


def test_a_saved_config_records_the_package_version(tmp_path):
    from hf_prompt_clip import __version__

    assert json.loads(_saved_coop(tmp_path).read_text())["hf_prompt_clip_version"] == __version__


def test_an_adapter_of_a_method_this_release_lacks_names_the_release_and_the_upgrade(tmp_path):
    from hf_prompt_clip import AdapterLoadError, CoOpModel
    from hf_prompt_clip.cli import load_adapter

    _edit_config(
        _saved_coop(tmp_path), model_type="prompt_clip_from_the_future", hf_prompt_clip_version="9.0.0"
    )
    for load in (lambda: load_adapter(str(tmp_path)), lambda: CoOpModel.from_pretrained(tmp_path)):
        with pytest.raises(
            AdapterLoadError, match=r"'prompt_clip_from_the_future' adapter saved by hf-prompt-clip 9\.0\.0"
        ):
            load()
    with pytest.raises(AdapterLoadError, match=r'pip install -U "hf-prompt-clip>=9\.0\.0"'):
        load_adapter(str(tmp_path))


def test_a_config_of_a_newer_release_with_unknown_settings_is_refused_and_an_older_ones_warns(tmp_path):
    from transformers import AutoModel

    from hf_prompt_clip.core.configuration import AdapterVersionError

    config = _saved_coop(tmp_path)
    _edit_config(config, context_dropout=0.1, hf_prompt_clip_version="9.0.0")
    with pytest.raises(
        AdapterVersionError, match=r"saved by hf-prompt-clip 9\.0\.0, which added context_dropout"
    ):
        AutoModel.from_pretrained(tmp_path)
    _edit_config(config, hf_prompt_clip_version="0.0.1")
    with pytest.warns(UserWarning, match="kept but unused: context_dropout"):
        AutoModel.from_pretrained(tmp_path)


def test_trust_remote_code_reaches_the_tokenizer_and_image_processor(tmp_path, monkeypatch):
    import transformers
    from transformers import AutoModel

    _saved_coop(tmp_path)
    seen = []
    for auto in (transformers.AutoTokenizer, transformers.AutoImageProcessor):
        original = auto.from_pretrained.__func__

        def spy(cls, *args, _original=original, **kwargs):
            seen.append((cls.__name__, kwargs.get("trust_remote_code")))
            return _original(cls, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", classmethod(spy))
    AutoModel.from_pretrained(tmp_path, trust_remote_code=True)
    assert ("AutoTokenizer", True) in seen and ("AutoImageProcessor", True) in seen


def test_an_adapter_holding_nan_is_refused_on_loading(tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    from hf_prompt_clip import AdapterLoadError

    _saved_coop(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["context"][0, 0] = float("nan")
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(AdapterLoadError, match=r"non-finite values \(NaN or infinity\) in \['context'\]"):
        AutoModel.from_pretrained(tmp_path)
