"""Loading refuses what is not an adapter of the class it builds, saying what it found and what to do
(issue 24: an edited model type, a tensor of another dtype kind, a method this release lacks, a folder
that is no adapter, a base model held as a pickle, an unreachable Hub), through the Python API, the
`trust_remote_code` loader and the command line (one line, no library message)."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_cli import run_cli
from test_offline import GUARD
from transformers import AutoModel, CLIPModel

from hf_prompt_clip import AdapterLoadError, CoOpModel, TipAdapterModel, __version__
from hf_prompt_clip.shipped import TINY_CLIP_ID


def saved_coop(folder):
    CoOpModel.from_clip(TINY_CLIP_ID, ["red", "blue"], n_ctx=2).save_pretrained(folder)
    return folder


def edit_config(folder, **changes):
    """Change keys of a saved `config.json` (`None` deletes the key)."""
    path = folder / "config.json"
    saved = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            saved.pop(key, None)
        else:
            saved[key] = value
    path.write_text(json.dumps(saved))
    return folder


def one_error_line(err: str) -> str:
    """The CLI's stderr, which must be exactly one error line (no traceback, no library message)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hf-prompt-clip: error: "), err
    return lines[0]


def evaluate_error(model, capsys) -> str:
    code, _, err = run_cli(["evaluate", "--model", str(model)], capsys)
    assert code == 2
    return one_error_line(err)


# ------------------------------------------------------------------ an edited model type (item 4)

TRUSTING = textwrap.dedent(
    """
    import json, sys
    from transformers import AutoModel, pipeline  # hf_prompt_clip is never imported here: the loader does it

    report = {}
    for load in sys.argv[2:]:
        how, folder = load.split(" ", 1)
        try:
            if how == "AutoModel":
                report[load] = type(AutoModel.from_pretrained(folder, trust_remote_code=True)).__name__
            else:
                report[load] = type(pipeline("image-classification", model=folder, trust_remote_code=True)).__name__
        except Exception as error:
            report[load] = f"{type(error).__name__}: {error}"
    from hf_prompt_clip import CoOpModel  # saving after a trust_remote_code load in the same process
    from hf_prompt_clip.shipped import TINY_CLIP_ID
    try:
        CoOpModel.from_clip(TINY_CLIP_ID, ["red", "blue"], n_ctx=2).save_pretrained(sys.argv[1])
        report["save"] = "saved"
    except Exception as error:
        report["save"] = f"{type(error).__name__}: {error}"
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def trusting_loads(tmp_path_factory):
    """What `AutoModel.from_pretrained(..., trust_remote_code=True)` and the pipeline make of a CoOp adapter,
    as saved and with its model type edited (unknown / another method's), in a process that never imported
    the package; then whether that process can still save an adapter.

    The first load is of a CoOp adapter edited to say KgCoOp: only before the package is imported does
    transformers take the class the `auto_map` names (CoOpModel); once it is, a registered model type is
    built by its own class (a KgCoOpModel, as the config says)."""
    root = tmp_path_factory.mktemp("trusting")
    saved = saved_coop(root / "saved")
    folders = {"saved": saved}
    for name, model_type in (("foo", "prompt_clip_foo"), ("kgcoop", "prompt_clip_kgcoop")):
        folders[name] = edit_config(shutil.copytree(saved, root / name), model_type=model_type)
    loads = [("kgcoop", "AutoModel")] + [
        (name, how) for name in ("saved", "foo") for how in ("AutoModel", "pipeline")
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(root / "modules")}
    done = subprocess.run(
        [sys.executable, "-c", TRUSTING, str(root / "new"), *(f"{how} {folders[name]}" for name, how in loads)],
        capture_output=True, text=True, env=env, cwd=root, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {(name, how): report[f"{how} {folders[name]}"] for name, how in loads} | {
        "save": report["save"],
        "new": root / "new",
    }


def test_an_edited_model_type_is_refused_through_trust_remote_code(trusting_loads):
    assert trusting_loads["saved", "AutoModel"] == "CoOpModel"  # the control loads
    assert trusting_loads["saved", "pipeline"] == "ImageClassificationPipeline"
    other = trusting_loads["kgcoop", "AutoModel"]
    assert other.startswith("AdapterLoadError: ") and (
        "is a 'prompt_clip_kgcoop' adapter (KgCoOpModel), but CoOpModel.from_pretrained builds 'prompt_clip_coop'"
        in other
    )
    for how in ("AutoModel", "pipeline"):  # (the pipeline names our error among the classes it tried)
        unknown = trusting_loads["foo", how]
        assert (
            "AdapterLoadError: '" in unknown
            and "'prompt_clip_foo' adapter saved by hf-prompt-clip" in unknown
        )
        assert "upgrading will not help" in unknown and 'restore "model_type": "prompt_clip_coop"' in unknown
    assert trusting_loads["foo", "AutoModel"].startswith("AdapterLoadError: ")


def test_a_process_that_loaded_with_trust_remote_code_still_saves_adapters(trusting_loads):
    """The trusting load registers the package's classes for their Auto classes; saving must not then try
    to copy the package's modules into the adapter folder."""
    assert trusting_loads["save"] == "saved"
    assert [path.name for path in trusting_loads["new"].glob("*.py")] == ["hf_prompt_clip_loader.py"]
    assert AutoModel.from_pretrained(trusting_loads["new"]).config.class_names == ["red", "blue"]


def test_a_method_class_loads_only_its_own_model_type(tmp_path):
    folder = edit_config(saved_coop(tmp_path / "a"), model_type="prompt_clip_kgcoop")
    with pytest.raises(
        AdapterLoadError, match=r"'prompt_clip_kgcoop' adapter \(KgCoOpModel\), but CoOpModel"
    ):
        CoOpModel.from_pretrained(folder)
    edit_config(folder, model_type="prompt_clip_foo")
    with pytest.raises(AdapterLoadError, match="'prompt_clip_foo' adapter saved by"):
        CoOpModel.from_pretrained(folder)


# ------------------------------------------------------------------ a tensor of another dtype kind (item 5)


def test_a_tensor_stored_as_another_kind_of_dtype_is_refused_naming_it(tmp_path):
    folder = saved_coop(tmp_path / "a")
    tensors = load_file(folder / "model.safetensors")
    save_file({"context": tensors["context"].long()}, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        AdapterLoadError,
        match=r"'context' .* stored as torch.int64 \(integer\), but CoOpModel holds it as torch.float32 "
        r"\(floating point\)",
    ):
        AutoModel.from_pretrained(folder)
    half = tensors["context"].to(torch.bfloat16)  # the same kind, in a smaller dtype: loaded
    save_file({"context": half}, folder / "model.safetensors", metadata={"format": "pt"})
    assert torch.equal(AutoModel.from_pretrained(folder).context, half.float())


def test_integer_labels_must_be_stored_as_integers():
    """Tip-Adapter stores its cache's labels as integers: an integer dtype loads, a floating one is refused."""
    model = TipAdapterModel.from_clip(TINY_CLIP_ID, ["red", "blue"])
    keys = torch.randn(3, model.clip.config.projection_dim)
    model.load_adapter_state_dict(
        {"cache_keys": keys, "cache_labels": torch.tensor([0, 1, 0], dtype=torch.int32)}
    )
    assert model.cache_labels.tolist() == [0, 1, 0] and model.cache_labels.dtype == torch.int64
    with pytest.raises(
        AdapterLoadError, match=r"'cache_labels' .* stored as torch.float32 \(floating point\), but"
    ):
        model.load_adapter_state_dict({"cache_keys": keys, "cache_labels": torch.tensor([1.0, 0.0, 1.0])})
    assert model.cache_labels.tolist() == [0, 1, 0]  # the refused tensors changed nothing


# ------------------------------------------------------------------ a method this release lacks (item 11)


def test_an_unknown_method_names_the_release_that_saved_it_and_whether_upgrading_helps(tmp_path, capsys):
    folder = edit_config(saved_coop(tmp_path / "a"), model_type="prompt_clip_from_the_future")
    for version in (__version__, "0.0.1"):  # this release or an older one: upgrading cannot help
        edit_config(folder, hf_prompt_clip_version=version)
        line = evaluate_error(folder, capsys)
        assert f"'prompt_clip_from_the_future' adapter saved by hf-prompt-clip {version}" in line
        assert f"the installed hf-prompt-clip {__version__}" in line and "upgrading will not help" in line
        assert "pip install" not in line
        with pytest.raises(AdapterLoadError, match="upgrading will not help"):
            CoOpModel.from_pretrained(folder)
    edit_config(folder, hf_prompt_clip_version=None)
    line = evaluate_error(folder, capsys)
    assert "records no release" in line and "Upgrading helps only if a newer release added it" in line
    edit_config(folder, hf_prompt_clip_version="99.0")
    assert 'Upgrade: pip install -U "hf-prompt-clip>=99.0"' in evaluate_error(folder, capsys)


# ------------------------------------------------------------------ a folder that is no adapter (item 14)


def test_a_folder_that_is_no_adapter_says_what_it_is_and_what_was_expected(
    tmp_path, tiny_clip_folder, capsys
):
    line = evaluate_error(tiny_clip_folder, capsys)  # a base CLIP, not an adapter
    assert "is a transformers 'clip' model (config.json model_type), not an hf-prompt-clip adapter" in line
    assert "model_type 'prompt_clip_<method>'" in line and f"--base-model {tiny_clip_folder}" in line
    folder = edit_config(saved_coop(tmp_path / "a"), model_type="clip")
    with pytest.raises(AdapterLoadError, match="CoOpModel loads model_type 'prompt_clip_coop'"):
        CoOpModel.from_pretrained(folder)
    edit_config(folder, model_type=None)
    line = evaluate_error(folder, capsys)
    assert (
        "its config.json names no model_type" in line and 'restore "model_type": "prompt_clip_coop"' in line
    )
    with pytest.raises(AdapterLoadError, match="names no model_type"):
        CoOpModel.from_pretrained(folder)
    (folder / "config.json").unlink()
    assert "holds no config.json, so it is no saved adapter" in evaluate_error(folder, capsys)


# ------------------------------------------------------------------ a base model held as a pickle (item 15)


class RunsCode:
    """Unpickling this runs `os.makedirs(path)`: weights-only loading must refuse it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_a_base_model_held_as_a_pickle_is_refused_with_how_to_convert_it(tmp_path, tiny_clip_folder, capsys):
    ran = tmp_path / "the-pickle-ran"
    state = CLIPModel.from_pretrained(tiny_clip_folder).state_dict()
    base, plain = tmp_path / "pickled-clip", tmp_path / "plain-clip"
    for folder, extra in ((base, {"code": RunsCode(str(ran))}), (plain, {})):
        shutil.copytree(tiny_clip_folder, folder)
        (folder / "model.safetensors").unlink()
        torch.save({**state, **extra}, folder / "pytorch_model.bin")
    assert CoOpModel.from_clip(str(plain), ["red", "blue"]).clip.config  # a pickle of tensors alone: loaded
    refusal = (
        r"holds its weights as a pickle \(pytorch_model.bin\) that torch's weights-only loading refused "
        r"\(unsupported GLOBAL .*makedirs\): base models are loaded from safetensors files.*weights_only=False"
    )
    with pytest.raises(AdapterLoadError, match=refusal):
        CoOpModel.from_clip(str(base), ["red", "blue"])
    adapter = CoOpModel.from_clip(str(plain), ["red", "blue"], n_ctx=2)
    adapter.config.base_model_name_or_path = str(base)
    adapter.save_pretrained(tmp_path / "adapter")
    with pytest.raises(AdapterLoadError, match=refusal):
        AutoModel.from_pretrained(tmp_path / "adapter")
    line = evaluate_error(tmp_path / "adapter", capsys)
    assert "weights-only loading refused" in line and "weights_only=False" in line
    assert not ran.exists()
    exec(re.search(r'python -c "(.*?)"', line).group(1), {})  # the advised conversion: it runs the pickle
    assert ran.is_dir() and CoOpModel.from_clip(f"{base}-safetensors", ["red", "blue"]).clip.config


# ------------------------------------------------------------------ an unreachable Hub (item 16)

UNREACHABLE = textwrap.dedent(
    """
    import time
    pauses = []
    time.sleep = pauses.append  # the Hub client's pauses between retries: counted, not waited
    from hf_prompt_clip.cli import main
    try:
        main(["evaluate", "--model", "some-org/some-adapter"])
    except SystemExit as exit:
        code = exit.code
    asked = len(pauses)
    from huggingface_hub import hf_hub_download
    try:  # the control: the retries of one file request
        hf_hub_download("some-org/some-adapter", "config.json")
    except Exception:
        pass
    print(json.dumps({"code": code, "cli": asked, "one_request": len(pauses) - asked, "attempts": len(attempts)}))
    """
)


def test_evaluate_of_an_unreachable_hub_id_names_the_timeouts_after_one_request(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_ETAG_TIMEOUT="1", HF_HUB_DOWNLOAD_TIMEOUT="1")
    done = subprocess.run(
        [sys.executable, "-c", GUARD + UNREACHABLE], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 2 and report["attempts"] > 0  # it did try the Hub
    assert report["cli"] == report["one_request"] > 0  # one request's retries, not a second round
    line = one_error_line(done.stderr)  # no retry lines of the Hub client either
    assert "--model 'some-org/some-adapter'" in line and "the Hub could not be reached" in line
    assert (
        "HF_HUB_ETAG_TIMEOUT=1 s" in line
        and "HF_HUB_DOWNLOAD_TIMEOUT=1 s" in line
        and "HF_HUB_OFFLINE=1" in line
    )
    assert "We couldn't connect" not in line  # transformers' own sentence


def test_evaluate_of_an_uncached_hub_id_offline_names_the_offline_switch(capsys):
    line = evaluate_error("some-org/some-adapter", capsys)  # HF_HUB_OFFLINE=1 (conftest)
    assert "HF_HUB_OFFLINE=1 is set, so the Hub was not asked, and the local cache" in line
